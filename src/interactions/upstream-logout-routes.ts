// Single logout with upstreams (SAML SLO), and the documents upstreams need about us (SAML SP
// metadata). Logging out of Keybridge also ends the upstream session when the connector can;
// an upstream's own logout request ends every Keybridge session it names, and the apps of those
// sessions hear about it by back-channel logout.
import { randomBytes } from 'node:crypto';
import Router from '@koa/router';
import type { Context, Next } from 'koa';
import type Provider from 'oidc-provider';
import type { AdapterPayload } from 'oidc-provider';
import type { Logger } from 'pino';
import type { ConnectorRegistry } from '../connectors/registry.ts';
import { connectorUrls } from '../connectors/registry.ts';
import type { LogoutMessage, RedirectStart, UpstreamLogout } from '../connectors/contract.ts';
import type { KeybridgeAdapter } from '../storage/oidc-adapter.ts';
import type { Store } from '../storage/store.ts';
import type { LoginSession } from '../storage/login-session-repository.ts';
import type { PageRenderer } from '../http/page-renderer.ts';
import { sendOnward } from '../http/form-post.ts';
import { readForm } from '../http/read-form.ts';
import { endSessions } from '../oidc/end-sessions.ts';
import { KeybridgeError } from '../errors.ts';
import { text, type PageText } from '../i18n/page-text.ts';
import { english } from '../i18n/english.ts';

export interface UpstreamLogoutDependencies {
  provider: Provider;
  issuer: string;
  /** Short-lived server-side records (the same store as upstream login attempts). */
  records: KeybridgeAdapter;
  store: Store;
  registry: () => ConnectorRegistry;
  renderer: PageRenderer;
  logger: Logger;
  /**
   * After a sign-out ended a session: tell the SAML SPs it signed in to, then send the browser
   * to `finish`; false when there were none (Keybridge's SAML IdP side).
   */
  signOutServiceProviders?: (ctx: Context, sessionUid: string, finish: { location: string; form?: Record<string, string> }) => Promise<boolean>;
}

/** A logout we sent upstream, waiting for its answer. */
interface PendingLogout {
  connectorId: string;
  userId: string;
  /** Where oidc-provider was sending the browser when the local logout finished. */
  returnTo: string;
}

/** How long the upstream has to answer our logout request. */
const LOGOUT_TTL = 600;
const pendingKey = (state: string) => `slo.${state}`;
/** oidc-provider's confirm step of RP-initiated logout (its default route). */
const END_SESSION_CONFIRM = '/session/end/confirm';

