// The `config:` block of a `saml` connector: Keybridge as a SAML 2.0 service provider toward one
// upstream identity provider. Every field is documented where it is defined; defaults are applied
// here (zod) and in resolveNameIdFormat, nowhere else. Messages name fields, never values.
import { X509Certificate } from 'node:crypto';
import { z } from 'zod';
import { NAME_ID_FORMAT } from '../../src/saml/urns.ts';


export const URL_MESSAGE = 'must be an https:// URL (http:// only for 127.0.0.1, ::1 or localhost), without fragment or credentials';

function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** IdP endpoints: the browser carries SAML messages (and passwords) there, so https off loopback. */
export function isIdpUrl(value: string): boolean {
  if (!URL.canParse(value) || value.includes('#')) return false;
  const url = new URL(value);
  if (url.username || url.password) return false;
  return url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHost(url.hostname));
}

/** A PEM certificate or its base64 DER body (what metadata's X509Certificate holds). */
export function parseCertificate(text: string): X509Certificate | null {
  try {
    return new X509Certificate(text.includes('-----BEGIN') ? text : Buffer.from(text.replace(/\s+/g, ''), 'base64'));
  } catch {
    return null;
  }
}

const idpUrl = z.string().max(2048).refine(isIdpUrl, URL_MESSAGE);
/** SAML attribute Name (or FriendlyName), URIs included (urn:oid:0.9.2342.19200300.100.1.3). */
const attributeName = z.string().min(1).max(512);
/** One attribute name, or several tried in order (the first one present wins). */
const attributeNames = z.union([attributeName, z.array(attributeName).min(1).max(10)]).transform((v) => (Array.isArray(v) ? v : [v]));
const samlUri = z.string().min(1).max(1024).regex(/^\S+$/, 'must be a URI without spaces');

const idpSchema = z.strictObject({
  /** Where the IdP publishes its metadata; fetched on first use and then every metadataRefreshMinutes. */
  metadataUrl: idpUrl.optional(),
  /** Minutes between metadata fetches (metadataUrl only); a failed refresh keeps the last good copy. Default 60. */
  metadataRefreshMinutes: z.number().int().min(1).max(7 * 24 * 60).optional(),
  /** The metadata as a file, read at start-up. */
  metadataFile: z.string().min(1).max(4096).optional(),
  /** The metadata itself (an EntityDescriptor). */
  metadataXml: z.string().min(1).max(1024 * 1024).optional(),
  /** Without metadata: the IdP's entityID... */
  entityId: samlUri.optional(),
  /** ...its SingleSignOnService URL (used for either binding)... */
  ssoUrl: idpUrl.optional(),
  /** ...its SingleLogoutService URL (HTTP-Redirect binding), if it does single logout... */
  sloUrl: idpUrl.optional(),
  /** ...and its signing certificates (PEM or base64 DER); any of them validates (rollover). */
  certificates: z.array(z.string().min(1).max(16 * 1024)).min(1).max(10).optional(),
});

const spSchema = z.strictObject({
  /** This service provider's entityID; default: the connector's metadata URL. */
  entityId: samlUri.optional(),
  /** PEM private key that signs AuthnRequests and logout messages... */
  privateKeyFile: z.string().min(1).max(4096).optional(),
  /** ...and its PEM certificate, published in the SP metadata. */
  certificateFile: z.string().min(1).max(4096).optional(),
  /** PEM key for encrypted assertions; default: the signing key. */
  decryptionKeyFile: z.string().min(1).max(4096).optional(),
  /** Its certificate, published for encryption; default: the signing certificate. */
  decryptionCertificateFile: z.string().min(1).max(4096).optional(),
});

const attributesSchema = z.strictObject({
  /** `nameid` (the NameID value) or the attribute holding a stable id; never a transient NameID. */
  subject: attributeName.default('nameid'),
  username: attributeNames.default(['uid']),
  email: attributeNames.default(['mail']),
  /** SAML has no "verified" flag: an email counts as verified only when the operator says so. */
  emailVerified: z.boolean().default(false),
  name: attributeNames.default(['displayName', 'cn']),
  givenName: attributeNames.default(['givenName']),
  familyName: attributeNames.default(['sn']),
  /** Always an array on the identity, even with one or no value. */
  groups: attributeNames.default(['groups']),
});

const refreshSchema = z.discriminatedUnion('mode', [
  z.strictObject({
    /** SAML cannot re-check a person: refresh tokens work this long after the upstream sign-in. */
    mode: z.literal('bounded'),
    maxAgeSeconds: z.number().int().min(60).max(90 * 24 * 3600).default(8 * 3600),
  }),
  /** Refresh never works; every new token needs a new upstream sign-in. */
  z.strictObject({ mode: z.literal('reauth') }),
]);

