// OIDC clients as the admin API and the `keybridge clients` CLI manage them. Clients declared in
// config (and Keybridge's internal ones) are listed read-only; clients created here live in the
// database, with their secret stored hashed (src/oidc/hashed-client-secrets.ts) and shown once,
// and reach every instance through the change feed (src/storage/change-feed.ts).
import { z } from 'zod';
import type { Config } from '../config/schema.ts';
import { absoluteUrl, GRANT_TYPES, SIGNING_ALGORITHMS } from '../config/schema.ts';
import { isPlainHttpRemote, isProductionMode } from '../config/production-checks.ts';
import type { Store } from '../storage/store.ts';
import type { StoredClient } from '../storage/types.ts';
import { AlreadyExists } from '../errors.ts';
import { clientMetadata } from '../oidc/clients.ts';
import { generateClientSecret, hashClientSecret, HASHED_SECRET } from '../oidc/hashed-client-secrets.ts';
import { SAML_IDP_CLIENT_ID } from '../saml-idp/saml-idp-config.ts';
import { ADMIN_SCOPES } from '../admin-api/authenticate-admin.ts';
import { AdminProblem, conflict, invalid, notFound, readOnly, type FieldError } from '../admin-api/problem.ts';
import { checkIfMatch, etagOf } from '../admin-api/admin-support.ts';

export const CLIENT_ID = /^[A-Za-z0-9._~-]{1,128}$/;
export const TOKEN_AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'] as const;
const SECRET_METHODS = new Set<string>(['client_secret_basic', 'client_secret_post']);
export const DEFAULT_OVERLAP_SECONDS = 86_400;
export const MAX_OVERLAP_SECONDS = 30 * 86_400;
const MAX_LIFETIME = 366 * 86_400;
// Private JWK members: a client registers public keys only.
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

const uri = () => z.string().max(2048).pipe(absoluteUrl());
const httpUri = () => z.string().max(2048).pipe(absoluteUrl({ http: true }));
const scopeToken = z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]{1,128}$/, 'must be a scope token (printable ASCII, no spaces, quotes or backslashes)');
const lifetime = z.int().min(1).max(MAX_LIFETIME).describe('Seconds.');
const publicJwk = z
  .record(z.string().max(64), z.unknown())
  .refine((k) => typeof k.kty === 'string', 'must be a JWK (kty is missing)')
  .refine((k) => !PRIVATE_JWK_MEMBERS.some((m) => m in k), 'must be a public key (private or symmetric key members are refused)');
const jwksSchema = z.strictObject({ keys: z.array(publicJwk).min(1).max(20) });
const unique = <T extends z.ZodArray<z.ZodType>>(schema: T) => schema.refine((a) => new Set(a as unknown[]).size === (a as unknown[]).length, 'must not repeat a value');

const fields = {
  name: z.string().trim().min(1).max(200).describe('Shown on the consent and logout pages; defaults to the id.'),
  grantTypes: unique(z.array(z.enum(GRANT_TYPES)).min(1).max(GRANT_TYPES.length)),
  redirectUris: unique(z.array(uri()).max(50)).describe('Absolute, without fragment; plain http only for loopback in production. Required for authorization_code.'),
  postLogoutRedirectUris: unique(z.array(uri()).max(50)),
  backchannelLogoutUri: httpUri().nullable().describe('OpenID Back-Channel Logout endpoint.'),
  scopes: unique(z.array(scopeToken).max(100)).describe('Scopes the client may request. Default: every non-admin scope the broker offers when the client is created. Admin scopes only within the caller\'s own rights.'),
  firstParty: z.boolean().describe('Trusted: no consent screen.'),
  enabled: z.boolean().describe('A disabled client is refused everywhere within 2 s (its tokens stop working).'),
  tokenEndpointAuthMethod: z.enum(TOKEN_AUTH_METHODS),
  jwks: jwksSchema.nullable().describe('Public keys for private_key_jwt (or use jwksUri).'),
  jwksUri: httpUri().nullable().describe('Where the public keys for private_key_jwt are fetched.'),
  idTokenSignedResponseAlg: z.enum(SIGNING_ALGORITHMS).nullable().describe('One of the broker\'s key algorithms (keys.algorithms); null: the broker default.'),
  tokenLifetimes: z
    .strictObject({ accessToken: lifetime.optional(), idToken: lifetime.optional(), refreshToken: lifetime.optional(), clientCredentials: lifetime.optional() })
    .describe('Per-client token lifetimes in seconds; absent ones follow config `tokens`.'),
};

