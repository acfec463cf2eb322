// The configuration contract (DESIGN.md "Config shape"). Unknown keys are errors everywhere;
// defaults are applied here and nowhere else.
import { z } from 'zod';

const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an absolute http(s) URL' });
const noFragment = (u: string) => !u.includes('#');

const redirectUri = z.url({ error: 'must be an absolute URL' }).refine(noFragment, 'must not contain a fragment');
const ttl = (seconds: number) => z.number().int().positive().default(seconds);
const GRANT_TYPES = ['authorization_code', 'refresh_token', 'client_credentials', 'urn:ietf:params:oauth:grant-type:device_code'] as const;
const SLUG = /^[a-z0-9][a-z0-9-]{0,63}$/;

const client = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9._~-]{1,128}$/, 'must be 1-128 characters of A-Z a-z 0-9 . _ ~ -'),
  secret: z.string().min(16, 'must be at least 16 characters').optional(),
  name: z.string().min(1).max(200).optional(),
  redirectUris: z.array(redirectUri).optional(),
  postLogoutRedirectUris: z.array(redirectUri).default([]),
  grantTypes: z.array(z.enum(GRANT_TYPES)).nonempty().default(['authorization_code', 'refresh_token']),
  scopes: z.array(z.string().min(1)).optional(),
  firstParty: z.boolean().default(false),
  backchannelLogoutUri: httpUrl.optional(),
  tokenEndpointAuthMethod: z.enum(['client_secret_basic', 'client_secret_post', 'none']).optional(),
  resources: z.array(z.url()).optional(),
});

const resource = z.strictObject({
  id: z.url({ error: 'must be an absolute URI' }),
  scopes: z.array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'must be a valid scope token')).default([]),
  accessTokenTtl: z.number().int().positive().optional(),
  audience: z.string().min(1).optional(),
});

const staticUser = z.strictObject({
  username: z.string().min(1).max(128).regex(/^\S+$/, 'must not contain whitespace'),
  email: z.email().optional(),
  emailVerified: z.boolean().default(true),
  name: z.string().max(200).optional(),
  givenName: z.string().max(200).optional(),
  familyName: z.string().max(200).optional(),
  password: z.string().min(1).max(1024).optional(),
  passwordHash: z.string().startsWith('$argon2id$', 'must be an argon2id hash ($argon2id$...)').optional(),
  groups: z.array(z.string().min(1).max(200)).default([]),
  enabled: z.boolean().default(true),
});

const connector = z.strictObject({
  id: z.string().regex(SLUG, 'must be lowercase letters, digits and "-" (1-64)'),
  type: z.string().regex(SLUG, 'must be lowercase letters, digits and "-" (1-64)'),
  name: z.string().min(1).max(100).optional(),
  enabled: z.boolean().default(true),
  config: z.record(z.string(), z.unknown()).default({}),
});

const listen = z.string().refine((v) => {
  const i = v.lastIndexOf(':');
  if (i < 0) return false;
  const port = v.slice(i + 1);
  return /^\d{1,5}$/.test(port) && Number(port) <= 65535;
}, 'must be host:port with a port from 0 to 65535');

export const configSchema = z
  .strictObject({
    issuer: httpUrl
      .refine((u) => !u.includes('?') && noFragment(u), 'must not contain a query or fragment')
      .transform((u) => u.replace(/\/+$/, '')),
    http: z.strictObject({ listen: listen.default('127.0.0.1:5556'), trustProxy: z.boolean().default(false) }).default({ listen: '127.0.0.1:5556', trustProxy: false }),
    database: z
      .strictObject({
        url: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL').optional(),
        dataDir: z.string().min(1).default('./data'),
        pool: z.strictObject({ min: z.number().int().min(0).default(0), max: z.number().int().min(1).default(10) }).default({ min: 0, max: 10 }),
      })
      .default({ dataDir: './data', pool: { min: 0, max: 10 } }),
    log: z.strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') }).default({ level: 'info' }),
    secrets: z.strictObject({ cookieKeys: z.array(z.string().min(32, 'must be at least 32 characters')).nonempty().optional() }).default({}),
    tokens: z
      .strictObject({
        accessToken: ttl(3600),
        idToken: ttl(3600),
        refreshToken: ttl(2592000),
        authorizationCode: ttl(60),
        clientCredentials: ttl(3600),
        deviceCode: ttl(600),
        session: ttl(1209600),
        interaction: ttl(3600),
        grant: ttl(2592000),
      })
      .prefault({}),
    keys: z.strictObject({ algorithms: z.array(z.enum(['ES256', 'RS256', 'PS256', 'EdDSA'])).nonempty().default(['ES256', 'RS256']) }).prefault({}),
    clients: z.array(client).default([]),
    resources: z.array(resource).default([]),
    users: z.array(staticUser).default([]),
    connectors: z.array(connector).default([]),
    ui: z.strictObject({ title: z.string().min(1).max(100).default('Keybridge'), themeDir: z.string().min(1).optional() }).prefault({}),
  })
  .superRefine((config, ctx) => {
    const duplicates = (values: string[], path: (i: number) => (string | number)[], what: string, fold = false) => {
      const seen = new Set<string>();
      values.forEach((v, i) => {
        const key = fold ? v.toLowerCase() : v;
        if (seen.has(key)) ctx.addIssue({ code: 'custom', path: path(i), message: `duplicate ${what} "${v}"` });
        seen.add(key);
      });
    };
    duplicates(config.clients.map((c) => c.id), (i) => ['clients', i, 'id'], 'client id');
    duplicates(config.resources.map((r) => r.id), (i) => ['resources', i, 'id'], 'resource id');
    duplicates(config.users.map((u) => u.username), (i) => ['users', i, 'username'], 'username', true);
    duplicates(config.connectors.map((c) => c.id), (i) => ['connectors', i, 'id'], 'connector id');

    const resourceIds = new Set(config.resources.map((r) => r.id));
    config.clients.forEach((c, i) => {
      const redirects = c.grantTypes.includes('authorization_code');
      if (redirects && !c.redirectUris?.length) ctx.addIssue({ code: 'custom', path: ['clients', i, 'redirectUris'], message: 'is required for the authorization_code grant' });
      if (c.grantTypes.includes('client_credentials') && !c.secret) ctx.addIssue({ code: 'custom', path: ['clients', i, 'secret'], message: 'is required for the client_credentials grant' });
      if (c.tokenEndpointAuthMethod === 'none' && c.secret) ctx.addIssue({ code: 'custom', path: ['clients', i, 'secret'], message: 'must not be set when tokenEndpointAuthMethod is "none"' });
      if (c.tokenEndpointAuthMethod && c.tokenEndpointAuthMethod !== 'none' && !c.secret) ctx.addIssue({ code: 'custom', path: ['clients', i, 'secret'], message: `is required for tokenEndpointAuthMethod "${c.tokenEndpointAuthMethod}"` });
      c.resources?.forEach((r, j) => {
        if (!resourceIds.has(r)) ctx.addIssue({ code: 'custom', path: ['clients', i, 'resources', j], message: `names no resource declared under "resources"` });
      });
    });
    config.users.forEach((u, i) => {
      if (!u.password && !u.passwordHash) ctx.addIssue({ code: 'custom', path: ['users', i, 'password'], message: 'is required (or give passwordHash)' });
      if (u.password && u.passwordHash) ctx.addIssue({ code: 'custom', path: ['users', i, 'passwordHash'], message: 'give either password or passwordHash, not both' });
    });
  });

export type Config = z.output<typeof configSchema>;
