// Turns errors thrown by Keybridge's own routes into an error page (or JSON for API callers).
// Only messages of errors marked `expose` reach the person; everything is logged with the
// request id so an operator can find it.
import { randomUUID } from 'node:crypto';
import type { Context, Next } from 'koa';
import type { Logger } from 'pino';
import { KeybridgeError } from '../errors.ts';
import type { PageRenderer } from './page-renderer.ts';
import { sendPage } from './send-page.ts';

const GENERIC_FAILURE = 'An unexpected error occurred. Try again, and if it persists contact your administrator.';

/** What the error page shows: the message only for client errors; a generic one for ours. */
export function errorPageContext(status: number, message: string | undefined, code: string | undefined, requestId?: string): Record<string, unknown> {
  return {
    title: status >= 500 ? 'Something went wrong' : 'This request cannot be completed',
    message: status >= 500 || !message ? GENERIC_FAILURE : message,
    code,
    requestId,
  };
}

export function errorPages(renderer: PageRenderer, logger: Logger) {
  return async function handleErrors(ctx: Context, next: Next) {
    try {
      await next();
    } catch (err) {
      const requestId = randomUUID();
      const known = err instanceof KeybridgeError;
      const status = known ? err.status : 500;
      const code = known ? err.code : 'server_error';
      const message = known && err.expose ? err.message : GENERIC_FAILURE;
      if (status >= 500) logger.error({ err, requestId, path: ctx.path }, 'request failed');
      else logger.info({ code, requestId, path: ctx.path, detail: known ? err.detail : undefined, cause: known ? String((err as Error).cause ?? '') : undefined }, 'request rejected');
      if (ctx.accepts('html', 'json') === 'json') {
        ctx.status = status;
        ctx.body = { error: code, error_description: message, request_id: requestId };
        return;
      }
      sendPage(ctx, renderer, 'error', errorPageContext(status, message, code, requestId), status);
    }
  };
}
