// oidc-provider 9 answers a POST to /device that arrives without a live browser session (no
// cookie, or one whose session expired) by re-rendering the code form into a new, never saved
// session, and then fails to save it ("persist can only be called on previously persisted
// Sessions"): a 500 with a stack trace that anyone can trigger. Such a POST is sent back to the
// code form, which starts a session, instead.
import type { Context, Next } from 'koa';

const UNSAVED_SESSION = /persist can only be called on previously persisted Sessions/;

export function deviceSessionRecovery(devicePath = '/device') {
  return async function recoverDeviceSession(ctx: Context, next: Next) {
    try {
      await next();
    } catch (err) {
      if (ctx.method !== 'POST' || ctx.path !== devicePath || !(err instanceof TypeError) || !UNSAVED_SESSION.test(err.message)) throw err;
      ctx.status = 303;
      ctx.redirect(devicePath);
    }
  };
}