export const createClientSchema = z.strictObject({
  id: z.string().regex(CLIENT_ID, 'must be 1-128 characters of A-Z a-z 0-9 . _ ~ -').optional().describe('Default: a random UUID.'),
  name: fields.name.optional(),
  grantTypes: fields.grantTypes.default(['authorization_code', 'refresh_token']),
  redirectUris: fields.redirectUris.default([]),
  postLogoutRedirectUris: fields.postLogoutRedirectUris.default([]),
  backchannelLogoutUri: fields.backchannelLogoutUri.optional(),
  scopes: fields.scopes.optional(),
  firstParty: fields.firstParty.default(false),
  enabled: fields.enabled.default(true),
  tokenEndpointAuthMethod: fields.tokenEndpointAuthMethod.default('client_secret_basic'),
  jwks: fields.jwks.optional(),
  jwksUri: fields.jwksUri.optional(),
  idTokenSignedResponseAlg: fields.idTokenSignedResponseAlg.optional(),
  tokenLifetimes: fields.tokenLifetimes.optional(),
});
export type CreateClientInput = z.input<typeof createClientSchema>;

export const updateClientSchema = z.strictObject({
  name: fields.name.nullable().optional(),
  grantTypes: fields.grantTypes.optional(),
  redirectUris: fields.redirectUris.optional(),
  postLogoutRedirectUris: fields.postLogoutRedirectUris.optional(),
  backchannelLogoutUri: fields.backchannelLogoutUri.optional(),
  scopes: fields.scopes.optional(),
  firstParty: fields.firstParty.optional(),
  enabled: fields.enabled.optional(),
  tokenEndpointAuthMethod: fields.tokenEndpointAuthMethod.optional(),
  jwks: fields.jwks.optional(),
  jwksUri: fields.jwksUri.optional(),
  idTokenSignedResponseAlg: fields.idTokenSignedResponseAlg.optional(),
  tokenLifetimes: fields.tokenLifetimes.optional(),
});
export type UpdateClientInput = z.infer<typeof updateClientSchema>;

export const clientViewSchema = z.object({
  id: z.string(),
  source: z.enum(['config', 'database', 'internal']).describe('config and internal clients are read-only here.'),
  readOnly: z.boolean(),
  name: z.string(),
  enabled: z.boolean(),
  firstParty: z.boolean(),
  grantTypes: z.array(z.string()),
  redirectUris: z.array(z.string()),
  postLogoutRedirectUris: z.array(z.string()),
  backchannelLogoutUri: z.string().nullable(),
  scopes: z.array(z.string()).nullable().describe('null: every scope the broker offers (config clients only).'),
  tokenEndpointAuthMethod: z.string(),
  jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())) }).nullable(),
  jwksUri: z.string().nullable(),
  idTokenSignedResponseAlg: z.string().nullable(),
  tokenLifetimes: z.object({ accessToken: z.int().optional(), idToken: z.int().optional(), refreshToken: z.int().optional(), clientCredentials: z.int().optional() }),
  secretStatus: z
    .object({ set: z.boolean(), previousValidUntil: z.iso.datetime().nullable().describe('Until when the secret before the last rotation is still accepted.') })
    .describe('Whether the client has a secret; the secret itself is shown only when created or rotated.'),
  createdAt: z.iso.datetime().nullable(),
  updatedAt: z.iso.datetime().nullable(),
});
export type ClientView = z.infer<typeof clientViewSchema>;

/** Everything a stored client is, in API terms (camelCase), id aside. */
interface Settings {
  name: string | null;
  grantTypes: string[];
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  backchannelLogoutUri: string | null;
  scopes: string[];
  firstParty: boolean;
  enabled: boolean;
  tokenEndpointAuthMethod: string;
  jwks: { keys: Record<string, unknown>[] } | null;
  jwksUri: string | null;
  idTokenSignedResponseAlg: string | null;
  tokenLifetimes: ClientView['tokenLifetimes'];
}

const LIFETIME_KEYS = [
  ['accessToken', 'access_token'],
  ['idToken', 'id_token'],
  ['refreshToken', 'refresh_token'],
  ['clientCredentials', 'client_credentials'],
] as const;

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

