// The `samlIdp` config section: Keybridge as a SAML 2.0 identity provider for downstream service
// providers. The same service-provider schema validates config entries, database rows
// (`saml_service_providers.settings`) and the CLI's input. Unknown keys are errors; messages never
// echo a value.
import { z } from 'zod';

/**
 * The first-party OIDC client SAML sign-ins go through; never used outside this process. Here,
 * so that naming it does not load the IdP (saml-idp.ts, loaded only when enabled).
 */
export const SAML_IDP_CLIENT_ID = 'keybridge-saml-idp';

// Numbers and booleans may come from `${ENV}` substitution, which always yields strings.
const fromEnvInt = (v: unknown) => (typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : v);
const fromEnvBool = (v: unknown) => (v === 'true' ? true : v === 'false' ? false : v);
const bool = () => z.preprocess(fromEnvBool, z.boolean());
const count = (min: number) => z.preprocess(fromEnvInt, z.number().min(min).refine(Number.isInteger, 'must be a whole number'));

const httpUrl = () =>
  z.string().refine((v) => !/\s/.test(v) && /^https?:\/\/[^/?#]/i.test(v) && URL.canParse(v) && !v.includes('#'), 'must be an absolute http(s) URL without a fragment');

/** A PEM certificate (or its bare base64 body, as metadata carries it). */
const certificate = () =>
  z.string().refine((v) => /^[A-Za-z0-9+/=\s]+$/.test(v.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '')) && v.replace(/-----[^-]+-----|\s/g, '').length > 100, 'must be a PEM certificate');

export const NAME_ID_FORMATS = ['persistent', 'transient', 'emailAddress', 'unspecified'] as const;
export type NameIdFormatName = (typeof NAME_ID_FORMATS)[number];
export const ATTRIBUTE_SOURCES = ['id', 'username', 'email', 'emailVerified', 'name', 'givenName', 'familyName', 'groups'] as const;
export const ENCRYPTION_ALGORITHMS = ['aes256-gcm', 'aes128-gcm', 'aes256-cbc', 'aes128-cbc'] as const;

const attribute = z.strictObject({
  /** The SAML attribute Name the service provider expects (`mail`, `urn:oid:0.9.2342.19200300.100.1.3`). */
  name: z.string().min(1).max(256),
  /** A user field, or `claim:<name>` for a claim a connector's mappers produced at sign-in. */
  from: z.union([z.enum(ATTRIBUTE_SOURCES), z.string().regex(/^claim:[A-Za-z0-9_.:-]{1,128}$/, 'must be one of the user fields or claim:<mapped claim name>')]),
  nameFormat: z.enum(['basic', 'uri', 'unspecified']).default('basic'),
});
export type AttributeRule = z.output<typeof attribute>;

/** The attributes released when a service provider lists none. */
export const DEFAULT_ATTRIBUTES: AttributeRule[] = [
  { name: 'uid', from: 'username', nameFormat: 'basic' },
  { name: 'mail', from: 'email', nameFormat: 'basic' },
  { name: 'displayName', from: 'name', nameFormat: 'basic' },
  { name: 'givenName', from: 'givenName', nameFormat: 'basic' },
  { name: 'sn', from: 'familyName', nameFormat: 'basic' },
  { name: 'groups', from: 'groups', nameFormat: 'basic' },
];

export const serviceProviderSchema = z
  .strictObject({
    /** The service provider's SAML entityID; unique. */
    entityId: z.string().min(1).max(1024).refine((v) => !/\s/.test(v), 'must not contain whitespace'),
    /** Shown to people ("Signing you in to ..."); defaults to the entity ID. */
    name: z.string().min(1).max(200).optional(),
    /** The SP's metadata: at most one of a file, a URL (fetched when first needed, then refreshed) or the XML itself. */
    metadataFile: z.string().min(1).optional(),
    metadataUrl: httpUrl().optional(),
    metadataXml: z.string().min(1).max(1_000_000).optional(),
    /** How long fetched metadata is used before it is fetched again. */
    metadataRefreshSeconds: count(60).default(86400),
    /** Override or replace what the metadata says. Responses are only ever sent to these. */
    assertionConsumerServices: z
      .array(
        z.strictObject({
          url: httpUrl(),
          /** Responses go by HTTP-POST (the Web SSO profile does not allow HTTP-Redirect for them). */
          binding: z.enum(['post']).default('post'),
          index: count(0).optional(),
          isDefault: bool().default(false),
        }),
      )
      .nonempty('must list at least one address')
      .optional(),
    singleLogoutService: z
      .strictObject({
        url: httpUrl(),
        /** Where the SP wants logout responses, when not `url`. */
        responseUrl: httpUrl().optional(),
        binding: z.enum(['redirect', 'post']).default('redirect'),
      })
      .optional(),
    /** The SP's certificates: to verify its signed requests, and to encrypt assertions to it. */
    certificates: z.array(z.union([certificate(), z.strictObject({ pem: certificate(), use: z.enum(['signing', 'encryption']) })])).optional(),
    /**
     * Refuse unsigned sign-in requests from this SP (true), or accept them (false) when their
     * AssertionConsumerServiceURL (or index) is one the SP registered. Default: the global
     * `samlIdp.requireSignedRequests` when true, else what the SP's metadata says
     * (`AuthnRequestsSigned="true"`: required). A request that is signed is always verified.
     * Sign-out requests must be signed whatever this says.
     */
    requireSignedRequests: bool().optional(),
    signResponse: bool().default(true),
    signAssertion: bool().default(true),
    encryptAssertions: bool().default(false),
    encryptionAlgorithm: z.enum(ENCRYPTION_ALGORITHMS).default('aes256-gcm'),
    nameId: z
      .strictObject({
        format: z.enum(NAME_ID_FORMATS).default('persistent'),
        /**
         * Default: persistent -> an opaque id per user and SP (stable, and different at each SP);
         * emailAddress -> email; unspecified -> username. Transient ids are always random.
         */
        from: z.enum(['id', 'username', 'email']).optional(),
      })
      .prefault({}),
    /** Default: uid, mail, displayName, givenName, sn and groups (multi-valued). */
    attributes: z.array(attribute).optional(),
    /** IdP-initiated sign-in (`/saml/idp/init?sp=<entityId>`): off unless enabled. */
    idpInitiated: z
      .strictObject({
        enabled: bool().default(false),
        defaultRelayState: z.string().min(1).max(1024).optional(),
      })
      .prefault({}),
  })
  .superRefine((sp, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    const sources = [sp.metadataFile, sp.metadataUrl, sp.metadataXml].filter((s) => s !== undefined).length;
    if (sources > 1) issue(['metadataUrl'], 'give only one of metadataFile, metadataUrl and metadataXml');
    if (sources === 0 && !sp.assertionConsumerServices) issue(['assertionConsumerServices'], 'is required when no metadata (metadataFile, metadataUrl or metadataXml) is given');
    if (!sp.signResponse && !sp.signAssertion) issue(['signAssertion'], 'the response, the assertion or both must be signed');
    const certs = sp.certificates ?? [];
    const uses = (use: 'signing' | 'encryption') => certs.some((c) => typeof c === 'string' || c.use === use);
    if (sources === 0 && sp.requireSignedRequests === true && !uses('signing')) issue(['requireSignedRequests'], 'needs a signing certificate under certificates (or metadata with one)');
    if (sources === 0 && sp.encryptAssertions && !uses('encryption')) issue(['encryptAssertions'], 'needs an encryption certificate under certificates (or metadata with one)');
    if (sp.nameId.format === 'transient' && sp.nameId.from) issue(['nameId', 'from'], 'does not apply to transient NameIDs (they are always random)');
    const defaults = (sp.assertionConsumerServices ?? []).filter((a) => a.isDefault).length;
    if (defaults > 1) issue(['assertionConsumerServices'], 'only one address may be the default');
    const indexes = (sp.assertionConsumerServices ?? []).flatMap((a) => (a.index === undefined ? [] : [a.index]));
    if (new Set(indexes).size !== indexes.length) issue(['assertionConsumerServices'], 'must not repeat an index');
    const names = (sp.attributes ?? []).map((a) => a.name);
    if (new Set(names).size !== names.length) issue(['attributes'], 'must not repeat an attribute name');
  });

export type ServiceProviderConfig = z.output<typeof serviceProviderSchema>;

export const samlIdpSchema = z
  .strictObject({
    /** When false (the default) none of the /saml/idp endpoints exist. */
    enabled: bool().default(false),
    /** Default: `<issuer>/saml/idp/metadata`. */
    entityId: z.string().min(1).max(1024).optional(),
    /**
     * The key and certificate that sign responses. Absent: an RSA-2048 key and a self-signed
     * certificate (10 years) are generated once and kept in the database, shared by every instance.
     */
    signing: z.strictObject({ privateKeyFile: z.string().min(1), certificateFile: z.string().min(1) }).optional(),
    signatureAlgorithm: z.enum(['rsa-sha256', 'rsa-sha512']).default('rsa-sha256'),
    /**
     * Advertised in our metadata (WantAuthnRequestsSigned): asks SPs to sign. It enforces nothing:
     * whether an unsigned request is refused is `requireSignedRequests` (here and per SP).
     */
    wantAuthnRequestsSigned: bool().default(true),
    /**
     * true: every SP must sign its sign-in requests, unless its own `requireSignedRequests` is
     * false. Absent or false: each SP as its metadata says (AuthnRequestsSigned) or as its own
     * `requireSignedRequests` says.
     */
    requireSignedRequests: bool().optional(),
    /** How long an assertion may be presented (NotOnOrAfter). */
    assertionLifetimeSeconds: count(1).default(300),
    /** How old a request's IssueInstant may be. */
    requestMaxAgeSeconds: count(1).default(300),
    /** Tolerated clock difference with service providers. */
    clockSkewSeconds: count(0).default(60),
    serviceProviders: z.array(serviceProviderSchema).default([]),
  })
  .superRefine((idp, ctx) => {
    if (idp.requireSignedRequests === true && !idp.wantAuthnRequestsSigned) ctx.addIssue({ code: 'custom', path: ['wantAuthnRequestsSigned'], message: 'must not be false when requireSignedRequests is true (the metadata would tell SPs not to sign)' });
    const seen = new Set<string>();
    idp.serviceProviders.forEach((sp, i) => {
      const hasMetadata = sp.metadataFile !== undefined || sp.metadataUrl !== undefined || sp.metadataXml !== undefined;
      const signing = (sp.certificates ?? []).some((c) => typeof c === 'string' || c.use === 'signing');
      if (idp.requireSignedRequests === true && sp.requireSignedRequests === undefined && !hasMetadata && !signing) {
        ctx.addIssue({ code: 'custom', path: ['serviceProviders', i, 'requireSignedRequests'], message: 'samlIdp.requireSignedRequests is true but this SP has no signing certificate (add one under certificates, or set requireSignedRequests: false for it)' });
      }
      if (seen.has(sp.entityId)) ctx.addIssue({ code: 'custom', path: ['serviceProviders', i, 'entityId'], message: `duplicate service provider "${sp.entityId}"` });
      seen.add(sp.entityId);
    });
  })
  .prefault({});

export type SamlIdpConfig = z.output<typeof samlIdpSchema>;
