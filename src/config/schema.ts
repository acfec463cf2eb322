// The configuration contract (README "Configuration"). Unknown keys are errors everywhere;
// defaults are applied here and nowhere else. Messages never include the offending value, so a
// misplaced secret cannot leak through an error.
import { z } from 'zod';
import { mappersSchema } from '../accounts/identity-mappers.ts';
import { samlIdpSchema } from '../saml-idp/saml-idp-config.ts';
import { usernameKey } from '../accounts/normalize-username.ts';
import { mfaConfigSchema } from '../mfa/mfa-config.ts';
import { acceptsNothing, NOTHING_ACCEPTED, upstreamMfaSchema } from '../mfa/upstream-mfa-policy.ts';
import { passwordPolicySchema } from './password-policy-schema.ts';
import { emailSchema } from './email-schema.ts';
import { passwordResetSchema, registrationSchema } from './registration-schema.ts';
import { accountSchema } from './account-schema.ts';

const UNSAFE_SCHEMES = new Set(['javascript:', 'data:', 'vbscript:', 'file:', 'blob:']);

/** An absolute URL as written (not as the URL parser would repair it), without a fragment. */
export function absoluteUrl(options: { http?: boolean; what?: string; issuer?: boolean } = {}) {
  const what = options.what ?? (options.http ? 'an absolute http(s) URL' : 'an absolute URL');
  return z.string().superRefine((value, ctx) => {
    const fail = (message: string) => ctx.addIssue({ code: 'custom', message });
    // URL() trims whitespace and turns `http:/x` into `http://x/`; oidc-provider compares the
    // string as written, so such a value could never match a request.
    if (/\s/.test(value) || !URL.canParse(value)) return fail(`must be ${what}`);
    const url = new URL(value);
    if (options.http && !/^https?:\/\/[^/?#]/i.test(value)) return fail(`must be ${what}`);
    if (/^https?:$/.test(url.protocol) && !/^https?:\/\/[^/?#]/i.test(value)) return fail(`must be ${what}`);
    if (UNSAFE_SCHEMES.has(url.protocol)) return fail(`must not use the ${url.protocol} scheme`);
    if (value.includes('#')) return fail('must not contain a fragment');
    if (options.issuer && value.includes('?')) return fail('must not contain a query');
    if (options.issuer && (url.username || url.password)) fail('must not contain credentials');
  });
}

// Numbers and booleans may come from `${ENV}` substitution, which always yields strings.
const fromEnvInt = (v: unknown) => (typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : v);
const fromEnvBool = (v: unknown) => (v === 'true' ? true : v === 'false' ? false : v);
// Not `.int()`: its failure aborts the whole parse, which would hide the cross-field checks.
const whole = (n: number) => Number.isInteger(n);
const int = (min: number) => z.preprocess(fromEnvInt, z.number().min(min).refine(whole, 'must be a whole number'));
const positiveInt = () => z.preprocess(fromEnvInt, z.number().positive().refine(whole, 'must be a whole number'));
const bool = () => z.preprocess(fromEnvBool, z.boolean());
const ttl = (seconds: number) => positiveInt().default(seconds);

const SLUG = /^[a-z0-9][a-z0-9-]{0,63}$/;
const SLUG_MESSAGE = 'must be 1-64 lowercase letters, digits and "-", starting with a letter or digit';
const slug = () => z.string().regex(SLUG, SLUG_MESSAGE);

export const LINKING_POLICIES = ['create', 'link-verified-email', 'confirm'] as const;
export const GRANT_TYPES = ['authorization_code', 'refresh_token', 'client_credentials', 'urn:ietf:params:oauth:grant-type:device_code'] as const;
const DEFAULT_GRANT_TYPES: (typeof GRANT_TYPES)[number][] = ['authorization_code', 'refresh_token'];
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const SIGNING_ALGORITHMS = ['ES256', 'RS256', 'PS256', 'EdDSA'] as const;

const listen = z.string().refine((v) => {
  const i = v.lastIndexOf(':');
  const port = v.slice(i + 1);
  return i >= 0 && /^\d{1,5}$/.test(port) && Number(port) <= 65535;
}, 'must be host:port with a port from 0 to 65535');

const client = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9._~-]{1,128}$/, 'must be 1-128 characters of A-Z a-z 0-9 . _ ~ -'),
  /** Absent: a public client, which must use PKCE. */
  // Printable ASCII without spaces: other characters do not survive HTTP Basic and form encoding
  // the same way in every client library, so every request of such a client would fail.
  secret: z.string().min(16, 'must be at least 16 characters').regex(/^[\x21-\x7e]*$/, 'must contain only printable ASCII characters (no spaces, no accented letters)').optional(),
  name: z.string().min(1).max(200).optional(),
  /** Required when the client uses the authorization_code grant. */
  redirectUris: z.array(absoluteUrl()).optional(),
  postLogoutRedirectUris: z.array(absoluteUrl()).default([]),
  grantTypes: z.array(z.enum(GRANT_TYPES)).nonempty('must list at least one grant type').default(['authorization_code', 'refresh_token']),
  /** Scopes the client may request; absent: every scope the broker offers. */
  scopes: z.array(z.string().min(1)).optional(),
  /** Trusted by the operator: no consent screen. */
  firstParty: bool().default(false),
  backchannelLogoutUri: absoluteUrl({ http: true }).optional(),
  /**
   * Where a login started elsewhere (a SAML IdP-initiated login through a connector) sends the
   * person so the app starts its own sign-in (OIDC Core 4, third-party initiated login).
   */
  initiateLoginUri: absoluteUrl({ http: true }).optional(),
  /** Absent: client_secret_basic with a secret, none without. */
  tokenEndpointAuthMethod: z.enum(['client_secret_basic', 'client_secret_post', 'none']).optional(),
  /** Resource servers (ids under `resources`) the client may ask tokens for. */
  resources: z.array(absoluteUrl({ what: 'an absolute URI' })).optional(),
});

