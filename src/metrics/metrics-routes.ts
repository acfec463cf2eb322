// GET /metrics: the Prometheus exposition, behind an optional bearer token; on the public
// listener, or only on its own listener (`metrics.listen`, e.g. an address only the monitoring
// network reaches).
import http from 'node:http';
import { createHash, timingSafeEqual } from 'node:crypto';
import { listenOn } from '../http/listen.ts';
import Koa, { type Context, type Next } from 'koa';
import type { Logger } from 'pino';
import type { BrokerMetrics } from './metrics.ts';
import { setRouteLabel } from './http-metrics.ts';

export const METRICS_PATH = '/metrics';

const digest = (value: string) => createHash('sha256').update(value).digest();

export function metricsEndpoint(metrics: BrokerMetrics, options: { token?: string }) {
  // Compared as digests: equal lengths for timingSafeEqual, and no early exit on length.
  const expected = options.token ? digest(options.token) : null;
  return async function metricsRoute(ctx: Context, next: Next): Promise<void> {
    if (ctx.path !== METRICS_PATH) return next();
    setRouteLabel(ctx, METRICS_PATH);
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      ctx.status = 405;
      ctx.set('Allow', 'GET, HEAD');
      return;
    }
    if (expected) {
      const match = /^Bearer +([\x21-\x7e]+) *$/i.exec(ctx.get('authorization'));
      if (!match || !timingSafeEqual(digest(match[1]), expected)) {
        ctx.status = 401;
        ctx.set('WWW-Authenticate', match ? 'Bearer realm="metrics", error="invalid_token"' : 'Bearer realm="metrics"');
        ctx.set('Cache-Control', 'no-store');
        ctx.type = 'text/plain';
        ctx.body = 'a bearer token is required\n';
        return;
      }
    }
    ctx.set('Cache-Control', 'no-store');
    ctx.type = metrics.contentType;
    ctx.body = await metrics.render();
  };
}

export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

/** A listener that serves /metrics and nothing else. */
export async function startMetricsServer(metrics: BrokerMetrics, options: { listen: string; token?: string; logger: Logger }): Promise<MetricsServer> {
  const app = new Koa();
  app.silent = true;
  app.on('error', (err: Error) => options.logger.warn({ err }, 'metrics listener error'));
  app.use(async (ctx, next) => {
    ctx.set('X-Content-Type-Options', 'nosniff');
    await next();
  });
  app.use(metricsEndpoint(metrics, { token: options.token }));
  const server = http.createServer(app.callback());
  const base = await listenOn(server, options.listen);
  return {
    url: `${base}${METRICS_PATH}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
