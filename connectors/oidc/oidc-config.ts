// The `config:` block of an `oidc` connector, and the presets that fill in what Google, Entra ID,
// GitLab, Apple, Okta, Auth0 and Keycloak always look like. Every field is documented where it is
// defined; defaults that depend on the preset are applied in resolveOidcConfig and nowhere else.
import { z } from 'zod';
import type { OidcPreset, ReportIssue } from './oidc-preset.ts';
import { OIDC_PRESETS, PRESET_NAMES, genericPreset } from './presets/index.ts';
import { GUID } from './entra-tenant.ts';
import { UPSTREAM_URL_MESSAGE, isHostOrUpstreamUrl, isPlainHttp, isUpstreamUrl } from './upstream-url.ts';

const upstreamUrl = z.string().refine(isUpstreamUrl, UPSTREAM_URL_MESSAGE);
const hostOrUrl = z.string().refine(isHostOrUpstreamUrl, 'must be a host name (e.g. dev-123.okta.com) or an https:// origin (http:// only for loopback)');
/** A claim name or a dotted path into nested claims (`realm_access.roles`); an exact key wins. */
const claimPath = z.string().min(1).max(256);
const scopeToken = z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'must be a scope token (no spaces or quotes)');
const domainName = z.string().regex(/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/, 'must be a lowercase domain name, e.g. example.com');
const guid = z.string().regex(GUID, 'must be a tenant id (GUID)');

/** Set by the connector for every request; extraAuthParams may not replace them. */
const RESERVED_AUTH_PARAMS = new Set(['state', 'nonce', 'redirect_uri', 'code_challenge', 'code_challenge_method', 'response_type', 'client_id', 'scope', 'response_mode', 'request', 'request_uri']);

/** Preset-only config keys and the presets they belong to. */
const FIELD_OWNERS = new Map<keyof OidcConfig, string[]>();
for (const [name, preset] of Object.entries(OIDC_PRESETS)) {
  for (const field of preset.fields) FIELD_OWNERS.set(field, [...(FIELD_OWNERS.get(field) ?? []), name]);
}

const claimNames = z.strictObject({
  subject: claimPath.optional().describe("Claim holding the stable upstream id (default `sub`; Entra's `oid` is stable across the apps of one tenant)."),
  username: claimPath.optional().describe('Claim for the username (default `preferred_username`; some presets use `email` or `nickname`).'),
  email: claimPath.optional().describe('Claim for the email address (default `email`).'),
  emailVerified: claimPath.optional().describe('Claim saying the email is verified, a boolean or the string "true"/"false" (default `email_verified`).'),
  name: claimPath.optional().describe('Claim for the full name (default `name`).'),
  givenName: claimPath.optional().describe('Claim for the given name (default `given_name`).'),
  familyName: claimPath.optional().describe('Claim for the family name (default `family_name`).'),
  groups: claimPath.optional().describe('Claim holding the groups, an array of strings or one string (default `groups`).'),
});

