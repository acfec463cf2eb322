// Liveness (/healthz: the process answers) and readiness (/readyz: the database answers).
import Router from '@koa/router';
import type { Knex } from 'knex';

export function healthRoutes(knex: Knex): Router {
  const router = new Router();
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    try {
      await knex.raw('SELECT 1');
      ctx.body = { status: 'ready' };
    } catch {
      ctx.status = 503;
      ctx.body = { status: 'unavailable', reason: 'database' };
    }
  });
  return router;
}
