// Prometheus metrics at /metrics, scraped over real HTTP: what the series count (requests by
// route pattern, logins, grants, refresh denials, upstream calls, pools, event-loop lag), that
// labels stay bounded whatever paths a client sends, and the three ways to expose them (public,
// behind a bearer token, on a separate listener) plus off.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { freshPostgresDatabase } from '../helpers/postgres.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { Browser } from '../helpers/browser.ts';
import { freePort } from '../helpers/free-port.ts';
import { parseConfig } from '../../src/config/load-config.ts';
import { ConfigError } from '../../src/errors.ts';
import type { ConnectorPlugin, RedirectConnector, RefreshResult, SyncedUser } from '../../src/connectors/contract.ts';
import { ConnectorRegistry, type ConnectorCallOutcome, type ConnectorOperation } from '../../src/connectors/registry.ts';
import { createLogger } from '../../src/log.ts';

const RP = 'http://127.0.0.1:9/cb';
const SVC_SECRET = 'svc-secret-0123456789abcdef';
const TOKEN = 'metrics-token-0123456789abcdef-0123456789';

interface Sample { name: string; labels: Record<string, string>; value: number }

function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v;
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of the one series with these labels (0 when absent). */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const hits = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return hits.reduce((sum, s) => sum + s.value, 0);
}

async function scrape(url: string, token?: string): Promise<{ text: string; samples: Sample[] }> {
  const res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  assert.equal(res.status, 200, await res.clone().text());
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  return { text, samples: parseExposition(text) };
}

async function clientCredentials(broker: TestBroker, secret = SVC_SECRET): Promise<Response> {
  return fetch(`${broker.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`svc:${secret}`).toString('base64')}` },
    body: 'grant_type=client_credentials',
  });
}

/** A password connector whose upstream says yes to `ok`, no to anything else, and is down for `boom`. */
const flakyPlugin: ConnectorPlugin = {
  type: 'fixture-flaky',
  configSchema: z.strictObject({}),
  create: () => ({
    kind: 'password',
    async login(username: string) {
      if (username === 'boom') throw new Error('upstream unreachable');
      if (username !== 'ok') return { ok: false, reason: 'invalid_credentials' };
      return { ok: true, identity: { connectorId: 'flaky', subject: 'u-ok', username: 'ok', email: 'ok@upstream.example', emailVerified: true } };
    },
  }),
};

/** Posts the login form of a fresh interaction; returns the page or redirect that followed. */
async function submitLogin(broker: TestBroker, form: Record<string, string>) {
  const browser = new Browser(broker.issuer);
  const auth = new URL(`${broker.issuer}/auth`);
  auth.search = new URLSearchParams({ client_id: 'rp', response_type: 'code', redirect_uri: RP, scope: 'openid', state: 's1', nonce: 'n1', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' }).toString();
  const page = await browser.go(auth.href);
  assert.match(page.html, /name="password"/);
  const action = /action="([^"]*\/login)"/.exec(page.html)?.[1];
  assert.ok(action, 'login form action');
  const csrf = /name="csrf" value="([^"]+)"/.exec(page.html)?.[1];
  return browser.go(new URL(action.replace(/&amp;/g, '&'), page.url).href, { form: { ...(csrf ? { csrf } : {}), ...form } });
}