export const oidcConfigSchema = z
  .strictObject({
    preset: z.enum(PRESET_NAMES).optional().describe('Fills in the issuer, scopes, claim names and quirks of a well-known upstream; explicit fields win.'),
    issuer: upstreamUrl
      .optional()
      .describe("The upstream's issuer URL, exactly as its discovery document states it; required without a preset, derived by most presets (google and apple accept an override)."),
    clientId: z.string().min(1).max(1024).describe('The client id registered at the upstream (for apple: the Services ID).'),
    clientSecret: z.string().min(1).max(4096).optional().describe('The client secret issued by the upstream; required except for apple, whose secret is signed with the key.'),
    tokenAuthMethod: z
      .enum(['client_secret_basic', 'client_secret_post'])
      .optional()
      .describe('How the client authenticates at the token endpoint; default client_secret_basic, or client_secret_post when the upstream does not list basic (apple: always post).'),
    scopes: z.array(scopeToken).min(1).max(64).optional().describe("Scopes to request; default the preset's, else openid, profile and email."),
    responseMode: z
      .enum(['query', 'form_post'])
      .optional()
      .describe('How the upstream returns the code: query (default) or form_post, which keeps it out of URLs and logs (apple always uses it).'),
    pkce: z.boolean().default(true).describe('Send a PKCE (S256) challenge on every login; turn off only for an upstream that rejects it.'),
    userinfo: z
      .enum(['auto', 'always', 'never'])
      .optional()
      .describe('auto (default; entra and apple: never): read the userinfo endpoint when there is one and an access token was issued; always: and fail without it; never: the ID token only.'),
    claims: claimNames.default({}).describe('Which claims (names or dotted paths such as realm_access.roles) fill the identity.'),
    allowedDomains: z
      .array(domainName)
      .min(1)
      .max(100)
      .optional()
      .describe("Only people of these domains get in: google checks the Workspace `hd` claim, other upstreams the domain of a verified email (Entra has none: restrict it by tenant)."),
    extraAuthParams: z
      .record(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be a parameter name'), z.string().max(2048))
      .optional()
      .describe('More authorization request parameters (prompt, login_hint, domain_hint...); protocol parameters such as state or scope are refused.'),
    acrValues: z
      .array(z.string().regex(/^[\x21-\x7e]{1,256}$/, 'must be an acr value: 1-256 printable characters without spaces'))
      .min(1)
      .max(16)
      .optional()
      .describe("Authentication context classes to ask the upstream for, most preferred first (sent as acr_values), e.g. its MFA class; whether it complied shows in the identity's acr."),
    timeoutMs: z.number().int().min(100).max(120_000).default(10_000).describe('Time limit in milliseconds for each request to the upstream (discovery, token, userinfo, keys, Graph).'),

    tenant: z
      .union([guid, z.enum(['organizations', 'common'])])
      .optional()
      .describe('entra: the tenant id (GUID), or organizations / common for any work account (multi-tenant).'),
    allowedTenants: z.array(guid).min(1).max(1000).optional().describe('entra multi-tenant: the tenant ids (GUIDs) whose people may sign in.'),
    allowAnyTenant: z.boolean().optional().describe('entra multi-tenant: let every Entra tenant in (then restrict with mappers or linking) instead of listing allowedTenants.'),
    authority: upstreamUrl.optional().describe('entra: the login host (default https://login.microsoftonline.com; e.g. https://login.microsoftonline.us for US Government).'),
    graphUrl: upstreamUrl.optional().describe('entra: Microsoft Graph (default https://graph.microsoft.com), read for groups when a token has too many to carry.'),
    baseUrl: upstreamUrl.optional().describe('gitlab: the GitLab instance URL (default https://gitlab.com); keycloak: the server URL.'),
    realm: z.string().regex(/^[A-Za-z0-9_.-]{1,255}$/, 'must be a realm name').optional().describe('keycloak: the realm name.'),
    domain: hostOrUrl.optional().describe("okta, auth0: the tenant's host (e.g. dev-123.okta.com) or custom domain."),
    authorizationServer: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,128}$/, 'must be an authorization server id')
      .optional()
      .describe('okta: a custom authorization server id (e.g. `default`); leave out for the org authorization server.'),
    teamId: z.string().regex(/^[A-Z0-9]{10}$/, 'must be the 10-character Apple team id').optional().describe('apple: the 10-character Apple Developer team id.'),
    keyId: z.string().regex(/^[A-Z0-9]{10}$/, 'must be the 10-character Apple key id').optional().describe('apple: the 10-character id of the Sign in with Apple key.'),
    privateKey: z
      .string()
      .includes('-----BEGIN PRIVATE KEY-----', { message: 'must be the PEM text of the .p8 key' })
      .optional()
      .describe("apple: the Sign in with Apple key's PKCS#8 PEM text (the .p8 file's content); give this or privateKeyFile."),
    privateKeyFile: z.string().min(1).optional().describe('apple: the path of the .p8 key file on the broker, read when the connector starts; give this or privateKey.'),
  })
  .superRefine(
    (c, ctx) => {
      // Runs even when other fields failed (`when` below), so every problem is reported at once;
      // hence the defensive reads. Messages name fields, never values.
      const issue: ReportIssue = (path, message) => ctx.addIssue({ code: 'custom', path, message });
      const raw = c as Partial<Record<keyof OidcConfig, unknown>>;
      const name = typeof c.preset === 'string' && c.preset in OIDC_PRESETS ? c.preset : undefined;
      const preset = name ? OIDC_PRESETS[name] : genericPreset;
      for (const [field, owners] of FIELD_OWNERS) {
        if (raw[field] !== undefined && !preset.fields.includes(field)) issue([field], `is only for preset ${owners.join(' or ')}`);
      }
      for (const field of preset.required ?? []) {
        if (raw[field] === undefined) issue([field], `is required for preset ${name}`);
      }
      if (preset.issuer && raw.issuer !== undefined) issue(['issuer'], `is derived from ${preset.issuerFrom} for preset ${name}; set those instead`);
      if (!preset.issuer && !preset.defaultIssuer && raw.issuer === undefined) issue(['issuer'], 'is required (or choose a preset)');
      if (preset.hooks?.clientSecret) {
        if (raw.clientSecret !== undefined) issue(['clientSecret'], `is not used by preset ${name}: the client secret is signed with the key`);
      } else if (raw.clientSecret === undefined) {
        issue(['clientSecret'], 'is required');
      }
      if (preset.tokenAuthMethod && raw.tokenAuthMethod !== undefined && raw.tokenAuthMethod !== preset.tokenAuthMethod) {
        issue(['tokenAuthMethod'], `must be ${preset.tokenAuthMethod} for preset ${name}`);
      }
      if (raw.extraAuthParams && typeof raw.extraAuthParams === 'object') {
        for (const key of Object.keys(raw.extraAuthParams)) {
          if (RESERVED_AUTH_PARAMS.has(key)) issue(['extraAuthParams', key], 'is set by the connector and cannot be overridden');
          if (key === 'acr_values' && raw.acrValues !== undefined) issue(['extraAuthParams', key], 'give either acrValues or extraAuthParams.acr_values, not both');
        }
      }
      preset.check?.(raw, issue);
    },
    { when: () => true },
  );

