// The `oidc` connector: sign-in at any OpenID Connect provider (authorization code flow with PKCE,
// nonce and RFC 9207 issuer checks, all through openid-client), profile and groups from the ID
// token, userinfo and, for Entra, Microsoft Graph; refresh re-checks the upstream with its refresh
// token. Google, Entra ID, GitLab, Apple, Okta, Auth0 and Keycloak are presets over it.
import { AuthorizationResponseError, buildAuthorizationUrl, calculatePKCECodeChallenge, randomNonce, randomPKCECodeVerifier, type Configuration, type IDToken } from 'openid-client';
import { TestReport } from '../../src/connectors/test-report.ts';
import { upstreamAcr, upstreamAmr } from '../../src/connectors/upstream-authentication.ts';
import type { ConnectorContext, ConnectorPlugin, ConnectorTestReport, LoginResult, RedirectConnector, UpstreamIdentity, UpstreamTokens } from '../../src/connectors/contract.ts';
import { accessRefusal } from './access-refusal.ts';
import { identityFromClaims } from './identity-from-claims.ts';
import { OIDC_PRESETS, PRESET_LABELS, PRESET_NAMES } from './presets/index.ts';
import { oidcConfigSchema, resolveOidcConfig, type OidcConfig } from './oidc-config.ts';
import type { Claims } from './oidc-preset.ts';
import { UpstreamClient, type Tokens } from './upstream-client.ts';
import { UpstreamUnavailableError, classifyUpstreamFailure } from './upstream-failure.ts';

const upstreamError = (detail: string): LoginResult => ({ ok: false, reason: 'upstream_error', detail });

/** How the upstream authenticated the person: from the verified ID token only, never userinfo. */
function authenticationOf(idClaims: Claims): Pick<UpstreamIdentity, 'amr' | 'acr'> {
  const amr = upstreamAmr(idClaims.amr);
  const acr = upstreamAcr(idClaims.acr);
  return { ...(amr && { amr }), ...(acr && { acr }) };
}

function tokensOf(tokens: Tokens, previous?: UpstreamTokens): UpstreamTokens {
  const out: UpstreamTokens = { accessToken: tokens.access_token };
  const refreshToken = tokens.refresh_token ?? previous?.refreshToken;
  const idToken = tokens.id_token ?? previous?.idToken;
  const scope = tokens.scope ?? previous?.scope;
  if (refreshToken) out.refreshToken = refreshToken;
  if (idToken) out.idToken = idToken;
  if (typeof tokens.expires_in === 'number') out.expiresAt = Math.floor(Date.now() / 1000) + tokens.expires_in;
  if (scope) out.scope = scope;
  return out;
}

