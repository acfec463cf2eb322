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
/** An AuthnContextClassRef as the identity's `acr` can hold it (src/connectors/upstream-authentication.ts). */
const classRef = z.string().regex(/^[^\s\u0000-\u001f\u007f-\u009f]{1,256}$/, 'must be a URI of 1-256 characters without spaces or control characters');

const idpSchema = z.strictObject({
  metadataUrl: idpUrl.optional().describe("The URL where the IdP publishes its metadata; fetched on first use, then every metadataRefreshMinutes."),
  metadataRefreshMinutes: z
    .number()
    .int()
    .min(1)
    .max(7 * 24 * 60)
    .optional()
    .describe('Minutes between metadata fetches, for metadataUrl only (default 60); a failed refresh keeps the last good copy.'),
  metadataFile: z.string().min(1).max(4096).optional().describe("The path of a file on the broker holding the IdP's metadata, read when the connector starts."),
  metadataXml: z.string().min(1).max(1024 * 1024).optional().describe("The IdP's metadata itself (an EntityDescriptor XML document)."),
  entityId: samlUri.optional().describe("Without metadata: the IdP's entityID."),
  ssoUrl: idpUrl.optional().describe("Without metadata: the IdP's SingleSignOnService URL (used for either binding)."),
  sloUrl: idpUrl.optional().describe("Without metadata: the IdP's SingleLogoutService URL (HTTP-Redirect), if it does single logout."),
  certificates: z
    .array(z.string().min(1).max(16 * 1024))
    .min(1)
    .max(10)
    .optional()
    .describe("Without metadata: the IdP's signing certificates (PEM or base64 DER); any of them validates, for rollover."),
});

const spSchema = z.strictObject({
  entityId: samlUri.optional().describe("This service provider's entityID; default: the connector's metadata URL (<issuer>/connectors/<id>/metadata)."),
  privateKeyFile: z.string().min(1).max(4096).optional().describe('The path of the PEM private key that signs AuthnRequests and logout messages; goes with certificateFile.'),
  certificateFile: z.string().min(1).max(4096).optional().describe("The path of that key's PEM certificate, published in the SP metadata."),
  decryptionKeyFile: z.string().min(1).max(4096).optional().describe('The path of the PEM key that decrypts encrypted assertions; default: the signing key.'),
  decryptionCertificateFile: z
    .string()
    .min(1)
    .max(4096)
    .optional()
    .describe("The path of the decryption key's PEM certificate, published for encryption; default: the signing certificate."),
});

const attributesSchema = z.strictObject({
  subject: attributeName
    .default('nameid')
    .describe('`nameid` (the NameID value) or the name of an attribute holding a stable id; never a transient NameID.'),
  username: attributeNames.default(['uid']).describe('Attribute name(s) for the username; the first one present wins.'),
  email: attributeNames.default(['mail']).describe('Attribute name(s) for the email address; the first one present wins.'),
  emailVerified: z
    .boolean()
    .default(false)
    .describe('Count the email as verified: SAML has no such flag, so set this only when the IdP manages its addresses.'),
  name: attributeNames.default(['displayName', 'cn']).describe('Attribute name(s) for the full name; the first one present wins.'),
  givenName: attributeNames.default(['givenName']).describe('Attribute name(s) for the given name; the first one present wins.'),
  familyName: attributeNames.default(['sn']).describe('Attribute name(s) for the family name; the first one present wins.'),
  groups: attributeNames.default(['groups']).describe('Attribute name(s) holding the group names (always a list on the identity).'),
});

const refreshSchema = z.discriminatedUnion('mode', [
  z.strictObject({
    mode: z.literal('bounded').describe('bounded: refresh tokens work for maxAgeSeconds after the upstream sign-in (SAML cannot re-check a person).'),
    maxAgeSeconds: z
      .number()
      .int()
      .min(60)
      .max(90 * 24 * 3600)
      .default(8 * 3600)
      .describe('How long after the upstream sign-in refresh tokens keep working, in seconds.'),
  }),
  z.strictObject({ mode: z.literal('reauth').describe('reauth: refresh never works; every new token needs a new sign-in at the IdP.') }),
]);