describe('metrics on the public listener (PostgreSQL)', () => {
  let broker: TestBroker;
  let drop: (() => Promise<void>) | undefined;
  let skip = '';

  before(async () => {
    const fresh = await freshPostgresDatabase();
    if ('skip' in fresh) {
      skip = fresh.skip;
      return;
    }
    drop = fresh.drop;
    broker = await startTestBroker({
      databaseUrl: fresh.url,
      plugins: new Map([['fixture-flaky', flakyPlugin]]),
      config: {
        clients: [
          { id: 'rp', secret: 'rp-secret-0123456789abcdef', redirectUris: [RP], firstParty: true },
          { id: 'svc', secret: SVC_SECRET, grantTypes: ['client_credentials'] },
        ],
        users: [{ username: 'alice', password: 'alice-password-1' }],
        connectors: [{ id: 'local', type: 'local' }, { id: 'flaky', type: 'fixture-flaky' }],
      },
    });
  });
  after(async () => {
    await broker?.close();
    await drop?.();
  });

  test('/metrics is open by default and lists process series, event-loop lag and both database pools', async (t) => {
    if (skip) return skipLoudly(t, skip);
    const { samples, text } = await scrape(`${broker.url}/metrics`);
    assert.ok(samples.some((s) => s.name === 'nodejs_eventloop_lag_seconds'), 'event-loop lag');
    assert.ok(samples.some((s) => s.name === 'process_resident_memory_bytes'), 'process memory');
    for (const pool of ['main', 'artifacts']) {
      for (const state of ['used', 'free', 'pending_acquires', 'pending_creates']) {
        assert.ok(samples.some((s) => s.name === 'keybridge_db_pool_connections' && s.labels.pool === pool && s.labels.state === state), `${pool} ${state}`);
      }
      assert.equal(value(samples, 'keybridge_db_pool_max', { pool }), 10);
    }
    // One exposition, no series twice (two registries concatenated).
    const heads = text.split('\n').filter((l) => l.startsWith('# TYPE '));
    assert.equal(new Set(heads).size, heads.length);
  });

  test('token grants by type, grant errors by OAuth code, refresh denials, and /token by route and status', async (t) => {
    if (skip) return skipLoudly(t, skip);
    const before = (await scrape(`${broker.url}/metrics`)).samples;
    assert.equal((await clientCredentials(broker)).status, 200);
    assert.equal((await clientCredentials(broker)).status, 200);
    assert.equal((await clientCredentials(broker, 'wrong-secret-0123456789abcdef')).status, 401);
    const refresh = await fetch(`${broker.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from('rp:rp-secret-0123456789abcdef').toString('base64')}` },
      body: 'grant_type=refresh_token&refresh_token=not-a-real-refresh-token',
    });
    assert.equal(refresh.status, 400);
    const unknownGrant = await fetch(`${broker.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`svc:${SVC_SECRET}`).toString('base64')}` },
      body: `grant_type=urn:x:${randomBytes(6).toString('hex')}`,
    });
    assert.equal(unknownGrant.status, 400);

    const { samples, text } = await scrape(`${broker.url}/metrics`);
    const delta = (name: string, labels: Record<string, string> = {}) => value(samples, name, labels) - value(before, name, labels);
    assert.equal(delta('keybridge_token_grants_total', { grant_type: 'client_credentials' }), 2);
    assert.equal(delta('keybridge_token_grant_errors_total', { grant_type: 'client_credentials', error: 'invalid_client' }), 1);
    assert.equal(delta('keybridge_token_grant_errors_total', { grant_type: 'refresh_token', error: 'invalid_grant' }), 1);
    assert.equal(delta('keybridge_token_refresh_denied_total'), 1);
    assert.equal(delta('keybridge_token_grant_errors_total', { grant_type: 'other' }), 1, 'an unknown grant type is not a label value');
    assert.doesNotMatch(text, /urn:x:/);
    assert.equal(delta('keybridge_http_requests_total', { method: 'POST', route: '/token', status: '200' }), 2);
    assert.equal(delta('keybridge_http_requests_total', { method: 'POST', route: '/token', status: '401' }), 1);
    assert.equal(delta('keybridge_http_request_duration_seconds_count', { method: 'POST', route: '/token' }), 5);
  });

  test('labels are route patterns: uids, random paths and unknown connectors never become label values', async (t) => {
    if (skip) return skipLoudly(t, skip);
    const before = (await scrape(`${broker.url}/metrics`)).samples;
    const junk = Array.from({ length: 20 }, () => randomBytes(8).toString('hex'));
    for (const j of junk) {
      assert.equal((await fetch(`${broker.url}/${j}/x`)).status, 404);
      await fetch(`${broker.url}/callback/${j}?state=${j}`);
      await fetch(`${broker.url}/interaction/${j}`);
    }
    const { samples, text } = await scrape(`${broker.url}/metrics`);
    for (const j of junk) assert.ok(!text.includes(j), 'a random path segment became a label value');
    const delta = (name: string, labels: Record<string, string>) => value(samples, name, labels) - value(before, name, labels);
    assert.equal(delta('keybridge_http_requests_total', { method: 'GET', route: 'other', status: '404' }), 20);
    assert.equal(delta('keybridge_http_requests_total', { method: 'GET', route: '/callback/:connector' }), 20);
    assert.equal(delta('keybridge_http_requests_total', { method: 'GET', route: '/interaction/:uid' }), 20);
    // The rejected callbacks are audited with the connector id from the path: counted as `other`.
    assert.equal(delta('keybridge_logins_total', { connector: 'other', outcome: 'rejected' }), 20);
  });

  test('logins by connector and outcome, and upstream call latency and errors by connector', async (t) => {
    if (skip) return skipLoudly(t, skip);
    const before = (await scrape(`${broker.url}/metrics`)).samples;
    const ok = await submitLogin(broker, { connector: 'flaky', username: 'ok', password: 'x' });
    assert.ok(ok.url.startsWith(RP), `signed in: ${ok.status} ${ok.url}`);
    await submitLogin(broker, { connector: 'flaky', username: 'nobody', password: 'x' });
    await submitLogin(broker, { connector: 'flaky', username: 'boom', password: 'x' });
    await submitLogin(broker, { connector: 'local', username: 'alice', password: 'wrong-password' });

    const { samples } = await scrape(`${broker.url}/metrics`);
    const delta = (name: string, labels: Record<string, string>) => value(samples, name, labels) - value(before, name, labels);
    assert.equal(delta('keybridge_logins_total', { connector: 'flaky', outcome: 'success' }), 1);
    assert.equal(delta('keybridge_logins_total', { connector: 'flaky', outcome: 'failure' }), 1);
    assert.equal(delta('keybridge_logins_total', { connector: 'flaky', outcome: 'error' }), 1);
    assert.equal(delta('keybridge_logins_total', { connector: 'local', outcome: 'failure' }), 1);
    assert.equal(delta('keybridge_upstream_request_duration_seconds_count', { connector: 'flaky', operation: 'login', outcome: 'success' }), 1);
    assert.equal(delta('keybridge_upstream_request_duration_seconds_count', { connector: 'flaky', operation: 'login', outcome: 'failure' }), 1);
    assert.equal(delta('keybridge_upstream_request_duration_seconds_count', { connector: 'flaky', operation: 'login', outcome: 'error' }), 1);
    assert.equal(delta('keybridge_upstream_errors_total', { connector: 'flaky', operation: 'login' }), 1);
    assert.equal(delta('keybridge_upstream_request_duration_seconds_count', { connector: 'local', operation: 'login', outcome: 'failure' }), 1);
    assert.equal(delta('keybridge_http_requests_total', { method: 'POST', route: '/interaction/:uid/login' }), 4);
  });

  test('audit counters match the audit trail exactly', async (t) => {
    if (skip) return skipLoudly(t, skip);
    const { samples } = await scrape(`${broker.url}/metrics`);
    const rows = (await broker.database.knex('audit_events').select('type', 'outcome').count({ n: '*' }).groupBy('type', 'outcome')) as { type: string; outcome: string; n: string | number }[];
    assert.ok(rows.length > 3, 'the earlier tests wrote audit events');
    for (const row of rows) assert.equal(value(samples, 'keybridge_audit_events_total', { type: row.type, outcome: row.outcome }), Number(row.n), `${row.type} ${row.outcome}`);
    const counted = samples.filter((s) => s.name === 'keybridge_audit_events_total').reduce((sum, s) => sum + s.value, 0);
    assert.equal(counted, rows.reduce((sum, r) => sum + Number(r.n), 0));
  });

  test('an audit event recorded in a transaction that rolls back is not counted', async (t) => {
    if (skip) return skipLoudly(t, skip);
    const count = async () => value((await scrape(`${broker.url}/metrics`)).samples, 'keybridge_audit_events_total', { type: 'test.rolled_back' });
    await assert.rejects(broker.store.transaction(async (tx) => {
      await tx.audit.record({ type: 'test.rolled_back' });
      throw new Error('roll back');
    }));
    await broker.store.transaction(async (tx) => tx.audit.record({ type: 'test.rolled_back' }));
    assert.equal(await count(), 1);
  });
});

