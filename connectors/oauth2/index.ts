// The `oauth2` connector: sign-in through an OAuth 2.0 provider that has no OpenID Connect
// (GitHub, Bitbucket, Discord presets, or any provider by endpoints and a claims mapper).
// Authorization code flow with the broker's state and PKCE; the profile is read from the
// provider's API with the access token; refresh re-reads it (refreshing the token first when it
// is about to expire), so revoked grants and lost memberships are noticed.
import { createHash, randomBytes } from 'node:crypto';
import { TestReport } from '../../src/connectors/test-report.ts';
import type { ConnectorContext, ConnectorPlugin, ConnectorTestReport, LoginResult, RedirectConnector, UpstreamIdentity, UpstreamTokens } from '../../src/connectors/contract.ts';
import { PRESET_ONLY, oauth2ConfigSchema, resolveOAuth2Config, type OAuth2Config } from './oauth2-config.ts';
import { TokenEndpoint } from './token-endpoint.ts';
import { UpstreamApi } from './upstream-api.ts';
import { UpstreamRejected } from './upstream-errors.ts';

/** An access token this close to its expiry is refreshed before use. */
const EXPIRY_SKEW_SECONDS = 60;

export function createOAuth2Connector({ id, config, logger, fetch }: ConnectorContext<OAuth2Config>): RedirectConnector {
  const c = resolveOAuth2Config(config);
  const tokenEndpoint = new TokenEndpoint({ fetch, timeoutMs: c.timeoutMs, tokenUrl: c.tokenUrl, clientId: c.clientId, clientSecret: c.clientSecret, clientAuth: c.clientAuth });
  const api = new UpstreamApi({ fetch, timeoutMs: c.timeoutMs, headers: c.provider.apiHeaders });

  /** Reads the profile with `tokens`; 401 and other refusals come back as UpstreamRejected. */
  async function identityFor(tokens: UpstreamTokens): Promise<LoginResult> {
    const result = await c.provider.loadProfile(api, tokens.accessToken, logger);
    if (!result.ok) {
      logger.info({ reason: result.reason, detail: result.detail }, 'upstream user not let in');
      return result;
    }
    return { ok: true, identity: { ...result.profile, connectorId: id, tokens } };
  }

  const failed = (reason: 'upstream_error' | 'access_denied' | 'reauth_needed', detail: string): LoginResult => {
    logger.info({ reason, detail }, 'upstream sign-in did not succeed');
    return { ok: false, reason, detail };
  };

  /** The connector test: every endpoint answers over HTTP (any status: an API wants a token). */
  async function test(): Promise<ConnectorTestReport> {
    const report = new TestReport();
    const endpoints = [['authorization', 'authorizationUrl', c.authorizationUrl], ['token', 'tokenUrl', c.tokenUrl], ['userinfo', 'userinfoUrl', c.userinfoUrl]] as const;
    const statuses: Record<string, number> = {};
    for (const [name, field, url] of endpoints) {
      if (!url) continue;
      await report.step(name, field, async () => {
        const res = await fetch(url, { method: name === 'token' ? 'POST' : 'GET', redirect: 'manual', signal: AbortSignal.timeout(c.timeoutMs) });
        await res.body?.cancel();
        statuses[name] = res.status;
        if (res.status >= 500) throw new Error(`${url} answered HTTP ${res.status}`);
        return `${url} answered HTTP ${res.status}`;
      });
    }
    report.found.endpoints = statuses;
    return report.report();
  }

  return {
    kind: 'redirect',
    test,

    async start({ callbackUrl, state }) {
      const url = new URL(c.authorizationUrl);
      url.searchParams.set('response_type', 'code');
      url.searchParams.set('client_id', c.clientId);
      url.searchParams.set('redirect_uri', callbackUrl);
      if (c.scopes.length) url.searchParams.set('scope', c.scopes.join(' '));
      url.searchParams.set('state', state);
      const context: Record<string, unknown> = { state, redirectUri: callbackUrl };
      if (c.pkce) {
        const verifier = randomBytes(32).toString('base64url');
        url.searchParams.set('code_challenge', createHash('sha256').update(verifier).digest('base64url'));
        url.searchParams.set('code_challenge_method', 'S256');
        context.codeVerifier = verifier;
      }
      return { location: url.toString(), context };
    },

    async callback({ callbackUrl, params, context }) {
      if (typeof context.state !== 'string' || params.state !== context.state) return failed('upstream_error', 'the state sent back does not match this sign-in');
      if (params.error) {
        const detail = `upstream error ${params.error.slice(0, 64)}${params.error_description ? `: ${params.error_description.slice(0, 160)}` : ''}`;
        return failed(params.error === 'access_denied' ? 'access_denied' : 'upstream_error', detail);
      }
      if (!params.code) return failed('upstream_error', 'the callback has neither code nor error');
      const redirectUri = typeof context.redirectUri === 'string' ? context.redirectUri : callbackUrl;
      const verifier = typeof context.codeVerifier === 'string' ? context.codeVerifier : undefined;
      const exchanged = await tokenEndpoint.exchangeCode(params.code, redirectUri, verifier);
      if (!exchanged.ok) return failed('upstream_error', `token endpoint: ${exchanged.error}${exchanged.description ? ` (${exchanged.description})` : ''}`);
      try {
        return await identityFor(exchanged.tokens);
      } catch (err) {
        // A token fresh from the token endpoint that the API refuses is the upstream's fault.
        if (err instanceof UpstreamRejected) return failed('upstream_error', err.message);
        throw err;
      }
    },

    async refresh(identity: UpstreamIdentity) {
      // Without stored tokens there is nothing to ask the upstream with.
      if (!identity.tokens) return { ok: true, identity };
      let tokens = identity.tokens;
      let refreshed = false;
      const refreshTokens = async (): Promise<LoginResult | undefined> => {
        if (!tokens.refreshToken) return failed('reauth_needed', 'the access token expired and there is no refresh token');
        const result = await tokenEndpoint.refresh({ ...tokens, refreshToken: tokens.refreshToken });
        if (!result.ok) return failed('reauth_needed', `refresh grant refused: ${result.error}${result.description ? ` (${result.description})` : ''}`);
        tokens = result.tokens;
        refreshed = true;
        return undefined;
      };

      const now = Math.floor(Date.now() / 1000);
      if (tokens.expiresAt !== undefined && tokens.expiresAt - EXPIRY_SKEW_SECONDS <= now) {
        const failure = await refreshTokens();
        if (failure) return failure;
      }
      for (;;) {
        try {
          const result = await identityFor(tokens);
          if (result.ok && result.identity.subject !== identity.subject) return failed('upstream_error', 'the token now belongs to another upstream user');
          return result;
        } catch (err) {
          if (!(err instanceof UpstreamRejected)) {
            // The refresh grant just rotated the tokens: the upstream grant is alive. Keep the
            // new tokens with what was known (the old refresh token is spent) rather than lose them
            // to a profile read that failed in transit; the next refresh reads the profile again.
            if (refreshed) {
              logger.warn({ err }, 'profile read failed after the token refresh; keeping the rotated tokens');
              return { ok: true, identity: { ...identity, tokens } };
            }
            throw err;
          }
          if (err.status !== 401) return failed('upstream_error', err.message);
          // Revoked early or expired without our knowing: one refresh grant, then give up.
          if (refreshed || !tokens.refreshToken) return failed('reauth_needed', err.message);
          const failure = await refreshTokens();
          if (failure) return failure;
        }
      }
    },
  };
}