export const samlConfigSchema = z
  .strictObject({
    idp: idpSchema.describe('The upstream IdP: exactly one of metadataUrl, metadataFile, metadataXml, or entityId + ssoUrl + certificates.'),
    sp: spSchema.prefault({}).describe("This service provider (Keybridge): its entityID and key files."),
    signAuthnRequests: z.boolean().default(true).describe('Sign AuthnRequests (needs sp.privateKeyFile and sp.certificateFile).'),
    authnRequestBinding: z
      .enum(['redirect', 'post'])
      .default('redirect')
      .describe('How the AuthnRequest reaches the IdP: a redirect, or a self-submitting POST form.'),
    nameIdFormat: z
      .union([z.enum(['persistent', 'transient', 'emailAddress', 'unspecified']), z.string().regex(/^urn:\S+$/, 'must be persistent, transient, emailAddress, unspecified or a format URN')])
      .default('persistent')
      .describe('NameIDPolicy Format to ask for: persistent (a stable pairwise id), emailAddress, unspecified, transient (then attributes.subject must name an attribute), or a format URN.'),
    signatures: z
      .enum(['either', 'response', 'assertion', 'both'])
      .default('either')
      .describe('Which signature responses must carry: on the response or the assertion (either), response, assertion, or both; unsigned is never accepted.'),
    requireEncryptedAssertions: z.boolean().default(false).describe('Refuse assertions that arrive in clear text (needs a decryption key).'),
    clockSkewSeconds: z.number().int().min(0).max(300).default(60).describe("Seconds of clock difference with the IdP tolerated when checking the assertion's time limits."),
    maxAssertionAgeSeconds: z
      .number()
      .int()
      .min(1)
      .max(7 * 24 * 3600)
      .optional()
      .describe('Refuse assertions issued, or sign-ins at the IdP that happened, longer ago than this many seconds; default: no limit.'),
    forceAuthn: z.boolean().default(false).describe('Ask the IdP to authenticate the person again even with a session there.'),
    authnContext: z
      .array(samlUri)
      .max(20)
      .default([])
      .describe('RequestedAuthnContext class URIs with exact comparison (a shorthand for requestedAuthnContext); empty: none requested.'),
    requestedAuthnContext: z
      .strictObject({
        classRefs: z.array(classRef).min(1).max(20).describe('AuthnContextClassRef URIs, most preferred first, e.g. https://refeds.org/profile/mfa.'),
        comparison: z
          .enum(['exact', 'minimum', 'better', 'maximum'])
          .default('exact')
          .describe('How the IdP compares its authentication with them (SAML core 3.3.2.2.1); exact by default.'),
      })
      .optional()
      .describe("Ask the IdP for an authentication context (RequestedAuthnContext), e.g. its MFA class; what it did shows in the identity's acr."),
    attributes: attributesSchema.prefault({}).describe("Which assertion attributes (Name or FriendlyName) fill the identity's fields."),
    idpInitiated: z
      .strictObject({
        enabled: z.boolean().default(false).describe('Accept IdP-initiated sign-ins (unsolicited responses).'),
        client: z.string().min(1).max(256).optional().describe('The client id they are handed to, through its initiate_login_uri; required when enabled.'),
      })
      .prefault({})
      .describe('IdP-initiated sign-in, off by default.'),
    refresh: refreshSchema.prefault({ mode: 'bounded' }).describe('What refresh tokens do, since SAML cannot re-check a person: bounded (default, 8 h) or reauth.'),
    timeoutMs: z.number().int().min(100).max(120_000).default(10_000).describe('Time limit in milliseconds for each metadata fetch.'),
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
      if (c.requestedAuthnContext !== undefined && Array.isArray(c.authnContext) && c.authnContext.length > 0) {
        issue(['requestedAuthnContext'], 'give either requestedAuthnContext or authnContext, not both');
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