/** The API view of oidc-provider metadata (config, internal or stored); never a secret. */
function viewOf(id: string, metadata: Record<string, unknown>, extra: { source: ClientView['source']; enabled: boolean; firstParty: boolean; hasSecret: boolean; previousValidUntil: Date | null; createdAt: Date | null; updatedAt: Date | null; scopes: string[] | null }): ClientView {
  const lifetimes = (metadata.token_lifetimes ?? {}) as Record<string, number>;
  const jwks = metadata.jwks as { keys: Record<string, unknown>[] } | undefined;
  const liveUntil = extra.previousValidUntil && extra.previousValidUntil.getTime() > Date.now() ? extra.previousValidUntil : null;
  return {
    id,
    source: extra.source,
    readOnly: extra.source !== 'database',
    name: str(metadata.client_name) ?? id,
    enabled: extra.enabled,
    firstParty: extra.firstParty,
    grantTypes: strings(metadata.grant_types ?? ['authorization_code', 'refresh_token']),
    redirectUris: strings(metadata.redirect_uris),
    postLogoutRedirectUris: strings(metadata.post_logout_redirect_uris),
    backchannelLogoutUri: str(metadata.backchannel_logout_uri),
    scopes: extra.scopes,
    tokenEndpointAuthMethod: str(metadata.token_endpoint_auth_method) ?? 'client_secret_basic',
    jwks: jwks ? { keys: jwks.keys } : null,
    jwksUri: str(metadata.jwks_uri),
    idTokenSignedResponseAlg: str(metadata.id_token_signed_response_alg),
    tokenLifetimes: Object.fromEntries(LIFETIME_KEYS.flatMap(([api, meta]) => (typeof lifetimes[meta] === 'number' ? [[api, lifetimes[meta]]] : []))),
    secretStatus: { set: extra.hasSecret, previousValidUntil: liveUntil?.toISOString() ?? null },
    createdAt: extra.createdAt?.toISOString() ?? null,
    updatedAt: extra.updatedAt?.toISOString() ?? null,
  };
}

function storedView(c: StoredClient): ClientView {
  const scope = str(c.metadata.scope);
  return viewOf(c.id, c.metadata, {
    source: 'database',
    enabled: c.enabled,
    firstParty: c.firstParty,
    hasSecret: Boolean(c.secretHash),
    previousValidUntil: c.previousSecretHash ? c.previousSecretExpiresAt : null,
    createdAt: c.createdAt,
    updatedAt: c.updatedAt,
    scopes: scope === null ? null : scope.split(' ').filter(Boolean),
  });
}

function settingsOf(view: ClientView): Settings {
  return {
    name: view.name === view.id ? null : view.name,
    grantTypes: view.grantTypes,
    redirectUris: view.redirectUris,
    postLogoutRedirectUris: view.postLogoutRedirectUris,
    backchannelLogoutUri: view.backchannelLogoutUri,
    scopes: view.scopes ?? [],
    firstParty: view.firstParty,
    enabled: view.enabled,
    tokenEndpointAuthMethod: view.tokenEndpointAuthMethod,
    jwks: view.jwks,
    jwksUri: view.jwksUri,
    idTokenSignedResponseAlg: view.idTokenSignedResponseAlg,
    tokenLifetimes: view.tokenLifetimes,
  };
}

/** oidc-provider metadata of a stored client (its secret lives in the row, hashed). */
function metadataOf(id: string, s: Settings): Record<string, unknown> {
  const code = s.grantTypes.includes('authorization_code');
  const lifetimes = Object.fromEntries(LIFETIME_KEYS.flatMap(([api, meta]) => (s.tokenLifetimes[api] !== undefined ? [[meta, s.tokenLifetimes[api]]] : [])));
  return {
    client_id: id,
    client_name: s.name ?? id,
    grant_types: s.grantTypes,
    response_types: code ? ['code'] : [],
    redirect_uris: code ? s.redirectUris : [],
    post_logout_redirect_uris: s.postLogoutRedirectUris,
    ...(s.backchannelLogoutUri ? { backchannel_logout_uri: s.backchannelLogoutUri, backchannel_logout_session_required: true } : {}),
    scope: s.scopes.join(' '),
    token_endpoint_auth_method: s.tokenEndpointAuthMethod,
    ...(s.jwks ? { jwks: s.jwks } : {}),
    ...(s.jwksUri ? { jwks_uri: s.jwksUri } : {}),
    ...(s.idTokenSignedResponseAlg ? { id_token_signed_response_alg: s.idTokenSignedResponseAlg } : {}),
    ...(Object.keys(lifetimes).length ? { token_lifetimes: lifetimes } : {}),
  };
}

