// One upstream OpenID provider as openid-client sees it: discovered lazily (the broker starts even
// when the upstream is down) and again after a failure, every request through the broker's fetch
// with the configured timeout, ID token signatures checked, and the client secret configured or
// made (Apple). Entra's multi-tenant issuer template gets a configuration per tenant.
import {
  ClientSecretBasic,
  ClientSecretPost,
  Configuration,
  allowInsecureRequests,
  authorizationCodeGrant,
  customFetch,
  discovery,
  enableNonRepudiationChecks,
  fetchProtectedResource,
  fetchUserInfo,
  getJwksCache,
  refreshTokenGrant,
  setJwksCache,
  type AuthorizationCodeGrantChecks,
  type ClientAuth,
  type CustomFetch,
  type ServerMetadata,
  type TokenEndpointResponse,
  type TokenEndpointResponseHelpers,
  type UserInfoResponse,
} from 'openid-client';
import { decodeJwt } from 'jose';
import type { CallWithAccessToken } from './oidc-preset.ts';
import type { ResolvedOidcConfig } from './oidc-config.ts';
import { GUID, issuerForTenant, tenantOfIssuer } from './entra-tenant.ts';
import { UpstreamAnswerError } from './upstream-failure.ts';

export type Tokens = TokenEndpointResponse & TokenEndpointResponseHelpers;

/** Tenant configurations kept; beyond this (allowAnyTenant) the oldest are dropped. */
const MAX_TENANTS = 100;

export class UpstreamClient {
  readonly #c: ResolvedOidcConfig;
  readonly #fetch: CustomFetch;
  readonly #secret: () => Promise<string>;
  /** The secret ClientAuth sends; set (and for Apple re-signed when due) before every token request. */
  #currentSecret = '';
  #discovered: Promise<Configuration> | undefined;
  readonly #tenants = new Map<string, Configuration>();

  constructor(c: ResolvedOidcConfig, fetchFn: typeof fetch) {
    this.#c = c;
    this.#fetch = (url, options) => fetchFn(url, options as RequestInit);
    this.#secret = c.definition.hooks?.clientSecret?.(c) ?? (async () => c.clientSecret ?? '');
  }

  get issuer(): string {
    return this.#c.issuer;
  }

