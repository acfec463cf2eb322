// The writes of one authorization request, held back and sent together. A request that ends a
// login (oidc-provider's resume, or /auth with a live session) saves a grant, an authorization
// code and the browser session one after another, each its own statement. Held, the grant and
// the code go with the session's save as one statement: one round trip and one commit instead of
// three, and all or none of them stored. What no session save took along is written when the
// request's middleware returns, before the answer (which carries the code) leaves; a request
// that fails before then stores nothing held, whether its error propagates or oidc-provider
// renders it as an error page (status 400 or more: no code leaves with it). Within the request,
// a held record is read from here (oidc-adapter.ts).
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Context, Next } from 'koa';

export interface HeldWrites {
  /** The held saves by `kind\0id`, in the order first made (the adapter's row values). */
  rows: Map<string, readonly unknown[]>;
  /** Writes what is held; set by the adapter while something is. */
  flush?: () => Promise<void>;
}

const holds = new AsyncLocalStorage<HeldWrites>();

/** The authorization request being served, if any. */
export function currentHold(): HeldWrites | undefined {
  return holds.getStore();
}

/** Wraps the authorization endpoint and its resume (`/auth`, `/auth/:uid`). */
export function holdAuthorizationWrites(authorizationPath = '/auth') {
  return async function holdWrites(ctx: Context, next: Next) {
    if ((ctx.method !== 'GET' && ctx.method !== 'POST') || (ctx.path !== authorizationPath && !ctx.path.startsWith(`${authorizationPath}/`))) return next();
    const hold: HeldWrites = { rows: new Map() };
    await holds.run(hold, next);
    if (hold.flush && ctx.status < 400) await hold.flush();
  };
}