const resource = z
  .strictObject({
    /** The resource indicator (RFC 8707) clients send. */
    id: absoluteUrl({ what: 'an absolute URI' }),
    scopes: z.array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'must be a valid scope token')).default([]),
    /** Overrides tokens.resourceAccessToken for this API. */
    accessTokenTtl: positiveInt().optional(),
    /** The JWT `aud`; defaults to the id. */
    audience: z.string().min(1).optional(),
  })
  .transform((r) => ({ ...r, audience: r.audience ?? r.id }));

/** A request budget: `points` requests per `durationSeconds`, then `blockSeconds` of 429 (default: the rest of the window). */
const budget = (points: number, durationSeconds: number) =>
  z
    .strictObject({
      points: positiveInt().default(points),
      durationSeconds: positiveInt().default(durationSeconds),
      blockSeconds: int(0).default(0),
    })
    .prefault({});

const limitsSchema = z
  .strictObject({
    enabled: bool().default(true),
    /**
     * Per account (connector + normalized username, whether the account exists or not): after
     * `freeFailures` consecutive wrong passwords each further attempt waits 2^n seconds (capped
     * at `maxBackoffSeconds`); at `lockoutFailures` the account is locked for `lockoutSeconds`.
     * Failures are forgotten `failureWindowSeconds` after the first one, and on a successful login.
     */
    account: z
      .strictObject({
        freeFailures: int(0).default(3),
        maxBackoffSeconds: positiveInt().default(60),
        lockoutFailures: positiveInt().default(10),
        lockoutSeconds: positiveInt().default(900),
        failureWindowSeconds: positiveInt().default(3600),
      })
      .prefault({}),
    /** Per client IP address. */
    ip: z
      .strictObject({
        /** Login and link-proof password forms (shared counters). */
        login: budget(30, 60),
        /** /callback/* and the SAML IdP endpoints (shared counters). */
        callback: budget(120, 60),
        /**
         * /token, /token/introspection, /token/revocation, /device/auth and /device: every
         * request counts against this budget in each instance's memory (no database round trip
         * on the hot path) ...
         */
        token: budget(1200, 60),
        /** ... and failed requests (bad client, grant or code) count against this one, shared. */
        tokenFailures: budget(60, 600),
      })
      .prefault({}),
  })
  .prefault({});

const staticUser = z.strictObject({
  username: z.string().min(1).max(128).regex(/^\S+$/, 'must not contain whitespace').regex(/^[^@]*$/, 'must not contain "@": usernames are never email addresses (put the address in email)'),
  email: z.email('must be an email address').optional(),
  emailVerified: bool().default(true),
  name: z.string().max(200).optional(),
  givenName: z.string().max(200).optional(),
  familyName: z.string().max(200).optional(),
  /** Plain text, hashed at start-up; or give passwordHash. */
  password: z.string().min(1, 'must not be empty').max(1024).optional(),
  passwordHash: z.string().startsWith('$argon2id$', 'must be an argon2id hash ($argon2id$...)').optional(),
  groups: z.array(z.string().min(1).max(200)).default([]),
  enabled: bool().default(true),
});

