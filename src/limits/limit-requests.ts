// Per-IP request budgets in front of the token endpoints (token, introspection, revocation,
// device) and the upstream callback and SAML IdP endpoints. A refused request gets 429 with
// Retry-After before any work is done: JSON for API callers, the error page for browsers.
import type { Context, Next } from 'koa';
import type { Logger } from 'pino';
import type { Store } from '../storage/store.ts';
import type { PageRenderer } from '../http/page-renderer.ts';
import { sendPage } from '../http/send-page.ts';
import { errorPageContext } from '../http/error-pages.ts';
import type { IpBudget, RateLimits, Verdict } from './rate-limits.ts';
import { text, type PageText } from '../i18n/page-text.ts';
import { english } from '../i18n/english.ts';
import { loggablePath } from '../http/loggable-path.ts';

const TOKEN_PATHS = new Set(['/token', '/token/introspection', '/token/revocation', '/device/auth']);

/** Which budget a request draws on, if any. */
function budgetOf(ctx: Context): IpBudget | null {
  if (ctx.method !== 'POST' && ctx.method !== 'GET') return null;
  if (TOKEN_PATHS.has(ctx.path) || (ctx.path === '/device' && ctx.method === 'POST')) return 'token';
  if (ctx.path.startsWith('/callback/') || ctx.path.startsWith('/saml/')) return 'callback';
  return null;
}

export const TOO_MANY = 'Too many requests. Wait a moment and try again.';

/** Answers 429 with Retry-After in the form the caller reads. */
/** A 429: the error page in the person's language (`message`, or the generic one), or English JSON for API callers. */
export function sendTooMany(ctx: Context, renderer: PageRenderer, verdict: Verdict, message?: PageText): void {
  ctx.set('Retry-After', String(verdict.retryAfterSeconds));
  // API endpoints answer JSON; pages a browser is sent to (device code entry, callbacks, SAML) answer a page.
  const api = TOKEN_PATHS.has(ctx.path) || ctx.accepts('html', 'json') === 'json';
  if (!api) {
    sendPage(ctx, renderer, 'error', errorPageContext(429, message ?? text('errors.too_many_requests'), 'too_many_requests'), 429);
    return;
  }
  ctx.status = 429;
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { error: 'too_many_requests', error_description: message ? english(message) : TOO_MANY };
}

export function limitRequests(deps: { limits: RateLimits; store: Store; renderer: PageRenderer; logger: Logger }) {
  const { limits, store, renderer, logger } = deps;
  return async function limitRequestsMiddleware(ctx: Context, next: Next) {
    const budget = limits.enabled ? budgetOf(ctx) : null;
    if (!budget || (budget === 'token' && ctx.method !== 'POST')) return next();
    const verdict = await limits.hitIp(budget, ctx.ip);
    if (!verdict.allowed) {
      if (verdict.firstRefusal) {
        logger.warn({ ip: ctx.ip, budget, path: loggablePath(ctx.path) }, 'rate limit reached');
        await store.audit.record({ type: 'login.throttled', outcome: 'failure', ip: ctx.ip, details: { scope: 'ip', budget, path: loggablePath(ctx.path) } });
      }
      return sendTooMany(ctx, renderer, verdict);
    }
    await next();
    // Wrong client secrets, codes and refresh tokens: the shared counter every instance sees.
    if (budget === 'token' && (ctx.status === 400 || ctx.status === 401)) await limits.tokenFailure(ctx.ip);
  };
}
