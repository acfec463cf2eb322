// Authenticate with a redirect connector (SAML, OIDC, OAuth 2.0 upstreams): the person is sent
// upstream, comes back to /callback/:connector, and finishes on an /interaction/:uid URL, where
// the interaction cookie proves it is the same browser that started (an attacker's callback URL
// pasted into a victim's browser fails). Also upstream-initiated logins (SAML IdP-initiated).
import { randomBytes } from 'node:crypto';
import type Router from '@koa/router';
import type { Context } from 'koa';
import type { AdapterPayload } from 'oidc-provider';
import type { Logger } from 'pino';
import type { RegisteredConnector } from '../../../connectors/registry.ts';
import type { Store } from '../../../storage/store.ts';
import type { KeybridgeAdapter } from '../../../storage/oidc-adapter.ts';
import type { LoginResult, RedirectStart, UpstreamIdentity } from '../../../connectors/contract.ts';
import { connectorUrls } from '../../../connectors/registry.ts';
import { sendOnward } from '../../../http/form-post.ts';
import { readForm } from '../../../http/read-form.ts';
import { InvalidSession, KeybridgeError } from '../../../errors.ts';
import { FAILURE_MESSAGES, unavailable, type LoginKit } from '../../login-kit.ts';
import type { LinkStep, Outcome } from '../link/link-step.ts';
import { text, type PageText } from '../../../i18n/page-text.ts';
import { english } from '../../../i18n/english.ts';

/** How long a person has to complete a redirect connector's upstream login. */
const ATTEMPT_TTL = 600;

/**
 * Starts a redirect connector's round trip under a fresh state: the attempt (with the
 * connector's context) is stored under it for the callback. Null when the connector fails to
 * start (logged and audited `login.error`). The login and the account console's linking use it.
 */
export async function startRedirectConnector(
  deps: { store: Store; logger: Logger; issuer: string; attempts: KeybridgeAdapter },
  ctx: Context,
  registered: RegisteredConnector,
  attempt: { uid: string; purpose: UpstreamAttempt['purpose'] } & Record<string, unknown>,
  audit: { userId?: string; details?: Record<string, unknown> } = {},
): Promise<RedirectStart | null> {
  if (registered.connector.kind !== 'redirect') return null;
  const state = randomBytes(32).toString('base64url');
  let started;
  try {
    started = await registered.connector.start({ callbackUrl: connectorUrls(deps.issuer, registered.id).callback, state });
  } catch (err) {
    deps.logger.error({ err, connector: registered.id, interaction: attempt.uid }, 'connector start failed');
    await deps.store.audit.record({ type: 'login.error', outcome: 'failure', connectorId: registered.id, userId: audit.userId ?? null, ip: ctx.ip, details: { stage: 'start', ...audit.details } });
    return null;
  }
  await deps.attempts.upsert(state, { ...attempt, connectorId: registered.id, context: started.context } as unknown as AdapterPayload, ATTEMPT_TTL);
  return started;
}

/** One redirect-connector attempt, stored under its state handle in the artifact store. */
interface UpstreamAttempt {
  uid: string;
  connectorId: string;
  context: Record<string, unknown>;
  /**
   * `confirm-link`: this upstream login is the person proving they own a pending link's account.
   * `account-link`: started from the account console to link another identity to a signed-in
   * user (src/account-api/link-flow.ts); its return goes there, never to an interaction.
   */
  purpose?: 'login' | 'confirm-link' | 'account-link';
  /** Set once the upstream came back: what to hand to the interaction. */
  outcome?: Outcome | UpstreamReturn;
}

/**
 * What a redirect connector's callback keeps for the browser that started the login: the
 * validated upstream identity only. Linking (which may create a user) waits until that browser
 * proves itself with its interaction cookie, so a callback URL carried to another browser
 * creates nothing.
 */
interface UpstreamReturn {
  kind: 'upstream';
  identity: UpstreamIdentity;
  /** The identity's upstream tokens, already encrypted (never kept in plaintext here); absent: none kept. */
  tokens?: string | null;
}

/** An upstream-initiated login (SAML IdP-initiated) waiting for its client's sign-in request. */
export interface UnsolicitedLogin {
  connectorId: string;
  client: string;
  identity: UpstreamIdentity;
}