/** Passkey sign-ins are recorded under this connector id (src/login/steps/authenticate/passkey-login.ts). */
export const RESERVED_CONNECTOR_IDS = ['passkey'];
const reservedConnectorId = (id: string) => !RESERVED_CONNECTOR_IDS.includes(id);
export const RESERVED_CONNECTOR_MESSAGE = 'is reserved: passkey sign-ins are recorded under it';

const connector = z
  .strictObject({
    id: slug().refine(reservedConnectorId, RESERVED_CONNECTOR_MESSAGE),
    /** The connector type: the folder under connectors/ or a plugin package's type. */
    type: slug(),
    /** Shown on the login page; defaults to the id. */
    name: z.string().min(1).max(100).optional(),
    enabled: bool().default(true),
    /** Checked by the connector's own schema when the registry loads it. */
    config: z.record(z.string(), z.unknown()).default({}),
    /** What a first login through this connector does when no local user is linked yet. */
    linking: z
      .strictObject({
        /**
         * create: a new local user. link-verified-email: link to the local user with the same
         * email when the upstream says it is verified and trustEmail is set, otherwise as
         * `confirm`. confirm: when a local user has that email, the person proves they own it
         * by signing in with one of its existing methods before the link is made.
         */
        firstLogin: z.enum(LINKING_POLICIES).default('create'),
        /** The operator trusts this upstream's email_verified assertion. */
        trustEmail: bool().default(false),
      })
      .prefault({}),
    /** Keep the upstream's OAuth tokens (encrypted with secrets.tokenKeys) so refresh re-checks the upstream. */
    storeTokens: bool().default(false),
    mappers: mappersSchema,
    /**
     * Accept the upstream's proof of a second factor (an `amr` or `acr` listed in upstreamMfa)
     * instead of asking for a local one; the broker's tokens then say `mfa`.
     */
    trustUpstreamMfa: bool().default(false),
    upstreamMfa: upstreamMfaSchema,
  })
  .transform((c) => ({ ...c, name: c.name ?? c.id }));

