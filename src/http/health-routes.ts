// Liveness (/healthz: the process answers) and readiness (/readyz: the database answers).
// Readiness is bounded: a hung database makes it answer 503 within `timeoutMs`, and probes
// arriving while a check is still running share it instead of piling up connections.
import Router from '@koa/router';
import type { Knex } from 'knex';

export function healthRoutes(knex: Knex, options: { timeoutMs?: number } = {}): Router {
  const timeoutMs = options.timeoutMs ?? 2_000;
  const router = new Router();
  let inFlight: Promise<boolean> | undefined;

  const check = (): Promise<boolean> => {
    inFlight ??= (async () => {
      let timer: NodeJS.Timeout | undefined;
      try {
        const timedOut = new Promise<false>((resolve) => {
          timer = setTimeout(() => resolve(false), timeoutMs);
        });
        const answered = knex.raw('SELECT 1').then(
          () => true,
          () => false,
        );
        return await Promise.race([answered, timedOut]);
      } finally {
        clearTimeout(timer);
        inFlight = undefined;
      }
    })();
    return inFlight;
  };

  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    if (await check()) {
      ctx.body = { status: 'ready' };
      return;
    }
    ctx.status = 503;
    ctx.body = { status: 'unavailable', reason: 'database' };
  });
  return router;
}
