// Login figures for the console's charts and dashboard (src/management/login-stats.ts).
import { z } from 'zod';
import type { Config } from '../../config/schema.ts';
import type { Store } from '../../storage/store.ts';
import type { ClientService } from '../../management/clients.ts';
import type { ConnectorService } from '../../management/connectors.ts';
import { KEY_AGE_LIMIT_DAYS, riskHints } from '../../management/risk-hints.ts';
import { defineRoute, type AdminRoute } from '../admin-route.ts';
import { loginOverview, loginSeries, MAX_RANGE_MS } from '../../management/login-stats.ts';

const HOUR = 3_600_000;
const isoTime = z.iso.datetime({ offset: true });
const DEFAULT_SPAN = { hour: 24 * HOUR, day: 30 * 24 * HOUR } as const;

const connectorTotals = z.object({ connectorId: z.string().nullable().describe('null: no connector was chosen (e.g. throttled before one was).'), success: z.int(), failure: z.int() });

export function statsRoutes(deps: { config: Config; store: Store; clients: ClientService; connectors: ConnectorService }): AdminRoute[] {
  const { store } = deps;
  const common = { resource: 'stats', tag: 'Stats', access: 'read' } as const;
  return [
    defineRoute({
      ...common,
      method: 'get',
      path: '/stats/logins',
      operationId: 'loginStats',
      summary: 'Logins per connector and outcome over time',
      description:
        'Counted from the audit trail: login.success as success; login.failure, login.error, login.rejected and login.throttled as failure. ' +
        'Buckets are UTC hours or days; empty buckets are left out. At most 7 days of hours or 90 days of days. ' +
        'Default range: the last 24 hours (hour) or 30 days (day).',
      query: z
        .object({
          bucket: z.enum(['hour', 'day']).default('hour'),
          from: isoTime.optional().describe('Start (inclusive).'),
          to: isoTime.optional().describe('End (exclusive); default now.'),
        })
        .superRefine((q, ctx) => {
          // zod runs this even when a field failed; the range is only judged between valid times.
          if (![q.from, q.to].every((v) => v === undefined || isoTime.safeParse(v).success) || !['hour', 'day'].includes(q.bucket)) return;
          const to = q.to ? Date.parse(q.to) : Date.now();
          const from = q.from ? Date.parse(q.from) : to - DEFAULT_SPAN[q.bucket];
          if (from >= to) ctx.addIssue({ code: 'custom', path: [q.from ? 'to' : 'from'], message: 'the range must end after it starts' });
          else if (to - from > MAX_RANGE_MS[q.bucket]) ctx.addIssue({ code: 'custom', path: ['from'], message: `the range may span at most ${q.bucket === 'hour' ? '7 days of hours' : '90 days of days'}` });
        }),
      responses: {
        200: {
          description: 'Counts per bucket, connector and outcome.',
          schema: z.object({
            from: z.iso.datetime(),
            to: z.iso.datetime(),
            bucket: z.enum(['hour', 'day']),
            items: z.array(z.object({ bucket: z.iso.datetime().describe('Start of the bucket (UTC).'), connectorId: z.string().nullable(), outcome: z.enum(['success', 'failure']), count: z.int().min(1) })),
          }),
        },
      },
      async handler({ query }) {
        const to = query.to ? new Date(query.to) : new Date();
        const from = query.from ? new Date(query.from) : new Date(to.getTime() - DEFAULT_SPAN[query.bucket]);
        return { body: await loginSeries(store, from, to, query.bucket) };
      },
    }),
    defineRoute({
      ...common,
      method: 'get',
      path: '/stats/overview',
      operationId: 'statsOverview',
      summary: 'Login totals for a dashboard',
      description: 'Logins per connector over the last 24 hours and 7 days (whole UTC hours), and the ten most frequent failure reasons of the last 7 days.',
      responses: {
        200: {
          description: 'The totals.',
          schema: z.object({
            at: z.iso.datetime(),
            last24h: z.array(connectorTotals),
            last7d: z.array(connectorTotals),
            topFailureReasons: z.array(z.object({ reason: z.string(), count: z.int() })),
          }),
        },
      },
      async handler() {
        return { body: await loginOverview(store) };
      },
    }),
    defineRoute({
      ...common,
      method: 'get',
      path: '/stats/hints',
      operationId: 'riskHints',
      summary: 'Risky settings worth a look',
      description:
        'Computed from the config and the store on each call: the issuer or client redirect URIs on plain http outside loopback, no administrator group, ' +
        `administrators without a second factor (Keybridge has no MFA yet), the production-mode problems of the config (outside production mode), active signing keys older than ${KEY_AGE_LIMIT_DAYS} days, ` +
        'LDAP connectors on ldap:// without StartTLS. Most severe first. A hint names where the setting lives, never a secret value.',
      responses: {
        200: {
          description: 'The hints.',
          schema: z.object({
            items: z.array(
              z.object({
                id: z.string().describe('Stable for the same finding (client-http-redirect:<client id>, key-age:<kid>, production:<config path>…).'),
                severity: z.enum(['info', 'warning', 'danger']),
                title: z.string(),
                detail: z.string(),
                link: z.string().optional().describe('The console page to fix it on (/admin/clients/<id>).'),
              }),
            ),
          }),
        },
      },
      async handler() {
        return { body: { items: await riskHints(deps) } };
      },
    }),
  ];
}