export const configSchema = z
  .strictObject({
    /**
     * production: refuse to start on weak secrets, weak static passwords, plain-http redirect
     * URIs or issuer (src/config/production-checks.ts). NODE_ENV=production turns it on too.
     */
    mode: z.enum(['development', 'production']).default('development'),
    /** The public URL of the broker, as clients see it. */
    issuer: absoluteUrl({ http: true, issuer: true }).transform((u) => u.replace(/\/+$/, '')),
    http: z
      .strictObject({
        listen: listen.default('127.0.0.1:5556'),
        /** Trust X-Forwarded-* from a reverse proxy or load balancer in front. */
        trustProxy: bool().default(false),
        /**
         * With trustProxy: how many proxies in front append to X-Forwarded-For. The client
         * address is the one the outermost trusted proxy appended (the Nth entry from the
         * right), so a client cannot choose its own address by sending the header itself.
         */
        proxyHops: positiveInt().default(1),
      })
      .prefault({}),
    database: z
      .strictObject({
        /** PostgreSQL; absent: embedded PGlite under dataDir. */
        url: z.string().regex(/^postgres(ql)?:\/\/\S+$/, 'must be a postgres:// or postgresql:// URL').optional(),
        dataDir: z.string().min(1).default('./data'),
        pool: z.strictObject({ min: int(0).default(0), max: int(1).default(10) }).prefault({}),
        /**
         * PostgreSQL: the longest one statement may run, in ms (0: no limit). Beyond it the
         * request answers 503; it also bounds how long a hung database holds a request. Every
         * statement Keybridge runs on a request is an indexed lookup taking milliseconds; raise
         * it (or set 0) for a one-off migration on a very large table.
         */
        statementTimeoutMs: int(0).default(5000),
        /** PostgreSQL: how long, in ms, a request waits for a pooled or new connection before answering 503. */
        acquireTimeoutMs: positiveInt().default(3000),
      })
      .prefault({}),
    log: z.strictObject({ level: z.enum(LOG_LEVELS).default('info') }).prefault({}),
    /** Prometheus metrics at /metrics (src/metrics). */
    metrics: z
      .strictObject({
        enabled: bool().default(true),
        /** Scrapers must send `Authorization: Bearer <token>`; empty (`${VAR:-}`) means none. */
        token: z.preprocess((v) => (v === '' ? undefined : v), z.string().min(32, 'must be at least 32 characters').optional()),
        /** Serve /metrics on this host:port only (not on the public listener). */
        listen: listen.optional(),
      })
      .prefault({}),
    secrets: z
      .strictObject({
        // Absent (or emptied by `${VAR:-}`): the broker generates keys and keeps them in the
        // database so every instance shares them. The first key signs, all verify.
        cookieKeys: z
          .array(z.string().min(32, 'must be at least 32 characters'))
          .optional()
          .transform((keys) => (keys?.length ? keys : undefined)),
        // Encrypt stored upstream tokens; the first encrypts, all decrypt (rotation).
        tokenKeys: z
          .array(z.string().min(32, 'must be at least 32 characters'))
          .optional()
          .transform((keys) => (keys?.length ? keys : undefined)),
      })
      .prefault({}),
    /** Lifetimes in seconds. */
    tokens: z
      .strictObject({
        accessToken: ttl(3600),
        idToken: ttl(3600),
        refreshToken: ttl(2592000),
        authorizationCode: ttl(60),
        clientCredentials: ttl(3600),
        // JWT access tokens for resources (RFC 9068) cannot be revoked or introspected as
        // stored tokens, so they are short-lived unless a resource sets accessTokenTtl.
        resourceAccessToken: ttl(300),
        deviceCode: ttl(600),
        session: ttl(1209600),
        interaction: ttl(3600),
        grant: ttl(2592000),
        /**
         * Seconds during which a just-rotated refresh token may be presented again without
         * revoking the grant (the client lost the response: a dropped connection, an instance
         * that died mid-request). The repeat gets the same successor when it is still unused,
         * else a fresh one. After the window, reuse revokes the grant as before. 0 disables.
         */
        refreshReuseGrace: z.preprocess(fromEnvInt, z.number().min(0).max(300, 'must be at most 300 seconds (a long window weakens reuse detection)').refine(whole, 'must be a whole number')).default(30),
      })
      .prefault({}),
    keys: z
      .strictObject({
        /** Signing algorithms to keep keys for; the first signs ID tokens by default. */
        algorithms: z
          .array(z.enum(SIGNING_ALGORITHMS))
          .nonempty('must list at least one algorithm')
          .refine((a) => new Set(a).size === a.length, 'must not repeat an algorithm')
          .default(['ES256', 'RS256']),
      })
      .prefault({}),
    clients: z.array(client).default([]),
    resources: z.array(resource).default([]),
    users: z.array(staticUser).default([]),
    connectors: z.array(connector).default([]),
    /** Keybridge as a SAML 2.0 IdP for downstream service providers (src/saml-idp/saml-idp-config.ts). */
    samlIdp: samlIdpSchema,
    /** Brute-force and rate limits (src/limits); counters live in the database, or Redis when `redis.url` is set. */
    limits: limitsSchema,
    /** Second factors: the policy per level, remembered devices, WebAuthn (src/mfa/mfa-config.ts). */
    mfa: mfaConfigSchema,
    passwordPolicy: passwordPolicySchema,
    /** Outgoing mail: SMTP, the outbox's retries (src/config/email-schema.ts). */
    email: emailSchema,
    /** Self-registration from the login page (src/config/registration-schema.ts). */
    registration: registrationSchema,
    /** "Forgot password?" for local accounts (src/config/registration-schema.ts). */
    passwordReset: passwordResetSchema,
    /** The admin REST API (`/admin/api/v1`, src/admin-api). */
    admin: z
      .strictObject({
        /** Users in any of these groups may use the API with a token issued to a console client. */
        groups: z.array(z.string().min(1).max(200)).default([]),
        /** Clients whose user tokens carry a user's admin rights (the admin console's client id). */
        consoleClients: z.array(z.string().min(1).max(128)).default(['keybridge-admin-console']),
        /** Largest JSON body an admin request may send, in bytes. */
        bodyLimit: positiveInt().default(256 * 1024),
        /** The admin console at /admin (a browser app on this API, signed in as the first console client). */
        console: z.strictObject({ enabled: z.boolean().default(true) }).prefault({}),
      })
      .prefault({}),
    /** The account console at /account and its API (src/config/account-schema.ts). */
    account: accountSchema,
    /** Optional Redis for rate-limit counters shared by every instance. */
    redis: z.strictObject({ url: z.string().regex(/^rediss?:\/\/\S+$/, 'must be a redis:// or rediss:// URL').optional() }).prefault({}),
    ui: z
      .strictObject({
        title: z.string().min(1).max(100).default('Keybridge'),
        /** A folder with templates/ and assets/ overriding the built-in pages. */
        themeDir: z.string().min(1).optional(),
        /** The pages' language when neither ui_locales nor Accept-Language names one with a catalog. */
        defaultLocale: z.string().regex(/^[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8}){0,4}$/, 'must be a language tag such as "de" or "pt-BR"').optional(),
      })
      .prefault({}),
  })
  // Runs even when fields failed (`when`), so every problem is reported in one pass; hence it
  // reads the value defensively and stays quiet where a field error was already reported.
  .superRefine((config, ctx) => crossFieldChecks(config as unknown as Record<string, unknown>, ctx), { when: () => true });