describe('metrics behind a bearer token', () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startTestBroker({ config: { metrics: { token: TOKEN } } });
  });
  after(() => broker?.close());

  test('no token, a wrong token, or another scheme: 401 with a Bearer challenge and nothing exposed', async () => {
    for (const authorization of [undefined, `Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}`, TOKEN]) {
      const res = await fetch(`${broker.url}/metrics`, { headers: authorization ? { authorization } : {} });
      assert.equal(res.status, 401, String(authorization));
      assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer realm="metrics"/);
      assert.doesNotMatch(await res.text(), /keybridge_|nodejs_/);
    }
  });

  test('the right token gets the exposition', async () => {
    const { samples } = await scrape(`${broker.url}/metrics`, TOKEN);
    assert.ok(samples.some((s) => s.name === 'keybridge_http_requests_total' && s.labels.route === '/metrics' && s.labels.status === '401'));
  });

  test('a token shorter than 32 characters is a config error naming the path, without the value', () => {
    assert.throws(
      () => parseConfig('issuer: http://127.0.0.1:5556\nmetrics: { token: short-token-value }\n', { env: {}, source: 'test' }),
      (err: unknown) => err instanceof ConfigError && /metrics\.token: must be at least 32 characters/.test(err.message) && !err.message.includes('short-token-value'),
    );
  });
});

