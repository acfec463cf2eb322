// The change feed other instances learn of changes through: on PostgreSQL, a notification sent
// only when the writing transaction commits, a poll of versions for what was missed; on PGlite,
// in-process once the transaction committed.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Knex } from 'knex';
import { freshPostgresDatabase } from '../helpers/postgres.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { openDatabase, type Database } from '../../src/storage/database.ts';
import { migrateDatabase } from '../../src/storage/migrate.ts';
import { ChangeFeed } from '../../src/storage/change-feed.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(ms: number, what: string, check: () => boolean): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > ms) assert.fail(`${what}: not within ${ms} ms`);
    await sleep(20);
  }
}

describe('change feed on PostgreSQL', () => {
  let db: Database;
  let url: string;
  let drop: () => Promise<void> = async () => {};
  let skipped: string | undefined;
  let writer: ChangeFeed;
  let reader: ChangeFeed;

  before(async () => {
    const fresh = await freshPostgresDatabase();
    if ('skip' in fresh) {
      skipped = fresh.skip;
      return;
    }
    ({ url, drop } = fresh);
    db = await openDatabase({ url });
    await migrateDatabase(db);
    writer = await ChangeFeed.open(db.knex, { url, pollMs: 300 });
    reader = await ChangeFeed.open(db.knex, { url, pollMs: 300 });
  });
  after(async () => {
    await writer?.close();
    await reader?.close();
    await db?.close();
    await drop();
  });

  test('a committed change reaches another feed with its id; a rolled-back one never does; nothing is cleared twice', async (t) => {
    if (skipped) return skipLoudly(t, skipped);
    const heard: Array<string | null> = [];
    const stop = reader.subscribe('widget', (id) => heard.push(id));
    const other: Array<string | null> = [];
    reader.subscribe('gadget', (id) => other.push(id));
    await db.knex.transaction(async (trx) => writer.notify(trx, 'widget', 'w-1'));
    // The first change of a kind: the poll learns the version once (one "anything" notice).
    await until(2000, 'w-1 heard', () => heard.includes('w-1'));
    await sleep(800);
    heard.length = 0;
    await assert.rejects(db.knex.transaction(async (trx: Knex.Transaction) => {
      await writer.notify(trx, 'widget', 'rolled-back');
      throw new Error('abort');
    }), /abort/);
    await db.knex.transaction(async (trx) => writer.notify(trx, 'widget', 'w-2'));
    await db.knex.transaction(async (trx) => writer.notify(trx, 'widget', 'w-3'));
    await until(2000, 'w-2 and w-3 heard', () => heard.includes('w-2') && heard.includes('w-3'));
    await sleep(800);
    assert.deepEqual(heard, ['w-2', 'w-3'], 'no rolled-back change, and no poll notice for changes already heard in sequence');
    assert.deepEqual(other, [], 'other kinds hear nothing');
    stop();
    await db.knex.transaction(async (trx) => writer.notify(trx, 'widget', 'w-4'));
    await sleep(500);
    assert.deepEqual(heard, ['w-2', 'w-3'], 'an unsubscribed listener hears nothing');
  });

  test('a version bumped without a notification is noticed by the poll as "anything of the kind"', async (t) => {
    if (skipped) return skipLoudly(t, skipped);
    const heard: Array<string | null> = [];
    reader.subscribe('widget', (id) => heard.push(id));
    await db.knex.raw("UPDATE change_versions SET version = version + 1 WHERE kind = 'widget'");
    await until(1500, 'the poll notices', () => heard.includes(null));
  });

  test('the writer\'s own listeners hear the change only once it committed', async (t) => {
    if (skipped) return skipLoudly(t, skipped);
    await db.knex.schema.createTable('feed_probe', (tb) => tb.text('id').primary());
    const seen: boolean[] = [];
    writer.subscribe('probe', () => {
      // What a cache does when told: read again. It must find the committed row.
      void db.knex('feed_probe').where({ id: 'p' }).first().then((row) => seen.push(Boolean(row)));
    });
    await db.knex.transaction(async (trx) => {
      await trx('feed_probe').insert({ id: 'p' });
      await writer.notify(trx, 'probe', 'p');
      await sleep(100);
    });
    await until(2000, 'heard', () => seen.length > 0);
    assert.equal(seen[0], true);
  });
});

describe('change feed on PGlite', () => {
  let db: Database;
  let feed: ChangeFeed;
  before(async () => {
    db = await openDatabase({ dataDir: ':memory:' });
    await migrateDatabase(db);
    feed = await ChangeFeed.open(db.knex);
  });
  after(async () => {
    await feed?.close();
    await db?.close();
  });

  test('a change is announced in-process after its transaction, and outside one at once', async () => {
    const heard: Array<string | null> = [];
    feed.subscribe('client', (id) => heard.push(id));
    await db.knex.transaction(async (trx) => {
      await feed.notify(trx, 'client', 'c-1');
      assert.deepEqual(heard, [], 'not before the commit');
    });
    await until(1000, 'heard after commit', () => heard.includes('c-1'));
    await feed.notify(db.knex, 'client', 'c-2');
    assert.deepEqual(heard, ['c-1', 'c-2']);
    assert.equal(Number((await db.knex('change_versions').where({ kind: 'client' }).first()).version), 2);
  });
});