export interface ClientServiceOptions {
  config: Config;
  store: Store;
  /** Keybridge's own clients (the SAML IdP's), as oidc-provider metadata: listed, read-only. */
  internalClients?: readonly Record<string, unknown>[];
  /** Scopes a client gets when none are given (the broker's non-admin scopes). */
  defaultScopes: readonly string[];
  /** oidc-provider's own check of client metadata (provider.Client.validate), when a provider runs. */
  validateMetadata?: (metadata: Record<string, unknown>) => Promise<void>;
  env?: Record<string, string | undefined>;
}

export interface WriteOptions {
  /** The If-Match entity tags of the request (null: no check). */
  ifMatch?: string[] | null;
  /** Whether the caller may hand this admin scope to a client (no one grants more than they hold). */
  mayGrant?: (scope: string) => boolean;
}

export interface ClientWrite {
  view: ClientView;
  etag: string;
  before: ClientView | null;
  /** The clear secret, when one was generated: shown once, never stored. */
  secret: string | null;
  /** Tokens, codes and grants deleted with the change (disabling a client). */
  revoked?: number;
  /** False when the update asked for nothing new (nothing was written). */
  changed?: boolean;
}

export class ClientService {
  readonly #o: ClientServiceOptions;
  readonly #static: Map<string, ClientView>;

