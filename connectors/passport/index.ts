// The `passport` connector: runs any passport strategy (configured by npm module name and
// options) as a redirect connector, so the passport ecosystem's long tail of providers works
// without new code. passport itself is not needed: strategies only call the action methods
// (redirect, success, fail, error, pass) that run-strategy.ts attaches, as passport does.
//
// No refresh(): a strategy has no generic way to re-check an identity, so refresh tokens are
// always allowed (the contract's default) and the upstream is only asked again at the next login.
import type { ConnectorContext, ConnectorPlugin, LoginResult, RedirectConnector } from '../../src/connectors/contract.ts';
import { createBrokerStateStore, type AttemptHandle } from './broker-state-store.ts';
import { classifyStrategyError } from './classify-strategy-error.ts';
import { loadStrategyClass } from './load-strategy-class.ts';
import { applyOAuth2Quirks } from './oauth2-quirks.ts';
import { passportConfigSchema, type PassportConfig } from './passport-config.ts';
import { profileToIdentity } from './profile-to-identity.ts';
import { runStrategy, type StrategyOutcome } from './run-strategy.ts';
import { createSecretRedactor } from './secret-redactor.ts';
import { createVerify, isVerifiedUser } from './verified-user.ts';

/** A reserved, never-resolving callback URL for the instance built at start-up to check the options. */
const PROBE_CALLBACK_URL = 'https://keybridge.invalid/callback';

/** Callback parameters that are not credentials; any other (code, ticket, assertion) may be one. */
const NOT_SECRET_PARAMS = new Set(['state', 'RelayState', 'error', 'error_description', 'error_uri']);

/** The request a strategy sees: what passport-oauth2 and its kin read from an express request. */
function fakeRequest(callbackUrl: string, params: Record<string, string>): object {
  const url = new URL(callbackUrl);
  const search = new URLSearchParams(params).toString();
  const path = `${url.pathname}${search ? `?${search}` : ''}`;
  return {
    method: 'GET',
    url: path,
    originalUrl: path,
    headers: { host: url.host },
    connection: { encrypted: url.protocol === 'https:' },
    query: { ...params },
    // Form-posted callbacks (response_mode=form_post, SAML) are read from the body.
    body: { ...params },
    session: undefined,
  };
}

function challengeText(challenge: unknown): string | undefined {
  if (typeof challenge === 'string') return challenge;
  const message = (challenge as { message?: unknown } | null | undefined)?.message;
  return typeof message === 'string' ? message : undefined;
}