export type Config = z.output<typeof configSchema>;

type Issues = { addIssue(issue: { code: 'custom'; path: (string | number)[]; message: string }): void };

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const records = (v: unknown): [Record<string, unknown>, number][] => (Array.isArray(v) ? v.map((item, i) => [item, i] as [unknown, number]).filter((e): e is [Record<string, unknown>, number] => isRecord(e[0])) : []);

function crossFieldChecks(config: Record<string, unknown>, ctx: Issues): void {
  const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });

  const duplicates = (list: string, key: string, what: string, fold?: (v: string) => string, note = '') => {
    const seen = new Set<string>();
    for (const [item, i] of records(config[list])) {
      const value = item[key];
      if (typeof value !== 'string') continue;
      const folded = fold ? fold(value) : value;
      if (seen.has(folded)) issue([list, i, key], `duplicate ${what} "${value}"${note}`);
      seen.add(folded);
    }
  };
  duplicates('clients', 'id', 'client id');
  duplicates('resources', 'id', 'resource id');
  duplicates('users', 'username', 'username', usernameKey, ' (usernames compare without case or Unicode compatibility differences)');
  duplicates('connectors', 'id', 'connector id');

  const pool = isRecord(config.database) ? config.database.pool : undefined;
  if (isRecord(pool) && typeof pool.min === 'number' && typeof pool.max === 'number' && pool.min > pool.max) {
    issue(['database', 'pool', 'min'], 'must not be greater than pool.max');
  }

  const resourceIds = new Set(records(config.resources).map(([r]) => r.id));
  for (const [c, i] of records(config.clients)) {
    const grants = c.grantTypes === undefined ? DEFAULT_GRANT_TYPES : Array.isArray(c.grantTypes) ? (c.grantTypes as unknown[]) : [];
    const method = c.tokenEndpointAuthMethod;
    const noRedirects = c.redirectUris === undefined || (Array.isArray(c.redirectUris) && c.redirectUris.length === 0);
    if (grants.includes('authorization_code') && noRedirects) issue(['clients', i, 'redirectUris'], 'must list at least one URI for the authorization_code grant');
    if (c.secret === undefined) {
      if (grants.includes('client_credentials')) issue(['clients', i, 'secret'], 'is required for the client_credentials grant');
      else if (method === 'client_secret_basic' || method === 'client_secret_post') issue(['clients', i, 'secret'], `is required for tokenEndpointAuthMethod "${method}"`);
    } else if (method === 'none') {
      issue(['clients', i, 'secret'], 'must not be set when tokenEndpointAuthMethod is "none"');
    }
    if (Array.isArray(c.resources) && Array.isArray(config.resources)) {
      c.resources.forEach((r, j) => {
        if (typeof r === 'string' && !resourceIds.has(r)) issue(['clients', i, 'resources', j], 'names no resource declared under "resources"');
      });
    }
  }

  const secrets = isRecord(config.secrets) ? config.secrets : {};
  const hasTokenKeys = Array.isArray(secrets.tokenKeys) && secrets.tokenKeys.length > 0;
  for (const [c, i] of records(config.connectors)) {
    if (c.storeTokens === true && !hasTokenKeys) issue(['connectors', i, 'storeTokens'], 'needs secrets.tokenKeys (a key of at least 32 characters) to encrypt the stored tokens');
    const linking = isRecord(c.linking) ? c.linking : {};
    if (linking.firstLogin === 'link-verified-email' && linking.trustEmail !== true) {
      issue(['connectors', i, 'linking', 'trustEmail'], 'must be true for firstLogin "link-verified-email" (otherwise it never links by email; use "confirm")');
    }
    if (acceptsNothing(c.trustUpstreamMfa, c.upstreamMfa)) issue(['connectors', i, 'upstreamMfa'], NOTHING_ACCEPTED);
  }

  for (const [u, i] of records(config.users)) {
    if (u.password === undefined && u.passwordHash === undefined) issue(['users', i, 'password'], 'is required (or give passwordHash)');
    if (u.password !== undefined && u.passwordHash !== undefined) issue(['users', i, 'passwordHash'], 'give either password or passwordHash, not both');
  }
}
