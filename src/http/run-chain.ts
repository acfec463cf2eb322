// Runs a list of Koa middleware as one, then `next`: a group of middleware that a request can
// skip as a whole (see start-broker.ts). The list may grow until the first request.
import type { Context, Middleware, Next } from 'koa';

export function runChain(chain: readonly Middleware<any, any>[], ctx: Context, next: Next): Promise<void> {
  let last = -1;
  const dispatch = async (i: number): Promise<void> => {
    if (i <= last) throw new Error('next() called more than once');
    last = i;
    const middleware = chain[i];
    if (!middleware) return next();
    await middleware(ctx as never, () => dispatch(i + 1));
  };
  return dispatch(0);
}