export async function createPassportConnector({ id, config, logger }: ConnectorContext<PassportConfig>): Promise<RedirectConnector> {
  const StrategyClass = await loadStrategyClass(config.strategy, config.export);
  const label = `passport strategy "${config.strategy}"`;
  const redact = createSecretRedactor({ options: config.options, authenticateOptions: config.authenticateOptions });
  const family = { oauth2: false };
  const verify = createVerify(config.verifyArity, () => family.oauth2);
  // passport-oauth2 keeps state and the PKCE verifier in a session by default; the broker has
  // its own single-use attempt for that, found through the request the strategy is handed.
  const attempts = new WeakMap<object, AttemptHandle>();
  const { pkce, state: wantsState, store: wantsStore } = config.options;
  const stateStore = pkce || wantsState || wantsStore ? createBrokerStateStore((req) => attempts.get(req)) : undefined;

  // One instance per callback URL (in practice one), as some strategies only read callbackURL
  // in their constructor.
  const instances = new Map<string, object>();
  function strategyFor(callbackUrl: string): object {
    let strategy = instances.get(callbackUrl);
    if (!strategy) {
      // Strategies write into their options (defaults, headers): give each its own copy.
      const options = { ...structuredClone(config.options), callbackURL: callbackUrl, passReqToCallback: false, ...(stateStore ? { store: stateStore } : {}) };
      try {
        strategy = new StrategyClass(options, verify);
      } catch (err) {
        throw new Error(redact(`${label} rejected its options: ${(err as Error).message}`));
      }
      instances.set(callbackUrl, strategy);
    }
    return strategy;
  }
  const probe = strategyFor(PROBE_CALLBACK_URL);
  // passport-oauth2 keeps its client in `_oauth2`; its verify arguments lead with the tokens.
  family.oauth2 = '_oauth2' in probe;

  async function run(leg: 'start' | 'callback', callbackUrl: string, req: object, extraOptions: Record<string, unknown>, redactLeg: (text: string) => string): Promise<StrategyOutcome> {
    const strategy = strategyFor(callbackUrl);
    const options = { ...config.authenticateOptions, ...extraOptions, callbackURL: callbackUrl };
    try {
      return await runStrategy(strategy, req, options, config.timeoutMs, (action) => applyOAuth2Quirks(action, strategy));
    } catch (err) {
      throw new Error(redactLeg(`${label} ${leg}: ${(err as Error).message}`));
    }
  }

  return {
    kind: 'redirect',

    async start({ callbackUrl, state }) {
      const context: Record<string, unknown> = { state };
      const req = fakeRequest(callbackUrl, {});
      attempts.set(req, { state, context });
      // With the broker's store, passport-oauth2 asks the store for the state (so the PKCE
      // verifier is kept); without it, a string `state` option goes into the URL verbatim.
      const outcome = await run('start', callbackUrl, req, stateStore ? {} : { state }, redact);
      if (outcome.kind !== 'redirect') {
        const why = outcome.kind === 'error' ? classifyStrategyError(outcome.error).detail : outcome.kind === 'fail' ? (challengeText(outcome.challenge) ?? 'failed') : `called ${outcome.kind}() instead of redirecting`;
        throw new Error(redact(`${label} did not start a login: ${why}`));
      }
      if (!outcome.url.includes(state)) {
        logger.warn({ strategy: config.strategy }, 'the strategy redirected without the broker state; the callback will not be recognised');
      }
      return { location: outcome.url, context };
    },

    async callback({ callbackUrl, params, context }): Promise<LoginResult> {
      // SAML-style strategies carry it as RelayState, which the broker accepts too.
      if (typeof context.state !== 'string' || (params.state ?? params.RelayState) !== context.state) {
        return { ok: false, reason: 'upstream_error', detail: 'the state sent back does not match the attempt' };
      }
      const redactLeg = redact.with(...Object.entries(params).filter(([k, v]) => !NOT_SECRET_PARAMS.has(k) && v.length >= 8).map(([, v]) => v));
      if (params.error === 'access_denied') {
        return { ok: false, reason: 'access_denied', detail: redactLeg(params.error_description || 'the person declined at the upstream') };
      }
      const req = fakeRequest(callbackUrl, params);
      attempts.set(req, { state: context.state, context: { ...context } });
      const outcome = await run('callback', callbackUrl, req, {}, redactLeg);
      switch (outcome.kind) {
        case 'success': {
          // A strategy that bypasses verify hands over its own user object; read it as the profile.
          const { profile, tokens } = isVerifiedUser(outcome.user) ? outcome.user : { profile: outcome.user as Record<string, unknown>, tokens: undefined };
          if (!profile || typeof profile !== 'object') return { ok: false, reason: 'upstream_error', detail: `${label} succeeded without a profile` };
          const mapped = profileToIdentity(id, profile, config.profile, tokens);
          return mapped.ok ? mapped : { ok: false, reason: 'upstream_error', detail: mapped.detail };
        }
        case 'fail': {
          const text = challengeText(outcome.challenge);
          const denied = /\baccess_denied\b/.test(text ?? '');
          const detail = [text ?? 'the strategy refused the response', outcome.status ? `(status ${outcome.status})` : ''].join(' ').trim();
          return { ok: false, reason: denied ? 'access_denied' : 'upstream_error', detail: redactLeg(detail) };
        }
        case 'error': {
          const { unavailable, detail } = classifyStrategyError(outcome.error);
          if (unavailable) throw new Error(redactLeg(`${label} callback: ${detail}`));
          return { ok: false, reason: 'upstream_error', detail: redactLeg(detail) };
        }
        case 'redirect':
          // passport-oauth2 starts over when the response has neither a code nor an error.
          return { ok: false, reason: 'upstream_error', detail: 'the response was not a login result (the strategy redirected again)' };
        case 'pass':
          return { ok: false, reason: 'upstream_error', detail: 'the strategy passed on the response' };
      }
    },
  };
}

const plugin: ConnectorPlugin<PassportConfig> = {
  type: 'passport',
  configSchema: passportConfigSchema,
  secretFields: ['options.clientSecret', 'options.consumerSecret'],
  about: { label: 'Passport strategy', test: false, sync: false },
  create: createPassportConnector,
};

export default plugin;