export const samlConfigSchema = z
  .strictObject({
    /** Exactly one of metadataUrl, metadataFile, metadataXml, or entityId + ssoUrl + certificates. */
    idp: idpSchema,
    sp: spSchema.prefault({}),
    /** Sign AuthnRequests (needs sp.privateKeyFile and sp.certificateFile). */
    signAuthnRequests: z.boolean().default(true),
    /** How the AuthnRequest reaches the IdP: a redirect, or a self-submitting POST form. */
    authnRequestBinding: z.enum(['redirect', 'post']).default('redirect'),
    /**
     * NameIDPolicy Format asked for: persistent (default, a stable pairwise id), emailAddress,
     * unspecified, transient (then attributes.subject must name an attribute), or a format URI.
     */
    nameIdFormat: z.union([z.enum(['persistent', 'transient', 'emailAddress', 'unspecified']), z.string().regex(/^urn:\S+$/, 'must be persistent, transient, emailAddress, unspecified or a format URN')]).default('persistent'),
    /**
     * Which signature the responses must carry: either (on the response or on the assertion),
     * response, assertion, or both. An unsigned response is never accepted.
     */
    signatures: z.enum(['either', 'response', 'assertion', 'both']).default('either'),
    /** Refuse assertions that arrive in clear text (needs a decryption key). */
    requireEncryptedAssertions: z.boolean().default(false),
    clockSkewSeconds: z.number().int().min(0).max(300).default(60),
    /** Refuse assertions issued, or sign-ins that happened, longer ago than this. */
    maxAssertionAgeSeconds: z.number().int().min(1).max(7 * 24 * 3600).optional(),
    /** Ask the IdP to authenticate the person again even with a session there. */
    forceAuthn: z.boolean().default(false),
    /** RequestedAuthnContext classes (exact comparison); empty: none requested. */
    authnContext: z.array(samlUri).max(20).default([]),
    attributes: attributesSchema.prefault({}),
    /** IdP-initiated sign-in, handed to `client` (required when enabled) through its initiate_login_uri. */
    idpInitiated: z.strictObject({ enabled: z.boolean().default(false), client: z.string().min(1).max(256).optional() }).prefault({}),
    refresh: refreshSchema.prefault({ mode: 'bounded' }),
    /** For each metadata fetch. */
    timeoutMs: z.number().int().min(100).max(120_000).default(10_000),
  })
  .superRefine(
    (c, ctx) => {
      // Runs even when other fields failed, so every problem is reported at once; hence the
      // defensive reads.
      const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
      const idp = (c.idp ?? {}) as Partial<z.output<typeof idpSchema>>;
      const sp = (c.sp ?? {}) as Partial<z.output<typeof spSchema>>;
      const manual = idp.entityId !== undefined || idp.ssoUrl !== undefined || idp.certificates !== undefined || idp.sloUrl !== undefined;
      const sources = [idp.metadataUrl && 'metadataUrl', idp.metadataFile && 'metadataFile', idp.metadataXml && 'metadataXml', manual && 'entityId/ssoUrl/certificates'].filter(Boolean);
      if (sources.length === 0) issue(['idp'], 'needs exactly one of metadataUrl, metadataFile, metadataXml, or entityId + ssoUrl + certificates');
      if (sources.length > 1) issue(['idp'], `has ${sources.join(' and ')}: give exactly one IdP source`);
      if (sources.length === 1 && manual) {
        for (const field of ['entityId', 'ssoUrl', 'certificates'] as const) if (idp[field] === undefined) issue(['idp', field], 'is required without metadata');
      }
      if (idp.metadataRefreshMinutes !== undefined && !idp.metadataUrl) issue(['idp', 'metadataRefreshMinutes'], 'is only for metadataUrl');
      idp.certificates?.forEach((cert, i) => {
        if (typeof cert === 'string' && !parseCertificate(cert)) issue(['idp', 'certificates', i], 'must be a PEM certificate or its base64 DER');
      });
      if ((sp.privateKeyFile === undefined) !== (sp.certificateFile === undefined)) {
        issue(['sp', sp.privateKeyFile === undefined ? 'privateKeyFile' : 'certificateFile'], 'privateKeyFile and certificateFile go together');
      }
      if ((sp.decryptionKeyFile === undefined) !== (sp.decryptionCertificateFile === undefined)) {
        issue(['sp', sp.decryptionKeyFile === undefined ? 'decryptionKeyFile' : 'decryptionCertificateFile'], 'decryptionKeyFile and decryptionCertificateFile go together');
      }
      if (c.signAuthnRequests === true && sp.privateKeyFile === undefined) {
        issue(['signAuthnRequests'], 'needs sp.privateKeyFile and sp.certificateFile (or set signAuthnRequests: false)');
      }
      if (c.requireEncryptedAssertions === true && sp.privateKeyFile === undefined && sp.decryptionKeyFile === undefined) {
        issue(['requireEncryptedAssertions'], 'needs sp.decryptionKeyFile (or sp.privateKeyFile) to decrypt with');
      }
      if (c.nameIdFormat !== undefined && resolveNameIdFormat(c.nameIdFormat) === NAME_ID_FORMAT.transient && (c.attributes?.subject ?? 'nameid') === 'nameid') {
        issue(['attributes', 'subject'], 'must name an attribute when nameIdFormat is transient (a transient NameID changes on every sign-in)');
      }
      if (c.idpInitiated?.enabled === true && c.idpInitiated.client === undefined) issue(['idpInitiated', 'client'], 'is required when idpInitiated is enabled');
    },
    { when: () => true },
  );

export type SamlConfigInput = z.input<typeof samlConfigSchema>;
export type SamlConfig = z.output<typeof samlConfigSchema>;
export type AttributeNames = z.output<typeof attributesSchema>;
export type SignatureRequirement = SamlConfig['signatures'];

export function resolveNameIdFormat(format: string): string {
  return Object.hasOwn(NAME_ID_FORMAT, format) ? NAME_ID_FORMAT[format as keyof typeof NAME_ID_FORMAT] : format;
}