export function upstreamLogoutRoutes(deps: UpstreamLogoutDependencies): { router: Router; onSignOut: (ctx: Context, next: Next) => Promise<void> } {
  const { store, logger, renderer } = deps;
  const router = new Router();
  /** An error whose message the page shows, translated. */
  const shown = (code: string, message: PageText, status: number) => new KeybridgeError(code, english(message), { status, expose: true, text: message });

  const logoutOf = (connectorId: string): { name: string; logout: UpstreamLogout } | null => {
    const registered = deps.registry().get(connectorId);
    if (registered?.connector.kind !== 'redirect' || !registered.connector.logout) return null;
    return { name: registered.name, logout: registered.connector.logout };
  };

  const send = (ctx: Context, onward: { location: string; form?: Record<string, string> }, name: string) => sendOnward(ctx, renderer, onward, text('login.continuing_to', { connector: name }));

  router.get('/connectors/:connector/metadata', (ctx) => {
    const registered = deps.registry().get(ctx.params.connector);
    if (registered?.connector.kind !== 'redirect' || !registered.connector.metadata) {
      throw shown('not_found', text('logout.error.no_metadata'), 404);
    }
    const urls = connectorUrls(deps.issuer, registered.id);
    const doc = registered.connector.metadata({ callbackUrl: urls.callback, logoutUrl: urls.logout });
    ctx.type = doc.contentType;
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.body = doc.body;
  });

  const receive = async (ctx: Context) => {
    const connectorId = ctx.params.connector;
    const upstream = logoutOf(connectorId);
    if (!upstream) throw shown('not_found', text('logout.error.no_single_logout'), 404);
    const params = ctx.method === 'POST' ? await readForm(ctx, 512 * 1024) : Object.fromEntries(new URLSearchParams(ctx.querystring));
    let message: LogoutMessage;
    try {
      message = await upstream.logout.receive({ returnUrl: connectorUrls(deps.issuer, connectorId).logout, method: ctx.method === 'POST' ? 'POST' : 'GET', params, query: ctx.querystring });
    } catch (err) {
      logger.error({ err, connector: connectorId }, 'upstream logout message could not be processed');
      throw shown('upstream_unavailable', text('logout.error.upstream_unavailable', { connector: upstream.name }), 503);
    }

    if (message.kind === 'invalid') {
      logger.warn({ connector: connectorId, detail: message.detail }, 'upstream logout message rejected');
      await store.audit.record({ type: 'logout.rejected', outcome: 'failure', connectorId, ip: ctx.ip, details: { reason: message.detail.replace(/\s+/g, ' ').slice(0, 200) } });
      throw shown('invalid_logout', text('logout.error.invalid_message', { connector: upstream.name }), 400);
    }

    if (message.kind === 'response') {
      const key = message.state && message.state.length <= 128 ? pendingKey(message.state) : null;
      const pending = key ? ((await deps.records.find(key)) as unknown as (PendingLogout & { consumed?: number }) | undefined) : undefined;
      if (!key || !pending || pending.consumed || pending.connectorId !== connectorId || !(await deps.records.claim(key))) {
        await store.audit.record({ type: 'logout.rejected', outcome: 'failure', connectorId, ip: ctx.ip, details: { reason: 'unknown_or_replayed_state' } });
        throw shown('invalid_logout', text('logout.error.unknown_answer'), 400);
      }
      await store.audit.record({ type: 'logout.upstream', outcome: message.ok ? 'success' : 'failure', userId: pending.userId, connectorId, ip: ctx.ip, details: message.ok ? {} : { detail: message.detail } });
      ctx.status = 303;
      ctx.redirect(pending.returnTo);
      return;
    }

    // The upstream ends a session: every Keybridge session it names ends too.
    const sessions = await store.loginSessions.findByUpstream(connectorId, message.subject, message.sessionIds);
    const ended = await endSessions({ provider: deps.provider, store, logger }, sessions.map((s) => s.sessionUid), `upstream_logout:${connectorId}`);
    await store.audit.record({
      type: 'logout.upstream_request',
      userId: sessions[0]?.userId ?? null,
      connectorId,
      ip: ctx.ip,
      details: { sessions: ended.length, notified: ended.flatMap((e) => e.notified) },
    });
    let answer: RedirectStart;
    try {
      answer = await message.respond(true);
    } catch (err) {
      logger.error({ err, connector: connectorId }, 'upstream logout answer could not be built');
      throw shown('upstream_unavailable', text('logout.error.upstream_not_told'), 500);
    }
    send(ctx, answer, upstream.name);
  };
  router.get('/callback/:connector/logout', receive);
  router.post('/callback/:connector/logout', receive);

  /**
   * Wraps oidc-provider's logout confirmation: when it ended the whole session and that session
   * came from a connector that does single logout, the browser goes on to the upstream's logout
   * and, once the upstream answers, to where oidc-provider was sending it.
   */
  async function onSignOut(ctx: Context, next: Next) {
    if (ctx.method !== 'POST' || ctx.path !== END_SESSION_CONFIRM) return next();
    const session = await deps.provider.Session.get(ctx as never).catch(() => undefined);
    const sessionUid = session?.accountId ? session.uid : null;
    const login = sessionUid ? await store.loginSessions.find(sessionUid) : null;
    await next();
    if (!sessionUid || !login || ctx.status !== 303) return;
    // Only "sign out of everything" destroys the session; signing out of one app keeps it.
    if (await deps.provider.Session.findByUid(sessionUid)) return;
    await store.loginSessions.delete(sessionUid);
    const returnTo = ctx.response.get('Location');
    // First the SAML SPs this session signed in to (if any), then the upstream, then back.
    const upstreamStart = await startUpstreamLogout(ctx, login, returnTo);
    const then = upstreamStart ?? { location: returnTo };
    if (deps.signOutServiceProviders && (await deps.signOutServiceProviders(ctx, sessionUid, then))) return;
    if (upstreamStart) send(ctx, upstreamStart, logoutOf(login.connectorId)?.name ?? login.connectorId);
  }

  /** Asks the connector where ending the upstream session starts; null when it does not do logout or failed to start. */
  async function startUpstreamLogout(ctx: Context, login: LoginSession, returnTo: string): Promise<{ location: string; form?: Record<string, string> } | null> {
    const upstream = login.upstreamSession && logoutOf(login.connectorId);
    if (!upstream || !login.upstreamSession) return null;
    const state = randomBytes(32).toString('base64url');
    let start: RedirectStart | null;
    try {
      start = await upstream.logout.start({ session: login.upstreamSession, returnUrl: connectorUrls(deps.issuer, login.connectorId).logout, state });
    } catch (err) {
      // Signed out here; the upstream session outlives it. Not worth failing the logout over.
      logger.warn({ err, connector: login.connectorId }, 'upstream logout could not be started');
      await store.audit.record({ type: 'logout.upstream', outcome: 'failure', userId: login.userId, connectorId: login.connectorId, ip: ctx.ip, details: { detail: 'could not start' } });
      return null;
    }
    if (!start) return null;
    const pending: PendingLogout = { connectorId: login.connectorId, userId: login.userId, returnTo };
    await deps.records.upsert(pendingKey(state), pending as unknown as AdapterPayload, LOGOUT_TTL);
    return { location: start.location, ...(start.form ? { form: start.form } : {}) };
  }

  return { router, onSignOut };
}