export type OidcConfigInput = z.input<typeof oidcConfigSchema>;
export type OidcConfig = z.output<typeof oidcConfigSchema>;
export type PresetName = (typeof PRESET_NAMES)[number];
export type UserinfoMode = 'auto' | 'always' | 'never';
export type ResponseMode = 'query' | 'form_post';
export type TokenAuthMethod = 'client_secret_basic' | 'client_secret_post';
export type ClaimNames = Required<z.output<typeof claimNames>>;

const GENERIC_CLAIMS: ClaimNames = {
  subject: 'sub',
  username: 'preferred_username',
  email: 'email',
  emailVerified: 'email_verified',
  name: 'name',
  givenName: 'given_name',
  familyName: 'family_name',
  groups: 'groups',
};

/** The config with every preset default applied: what the connector actually runs with. */
export interface ResolvedOidcConfig extends OidcConfig {
  preset?: PresetName;
  definition: OidcPreset;
  /** Where discovery happens (`${issuer}/.well-known/openid-configuration`). */
  issuer: string;
  scopes: string[];
  responseMode: ResponseMode;
  userinfo: UserinfoMode;
  claims: ClaimNames;
  /** Some upstream URL is plain http (loopback only, checked above). */
  insecure: boolean;
}

export function resolveOidcConfig(c: OidcConfig): ResolvedOidcConfig {
  const definition = c.preset ? OIDC_PRESETS[c.preset] : genericPreset;
  const issuer = definition.issuer?.(c) ?? c.issuer ?? definition.defaultIssuer;
  if (!issuer) throw new Error('issuer: is required (or choose a preset)');
  const urls = [issuer, c.authority, c.graphUrl, c.baseUrl, c.domain].filter((u): u is string => typeof u === 'string');
  return {
    ...c,
    definition,
    issuer,
    scopes: c.scopes ?? [...definition.scopes],
    responseMode: c.responseMode ?? definition.responseMode ?? 'query',
    userinfo: c.userinfo ?? definition.userinfo ?? 'auto',
    claims: { ...GENERIC_CLAIMS, ...definition.claims, ...c.claims },
    tokenAuthMethod: definition.tokenAuthMethod ?? c.tokenAuthMethod,
    insecure: urls.some(isPlainHttp),
  };
}
