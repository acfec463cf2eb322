// Login figures for the admin console's charts, counted from the audit trail's login events
// (login.success, and login.failure / error / rejected / throttled as failures).
import type { Store } from '../storage/store.ts';

export const MAX_RANGE_MS = { hour: 7 * 86_400_000, day: 90 * 86_400_000 } as const;

export interface LoginSeries {
  from: string;
  to: string;
  bucket: 'hour' | 'day';
  items: Array<{ bucket: string; connectorId: string | null; outcome: 'success' | 'failure'; count: number }>;
}

export async function loginSeries(store: Store, from: Date, to: Date, bucket: 'hour' | 'day'): Promise<LoginSeries> {
  const rows = await store.audit.loginCounts(from, to, bucket);
  return { from: from.toISOString(), to: to.toISOString(), bucket, items: rows.map((r) => ({ bucket: r.bucket.toISOString(), connectorId: r.connectorId, outcome: r.outcome, count: r.count })) };
}

interface ConnectorTotals {
  connectorId: string | null;
  success: number;
  failure: number;
}

function totals(rows: Awaited<ReturnType<Store['audit']['loginCounts']>>, since: Date): ConnectorTotals[] {
  const by = new Map<string | null, ConnectorTotals>();
  for (const r of rows) {
    if (r.bucket < since) continue;
    const t = by.get(r.connectorId) ?? { connectorId: r.connectorId, success: 0, failure: 0 };
    t[r.outcome] += r.count;
    by.set(r.connectorId, t);
  }
  return [...by.values()].sort((a, b) => b.success + b.failure - (a.success + a.failure) || String(a.connectorId).localeCompare(String(b.connectorId)));
}

/** Logins of the last 24 hours and 7 days per connector, and the most frequent failure reasons of the last 7 days. */
export async function loginOverview(store: Store, now = new Date()) {
  const day = new Date(now.getTime() - 86_400_000);
  const week = new Date(now.getTime() - 7 * 86_400_000);
  // Whole hours, so the last 24 h are the 24 hourly buckets up to now (the oldest one partly).
  const hourly = await store.audit.loginCounts(new Date(Math.floor(week.getTime() / 3_600_000) * 3_600_000), now, 'hour');
  return {
    at: now.toISOString(),
    last24h: totals(hourly, new Date(Math.floor(day.getTime() / 3_600_000) * 3_600_000)),
    last7d: totals(hourly, new Date(0)),
    topFailureReasons: await store.audit.loginFailureReasons(week, 10),
  };
}