  /** The discovered configuration; a failed discovery is forgotten so the next call retries. */
  configuration(): Promise<Configuration> {
    this.#discovered ??= this.#discover().catch((err: unknown) => {
      this.#discovered = undefined;
      throw err;
    });
    return this.#discovered;
  }

  /** Entra multi-tenant: what the discovery document's issuer says ({tenantid} template). */
  get #template(): string | undefined {
    return this.#c.definition.hooks?.issuerTemplate?.(this.#c);
  }

  async #discover(): Promise<Configuration> {
    const template = this.#template;
    const options = { [customFetch]: this.#fetch, timeout: this.#c.timeoutMs / 1000, execute: this.#c.insecure ? [allowInsecureRequests] : [] };
    if (!template) return this.#prepare(await discovery(new URL(this.#c.issuer), this.#c.clientId, undefined, this.#auth, options));
    // The template never equals the URL it is discovered at, so the issuer is compared here.
    const config = await discovery(new URL(`${this.#c.issuer}/.well-known/openid-configuration`), this.#c.clientId, undefined, this.#auth, options);
    if (config.serverMetadata().issuer !== template) throw new UpstreamAnswerError(`the discovery document's issuer is not ${template}`);
    return this.#prepare(config);
  }

  #prepare(config: Configuration, fetchFn: CustomFetch = this.#fetch): Configuration {
    config[customFetch] = fetchFn;
    config.timeout = this.#c.timeoutMs / 1000;
    if (this.#c.insecure) allowInsecureRequests(config);
    // Tokens come straight from the token endpoint, but checking their signature costs one cached
    // key fetch and catches a token endpoint that is not the issuer's.
    enableNonRepudiationChecks(config);
    return config;
  }

  readonly #auth: ClientAuth = (as, client, body, headers) => {
    const method = this.#c.tokenAuthMethod ?? (as.token_endpoint_auth_methods_supported?.includes('client_secret_basic') === false ? 'client_secret_post' : 'client_secret_basic');
    (method === 'client_secret_post' ? ClientSecretPost : ClientSecretBasic)(this.#currentSecret)(as, client, body, headers);
  };

  async #readySecret(): Promise<void> {
    this.#currentSecret = await this.#secret();
  }

  #tenantConfiguration(base: Configuration, tenantId: string, fetchFn?: CustomFetch): Configuration {
    const template = this.#template!;
    if (!fetchFn) {
      const cached = this.#tenants.get(tenantId);
      if (cached) return cached;
    }
    const metadata: ServerMetadata = { ...metadataOf(base), issuer: issuerForTenant(template, tenantId) };
    const config = this.#prepare(new Configuration(metadata, this.#c.clientId, undefined, this.#auth), fetchFn);
    const keys = getJwksCache(base);
    if (keys) setJwksCache(config, keys);
    if (!fetchFn) {
      if (this.#tenants.size >= MAX_TENANTS) this.#tenants.delete(this.#tenants.keys().next().value!);
      this.#tenants.set(tenantId, config);
    }
    return config;
  }

  /**
   * The authorization code grant: state, RFC 9207 `iss`, PKCE, ID token signature, iss, aud, exp and
   * nonce all checked by openid-client. Returns the configuration that verified the tokens.
   */
  async exchangeCode(currentUrl: URL, checks: AuthorizationCodeGrantChecks): Promise<{ tokens: Tokens; config: Configuration }> {
    const base = await this.configuration();
    await this.#readySecret();
    const template = this.#template;
    if (!template) return { tokens: await authorizationCodeGrant(base, currentUrl, checks), config: base };

    // Entra multi-tenant: the tenant is named by the `iss` response parameter when there is one...
    const iss = currentUrl.searchParams.get('iss');
    if (iss !== null) {
      const tenantId = tenantOfIssuer(template, iss);
      if (!tenantId) throw new UpstreamAnswerError('the authorization response iss does not fit the tenant issuer template');
      const config = this.#tenantConfiguration(base, tenantId);
      return { tokens: await authorizationCodeGrant(config, currentUrl, checks), config };
    }
    // ...and otherwise (Entra sends none) only by the token response. openid-client checks an ID
    // token against one fixed issuer, so: redeem the code once, recording the token response, read
    // the tenant from it, and let the tenant's configuration validate the recorded response in full.
    const tokenEndpoint = base.serverMetadata().token_endpoint;
    let recorded: { status: number; headers: Headers; body: string } | undefined;
    const recording = this.#prepare(new Configuration(metadataOf(base), this.#c.clientId, undefined, this.#auth), async (url, options) => {
      const res = await this.#fetch(url, options);
      if (url !== tokenEndpoint) return res;
      recorded = { status: res.status, headers: new Headers(res.headers), body: await res.text() };
      return new Response(recorded.body, { status: recorded.status, headers: recorded.headers });
    });
    try {
      await authorizationCodeGrant(recording, currentUrl, checks);
    } catch (err) {
      if (recorded?.status !== 200) throw err;
    }
    if (!recorded) throw new UpstreamAnswerError('no token response');
    const tenantId = tenantOfTokenResponse(recorded.body);
    const replay = recorded;
    const replaying = this.#tenantConfiguration(base, tenantId, async (url, options) =>
      url === tokenEndpoint ? new Response(replay.body, { status: replay.status, headers: replay.headers }) : this.#fetch(url, options),
    );
    return { tokens: await authorizationCodeGrant(replaying, currentUrl, checks), config: this.#tenantConfiguration(base, tenantId) };
  }

  /** The refresh token grant; a multi-tenant identity refreshes against its own tenant's issuer. */
  async refresh(refreshToken: string, tenantId: unknown): Promise<{ tokens: Tokens; config: Configuration }> {
    const base = await this.configuration();
    await this.#readySecret();
    let config = base;
    if (this.#template) {
      if (typeof tenantId !== 'string' || !GUID.test(tenantId)) throw new UpstreamAnswerError('the stored identity has no tenant id');
      config = this.#tenantConfiguration(base, tenantId);
    }
    return { tokens: await refreshTokenGrant(config, refreshToken), config };
  }

  hasUserinfo(config: Configuration): boolean {
    return typeof config.serverMetadata().userinfo_endpoint === 'string';
  }

  /** Userinfo; openid-client refuses an answer whose `sub` is not `subject`. */
  userinfo(config: Configuration, accessToken: string, subject: string): Promise<UserInfoResponse> {
    return fetchUserInfo(config, accessToken, subject);
  }

  /** Calls another API of the upstream (Microsoft Graph) with the access token, same fetch and timeout. */
  caller(config: Configuration, accessToken: string): CallWithAccessToken {
    return (url, method, body, headers) => fetchProtectedResource(config, accessToken, url, method, body, new Headers(headers));
  }
}

/** The discovery document alone (serverMetadata() also carries helper methods). */
function metadataOf(config: Configuration): ServerMetadata {
  return JSON.parse(JSON.stringify(config.serverMetadata())) as ServerMetadata;
}

function tenantOfTokenResponse(body: string): string {
  let tid: unknown;
  try {
    const idToken = (JSON.parse(body) as { id_token?: unknown }).id_token;
    if (typeof idToken === 'string') tid = decodeJwt(idToken).tid;
  } catch {
    // fall through to the error below
  }
  // Only picks which tenant's issuer to expect; that configuration then verifies the token.
  if (typeof tid !== 'string' || !GUID.test(tid)) throw new UpstreamAnswerError('the ID token names no tenant (tid)');
  return tid;
}
