// `keybridge audit tail` as an operator runs it: a real child process per command against a
// PostgreSQL database seeded with known events (so --follow can watch another writer).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { freshPostgresDatabase } from '../helpers/postgres.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { openDatabase, type Database } from '../../src/storage/database.ts';
import { migrateDatabase } from '../../src/storage/migrate.ts';
import { Store } from '../../src/storage/store.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const CLI = path.join(ROOT, 'src/cli/main.ts');

interface Running {
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; stdout: string; stderr: string }>;
  kill(): void;
}

function start(args: string[]): Running {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
  return { stdout: () => stdout, stderr: () => stderr, exited, kill: () => child.kill('SIGTERM') };
}

const run = (args: string[]) => start(args).exited;

async function eventually(check: () => boolean, what: string, ms = 15_000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('keybridge audit tail', () => {
  let work: string;
  let configFile: string;
  let database: Database | undefined;
  let store: Store;
  let drop: (() => Promise<void>) | undefined;
  let skip = '';
  let aliceId = '';
  const hoursAgo = (h: number) => new Date(Date.now() - h * 3_600_000);

  before(async () => {
    const fresh = await freshPostgresDatabase();
    if ('skip' in fresh) {
      skip = fresh.skip;
      return;
    }
    drop = fresh.drop;
    mkdirSync(path.join(ROOT, 'test/.work'), { recursive: true });
    work = mkdtempSync(path.join(ROOT, 'test/.work', 'audit-'));
    configFile = path.join(work, 'keybridge.yaml');
    writeFileSync(configFile, `issuer: http://127.0.0.1:5556\ndatabase: { url: ${JSON.stringify(fresh.url)} }\nlog: { level: warn }\n`);

    database = await openDatabase({ url: fresh.url });
    await migrateDatabase(database);
    store = new Store(database.knex);
    aliceId = (await store.users.create({ username: 'alice', email: null, emailVerified: false, name: null })).id;
    const at = (event: Record<string, unknown>, when: Date) => ({ ...event, at: when, details: JSON.stringify(event.details ?? {}) });
    // Oldest first; ids follow insertion order.
    await database.knex('audit_events').insert([
      at({ type: 'login.success', outcome: 'success', user_id: aliceId, client_id: 'rp', connector_id: 'local', ip: '10.0.0.1' }, hoursAgo(72)),
      at({ type: 'login.failure', outcome: 'failure', client_id: 'rp', connector_id: 'local', ip: '10.0.0.2', details: { username: 'evil\u001b[31m\nuser\u202e', reason: 'invalid_credentials' } }, hoursAgo(2)),
      at({ type: 'axb.c', outcome: 'success', client_id: 'client with spaces\u0007' }, hoursAgo(1.5)),
      at({ type: 'login.throttled', outcome: 'failure', connector_id: 'local', ip: '10.0.0.2' }, hoursAgo(0.2)),
      at({ type: 'token.refresh_denied', outcome: 'failure', user_id: aliceId, client_id: 'rp', connector_id: 'corp', details: { reason: 'user_gone' } }, hoursAgo(0.1)),
      at({ type: 'loginx.other', outcome: 'success' }, hoursAgo(0.05)),
    ]);
    await database.knex('audit_events').insert(Array.from({ length: 60 }, (_, n) => at({ type: 'test.seq', outcome: 'success', details: { n } }, hoursAgo(0.01))));
  });
  after(async () => {
    await database?.close();
    await drop?.();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const lines = (stdout: string) => stdout.split('\n').filter(Boolean);

  test('prints the newest 50 events, oldest first, one line each (default), or --limit of them', async (t) => {
    if (skip) return skipLoudly(t, skip);
    const r = await run(['audit', 'tail', '-c', configFile, '--type', 'test.seq']);
    assert.equal(r.code, 0, r.stderr);
    const out = lines(r.stdout);
    assert.equal(out.length, 50);
    assert.match(out[0], /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z test\.seq success \{"n":10\}$/);
    assert.match(out[49], /\{"n":59\}$/);
    const three = await run(['audit', 'tail', '-c', configFile, '--limit', '3']);
    assert.deepEqual(lines(three.stdout).map((l) => /"n":(\d+)/.exec(l)?.[1]), ['57', '58', '59']);
  });

  test('--type matches exactly, or a prefix with .* (LIKE wildcards in it are literal)', async (t) => {
    if (skip) return skipLoudly(t, skip);
    const prefix = await run(['audit', 'tail', '-c', configFile, '--type', 'login.*']);
    assert.equal(prefix.code, 0, prefix.stderr);
    assert.deepEqual(lines(prefix.stdout).map((l) => l.split(' ')[1]), ['login.success', 'login.failure', 'login.throttled']);
    const exact = await run(['audit', 'tail', '-c', configFile, '--type', 'login.success']);
    assert.equal(lines(exact.stdout).length, 1);
    assert.match(exact.stdout, / login\.success success user=alice client=rp connector=local ip=10\.0\.0\.1\n$/);
    const wildcard = await run(['audit', 'tail', '-c', configFile, '--type', 'a_b.*']);
    assert.equal(wildcard.code, 0);
    assert.equal(wildcard.stdout, '', '"_" must not match "x"');
    assert.match(wildcard.stderr, /no audit events match/);
  });

  test('--user takes a username or a user id', async (t) => {
    if (skip) return skipLoudly(t, skip);
    for (const user of ['alice', aliceId]) {
      const r = await run(['audit', 'tail', '-c', configFile, '--user', user]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(lines(r.stdout).map((l) => l.split(' ')[1]), ['login.success', 'token.refresh_denied']);
    }
    const ghost = await run(['audit', 'tail', '-c', configFile, '--user', 'ghost']);
    assert.equal(ghost.code, 0);
    assert.equal(ghost.stdout, '');
    assert.match(ghost.stderr, /no user named "ghost"/);
  });

  test('--since takes a duration or an ISO time', async (t) => {
    if (skip) return skipLoudly(t, skip);
    const hour = await run(['audit', 'tail', '-c', configFile, '--type', 'login.*', '--since', '1h']);
    assert.deepEqual(lines(hour.stdout).map((l) => l.split(' ')[1]), ['login.throttled']);
    const days = await run(['audit', 'tail', '-c', configFile, '--type', 'login.*', '--since', '4d']);
    assert.equal(lines(days.stdout).length, 3);
    const iso = await run(['audit', 'tail', '-c', configFile, '--type', 'login.*', '--since', hoursAgo(3).toISOString()]);
    assert.deepEqual(lines(iso.stdout).map((l) => l.split(' ')[1]), ['login.failure', 'login.throttled']);
  });

  test('--json prints one JSON object per line with the username resolved', async (t) => {
    if (skip) return skipLoudly(t, skip);
    const r = await run(['audit', 'tail', '-c', configFile, '--user', 'alice', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const events = lines(r.stdout).map((l) => JSON.parse(l));
    assert.equal(events.length, 2);
    assert.deepEqual({ ...events[1], id: undefined, at: undefined }, {
      id: undefined, at: undefined, type: 'token.refresh_denied', outcome: 'failure', userId: aliceId, username: 'alice', clientId: 'rp', connectorId: 'corp', ip: null, details: { reason: 'user_gone' },
    });
    assert.ok(!Number.isNaN(Date.parse(events[0].at)));
  });

  test('values typed by strangers cannot steer the terminal or fake columns', async (t) => {
    if (skip) return skipLoudly(t, skip);
    for (const json of [false, true]) {
      const r = await run(['audit', 'tail', '-c', configFile, '--since', '3h', '--limit', '1000', ...(json ? ['--json'] : [])]);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stdout, /[\u0000-\u0009\u000b-\u001f\u007f\u202e]/, 'raw control or bidi characters in the output');
      const failure = lines(r.stdout).find((l) => l.includes('login.failure'))!;
      assert.match(failure, /evil\\u001b\[31m\\nuser\\u202e/);
      if (json) assert.equal(JSON.parse(failure).details.username, 'evil\u001b[31m\nuser\u202e');
      const spaced = lines(r.stdout).find((l) => l.includes('axb.c'))!;
      if (!json) assert.match(spaced, / client=client\\u0020with\\u0020spaces\\u0007$/);
    }
  });

  test('bad flags are usage errors (exit 2) that say what is wrong', async (t) => {
    if (skip) return skipLoudly(t, skip);
    for (const [args, message] of [
      [['--since', 'yesterday'], /--since must be a duration like 30m/],
      [['--since', '2025-13-45'], /--since must be/],
      [['--limit', '0'], /--limit must be a whole number from 1 to 10000/],
      [['--limit', 'ten'], /--limit must be/],
      [['--type', 'login*'], /--type must be an event type/],
      [['--type', "x' or 1=1"], /--type must be/],
      [['--user', ''], /--user must be/],
      [['--limit'], /argument missing/],
      [['--sinse', '1h'], /Unknown option '--sinse'/],
    ] as const) {
      const r = await run(['audit', 'tail', '-c', configFile, ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.equal(r.stdout, '');
    }
    const noSub = await run(['audit', '-c', configFile]);
    assert.equal(noSub.code, 2);
    assert.match(noSub.stderr, /usage: keybridge audit tail/);
  });

  test('--follow prints new matching events as they are recorded, and stops cleanly', async (t) => {
    if (skip) return skipLoudly(t, skip);
    await store.audit.record({ type: 'follow.test', details: { n: 1 } });
    const tail = start(['audit', 'tail', '-c', configFile, '--type', 'follow.*', '--follow']);
    await eventually(() => /"n":1/.test(tail.stdout()), 'the first event');
    await store.audit.record({ type: 'other.event' });
    await store.audit.record({ type: 'follow.test', details: { n: 2 } });
    await eventually(() => /"n":2/.test(tail.stdout()), 'the followed event');
    tail.kill();
    const r = await tail.exited;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(r.stdout).map((l) => /"n":(\d)/.exec(l)?.[1]), ['1', '2']);
    assert.doesNotMatch(r.stdout, /other\.event/);
  });

  test('the help lists the command', async () => {
    const r = await run(['--help']);
    assert.match(r.stdout, /audit tail \[--type T\] \[--user U\] \[--since 1h\]/);
  });
});
