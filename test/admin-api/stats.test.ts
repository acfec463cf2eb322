// Login statistics through the admin API, on PGlite and PostgreSQL: counts per UTC hour or day,
// connector and outcome from the audit trail's login events, bounded ranges (400 with the
// parameter), a dashboard overview, and a real login counted.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { AdminApiClient, adminClientConfig, clientToken, consoleClientConfig, userToken, ADMIN_STORES as stores } from '../helpers/admin-api.ts';


const BASE = Date.parse('2026-02-10T00:00:00Z');
const H = 3_600_000;

for (const store of stores) {
  describe(`admin API stats on ${store.name}`, () => {
    let broker: TestBroker;
    let drop: () => Promise<void> = async () => {};
    let api: AdminApiClient;
    let skipped: string | undefined;

    before(async () => {
      const db = await store.url();
      if ('skip' in db) {
        skipped = db.skip;
        return;
      }
      drop = db.drop;
      broker = await startTestBroker({
        databaseUrl: db.url,
        config: {
          clients: [adminClientConfig('ops'), adminClientConfig('statsman', ['admin:stats:read']), adminClientConfig('auditor', ['admin:audit:read']), consoleClientConfig('app')],
          users: [{ username: 'carol', password: 'carol-password-1' }],
        },
      });
      api = new AdminApiClient(broker.issuer, await clientToken(broker.issuer, 'ops', 'admin:read'));
      const at = (ms: number) => new Date(ms);
      const row = (ms: number, type: string, connector: string | null, reason?: string) => ({ at: at(ms), type, outcome: type === 'login.success' ? 'success' : 'failure', connector_id: connector, details: JSON.stringify(reason ? { reason } : {}) });
      await broker.store.knex('audit_events').insert([
        // 2026-02-10 00:xx: 3 ldap successes, 1 ldap failure, 1 local success
        row(BASE + 60_000, 'login.success', 'ldap'),
        row(BASE + 120_000, 'login.success', 'ldap'),
        row(BASE + 59 * 60_000, 'login.success', 'ldap'),
        row(BASE + 30 * 60_000, 'login.failure', 'ldap', 'invalid_credentials'),
        row(BASE + 5 * 60_000, 'login.success', 'local'),
        // 01:xx: a throttle (no connector), an upstream error
        row(BASE + H + 1000, 'login.throttled', null),
        row(BASE + H + 2000, 'login.error', 'google'),
        // the next day
        row(BASE + 25 * H, 'login.success', 'ldap'),
        // not logins
        row(BASE + 2 * H, 'identity.linked', 'ldap'),
        row(BASE + 2 * H, 'admin.group.create', null),
      ]);
      // Recent ones for the overview.
      const now = Date.now();
      await broker.store.knex('audit_events').insert([
        row(now - 2 * H, 'login.success', 'ldap'),
        row(now - 3 * H, 'login.failure', 'ldap', 'invalid_credentials'),
        row(now - 4 * H, 'login.failure', 'ldap', 'invalid_credentials'),
        row(now - 3 * 24 * H, 'login.failure', 'saml', 'account_disabled'),
        row(now - 3 * 24 * H, 'login.success', 'saml'),
        row(now - 10 * 24 * H, 'login.failure', 'saml', 'too_old'),
      ]);
    });

    after(async () => {
      await broker?.close();
      await drop();
    });

    const live = (t: { skip(msg: string): void }) => {
      if (skipped) skipLoudly(t as never, skipped);
      return !skipped;
    };

    test('401 without a token, 403 with another resource\'s scope; the stats scope reads', async (t) => {
      if (!live(t)) return;
      assert.equal((await api.get('/stats/logins', { token: null })).status, 401);
      assert.equal((await api.get('/stats/overview', { token: null })).status, 401);
      const auditor = await clientToken(broker.issuer, 'auditor', 'admin:audit:read');
      assert.equal((await api.get('/stats/logins', { token: auditor })).status, 403);
      const statsman = await clientToken(broker.issuer, 'statsman', 'admin:stats:read');
      assert.equal((await api.get('/stats/overview', { token: statsman })).status, 200);
    });

    test('per hour and per day: counts per connector and outcome, empty buckets left out, the range end exclusive', async (t) => {
      if (!live(t)) return;
      const hours = await api.get(`/stats/logins?bucket=hour&from=2026-02-10T00:00:00Z&to=2026-02-11T01:00:00Z`);
      assert.equal(hours.status, 200);
      assert.equal(hours.body.bucket, 'hour');
      assert.deepEqual(hours.body.items, [
        { bucket: '2026-02-10T00:00:00.000Z', connectorId: 'ldap', outcome: 'failure', count: 1 },
        { bucket: '2026-02-10T00:00:00.000Z', connectorId: 'ldap', outcome: 'success', count: 3 },
        { bucket: '2026-02-10T00:00:00.000Z', connectorId: 'local', outcome: 'success', count: 1 },
        { bucket: '2026-02-10T01:00:00.000Z', connectorId: null, outcome: 'failure', count: 1 },
        { bucket: '2026-02-10T01:00:00.000Z', connectorId: 'google', outcome: 'failure', count: 1 },
      ]);
      const days = await api.get(`/stats/logins?bucket=day&from=${encodeURIComponent('2026-02-10T01:00:00+01:00')}&to=2026-02-12T00:00:00Z`);
      assert.deepEqual(days.body.items.map((i: { bucket: string; connectorId: string | null; outcome: string; count: number }) => `${i.bucket.slice(0, 10)} ${i.connectorId} ${i.outcome} ${i.count}`), [
        '2026-02-10 null failure 1',
        '2026-02-10 google failure 1',
        '2026-02-10 ldap failure 1',
        '2026-02-10 ldap success 3',
        '2026-02-10 local success 1',
        '2026-02-11 ldap success 1',
      ]);
      assert.equal(days.body.from, '2026-02-10T00:00:00.000Z');
      const defaults = await api.get('/stats/logins');
      assert.equal(defaults.status, 200);
      assert.equal(Date.parse(defaults.body.to) - Date.parse(defaults.body.from), 24 * H, 'default: the last 24 hours');
      assert.deepEqual(defaults.body.items.map((i: { count: number }) => i.count).reduce((a: number, b: number) => a + b, 0), 3);
    });

    test('ranges are bounded and validated, the error naming the parameter', async (t) => {
      if (!live(t)) return;
      const path = async (query: string) => {
        const res = await api.get(`/stats/logins?${query}`);
        assert.equal(res.status, 400, query);
        return res.body.errors.map((e: { path: string }) => e.path);
      };
      assert.deepEqual(await path('bucket=hour&from=2026-01-01T00:00:00Z&to=2026-01-08T00:00:01Z'), ['query.from']);
      assert.equal((await api.get('/stats/logins?bucket=hour&from=2026-01-01T00:00:00Z&to=2026-01-08T00:00:00Z')).status, 200, 'exactly 7 days of hours');
      assert.deepEqual(await path('bucket=day&from=2025-01-01T00:00:00Z&to=2026-01-01T00:00:00Z'), ['query.from']);
      assert.deepEqual(await path('from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z'), ['query.to']);
      assert.deepEqual(await path('bucket=minute'), ['query.bucket']);
      assert.deepEqual(await path('from=last-week'), ['query.from']);
      assert.deepEqual(await path('from=2026-01-01'), ['query.from']);
    });

    test('overview: last 24 hours and 7 days per connector, top failure reasons of the week', async (t) => {
      if (!live(t)) return;
      const res = await api.get('/stats/overview');
      assert.equal(res.status, 200);
      assert.deepEqual(res.body.last24h, [{ connectorId: 'ldap', success: 1, failure: 2 }]);
      assert.deepEqual(res.body.last7d, [
        { connectorId: 'ldap', success: 1, failure: 2 },
        { connectorId: 'saml', success: 1, failure: 1 },
      ]);
      assert.deepEqual(res.body.topFailureReasons, [
        { reason: 'invalid_credentials', count: 2 },
        { reason: 'account_disabled', count: 1 },
      ]);
    });

    test('a real login is counted', async (t) => {
      if (!live(t)) return;
      await userToken(broker.issuer, 'app', 'carol', 'carol-password-1');
      const res = await api.get('/stats/overview');
      const local = res.body.last24h.find((c: { connectorId: string }) => c.connectorId === 'local');
      assert.deepEqual(local, { connectorId: 'local', success: 1, failure: 0 });
    });
  });
}
