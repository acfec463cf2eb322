// Counts and times every request, labelled with the route PATTERN that served it
// (`/interaction/:uid/login`), never the raw path: uids and random paths would make the label
// space, and the memory behind it, unbounded. Mounted first, so it sees every response.
import type { Context, Next } from 'koa';
import type { BrokerMetrics } from './metrics.ts';

const ROUTE = Symbol('keybridge.metricsRoute');

/** For middleware that answers without a router (the /metrics endpoint itself). */
export function setRouteLabel(ctx: Context, route: string): void {
  (ctx as unknown as Record<symbol, string>)[ROUTE] = route;
}

function routeLabel(ctx: Context): string {
  const own = (ctx as unknown as Record<symbol, string | undefined>)[ROUTE];
  if (own) return own;
  // Set by @koa/router and by oidc-provider's router to the matched route's pattern.
  const matched = (ctx as unknown as { _matchedRoute?: unknown })._matchedRoute;
  if (typeof matched === 'string') return matched;
  // Static assets are served without a router; the file name is not a label either.
  if (ctx.path.startsWith('/assets/')) return '/assets/:file';
  return 'other';
}

export function httpMetrics(metrics: BrokerMetrics) {
  return async function httpMetricsMiddleware(ctx: Context, next: Next): Promise<void> {
    const started = performance.now();
    let status = 0;
    try {
      await next();
    } catch (err) {
      // Koa's own handler answers with the error's status (4xx/5xx) or 500.
      const s = (err as { status?: unknown; statusCode?: unknown }).status ?? (err as { statusCode?: unknown }).statusCode;
      status = typeof s === 'number' && s >= 400 && s <= 599 ? s : 500;
      throw err;
    } finally {
      metrics.recordHttp(ctx.method, routeLabel(ctx), status || ctx.status, (performance.now() - started) / 1000);
    }
  };
}