  constructor(options: ClientServiceOptions) {
    this.#o = options;
    const entries: Array<[string, ClientView]> = [];
    for (const c of options.config.clients) {
      entries.push([c.id, viewOf(c.id, clientMetadata(c), { source: 'config', enabled: true, firstParty: c.firstParty, hasSecret: Boolean(c.secret), previousValidUntil: null, createdAt: null, updatedAt: null, scopes: c.scopes ? [...c.scopes] : null })]);
    }
    for (const m of options.internalClients ?? []) {
      const id = String(m.client_id);
      entries.push([id, viewOf(id, m, { source: 'internal', enabled: true, firstParty: m.first_party === true, hasSecret: typeof m.client_secret === 'string', previousValidUntil: null, createdAt: null, updatedAt: null, scopes: typeof m.scope === 'string' ? m.scope.split(' ') : null })]);
    }
    this.#static = new Map(entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  /** Config, internal and stored clients by id (byte order: ids are ASCII), `limit` after the id `after`. */
  async list(options: { limit: number; after?: string }): Promise<{ items: ClientView[]; last: string | null }> {
    const stored = await this.#o.store.clients.listPage({ after: options.after, limit: options.limit + 1 });
    const statics = [...this.#static.values()].filter((v) => options.after === undefined || v.id > options.after);
    const all = [...statics, ...stored.filter((c) => !this.#static.has(c.id)).map(storedView)].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const items = all.slice(0, options.limit);
    // More stored rows may follow even when some fetched ones were hidden by a config client.
    const more = all.length > options.limit || stored.length > options.limit;
    return { items, last: more && items.length ? items[items.length - 1].id : null };
  }

  async get(id: string): Promise<{ view: ClientView; etag: string }> {
    const fixed = this.#static.get(id);
    if (fixed) return { view: fixed, etag: etagOf(fixed) };
    const stored = await this.#o.store.clients.find(id);
    if (!stored) throw notFound(`Client "${id}"`);
    const view = storedView(stored);
    return { view, etag: etagOf(view) };
  }

  async create(input: z.output<typeof createClientSchema>, options: WriteOptions = {}): Promise<ClientWrite> {
    const id = input.id ?? crypto.randomUUID();
    this.#refuseReserved(id);
    const settings: Settings = {
      name: input.name ?? null,
      grantTypes: input.grantTypes,
      redirectUris: input.redirectUris,
      postLogoutRedirectUris: input.postLogoutRedirectUris,
      backchannelLogoutUri: input.backchannelLogoutUri ?? null,
      scopes: input.scopes ?? [...this.#o.defaultScopes],
      firstParty: input.firstParty,
      enabled: input.enabled,
      tokenEndpointAuthMethod: input.tokenEndpointAuthMethod,
      jwks: input.jwks ?? null,
      jwksUri: input.jwksUri ?? null,
      idTokenSignedResponseAlg: input.idTokenSignedResponseAlg ?? null,
      tokenLifetimes: input.tokenLifetimes ?? {},
    };
    await this.#check(id, settings, input.scopes ?? [], options);
    const secret = SECRET_METHODS.has(settings.tokenEndpointAuthMethod) ? generateClientSecret() : null;
    let stored: StoredClient;
    try {
      stored = await this.#o.store.clients.create({ id, metadata: metadataOf(id, settings), firstParty: settings.firstParty, enabled: settings.enabled, secretHash: secret ? hashClientSecret(secret) : null });
    } catch (err) {
      if (err instanceof AlreadyExists) throw conflict(`A client with the id "${id}" exists already.`, 'already_exists');
      throw err;
    }
    const view = storedView(stored);
    return { view, etag: etagOf(view), before: null, secret };
  }

  async update(id: string, patch: UpdateClientInput, options: WriteOptions = {}): Promise<ClientWrite> {
    this.#refuseStatic(id);
    return this.#o.store.transaction(async (tx) => {
      const current = await tx.clients.findForUpdate(id);
      if (!current) throw notFound(`Client "${id}"`);
      const before = storedView(current);
      checkIfMatch(options.ifMatch ?? null, etagOf(before));
      const settings: Settings = { ...settingsOf(before) };
      for (const [key, value] of Object.entries(patch)) if (value !== undefined) (settings as unknown as Record<string, unknown>)[key] = value;
      const grown = (patch.scopes ?? []).filter((s) => !before.scopes?.includes(s));
      await this.#check(id, settings, grown, options);
      // A client that moves to a shared-secret method gets a secret; one that leaves drops it.
      const needsSecret = SECRET_METHODS.has(settings.tokenEndpointAuthMethod);
      const secret = needsSecret && !current.secretHash ? generateClientSecret() : null;
      // Nothing to change: no write, no new ETag, nothing to audit.
      const unchanged = JSON.stringify(metadataOf(id, settings)) === JSON.stringify(metadataOf(id, settingsOf(before))) && settings.firstParty === before.firstParty && settings.enabled === before.enabled && !secret && (needsSecret || !current.secretHash);
      if (unchanged) return { view: before, etag: etagOf(before), before, secret: null, revoked: 0, changed: false };
      const updated = await tx.clients.update(id, {
        metadata: metadataOf(id, settings),
        firstParty: settings.firstParty,
        enabled: settings.enabled,
        ...(secret ? { secretHash: hashClientSecret(secret) } : {}),
        ...(!needsSecret ? { secretHash: null, previousSecretHash: null, previousSecretExpiresAt: null } : {}),
      });
      // Disabling a client ends what it was given: its tokens would otherwise still introspect active.
      const revoked = before.enabled && !settings.enabled ? await tx.clients.revokeArtifacts(id) : 0;
      const view = storedView(updated!);
      return { view, etag: etagOf(view), before, secret, revoked, changed: true };
    });
  }

  /** A new secret; the current one stays valid for `overlapSeconds` (0: ends now). */
  async rotateSecret(id: string, overlapSeconds: number = DEFAULT_OVERLAP_SECONDS, options: WriteOptions = {}): Promise<ClientWrite & { previousValidUntil: Date | null }> {
    this.#refuseStatic(id);
    if (!Number.isInteger(overlapSeconds) || overlapSeconds < 0 || overlapSeconds > MAX_OVERLAP_SECONDS) throw invalid([{ path: 'body.overlapSeconds', message: `must be a whole number from 0 to ${MAX_OVERLAP_SECONDS}` }]);
    return this.#o.store.transaction(async (tx) => {
      const current = await tx.clients.findForUpdate(id);
      if (!current) throw notFound(`Client "${id}"`);
      const before = storedView(current);
      checkIfMatch(options.ifMatch ?? null, etagOf(before));
      if (!current.secretHash) throw conflict(`Client "${id}" authenticates with ${before.tokenEndpointAuthMethod} and has no secret to rotate.`, 'no_secret');
      const secret = generateClientSecret();
      const previousValidUntil = overlapSeconds > 0 ? new Date(Date.now() + overlapSeconds * 1000) : null;
      const updated = await tx.clients.update(id, {
        secretHash: hashClientSecret(secret),
        previousSecretHash: previousValidUntil ? current.secretHash : null,
        previousSecretExpiresAt: previousValidUntil,
      });
      const view = storedView(updated!);
      return { view, etag: etagOf(view), before, secret, previousValidUntil };
    });
  }

  /** Deletes the client and every token, code and grant issued to it. */
  async remove(id: string, options: WriteOptions = {}): Promise<{ before: ClientView; revoked: number }> {
    this.#refuseStatic(id);
    return this.#o.store.transaction(async (tx) => {
      const current = await tx.clients.findForUpdate(id);
      if (!current) throw notFound(`Client "${id}"`);
      const before = storedView(current);
      checkIfMatch(options.ifMatch ?? null, etagOf(before));
      await tx.clients.delete(id);
      const revoked = await tx.clients.revokeArtifacts(id);
      return { before, revoked };
    });
  }

  #reserved(id: string): string | null {
    const fixed = this.#static.get(id);
    if (fixed) return fixed.source === 'config' ? 'the config file' : 'Keybridge';
    if (id === SAML_IDP_CLIENT_ID) return 'Keybridge';
    // A stored client under the console's id would receive administrators' tokens.
    if (this.#o.config.admin.consoleClients.includes(id)) return 'the config file (admin.consoleClients)';
    return null;
  }

  #refuseReserved(id: string): void {
    const owner = this.#reserved(id);
    if (owner) throw new AdminProblem(409, 'already_exists', `The client id "${id}" is reserved by ${owner}.`);
  }

  #refuseStatic(id: string): void {
    const fixed = this.#static.get(id);
    if (fixed) throw readOnly(`Client "${id}"`, fixed.source === 'config' ? 'the config file' : 'Keybridge');
  }

  /** Rules across fields, then oidc-provider's own metadata check; every problem with its path. */
  async #check(id: string, s: Settings, newScopes: readonly string[], options: WriteOptions): Promise<void> {
    const errors: FieldError[] = [];
    const at = (field: string, message: string) => errors.push({ path: `body.${field}`, message });
    const grants = s.grantTypes;
    if (grants.includes('authorization_code') && s.redirectUris.length === 0) at('redirectUris', 'must list at least one URI for the authorization_code grant');
    if (s.tokenEndpointAuthMethod === 'none' && grants.includes('client_credentials')) at('tokenEndpointAuthMethod', 'must authenticate the client (not "none") for the client_credentials grant');
    if (s.tokenEndpointAuthMethod === 'private_key_jwt') {
      if (!s.jwks && !s.jwksUri) at('jwks', 'or jwksUri is required for private_key_jwt');
      if (s.jwks && s.jwksUri) at('jwksUri', 'must not be given together with jwks');
    } else {
      if (s.jwks) at('jwks', 'is only used with tokenEndpointAuthMethod "private_key_jwt"');
      if (s.jwksUri) at('jwksUri', 'is only used with tokenEndpointAuthMethod "private_key_jwt"');
    }
    const offered = new Set([...this.#o.defaultScopes, ...ADMIN_SCOPES]);
    s.scopes.forEach((scope, i) => offered.has(scope) || at(`scopes.${i}`, 'is not a scope the broker offers'));
    if (s.idTokenSignedResponseAlg && !(this.#o.config.keys.algorithms as readonly string[]).includes(s.idTokenSignedResponseAlg)) {
      at('idTokenSignedResponseAlg', `must be one of the broker's key algorithms (${this.#o.config.keys.algorithms.join(', ')})`);
    }
    if (isProductionMode(this.#o.config, this.#o.env ?? process.env)) {
      s.redirectUris.forEach((u, i) => isPlainHttpRemote(u) && at(`redirectUris.${i}`, 'must use https (plain http is allowed only for loopback addresses)'));
      s.postLogoutRedirectUris.forEach((u, i) => isPlainHttpRemote(u) && at(`postLogoutRedirectUris.${i}`, 'must use https (plain http is allowed only for loopback addresses)'));
      if (s.backchannelLogoutUri && isPlainHttpRemote(s.backchannelLogoutUri)) at('backchannelLogoutUri', 'must use https (plain http is allowed only for loopback addresses)');
      if (s.jwksUri && isPlainHttpRemote(s.jwksUri)) at('jwksUri', 'must use https');
    }
    if (errors.length) throw invalid(errors);
    const forbidden = newScopes.filter((scope) => scope.startsWith('admin:') && !(options.mayGrant ?? (() => true))(scope));
    if (forbidden.length) throw new AdminProblem(403, 'insufficient_scope', `You cannot give a client admin scopes you do not hold yourself: ${forbidden.join(' ')}.`);
    if (this.#o.validateMetadata) {
      try {
        await this.#o.validateMetadata({ ...metadataOf(id, s), ...(SECRET_METHODS.has(s.tokenEndpointAuthMethod) ? { client_secret: HASHED_SECRET } : {}) });
      } catch (err) {
        const description = (err as { error_description?: string }).error_description ?? (err as Error).message;
        throw invalid([{ path: 'body', message: description }]);
      }
    }
  }
}
