// "Link another sign-in method" from the account console: a redirect connector's login run for
// a person who is already signed in, whose upstream identity is then linked to THIS account
// instead of signing anyone in.
//
// 1. The console asks the API (bearer token, recent sign-in) for a link ticket: random, single
//    use, valid two minutes, bound to the user, the connector and the token's browser session.
// 2. The browser goes to /account/link/:connector?ticket=... . The ticket is claimed (once), and
//    the browser must hold the Keybridge session cookie of that same session, so a ticket carried
//    to another browser is worthless. The browser gets a fresh binding cookie and goes upstream.
// 3. The upstream comes back to the usual /callback/:connector, which validates the answer and
//    (for an `account-link` attempt) sends the browser to /account/link/return/:state.
// 4. There the binding cookie must match, the outcome is taken once, and the identity is linked,
//    unless it already belongs to someone (then refused, with a clear message). The browser
//    returns to the console with the result in the query (a code, never data).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Context, Next } from 'koa';
import type Provider from 'oidc-provider';
import type { AdapterPayload } from 'oidc-provider';
import type { Logger } from 'pino';
import type { Store } from '../storage/store.ts';
import type { KeybridgeAdapter } from '../storage/oidc-adapter.ts';
import type { ConnectorRegistry } from '../connectors/registry.ts';
import type { UpstreamIdentity } from '../connectors/contract.ts';
import type { PageRenderer } from '../http/page-renderer.ts';
import { startRedirectConnector } from '../login/steps/authenticate/upstream-login.ts';
import { sendOnward } from '../http/form-post.ts';
import { text } from '../i18n/page-text.ts';
import { linkToUser } from '../accounts/link-identity.ts';
import { AlreadyExists } from '../errors.ts';
import type { AccountPrincipal } from './authenticate-account.ts';
import type { LinkTickets } from './account-routes.ts';

const TICKET_TTL = 120;
const ATTEMPT_TTL = 600;
const BINDING_COOKIE = 'kb_account_link';
const LINK_PATH = '/account/link/';
const RETURN_PATH = '/account/link/return/';
const HANDLE = /^[A-Za-z0-9_-]{20,128}$/;
const CONNECTOR_ID = /^[a-z0-9][a-z0-9-]{0,63}$/;
/** Where the console shows linked identities (and the result of a link). */
const CONSOLE_PAGE = '/account/sign-in';

interface Ticket {
  userId: string;
  connectorId: string;
  sessionUid: string | null;
  consumed?: number;
}

/** Stored under the connector's state like a login attempt (src/login/steps/authenticate/upstream-login.ts). */
interface LinkAttempt {
  uid: string;
  connectorId: string;
  context: Record<string, unknown>;
  purpose: 'account-link';
  userId: string;
  /** SHA-256 of the binding cookie the starting browser holds. */
  binding: string;
  outcome?: { kind: string; identity?: UpstreamIdentity; tokens?: string | null; reason?: string };
  consumed?: number;
}

export interface LinkFlowDependencies {
  store: Store;
  logger: Logger;
  issuer: string;
  provider: () => Provider;
  registry(): ConnectorRegistry;
  attempts: KeybridgeAdapter;
  renderer: PageRenderer;
  secureCookies: boolean;
}

const sha256 = (value: string) => createHash('sha256').update(value).digest();
const ticketKey = (ticket: string) => `account-link-ticket.${sha256(ticket).toString('base64url')}`;

