import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { openDatabase } from '../../src/storage/database.ts';
import { migrateLatest } from '../../src/storage/migrate.ts';
import { Store } from '../../src/storage/store.ts';
import { storageConformance } from './conformance.ts';
import { pgliteStatements, type SqlStatements } from '../../src/storage/pg-statements.ts';
import { createOidcAdapter } from '../../src/storage/oidc-adapter.ts';
import { DatabaseInUse, clearStaleLock } from '../../src/storage/pglite-lock.ts';

storageConformance('PGlite (embedded, in memory)', async () => {
  const db = await openDatabase({ dataDir: ':memory:' });
  return { knex: db.knex, serialize: false, statements: pgliteStatements(db.knex), cleanup: () => db.close() };
});

test('PGlite on disk keeps data across close and reopen', async () => {
  mkdirSync('test/.work', { recursive: true });
  const dir = mkdtempSync(path.join('test/.work', 'pglite-'));
  try {
    let db = await openDatabase({ dataDir: dir });
    await migrateLatest(db.knex);
    await new Store(db.knex).users.create({ username: 'persisted' });
    await db.close();
    db = await openDatabase({ dataDir: dir });
    assert.equal((await new Store(db.knex).users.findByUsername('persisted'))?.username, 'persisted');
    await db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

storageConformance('PGlite (embedded, in memory), records also kept in memory as the broker does', async () => {
  const db = await openDatabase({ dataDir: ':memory:' });
  return { knex: db.knex, serialize: false, statements: pgliteStatements(db.knex), singleProcess: true, cleanup: () => db.close() };
});

test('PGlite: records kept in memory answer without a statement, and every change is seen', async () => {
  const db = await openDatabase({ dataDir: ':memory:' });
  try {
    await migrateLatest(db.knex);
    const store = new Store(db.knex);
    const inner = pgliteStatements(db.knex);
    const ran: string[] = [];
    const statements: SqlStatements = { run: (statement, values) => (ran.push(statement.name), inner.run(statement, values)) };
    const Adapter = createOidcAdapter(db.knex, { statements, singleProcess: true });
    const tokens = new Adapter('AccessToken');
    const sessions = new Adapter('Session');
    await tokens.upsert('m-at1', { jti: 'm-at1', grantId: 'm-g1', clientId: 'm-app', kind: 'AccessToken' }, 60);
    await sessions.upsert('m-s1', { jti: 'm-s1', uid: 'm-uid', accountId: 'a' }, 60);
    ran.length = 0;
    assert.equal((await tokens.find('m-at1'))?.clientId, 'm-app');
    assert.equal((await sessions.findByUid('m-uid'))?.accountId, 'a');
    assert.deepEqual(ran, [], 'what this process wrote is answered from memory');

    // Each reader gets its own copy: changing one does not change the next answer.
    const copy = (await tokens.find('m-at1'))!;
    copy.clientId = 'changed';
    assert.equal((await tokens.find('m-at1'))?.clientId, 'm-app');

    await tokens.consume('m-at1');
    assert.equal(typeof (await tokens.find('m-at1'))?.consumed, 'number', 'consumption is seen');
    const consumedAt = (await db.knex('oidc_payloads').where({ kind: 'AccessToken', id: 'm-at1' }).first()).consumed_at;
    assert.ok(consumedAt instanceof Date, 'and written');

    // A record written before this process started (or by a test): read once, then from memory.
    await db.knex('oidc_payloads').insert({ kind: 'AccessToken', id: 'm-at2', payload: JSON.stringify({ jti: 'm-at2', clientId: 'm-app' }), grant_id: 'm-g2', expires_at: new Date(Date.now() + 60_000) });
    ran.length = 0;
    assert.ok(await tokens.find('m-at2'));
    assert.ok(await tokens.find('m-at2'));
    assert.equal(ran.length, 1, 'one statement for two lookups');

    // Writes outside the adapter: a client's tokens revoked, a user's grants revoked.
    assert.equal(await store.clients.revokeArtifacts('m-app'), 2);
    assert.equal(await tokens.find('m-at1'), undefined);
    assert.equal(await tokens.find('m-at2'), undefined);
    await tokens.upsert('m-at3', { jti: 'm-at3', grantId: 'm-g3', clientId: 'x' }, 60);
    assert.ok(await tokens.find('m-at3'));
    assert.equal(await store.userSessions.revokeGrants(['m-g3']), 1);
    assert.equal(await tokens.find('m-at3'), undefined);

    // Expiry is checked on every answer from memory.
    await tokens.upsert('m-short', { jti: 'm-short' }, 1);
    assert.ok(await tokens.find('m-short'));
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal(await tokens.find('m-short'), undefined);

    // A save keeps a record's consumption, as the table does (upsert leaves consumed_at alone):
    // Keybridge's "take once" guard saves a record and claims it; a second taker saves it again.
    const attempts = new Adapter('UpstreamLogin');
    await attempts.upsert('m-taken', {}, 60);
    assert.equal(await attempts.claim('m-taken'), true);
    await attempts.upsert('m-taken', {}, 60);
    assert.equal(typeof (await attempts.find('m-taken'))?.consumed, 'number', 'still consumed after a second save');
    assert.equal(await attempts.claim('m-taken'), false);
    // ... also when the record was claimed by another adapter (nothing of it in this cache).
    const other = new (createOidcAdapter(db.knex, { statements: inner, singleProcess: true }))('UpstreamLogin');
    await other.upsert('m-taken-2', { n: 1 }, 60);
    assert.equal(await other.claim('m-taken-2'), true);
    await attempts.upsert('m-taken-2', { n: 2 }, 60);
    const second = await attempts.find('m-taken-2');
    assert.equal(second?.n, 2);
    assert.equal(typeof second?.consumed, 'number', 'a record whose consumption this cache cannot know is read from the table');

    // A lookup that overlaps a write does not keep what it read.
    await db.knex('oidc_payloads').insert({ kind: 'AccessToken', id: 'm-race', payload: JSON.stringify({ v: 1 }), expires_at: new Date(Date.now() + 60_000) });
    const reading = tokens.find('m-race');
    await tokens.upsert('m-race', { v: 2 }, 60);
    await reading;
    assert.equal((await tokens.find('m-race'))?.v, 2);
  } finally {
    await db.close();
  }
});

test('PGlite on disk: one process at a time; a lock left by a process that is gone is taken over', async () => {
  mkdirSync('test/.work', { recursive: true });
  const dir = mkdtempSync(path.join('test/.work', 'pglite-lock-'));
  try {
    const db = await openDatabase({ dataDir: dir });
    // Another process (this one stands in for it: the lock holds another pid).
    writeFileSync(`${dir}.lock`, `${process.ppid}\n`);
    await assert.rejects(openDatabase({ dataDir: dir }), (err: Error) => err instanceof DatabaseInUse && err.message.includes(String(process.ppid)) && err.message.includes('database.url'));
    writeFileSync(`${dir}.lock`, `${process.pid}\n`);
    await db.close();
    assert.equal(existsSync(`${dir}.lock`), false, 'released on close');

    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    writeFileSync(`${dir}.lock`, `${gone.stdout}\n`);
    const again = await openDatabase({ dataDir: dir });
    assert.equal(readFileSync(`${dir}.lock`, 'utf8').trim(), String(process.pid));
    await again.close();

    // Two processes found the same stale lock: the first took it over and holds a new one by the
    // time the second clears what it read as stale. The second must not remove the new lock.
    writeFileSync(`${dir}.lock`, `${process.ppid}\n`);
    assert.throws(() => clearStaleLock(dir, Number(gone.stdout)), (err: Error) => err instanceof DatabaseInUse && err.message.includes(String(process.ppid)));
    assert.equal(readFileSync(`${dir}.lock`, 'utf8').trim(), String(process.ppid), 'the live lock is back in place');
    // The stale lock itself goes.
    writeFileSync(`${dir}.lock`, `${gone.stdout}\n`);
    clearStaleLock(dir, Number(gone.stdout));
    assert.equal(existsSync(`${dir}.lock`), false);
    assert.deepEqual(readdirSync(path.dirname(dir)).filter((f) => f.startsWith(`${path.basename(dir)}.lock.`)), [], 'nothing left aside');
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(`${dir}.lock`, { force: true });
  }
});