/** The fields a form hides for `preset`: other presets' own fields; with a preset, userinfoUrl (the preset reads its own API). */
const notFor = (preset: string | undefined): string[] => [
  ...Object.entries(PRESET_ONLY)
    .filter(([, owners]) => !preset || !(owners as readonly string[]).includes(preset))
    .map(([field]) => field),
  ...(preset ? ['userinfoUrl'] : []),
];

const plugin: ConnectorPlugin<OAuth2Config> = {
  type: 'oauth2',
  configSchema: oauth2ConfigSchema,
  secretFields: ['clientSecret'],
  about: {
    label: 'OAuth 2.0',
    test: true,
    sync: false,
    presets: [
      { name: 'github', label: 'GitHub', config: { preset: 'github' }, hint: 'clientId and clientSecret of a GitHub OAuth app; apiUrl for GitHub Enterprise Server.', hide: notFor('github') },
      { name: 'bitbucket', label: 'Bitbucket', config: { preset: 'bitbucket' }, hint: 'clientId and clientSecret of a Bitbucket OAuth consumer.', hide: notFor('bitbucket') },
      { name: 'discord', label: 'Discord', config: { preset: 'discord' }, hint: 'clientId and clientSecret of a Discord application.', hide: notFor('discord') },
      { name: 'generic', label: 'Any OAuth 2.0 provider', config: {}, hint: 'authorizationUrl, tokenUrl, userinfoUrl, clientId and clientSecret.', hide: notFor(undefined) },
    ],
  },
  create: createOAuth2Connector,
};

export default plugin;