/** The cookie that carries an upstream-initiated login's handle to the interaction that picks it up. */
const UNSOLICITED_COOKIE = 'kb_upstream_login';
/** How long an upstream-initiated login waits for the client to start its sign-in. */
const UNSOLICITED_TTL = 300;
const unsolicitedKey = (handle: string) => `unsolicited.${handle}`;

/** A connector's failure detail, short and single-line, for the audit trail. */
const auditDetail = (detail: string | undefined) => (detail ? detail.replace(/\s+/g, ' ').slice(0, 200) : undefined);

export interface UpstreamLogin {
  /** Starts a redirect connector's login; `purpose` says what its return means. */
  start(ctx: Context, uid: string, registered: RegisteredConnector, purpose: UpstreamAttempt['purpose']): Promise<RedirectStart | { error: PageText }>;
  /** Sends the browser upstream: a redirect, or a self-submitting POST form (SAML HTTP-POST binding). */
  go(ctx: Context, start: RedirectStart, name: string): void;
  /** The upstream-initiated login this browser brings to an interaction of its client, used once; null when none. */
  takeUnsolicited(ctx: Context, clientId: string): Promise<UnsolicitedLogin | null>;
  routes(router: Router): void;
}

export function createUpstreamLogin(kit: LoginKit, link: LinkStep): UpstreamLogin {
  const { deps, loadForm, loadInteraction, renderLogin } = kit;
  const { store, logger, renderer } = deps;
  const saveAttempt = (state: string, attempt: UpstreamAttempt) => deps.upstreamAttempts.upsert(state, attempt as unknown as AdapterPayload, ATTEMPT_TTL);
  const urlsOf = (connectorId: string) => connectorUrls(deps.issuer, connectorId);

  async function start(ctx: Context, uid: string, registered: RegisteredConnector, purpose: UpstreamAttempt['purpose']): Promise<RedirectStart | { error: PageText }> {
    if (registered.connector.kind !== 'redirect') return { error: text('login.error.choose_method') };
    const started = await startRedirectConnector({ store, logger, issuer: deps.issuer, attempts: deps.upstreamAttempts }, ctx, registered, { uid, purpose });
    return started ?? { error: unavailable(registered.name) };
  }

  const go = (ctx: Context, started: RedirectStart, name: string) => sendOnward(ctx, renderer, started, text('login.continuing_to', { connector: name }));

  async function takeUnsolicited(ctx: Context, clientId: string): Promise<UnsolicitedLogin | null> {
    const handle = ctx.cookies.get(UNSOLICITED_COOKIE);
    if (!handle || handle.length > 128) return null;
    ctx.cookies.set(UNSOLICITED_COOKIE, null, { path: '/interaction', secure: deps.secureCookies, httpOnly: true, sameSite: 'lax' });
    const key = unsolicitedKey(handle);
    const waiting = (await deps.upstreamAttempts.find(key)) as unknown as (UnsolicitedLogin & { consumed?: number }) | undefined;
    if (!waiting || waiting.consumed || waiting.client !== clientId || !(await deps.upstreamAttempts.claim(key))) return null;
    return waiting;
  }

  /**
   * An upstream-initiated login (SAML IdP-initiated SSO), validated by the connector. There is no
   * authorization request to answer, so the person goes to the connector's client, which starts
   * its own sign-in (OIDC third-party initiated login); that interaction then picks this login up
   * through a short-lived cookie and links it like any other.
   */
  async function unsolicitedLogin(ctx: Context, connectorId: string, params: Record<string, string>) {
    const registered = deps.registry().get(connectorId)!;
    const connector = registered.connector;
    if (connector.kind !== 'redirect' || !connector.unsolicited) throw new InvalidSession();
    const client = connector.unsolicited.client;
    const target = deps.initiateLoginUris.get(client);
    let result: LoginResult;
    try {
      result = await connector.callback({ callbackUrl: urlsOf(connectorId).callback, method: 'POST', params, context: {}, unsolicited: true });
    } catch (err) {
      logger.error({ err, connector: connectorId }, 'connector callback failed (upstream-initiated login)');
      await store.audit.record({ type: 'login.error', outcome: 'failure', connectorId, ip: ctx.ip, details: { stage: 'callback', unsolicited: true } });
      const message = unavailable(registered.name);
      throw new KeybridgeError('upstream_unavailable', english(message), { status: 503, expose: true, text: message });
    }
    if (!result.ok) {
      logger.info({ connector: connectorId, reason: result.reason, detail: result.detail }, 'upstream-initiated login refused');
      await store.audit.record({ type: 'login.failure', outcome: 'failure', connectorId, ip: ctx.ip, details: { reason: result.reason, detail: auditDetail(result.detail), unsolicited: true } });
      const message = result.reason === 'upstream_error' ? text('login.error.upstream_invalid_response', { connector: registered.name }) : FAILURE_MESSAGES[result.reason];
      throw new KeybridgeError('upstream_login_refused', english(message), { status: 401, expose: true, text: message });
    }
    if (!target) {
      logger.error({ connector: connectorId, client }, 'upstream-initiated login: the client has no initiateLoginUri');
      const message = text('login.error.no_initiate_login_uri');
      throw new KeybridgeError('no_initiate_login_uri', english(message), { status: 400, expose: true, text: message });
    }
    const handle = randomBytes(32).toString('base64url');
    const waiting: UnsolicitedLogin = { connectorId, client, identity: { ...result.identity, connectorId, tokens: undefined } };
    await deps.upstreamAttempts.upsert(unsolicitedKey(handle), waiting as unknown as AdapterPayload, UNSOLICITED_TTL);
    await store.audit.record({ type: 'login.upstream_initiated', connectorId, clientId: client, ip: ctx.ip, details: { subject: result.identity.subject } });
    ctx.cookies.set(UNSOLICITED_COOKIE, handle, { httpOnly: true, sameSite: 'lax', secure: deps.secureCookies, path: '/interaction', maxAge: UNSOLICITED_TTL * 1000, signed: false });
    const location = new URL(target);
    location.searchParams.set('iss', deps.issuer);
    ctx.status = 303;
    ctx.redirect(location.href);
  }

  const upstreamCallback = async (ctx: Context) => {
    const params = ctx.method === 'POST' ? await readForm(ctx, 512 * 1024) : Object.fromEntries(new URLSearchParams(ctx.querystring));
    const state = params.state ?? params.RelayState;
    const stored = typeof state === 'string' && state.length <= 128 ? ((await deps.upstreamAttempts.find(state)) as unknown as (UpstreamAttempt & { consumed?: number }) | undefined) : undefined;
    const connectorId = ctx.params.connector;
    // Unknown, expired, replayed (also concurrently: the claim is atomic), or sent to the wrong
    // connector's callback.
    const usable = stored && !stored.consumed && !stored.outcome && stored.connectorId === connectorId && (await deps.upstreamAttempts.claim(state!));
    // No attempt of ours at all: an upstream-initiated login, for the connectors that accept them.
    const upstreamInitiated = deps.registry().get(connectorId)?.connector;
    if (!stored && ctx.method === 'POST' && upstreamInitiated?.kind === 'redirect' && upstreamInitiated.unsolicited) {
      return unsolicitedLogin(ctx, connectorId, params);
    }
    if (!stored || !usable) {
      logger.warn({ connector: connectorId, known: Boolean(stored) }, 'upstream callback rejected: unknown, replayed or mismatched state');
      await store.audit.record({ type: 'login.rejected', outcome: 'failure', connectorId, ip: ctx.ip, details: { reason: stored ? 'replayed_or_mismatched_state' : 'unknown_state' } });
      const message = text('login.error.response_invalid');
      throw new InvalidSession(english(message), { text: message });
    }
    const registered = deps.registry().get(connectorId);
    let outcome: Outcome | UpstreamReturn;
    if (!registered || registered.connector.kind !== 'redirect') {
      outcome = { kind: 'failed', reason: 'upstream_error' };
    } else {
      let result: LoginResult | null;
      try {
        result = await registered.connector.callback({ callbackUrl: urlsOf(connectorId).callback, method: ctx.method === 'POST' ? 'POST' : 'GET', params, context: stored.context });
      } catch (err) {
        logger.error({ err, connector: connectorId, interaction: stored.uid }, 'connector callback failed');
        await store.audit.record({ type: 'login.error', outcome: 'failure', connectorId, ip: ctx.ip, details: { stage: 'callback' } });
        result = null;
      }
      if (!result) {
        outcome = { kind: 'unavailable' };
      } else if (!result.ok) {
        logger.info({ connector: connectorId, interaction: stored.uid, reason: result.reason, detail: result.detail }, 'upstream login failed');
        await store.audit.record({ type: 'login.failure', outcome: 'failure', connectorId, ip: ctx.ip, details: { reason: result.reason, detail: auditDetail(result.detail) } });
        outcome = { kind: 'failed', reason: result.reason };
      } else {
        // Nothing is linked or looked up yet: that waits for the browser that started the login.
        const identity: UpstreamIdentity = { ...result.identity, connectorId };
        outcome = { kind: 'upstream', identity: { ...identity, tokens: undefined }, tokens: link.sealTokens(identity, registered) };
      }
    }
    // The outcome waits, single use, for the browser that holds this interaction's cookie.
    await saveAttempt(state!, { ...stored, outcome });
    ctx.status = 303;
    if (stored.purpose === 'account-link') return ctx.redirect(`/account/link/return/${encodeURIComponent(state!)}`);
    ctx.redirect(`/interaction/${stored.uid}/upstream/${encodeURIComponent(state!)}`);
  };

  function routes(router: Router) {
    router.post('/interaction/:uid/connector/:connector', async (ctx) => {
      const { details } = await loadForm(ctx, 'login');
      const clientId = details.params.client_id as string;
      const registered = deps.registry().get(ctx.params.connector);
      if (!registered || registered.connector.kind !== 'redirect') {
        return renderLogin(ctx, details.uid, clientId, { error: text('login.error.choose_method'), status: 400 });
      }
      const started = await start(ctx, details.uid, registered, 'login');
      if ('error' in started) return renderLogin(ctx, details.uid, clientId, { error: started.error, status: 503 });
      return go(ctx, started, registered.name);
    });

    router.get('/callback/:connector', upstreamCallback);
    router.post('/callback/:connector', upstreamCallback);

    router.get('/interaction/:uid/upstream/:state', async (ctx) => {
      const details = await loadInteraction(ctx);
      const stored = (await deps.upstreamAttempts.find(ctx.params.state)) as unknown as UpstreamAttempt | undefined;
      if (!stored?.outcome || stored.uid !== details.uid || stored.purpose === 'account-link' || details.prompt.name !== 'login') throw new InvalidSession();
      // Used once; the consumed record stays until it expires, so a replayed callback is told apart.
      await saveAttempt(ctx.params.state, { ...stored, outcome: undefined });
      const clientId = details.params.client_id as string;
      const outcome = stored.outcome;
      const name = deps.registry().get(stored.connectorId)?.name ?? stored.connectorId;
      const proving = stored.purpose === 'confirm-link';
      if (outcome.kind === 'failed') {
        const error = outcome.reason === 'upstream_error' ? text('login.error.upstream_returned_error', { connector: name }) : FAILURE_MESSAGES[outcome.reason];
        if (proving) return link.renderLink(ctx, details, { error, status: 401 });
        return renderLogin(ctx, details.uid, clientId, { error, status: 401 });
      }
      if (outcome.kind === 'unavailable') {
        if (proving) return link.renderLink(ctx, details, { error: unavailable(name), status: 503 });
        return renderLogin(ctx, details.uid, clientId, { error: unavailable(name), status: 503 });
      }
      if (outcome.kind !== 'upstream') throw new InvalidSession();
      // The interaction cookie proved this is the browser that started the login: only now is
      // the identity linked (or looked up, for a link proof). Taken once, also under a race.
      const taken = `taken.${ctx.params.state}`;
      await deps.upstreamAttempts.upsert(taken, {} as AdapterPayload, ATTEMPT_TTL);
      if (!(await deps.upstreamAttempts.claim(taken))) throw new InvalidSession();
      const registered = deps.registry().get(stored.connectorId);
      if (!registered) return renderLogin(ctx, details.uid, clientId, { error: text('login.error.choose_method'), status: 400 });
      // A proof of ownership adds only how the broker saw it done (fed), not the upstream's own methods.
      if (proving) return link.acceptProof(ctx, details, await link.ownerOf(outcome.identity), ['fed'], stored.connectorId, 'upstream');
      return link.linkAndContinue(ctx, details, outcome.identity, registered, ['fed'], { sealed: { tokens: outcome.tokens } });
    });
  }

  return { start, go, takeUnsolicited, routes };
}