export function createLinkFlow(deps: LinkFlowDependencies): { tickets: LinkTickets; routes(ctx: Context, next: Next): Promise<unknown> } {
  const { store, logger } = deps;

  const tickets: LinkTickets = {
    async issue(principal: AccountPrincipal, connectorId: string) {
      const ticket = randomBytes(32).toString('base64url');
      const value: Ticket = { userId: principal.user.id, connectorId, sessionUid: principal.sessionUid };
      await deps.attempts.upsert(ticketKey(ticket), value as unknown as AdapterPayload, TICKET_TTL);
      return ticket;
    },
  };

  const back = (ctx: Context, result: string, connectorId?: string) => {
    const q = new URLSearchParams({ link: result, ...(connectorId ? { connector: connectorId } : {}) });
    ctx.status = 303;
    ctx.set('Cache-Control', 'no-store');
    ctx.redirect(`${CONSOLE_PAGE}?${q}`);
  };

  /** The Keybridge browser session this request carries (the signed session cookie), or null. */
  async function browserSessionUid(ctx: Context): Promise<string | null> {
    const provider = deps.provider();
    // oidc-provider's session cookie, signed with the cookie keys (this middleware runs inside its app).
    const name = (provider as unknown as { cookieName(type: string): string }).cookieName('session');
    const id = ctx.cookies.get(name, { signed: true });
    if (!id || id.length > 256) return null;
    const session = await provider.Session.find(id).catch(() => undefined);
    return (session as { uid?: string } | undefined)?.uid ?? null;
  }

  async function start(ctx: Context, connectorId: string): Promise<void> {
    const ticket = String(ctx.query.ticket ?? '');
    if (!HANDLE.test(ticket)) return back(ctx, 'expired', connectorId);
    const key = ticketKey(ticket);
    const stored = (await deps.attempts.find(key)) as unknown as Ticket | undefined;
    // Single use, also under a race (the claim is atomic).
    if (!stored || stored.consumed || !(await deps.attempts.claim(key))) return back(ctx, 'expired', connectorId);
    if (stored.connectorId !== connectorId) return back(ctx, 'expired', connectorId);
    const user = await store.users.findById(stored.userId);
    if (!user?.enabled) return back(ctx, 'expired', connectorId);
    const browserSession = await browserSessionUid(ctx);
    if (!stored.sessionUid || browserSession !== stored.sessionUid) {
      await store.audit.record({ type: 'identity.link_refused', outcome: 'failure', userId: user.id, connectorId, ip: ctx.ip, details: { reason: browserSession ? 'other_browser' : 'no_session' } });
      // No session here at all: the person's sign-in ended (or the ticket travelled); either way, start again.
      return back(ctx, browserSession ? 'wrong_browser' : 'signed_out', connectorId);
    }
    const registered = deps.registry().get(connectorId);
    if (!registered || registered.connector.kind !== 'redirect') return back(ctx, 'unavailable', connectorId);
    const binding = randomBytes(32).toString('base64url');
    const started = await startRedirectConnector({ store, logger, issuer: deps.issuer, attempts: deps.attempts }, ctx, registered, { uid: 'account-link', purpose: 'account-link', userId: user.id, binding: sha256(binding).toString('base64url') }, { userId: user.id, details: { via: 'account-console' } });
    if (!started) return back(ctx, 'unavailable', connectorId);
    ctx.cookies.set(BINDING_COOKIE, binding, { httpOnly: true, sameSite: 'lax', secure: deps.secureCookies, path: '/account/link', maxAge: ATTEMPT_TTL * 1000, signed: false });
    ctx.set('Cache-Control', 'no-store');
    sendOnward(ctx, deps.renderer, started, text('login.continuing_to', { connector: registered.name }));
  }

  async function finish(ctx: Context, state: string): Promise<void> {
    if (!HANDLE.test(state)) return back(ctx, 'expired');
    const stored = (await deps.attempts.find(state)) as unknown as LinkAttempt | undefined;
    if (!stored || stored.purpose !== 'account-link' || !stored.outcome) return back(ctx, 'expired');
    const connectorId = stored.connectorId;
    const cookie = ctx.cookies.get(BINDING_COOKIE) ?? '';
    const given = sha256(cookie);
    const expected = Buffer.from(stored.binding, 'base64url');
    if (!cookie || expected.length !== given.length || !timingSafeEqual(expected, given)) {
      // A callback URL carried to another browser: nothing is linked, and the attempt stays for its own browser.
      await store.audit.record({ type: 'identity.link_refused', outcome: 'failure', userId: stored.userId, connectorId, ip: ctx.ip, details: { reason: 'other_browser' } });
      return back(ctx, 'wrong_browser', connectorId);
    }
    const taken = `taken.${state}`;
    await deps.attempts.upsert(taken, {} as AdapterPayload, ATTEMPT_TTL);
    if (!(await deps.attempts.claim(taken))) return back(ctx, 'expired', connectorId);
    await deps.attempts.upsert(state, { ...stored, outcome: undefined } as unknown as AdapterPayload, ATTEMPT_TTL);
    ctx.cookies.set(BINDING_COOKIE, null, { path: '/account/link', httpOnly: true, sameSite: 'lax', secure: deps.secureCookies });

    const outcome = stored.outcome;
    if (outcome.kind === 'unavailable') return back(ctx, 'unavailable', connectorId);
    if (outcome.kind !== 'upstream' || !outcome.identity) return back(ctx, 'failed', connectorId);
    const user = await store.users.findById(stored.userId);
    if (!user?.enabled) return back(ctx, 'expired', connectorId);
    const identity: UpstreamIdentity = { ...outcome.identity, connectorId, tokens: undefined };
    const existing = await store.identities.find(connectorId, identity.subject);
    if (existing) {
      if (existing.userId === user.id) return back(ctx, 'already_yours', connectorId);
      await store.audit.record({ type: 'identity.link_refused', outcome: 'failure', userId: user.id, connectorId, ip: ctx.ip, details: { reason: 'linked_to_another_account' } });
      return back(ctx, 'linked_elsewhere', connectorId);
    }
    const registered = deps.registry().get(connectorId);
    try {
      await linkToUser(store, identity, user.id, { via: 'account-console', mappers: registered?.policy.mappers, tokens: outcome.tokens ?? null });
    } catch (err) {
      if (err instanceof AlreadyExists) {
        await store.audit.record({ type: 'identity.link_refused', outcome: 'failure', userId: user.id, connectorId, ip: ctx.ip, details: { reason: 'linked_to_another_account' } });
        return back(ctx, 'linked_elsewhere', connectorId);
      }
      throw err;
    }
    return back(ctx, 'linked', connectorId);
  }

  return {
    tickets,
    async routes(ctx: Context, next: Next) {
      if (!ctx.path.startsWith(LINK_PATH)) return next();
      // Not HEAD either: each step uses up a single-use record.
      if (ctx.method !== 'GET') {
        ctx.status = 405;
        ctx.set('Allow', 'GET');
        ctx.type = 'text/plain';
        ctx.body = 'method not allowed';
        return;
      }
      const rest = ctx.path.slice(LINK_PATH.length);
      if (ctx.path.startsWith(RETURN_PATH)) return finish(ctx, ctx.path.slice(RETURN_PATH.length));
      if (!CONNECTOR_ID.test(rest)) return back(ctx, 'expired');
      return start(ctx, rest);
    },
  };
}
