// Turns errors thrown by Keybridge's own routes into an error page (or JSON for API callers).
// Only messages of errors marked `expose` reach the person; everything is logged with the
// request id so an operator can find it.
import { randomUUID } from 'node:crypto';
import type { Context, Next } from 'koa';
import type { Logger } from 'pino';
import { KeybridgeError } from '../errors.ts';
import { DatabaseUnavailable, RETRY_AFTER_SECONDS, isDatabaseUnavailable } from '../storage/database-unavailable.ts';
import type { PageRenderer } from './page-renderer.ts';
import { sendPage } from './send-page.ts';
import { toProblem } from '../admin-api/problem.ts';
import { API_PREFIX } from '../admin-api/openapi-document.ts';
import { text, type PageText } from '../i18n/page-text.ts';
import { isClientGone } from './app-errors.ts';
import { loggablePath } from './loggable-path.ts';

const GENERIC_FAILURE = 'An unexpected error occurred. Try again, and if it persists contact your administrator.';
const UNAVAILABLE = 'The service is temporarily unavailable. Try again in a moment.';

/**
 * What the error page shows: the message only for client errors; a generic one for ours. A
 * message is a catalog text (translated on the page) or words of an exposed error without one.
 */
export function errorPageContext(status: number, message: PageText | string | undefined, code: string | undefined, requestId?: string): Record<string, unknown> {
  if (status === 503) return { title: text('errors.title.unavailable'), message: text('errors.unavailable'), code, requestId };
  return {
    title: text(status >= 500 ? 'errors.title.server' : 'errors.title.request'),
    message: status >= 500 || !message ? text('errors.generic') : message,
    code,
    requestId,
  };
}

// oidc-provider's endpoints that machines call: their errors are JSON unless HTML is asked for.
const API_PATHS = new Set(['/token', '/token/introspection', '/token/revocation', '/me', '/device/auth', '/request', '/reg', '/backchannel', '/jwks', '/challenge', '/credential']);

/** JSON for API callers (oidc-provider's API endpoints, or a request preferring JSON); else a page. */
export function wantsJson(ctx: Context): boolean {
  return API_PATHS.has(ctx.path) ? ctx.accepts('json', 'html') === 'json' : ctx.accepts('html', 'json') === 'json';
}

/**
 * What no route answered: a 404 page, and 405 (with Allow) for a method nothing here implements
 * (koa-router says 501, a 5xx that scanners would turn into server-error alerts, though it is the
 * client's mistake). A browser gets the error page in its language; anything else plain text.
 */
export function unhandledRequests(renderer: PageRenderer) {
  return async function answerUnhandled(ctx: Context, next: Next) {
    await next();
    if (ctx.status === 501) {
      ctx.status = 405;
      ctx.set('Allow', 'GET, HEAD, POST, OPTIONS');
      if (wantsPage(ctx)) return sendPage(ctx, renderer, 'error', errorPageContext(405, text('errors.method_not_allowed'), 'method_not_allowed'), 405);
      ctx.type = 'text/plain';
      ctx.body = 'method not allowed';
    } else if (ctx.status === 404 && ctx.body == null && wantsPage(ctx)) {
      sendPage(ctx, renderer, 'error', { ...errorPageContext(404, text('errors.not_found'), 'not_found'), title: text('errors.title.not_found') }, 404);
    }
  };
}

/** A browser navigating (it names text/html); `*\/*` callers (curl, scanners) keep plain text. */
const wantsPage = (ctx: Context) => ctx.method !== 'HEAD' && /\btext\/html\b/i.test(ctx.get('accept')) && ctx.accepts('html', 'json') === 'html';

export function errorPages(renderer: PageRenderer, logger: Logger) {
  return async function handleErrors(ctx: Context, next: Next) {
    try {
      await next();
    } catch (caught) {
      // The client hung up before its request was read (a body cut short): nothing to answer, and
      // its ECONNRESET is the client's connection, not the database's.
      if (isClientGone(caught) && !ctx.req.complete) {
        logger.debug({ path: loggablePath(ctx.path), code: (caught as { code?: unknown }).code }, 'the client went away before its request was read');
        ctx.status = 400;
        return;
      }
      // The database being down is not a bug: 503, and one warn line per outage (database.ts).
      const err = isDatabaseUnavailable(caught) && !(caught instanceof DatabaseUnavailable) ? new DatabaseUnavailable(caught) : caught;
      const requestId = randomUUID();
      const known = err instanceof KeybridgeError;
      const unavailable = err instanceof DatabaseUnavailable;
      const status = known ? err.status : unavailable ? 503 : 500;
      const code = known ? err.code : unavailable ? 'temporarily_unavailable' : 'server_error';
      const message = unavailable ? UNAVAILABLE : known && err.expose ? err.message : GENERIC_FAILURE;
      if (unavailable) logger.debug({ requestId, path: loggablePath(ctx.path) }, 'request refused: database unavailable');
      else if (status >= 500) logger.error({ err, requestId, path: loggablePath(ctx.path) }, 'request failed');
      else logger.info({ code, requestId, path: loggablePath(ctx.path), detail: known ? err.detail : undefined, cause: known ? String((err as Error).cause ?? '') : undefined }, 'request rejected');
      if (ctx.path.startsWith(`${API_PREFIX}/`)) {
        // Refused before the admin API saw it (the edge check): the API's own error format.
        const problem = toProblem(err, requestId);
        ctx.status = problem.status;
        for (const [name, value] of Object.entries(problem.headers)) ctx.set(name, value);
        ctx.type = 'application/problem+json';
        ctx.body = JSON.stringify(problem.body);
      } else if (wantsJson(ctx)) {
        ctx.status = status;
        ctx.body = { error: code, error_description: message, request_id: requestId };
      } else {
        sendPage(ctx, renderer, 'error', errorPageContext(status, known && err.expose ? (err.text ?? err.message) : undefined, code, requestId), status);
      }
    } finally {
      // The one place every 503 (ours and oidc-provider's) gets its Retry-After.
      if (ctx.status === 503 && !ctx.response.get('Retry-After')) ctx.set('Retry-After', String(RETRY_AFTER_SECONDS));
    }
  };
}
