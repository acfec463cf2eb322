// What reaches a Koa application's `error` event: errors no middleware answered, above all a
// response that failed while it was being sent because the client hung up (mid-body, or before
// the answer). Koa's own handler prints each to stderr with its stack, outside the logger, so
// any client could put stack traces in the log by closing a connection early. A client that went
// away is not our fault: a debug line. Anything else is a bug: one error line through the logger.
import type { Context } from 'koa';
import type { Logger } from 'pino';
import { loggablePath } from './loggable-path.ts';

const CLIENT_GONE = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END']);

/** The connection ended under the request: the client hung up, or sent a request the HTTP parser could not finish. */
export function isClientGone(err: unknown): boolean {
  const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code === 'string' && (CLIENT_GONE.has(code) || code.startsWith('HPE_'))) return true;
  return message === 'aborted' || message === 'Parse Error';
}

/** Reports the application's unanswered errors through `logger` instead of Koa's printing. Call before `callback()`. */
export function reportAppErrors(app: { on(event: 'error', listener: (err: unknown, ctx?: Context) => void): unknown }, logger: Logger): void {
  app.on('error', (err, ctx) => {
    const path = ctx ? loggablePath(ctx.path) : undefined;
    if (isClientGone(err)) {
      logger.debug({ path, code: (err as { code?: unknown }).code }, 'the client went away before the response was sent');
      return;
    }
    // What Koa itself leaves unreported: an error meant for the client (4xx, exposed).
    const { status, expose } = err as { status?: unknown; expose?: unknown };
    if ((typeof status === 'number' && status < 500) || expose === true) return;
    logger.error({ err, path }, 'request failed outside the error pages');
  });
}
