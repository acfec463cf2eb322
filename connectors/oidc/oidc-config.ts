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
  /** Stable upstream id (default `sub`; Entra's `oid` is stable across apps of one tenant). */
  subject: claimPath.optional(),
  username: claimPath.optional(),
  email: claimPath.optional(),
  /** Boolean or the strings "true"/"false" (Apple). */
  emailVerified: claimPath.optional(),
  name: claimPath.optional(),
  givenName: claimPath.optional(),
  familyName: claimPath.optional(),
  /** An array of strings or one string. */
  groups: claimPath.optional(),
});

export const oidcConfigSchema = z
  .strictObject({
    /** Fills in issuer, scopes, claim names and quirks of a well-known upstream; explicit fields win. */
    preset: z.enum(PRESET_NAMES).optional(),
    /**
     * The upstream's issuer identifier, exactly as its discovery document states it. Presets
     * derive it (google and apple take an override; the others build it from their own fields).
     */
    issuer: upstreamUrl.optional(),
    clientId: z.string().min(1).max(1024),
    clientSecret: z.string().min(1).max(4096).optional(),
    /** Default: client_secret_basic when the upstream lists it, else client_secret_post. */
    tokenAuthMethod: z.enum(['client_secret_basic', 'client_secret_post']).optional(),
    /** Default from the preset, else [openid, profile, email]. */
    scopes: z.array(scopeToken).min(1).max(64).optional(),
    /** form_post keeps the code out of URLs and logs; Apple requires it when asking for name or email. */
    responseMode: z.enum(['query', 'form_post']).optional(),
    /** PKCE with S256 on every login; turn off only for an upstream that rejects it. */
    pkce: z.boolean().default(true),
    /**
     * auto: read the userinfo endpoint when the upstream has one and issued an access token
     * (many upstreams keep profile claims out of the ID token then); always: and fail without it;
     * never: the ID token only.
     */
    userinfo: z.enum(['auto', 'always', 'never']).optional(),
    /** Which claims fill the identity; defaults sub, preferred_username, email, email_verified, name, given_name, family_name, groups. */
    claims: claimNames.default({}),
    /**
     * Only people of these domains get in: Google checks the `hd` (Workspace) claim and sends `hd`
     * when there is exactly one; every other upstream checks the domain of a verified email
     * (Entra asserts no verified email: restrict Entra by tenant / allowedTenants instead).
     */
    allowedDomains: z.array(domainName).min(1).max(100).optional(),
    /** More authorization request parameters (prompt, login_hint, domain_hint, ...). */
    extraAuthParams: z.record(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be a parameter name'), z.string().max(2048)).optional(),
    /** For every HTTP request to the upstream (discovery, token, userinfo, keys, Graph). */
    timeoutMs: z.number().int().min(100).max(120_000).default(10_000),

    /** entra: a tenant id (GUID), or `organizations` / `common` for any work account (multi-tenant). */
    tenant: z.union([guid, z.enum(['organizations', 'common'])]).optional(),
    /** entra multi-tenant: the tenants whose people may sign in. */
    allowedTenants: z.array(guid).min(1).max(1000).optional(),
    /** entra multi-tenant: let every Entra tenant in (then restrict with mappers or linking). */
    allowAnyTenant: z.boolean().optional(),
    /** entra: the login host, e.g. https://login.microsoftonline.us for US Government. */
    authority: upstreamUrl.optional(),
    /** entra: Microsoft Graph, for groups when a token has too many to carry (overage). */
    graphUrl: upstreamUrl.optional(),
    /** gitlab (default https://gitlab.com) and keycloak: where the server lives. */
    baseUrl: upstreamUrl.optional(),
    /** keycloak: the realm name. */
    realm: z.string().regex(/^[A-Za-z0-9_.-]{1,255}$/, 'must be a realm name').optional(),
    /** okta, auth0: the tenant's host (dev-123.okta.com, example.eu.auth0.com) or a custom domain. */
    domain: hostOrUrl.optional(),
    /** okta: a custom authorization server id (e.g. `default`); leave out for the org server. */
    authorizationServer: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, 'must be an authorization server id').optional(),
    /** apple: the Apple Developer team id. */
    teamId: z.string().regex(/^[A-Z0-9]{10}$/, 'must be the 10-character Apple team id').optional(),
    /** apple: the id of the Sign in with Apple key. */
    keyId: z.string().regex(/^[A-Z0-9]{10}$/, 'must be the 10-character Apple key id').optional(),
    /** apple: the key's PKCS#8 PEM (the .p8 file's content)... */
    privateKey: z.string().includes('-----BEGIN PRIVATE KEY-----', { message: 'must be the PEM text of the .p8 key' }).optional(),
    /** apple: ...or the path of the .p8 file, read at start-up. */
    privateKeyFile: z.string().min(1).optional(),
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