describe('metrics on a separate listener', () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startTestBroker({ config: { metrics: { listen: `127.0.0.1:${await freePort()}`, token: TOKEN } } });
  });
  after(() => broker?.close());

  test('the public listener has no /metrics (404); the metrics listener serves it, with the token', async () => {
    const pub = await fetch(`${broker.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(pub.status, 404);
    assert.doesNotMatch(await pub.text(), /keybridge_/);
    assert.ok(broker.metricsUrl);
    assert.notEqual(new URL(broker.metricsUrl).port, new URL(broker.url).port);
    assert.equal((await fetch(broker.metricsUrl)).status, 401);
    const { samples } = await scrape(broker.metricsUrl, TOKEN);
    // The public 404 above was counted by the broker, under `other`.
    assert.equal(value(samples, 'keybridge_http_requests_total', { method: 'GET', route: 'other', status: '404' }), 1);
  });

  test('the metrics listener serves nothing else', async () => {
    const res = await fetch(new URL('/.well-known/openid-configuration', broker.metricsUrl!));
    assert.equal(res.status, 404);
  });

  test('closing the broker closes the metrics listener', async () => {
    const other = await startTestBroker({ config: { metrics: { listen: `127.0.0.1:${await freePort()}` } } });
    const url = other.metricsUrl!;
    assert.equal((await fetch(url)).status, 200);
    await other.close();
    await assert.rejects(fetch(url));
  });
});

describe('metrics switched off', () => {
  test('metrics.enabled: false: /metrics is a 404 and nothing is collected', async () => {
    const broker = await startTestBroker({ config: { metrics: { enabled: false } } });
    try {
      const res = await fetch(`${broker.url}/metrics`);
      assert.equal(res.status, 404);
      assert.equal(broker.metrics, null);
    } finally {
      await broker.close();
    }
  });
});

describe('metrics with several brokers in one process (embedded PGlite)', () => {
  test('each broker counts its own requests; the embedded pool is reported once; process series appear once per scrape', async () => {
    const config = { clients: [{ id: 'svc', secret: SVC_SECRET, grantTypes: ['client_credentials'] }] };
    const a = await startTestBroker({ config });
    const b = await startTestBroker({ config });
    try {
      assert.equal((await clientCredentials(a)).status, 200);
      const sa = (await scrape(`${a.url}/metrics`)).samples;
      const sb = (await scrape(`${b.url}/metrics`)).samples;
      assert.equal(value(sa, 'keybridge_token_grants_total', { grant_type: 'client_credentials' }), 1);
      assert.equal(value(sb, 'keybridge_token_grants_total', { grant_type: 'client_credentials' }), 0);
      assert.equal(sa.filter((s) => s.name === 'nodejs_eventloop_lag_seconds').length, 1);
      assert.ok(sa.some((s) => s.name === 'keybridge_db_pool_connections' && s.labels.pool === 'main'));
      assert.ok(!sa.some((s) => s.labels.pool === 'artifacts'), 'PGlite has one connection shared by both knex roles');
      assert.equal(value(sa, 'keybridge_db_pool_max', { pool: 'main' }), 1);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('connector call timing (the registry)', () => {
  // A class with private fields: every method must still run with the connector as `this`.
  class Upstream implements RedirectConnector {
    readonly kind = 'redirect';
    #pages = [[{ identity: { connectorId: 'up', subject: 's1' }, blocked: null }], [{ identity: { connectorId: 'up', subject: 's2' }, blocked: null }]] as SyncedUser[][];
    #down = false;
    sync = {
      intervalMinutes: 0,
      disableRemoved: false,
      countUsers: async () => this.#pages.flat().length,
      listUsers: () => this.#list(),
    };
    async *#list() {
      for (const page of this.#pages) yield page;
    }
    async start({ state }: { state: string }) {
      return { location: `https://upstream.example/authorize?state=${state}`, context: { down: this.#down } };
    }
    async callback({ params }: { params: Record<string, string> }) {
      if (params.error) return { ok: false as const, reason: params.error === 'denied' ? 'access_denied' as const : 'upstream_error' as const };
      return { ok: true as const, identity: { connectorId: 'up', subject: params.code } };
    }
    async refresh(): Promise<RefreshResult> {
      this.#down = true;
      throw new Error('upstream unreachable');
    }
  }

  test('start, callback, refresh and each sync page are timed by connector, operation and outcome', async () => {
    const seen: [string, ConnectorOperation, ConnectorCallOutcome][] = [];
    const plugin: ConnectorPlugin = { type: 'fixture-class', configSchema: z.strictObject({}), create: () => new Upstream() };
    const registry = await ConnectorRegistry.open([{ id: 'up', type: 'fixture-class', name: 'Up', enabled: true, config: {}, origin: 'test' }], {
      logger: createLogger('silent'),
      localAccounts: { findForLogin: async () => null, findById: async () => null },
      plugins: new Map([['fixture-class', plugin]]),
      observe: (id, operation, outcome, seconds) => {
        assert.ok(seconds >= 0 && seconds < 60);
        seen.push([id, operation, outcome]);
      },
    });
    const connector = registry.get('up')!.connector;
    assert.equal(connector.kind, 'redirect');
    if (connector.kind !== 'redirect') return;
    const started = await connector.start({ callbackUrl: 'http://127.0.0.1/cb', state: 'st' });
    assert.deepEqual(started.context, { down: false });
    assert.equal((await connector.callback({ callbackUrl: 'x', params: { code: 'c1' }, context: {} })).ok, true);
    await connector.callback({ callbackUrl: 'x', params: { error: 'denied' }, context: {} });
    await connector.callback({ callbackUrl: 'x', params: { error: 'bad' }, context: {} });
    await assert.rejects(connector.refresh!({ connectorId: 'up', subject: 's1' }), /unreachable/);
    assert.equal(await connector.sync!.countUsers!(), 2);
    const subjects: string[] = [];
    for await (const page of connector.sync!.listUsers()) subjects.push(...page.map((u) => u.identity.subject));
    assert.deepEqual(subjects, ['s1', 's2']);
    assert.deepEqual(seen, [
      ['up', 'start', 'success'],
      ['up', 'callback', 'success'],
      ['up', 'callback', 'failure'],
      ['up', 'callback', 'upstream_error'],
      ['up', 'refresh', 'error'],
      ['up', 'sync', 'success'], // countUsers
      ['up', 'sync', 'success'], // page 1
      ['up', 'sync', 'success'], // page 2
      ['up', 'sync', 'success'], // the end of the listing
    ]);
    await registry.close();
  });
});
