// The audit trail through the admin API, on PGlite and PostgreSQL: every filter, cursor pages
// newest first, validation paths, and exports (JSON lines and CSV) parsed back: all pages, CSV
// quoting of commas, quotes and line breaks, formula cells defused, read from the store in pages.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { AdminApiClient, adminClientConfig, clientToken, ADMIN_STORES as stores } from '../helpers/admin-api.ts';


/** RFC 4180 rows (quoted cells may hold commas, quotes and line breaks). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"' && cell === '') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
      i++;
    } else cell += c;
  }
  assert.equal(cell + row.join(''), '', 'the CSV ends with a line break');
  return rows;
}

const SEED_BASE = Date.parse('2026-03-01T00:00:00Z');

for (const store of stores) {
  describe(`admin API audit on ${store.name}`, () => {
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
        config: { clients: [adminClientConfig('ops'), adminClientConfig('auditor', ['admin:audit:read']), adminClientConfig('grouper', ['admin:groups:read'])] },
      });
      api = new AdminApiClient(broker.issuer, await clientToken(broker.issuer, 'ops', 'admin:read admin:write'));
      // 250 seeded events, one a minute: types seed.a / seed.b, outcomes, clients, connectors, users, addresses.
      await broker.store.knex('audit_events').insert(
        Array.from({ length: 250 }, (_, i) => ({
          at: new Date(SEED_BASE + i * 60_000),
          type: i % 2 ? 'seed.a' : 'seed.b',
          outcome: i % 5 === 0 ? 'failure' : 'success',
          user_id: `user-${i % 7}`,
          client_id: `client-${i % 3}`,
          connector_id: i % 4 === 0 ? null : `conn-${i % 4}`,
          ip: `10.0.0.${i % 10}`,
          details: JSON.stringify({ n: i }),
        })),
      );
      // 1,100 of one kind: more than two export pages.
      await broker.store.knex('audit_events').insert(Array.from({ length: 1100 }, (_, i) => ({ at: new Date(SEED_BASE - 86_400_000 + i * 1000), type: 'bulk.event', details: JSON.stringify({ i }) })));
    });

    after(async () => {
      await broker?.close();
      await drop();
    });

    const live = (t: { skip(msg: string): void }) => {
      if (skipped) skipLoudly(t as never, skipped);
      return !skipped;
    };
    const items = async (query: string) => {
      const res = await api.get(`/audit?limit=200&${query}`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.items as Array<{ id: string; at: string; type: string; outcome: string; userId: string | null; clientId: string | null; connectorId: string | null; ip: string | null; details: { n: number } }>;
    };

    test('401 without a token, 403 with another resource\'s scope; the audit scope reads', async (t) => {
      if (!live(t)) return;
      assert.equal((await api.get('/audit', { token: null })).status, 401);
      assert.equal((await api.get('/audit/export?format=csv', { token: null })).status, 401);
      const grouper = await clientToken(broker.issuer, 'grouper', 'admin:groups:read');
      assert.equal((await api.get('/audit', { token: grouper })).status, 403);
      assert.equal((await api.get('/audit/export', { token: grouper })).status, 403);
      const auditor = await clientToken(broker.issuer, 'auditor', 'admin:audit:read');
      assert.equal((await api.get('/audit?limit=1', { token: auditor })).status, 200);
      const refused = await items('type=admin.forbidden');
      assert.ok(refused.some((e) => e.clientId === 'grouper'), 'the refusal itself is in the trail');
    });

    test('each filter, and all of them together', async (t) => {
      if (!live(t)) return;
      const a = await items('type=seed.a');
      assert.equal(a.length, 125);
      assert.ok(a.every((e) => e.type === 'seed.a'));
      assert.equal((await items('type=seed.*')).length, 200, 'a page holds at most the limit');
      assert.equal((await items('type=seed')).length, 0, 'an exact type is not a prefix');
      assert.equal((await items('type=se_d.*')).length, 0, '_ is literal in a prefix');
      const failures = await items('type=seed.*&outcome=failure');
      assert.equal(failures.length, 50);
      assert.ok(failures.every((e) => e.outcome === 'failure'));
      assert.ok((await items('userId=user-3')).every((e) => e.userId === 'user-3'));
      assert.equal((await items('userId=user-3')).length, 36);
      assert.equal((await items('clientId=client-1')).length, 83);
      assert.equal((await items('connectorId=conn-2')).length, 62);
      assert.equal((await items('ip=10.0.0.7')).length, 25);
      const window = await items(`type=seed.*&since=${new Date(SEED_BASE + 10 * 60_000).toISOString()}&until=${encodeURIComponent('2026-03-01T00:20:00+00:00')}`);
      assert.deepEqual(window.map((e) => e.details.n), [19, 18, 17, 16, 15, 14, 13, 12, 11, 10], 'since inclusive, until exclusive, newest first');
      const all = await items('type=seed.b&outcome=failure&clientId=client-0&ip=10.0.0.0&userId=user-0');
      // i even, i % 5 == 0, i % 3 == 0, i % 10 == 0, i % 7 == 0: multiples of 210.
      assert.deepEqual(all.map((e) => e.details.n), [210, 0]);
      assert.deepEqual(await items('clientId=nobody'), []);
    });

    test('cursor pages: newest first, no event twice, none left out', async (t) => {
      if (!live(t)) return;
      const seen: number[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const res: { status: number; body: { items: Array<{ details: { n: number } }>; nextCursor: string | null } } = await api.get(`/audit?type=seed.*&limit=100${cursor ? `&cursor=${cursor}` : ''}`);
        assert.equal(res.status, 200);
        seen.push(...res.body.items.map((e) => e.details.n));
        cursor = res.body.nextCursor;
        pages++;
      } while (cursor);
      assert.equal(pages, 3);
      assert.deepEqual(seen, Array.from({ length: 250 }, (_, i) => 249 - i));
    });

    test('validation names the parameter', async (t) => {
      if (!live(t)) return;
      const path = async (query: string) => (await api.get(`/audit?${query}`)).body.errors?.map((e: { path: string }) => e.path);
      assert.deepEqual(await path('type=not%20a%20type'), ['query.type']);
      assert.deepEqual(await path('type=' + 'a'.repeat(201)), ['query.type']);
      assert.deepEqual(await path('outcome=maybe'), ['query.outcome']);
      assert.deepEqual(await path('since=yesterday'), ['query.since']);
      assert.deepEqual(await path('since=2026-03-01T00:00:00'), ['query.since'], 'a time without a zone is ambiguous');
      assert.deepEqual(await path('since=2026-03-02T00:00:00Z&until=2026-03-01T00:00:00Z'), ['query.until']);
      assert.deepEqual(await path('limit=201'), ['query.limit']);
      assert.deepEqual(await path('cursor=%%%'), ['query.cursor']);
      assert.deepEqual(await path(`cursor=${Buffer.from('["abc"]').toString('base64url')}`), ['query.cursor']);
      assert.deepEqual(await path(`userId=${'u'.repeat(300)}`), ['query.userId']);
      assert.deepEqual(await path('format=xml'), undefined, 'unknown parameters of the search are ignored');
      assert.deepEqual((await api.get('/audit/export?format=xml')).body.errors.map((e: { path: string }) => e.path), ['query.format']);
    });

    test('an admin change is in the trail with its actor, request id and changed fields', async (t) => {
      if (!live(t)) return;
      const made = await api.post('/groups', { name: 'audited' }, { headers: { 'x-request-id': 'req-audit-0001' } });
      assert.equal(made.status, 201);
      const [event] = await items('type=admin.group.*');
      assert.equal(event.type, 'admin.group.create');
      const details = event.details as unknown as { actor: { clientId: string }; requestId: string; changes: Record<string, unknown> };
      assert.equal(details.actor.clientId, 'ops');
      assert.equal(details.requestId, 'req-audit-0001');
      assert.deepEqual(details.changes.name, { before: null, after: 'audited' });
    });

    test('JSON lines export: every matching event across store pages, newest first, as a download', async (t) => {
      if (!live(t)) return;
      const calls: number[] = [];
      const search = broker.store.audit.search.bind(broker.store.audit);
      broker.store.audit.search = (filter) => {
        calls.push(filter.limit);
        return search(filter);
      };
      let res;
      try {
        res = await api.get('/audit/export?format=jsonl&type=bulk.event');
      } finally {
        broker.store.audit.search = search;
      }
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type')!, /^application\/x-ndjson/);
      assert.match(res.headers.get('content-disposition')!, /^attachment; filename="keybridge-audit-\d{8}T\d{6}Z\.jsonl"$/);
      const lines = res.text.split('\n');
      assert.equal(lines.pop(), '', 'ends with a line break');
      const events = lines.map((l) => JSON.parse(l) as { id: string; type: string; details: { i: number } });
      assert.equal(events.length, 1100);
      assert.deepEqual(events.map((e) => e.details.i), Array.from({ length: 1100 }, (_, i) => 1099 - i));
      assert.deepEqual(calls, [500, 500, 500], 'read from the store a page at a time');
      const filtered = await api.get(`/audit/export?type=seed.a&outcome=failure&since=${new Date(SEED_BASE).toISOString()}`);
      assert.equal(filtered.text.trim().split('\n').length, 25);
      assert.equal((await api.get('/audit/export?type=nothing.here')).text, '', 'no events: an empty file');
    });

    test('CSV export: a header, RFC 4180 quoting, formula cells defused, details as JSON', async (t) => {
      if (!live(t)) return;
      const hostile = {
        type: 'csv.hostile',
        outcome: 'failure' as const,
        userId: '=HYPERLINK("http://evil.example","x")',
        clientId: '+cmd|calc',
        connectorId: '-2+3',
        ip: '@SUM(A1:A2)',
        details: { note: 'a, "quoted"\nmultiline\r\nvalue', formula: '=1+1' },
      };
      await broker.store.audit.record(hostile);
      await broker.store.audit.record({ type: 'csv.plain', clientId: 'plain, with comma', details: {} });
      const res = await api.get('/audit/export?format=csv&type=csv.*');
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type')!, /^text\/csv/);
      assert.match(res.headers.get('content-disposition')!, /filename="keybridge-audit-\d{8}T\d{6}Z\.csv"/);
      const [header, plain, row, ...rest] = parseCsv(res.text);
      assert.deepEqual(rest, []);
      assert.deepEqual(header, ['id', 'at', 'type', 'outcome', 'userId', 'clientId', 'connectorId', 'ip', 'details']);
      assert.equal(plain[5], 'plain, with comma');
      assert.equal(plain[4], '', 'null is an empty cell');
      assert.equal(row[2], 'csv.hostile');
      assert.equal(row[4], `'${hostile.userId}`);
      assert.equal(row[5], `'${hostile.clientId}`);
      assert.equal(row[6], `'${hostile.connectorId}`);
      assert.equal(row[7], `'${hostile.ip}`);
      assert.deepEqual(JSON.parse(row[8]), hostile.details, 'the details cell is the JSON, quotes and line breaks intact');
      assert.ok(!Number.isNaN(Date.parse(row[1])));
      for (const cell of row) assert.doesNotMatch(cell, /^[=+\-@]/);
    });

    test('username: the name an event\'s details carry, exactly (a failed password login names no user id), in the search and the export; actor: who made an admin change', async (t) => {
      if (!live(t)) return;
      for (const username of ['mallory', 'mallory', 'Mallory', 'mallory2', "mal'lory"]) await broker.store.audit.record({ type: 'named.login', outcome: 'failure', details: { username, reason: 'invalid_credentials' } });
      await broker.store.audit.record({ type: 'named.login', outcome: 'failure', details: { user: 'mallory' } });
      const named = await items('type=named.*&username=mallory');
      assert.deepEqual(named.map((e) => (e.details as unknown as { username: string }).username), ['mallory', 'mallory'], 'exact and case-sensitive, only that key');
      assert.equal((await items(`username=${encodeURIComponent("mal'lory")}`)).length, 1, 'a quote is a value, not SQL');
      const csv = await api.get('/audit/export?format=csv&username=mallory');
      assert.equal(csv.text.trimEnd().split('\r\n').length, 3, 'the header and the two events');
      // actor: the client (or console user) who made an admin change.
      const created = await api.post('/groups', { name: 'actor-probe' });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const byOps = await items('actor=ops&type=admin.*');
      assert.ok(byOps.some((e) => e.type === 'admin.group.create'));
      assert.ok(byOps.every((e) => (e.details as unknown as { actor: { clientId: string } }).actor.clientId === 'ops'));
      assert.deepEqual(await items('actor=nobody&type=admin.*'), []);
      assert.deepEqual(await items('actor=mallory'), [], 'a username in the details is not an actor');
      const bad = await api.get(`/audit?username=${'x'.repeat(257)}`);
      assert.equal(bad.status, 400);
      assert.deepEqual(bad.body.errors.map((e: { path: string }) => e.path), ['query.username']);
    });
  });
}