export function createOidcConnector({ id, config, logger, fetch: fetchFn }: ConnectorContext<OidcConfig>): RedirectConnector {
  const c = resolveOidcConfig(config);
  // Loads Apple's key now, so a bad key is a start-up problem; contacts nobody.
  const upstream = new UpstreamClient(c, fetchFn);
  const hooks = c.definition.hooks ?? {};

  /** An upstream failure as a result; an unreachable or failing upstream throws instead. */
  function failure(err: unknown, stage: 'callback' | 'refresh'): LoginResult {
    const f = classifyUpstreamFailure(err);
    if (f.kind === 'unavailable') throw new UpstreamUnavailableError(c.issuer, f.detail, { cause: err });
    if (f.kind === 'oauth_error') {
      if (err instanceof AuthorizationResponseError && f.error === 'access_denied') return { ok: false, reason: 'access_denied', detail: f.detail };
      // A refresh token the upstream no longer honours (revoked, expired, reused) means signing in again.
      if (stage === 'refresh' && !(err instanceof AuthorizationResponseError)) return { ok: false, reason: 'reauth_needed', detail: f.detail };
    }
    return upstreamError(f.detail);
  }

  /**
   * The identity from verified tokens: ID token claims (or, on a refresh without a new ID token,
   * the stored ones), userinfo, preset extras and groups, then the access checks.
   */
  async function identityFrom(tokens: Tokens, config: Configuration, base: Claims, subject: string): Promise<LoginResult> {
    let userinfo: Claims = {};
    const hasEndpoint = upstream.hasUserinfo(config);
    if (c.userinfo === 'always' && !hasEndpoint) return upstreamError('userinfo: always, but the upstream has no userinfo endpoint');
    if (c.userinfo === 'always' || (c.userinfo === 'auto' && hasEndpoint && tokens.access_token)) {
      try {
        userinfo = await upstream.userinfo(config, tokens.access_token, subject);
      } catch (err) {
        return failure(err, 'callback');
      }
    }
    const claims: Claims = { ...base, ...userinfo };
    let groups: string[] | undefined;
    try {
      groups = await hooks.groups?.(claims, upstream.caller(config, tokens.access_token), c);
    } catch (err) {
      return failure(err, 'callback');
    }
    const identity = identityFromClaims(id, claims, c.claims);
    if ('error' in identity) return upstreamError(identity.error);
    if (groups) {
      identity.groups = groups;
      identity.attributes = { ...identity.attributes, groups };
    }
    const refusal = accessRefusal(identity, claims, c);
    if (refusal) return { ok: false, reason: 'not_permitted', detail: refusal };
    return { ok: true, identity };
  }

  /** The connector test: discovery, then the JWKS the ID tokens are checked with. */
  async function test(): Promise<ConnectorTestReport> {
    const report = new TestReport();
    let meta: ReturnType<Configuration['serverMetadata']> | undefined;
    await report.step('discovery', 'issuer', async () => {
      try {
        meta = (await upstream.configuration()).serverMetadata();
      } catch (err) {
        throw new Error(`discovery at ${c.issuer} failed: ${classifyUpstreamFailure(err).detail}`);
      }
      Object.assign(report.found, { issuer: meta.issuer, authorizationEndpoint: meta.authorization_endpoint ?? null, tokenEndpoint: meta.token_endpoint ?? null, userinfoEndpoint: meta.userinfo_endpoint ?? null });
      return `issuer ${meta.issuer}`;
    });
    await report.step('jwks', 'issuer', async () => {
      if (!meta?.jwks_uri) throw new Error('the discovery document has no jwks_uri');
      const res = await fetchFn(meta.jwks_uri, { signal: AbortSignal.timeout(c.timeoutMs), headers: { accept: 'application/json' } });
      if (!res.ok) throw new Error(`${meta.jwks_uri} answered HTTP ${res.status}`);
      const keys = ((await res.json()) as { keys?: unknown }).keys;
      if (!Array.isArray(keys) || !keys.length) throw new Error(`${meta.jwks_uri} holds no keys`);
      report.found.keys = keys.length;
      return `${keys.length} key(s) at ${meta.jwks_uri}`;
    });
    return report.report();
  }

  return {
    kind: 'redirect',
    test,

    async start({ callbackUrl, state }) {
      let config: Configuration;
      try {
        config = await upstream.configuration();
      } catch (err) {
        const f = classifyUpstreamFailure(err);
        throw new UpstreamUnavailableError(c.issuer, `discovery failed: ${f.detail}`, { cause: err });
      }
      const nonce = randomNonce();
      const context: Record<string, unknown> = { state, nonce };
      const params: Record<string, string> = { ...hooks.authParams?.(c), ...c.extraAuthParams, redirect_uri: callbackUrl, scope: c.scopes.join(' '), state, nonce };
      if (c.pkce) {
        const codeVerifier = randomPKCECodeVerifier();
        context.codeVerifier = codeVerifier;
        params.code_challenge = await calculatePKCECodeChallenge(codeVerifier);
        params.code_challenge_method = 'S256';
      }
      if (c.responseMode === 'form_post') params.response_mode = 'form_post';
      if (c.acrValues) params.acr_values = c.acrValues.join(' ');
      return { location: buildAuthorizationUrl(config, params).href, context };
    },

    async callback({ callbackUrl, method, params, context }) {
      const { state, nonce, codeVerifier } = context;
      // Asked for form_post, the code must not arrive in a URL (where logs and referrers keep it).
      if (c.responseMode === 'form_post' && method === 'GET' && params.code) return upstreamError('a form_post response arrived as a GET');
      if (typeof state !== 'string' || typeof nonce !== 'string' || (codeVerifier !== undefined && typeof codeVerifier !== 'string')) {
        return upstreamError('the login attempt context is incomplete');
      }
      const currentUrl = new URL(callbackUrl);
      currentUrl.search = '';
      for (const [k, v] of Object.entries(params)) currentUrl.searchParams.set(k, v);
      let exchanged;
      try {
        exchanged = await upstream.exchangeCode(currentUrl, { expectedState: state, expectedNonce: nonce, ...(codeVerifier && { pkceCodeVerifier: codeVerifier }) });
      } catch (err) {
        return failure(err, 'callback');
      }
      const { tokens, config } = exchanged;
      const idClaims = tokens.claims() as IDToken;
      const result = await identityFrom(tokens, config, { ...hooks.callbackClaims?.(params), ...idClaims }, idClaims.sub);
      if (!result.ok) return result;
      logger.debug({ subject: result.identity.subject }, 'upstream login verified');
      return { ok: true, identity: { ...result.identity, ...authenticationOf(idClaims), tokens: tokensOf(tokens) } };
    },

    async refresh(identity: UpstreamIdentity) {
      const refreshToken = identity.tokens?.refreshToken;
      // Nothing kept to ask the upstream with (storeTokens off): the broker's own checks decide.
      if (!refreshToken) return { ok: true, identity };
      const previous = identity.attributes ?? {};
      let exchanged;
      try {
        exchanged = await upstream.refresh(refreshToken, previous.tid);
      } catch (err) {
        return failure(err, 'refresh');
      }
      const { tokens, config } = exchanged;
      const subject = typeof previous.sub === 'string' ? previous.sub : identity.subject;
      const idClaims = tokens.id_token ? (tokens.claims() as IDToken) : undefined;
      if (idClaims && idClaims.sub !== subject) return upstreamError('the refreshed ID token is for another subject');
      let result: LoginResult;
      try {
        result = await identityFrom(tokens, config, idClaims ?? previous, subject);
      } catch (err) {
        // The refresh grant succeeded, so the upstream grant is alive, and the old refresh token
        // may already be spent (rotation): keep the new tokens with the profile as it was rather
        // than lose them to a userinfo or Graph call that failed in transit.
        logger.warn({ err }, 'profile read failed after the token refresh; keeping the rotated tokens');
        return { ok: true, identity: { ...identity, tokens: tokensOf(tokens, identity.tokens) } };
      }
      if (!result.ok) return result;
      const fresh = { ...result.identity, ...(idClaims && authenticationOf(idClaims)) };
      if (fresh.subject !== identity.subject) return upstreamError('the refreshed identity has another subject');
      // Some upstreams state the name once (Apple) and authentication methods belong to the login.
      for (const k of ['name', 'givenName', 'familyName', 'amr', 'acr'] as const) {
        if (fresh[k] === undefined && identity[k] !== undefined) (fresh as unknown as Record<string, unknown>)[k] = identity[k];
      }
      return { ok: true, identity: { ...fresh, tokens: tokensOf(tokens, identity.tokens) } };
    },
  };
}

/** Config fields that belong to some preset only. */
const presetOnly: string[] = [...new Set(Object.values(OIDC_PRESETS).flatMap((p) => p.fields as readonly string[]))];

const plugin: ConnectorPlugin<OidcConfig> = {
  type: 'oidc',
  configSchema: oidcConfigSchema,
  secretFields: ['clientSecret', 'privateKey'],
  about: {
    label: 'OpenID Connect',
    test: true,
    sync: false,
    presets: [
      { name: 'generic', label: 'Any OpenID provider', config: {}, hint: 'issuer, clientId and clientSecret.', hide: presetOnly },
      ...PRESET_NAMES.map((name) => ({
        name,
        ...PRESET_LABELS[name],
        config: { preset: name },
        // Other presets' own fields, and issuer where this preset builds or knows it.
        hide: [...presetOnly.filter((f) => !(OIDC_PRESETS[name].fields as readonly string[]).includes(f)), ...(OIDC_PRESETS[name].issuer || OIDC_PRESETS[name].defaultIssuer ? ['issuer'] : [])],
      })),
    ],
  },
  create: createOidcConnector,
};

export default plugin;
