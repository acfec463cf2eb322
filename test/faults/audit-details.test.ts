// Audit events carry request-derived text. A NUL (or an unpaired surrogate) in it made the
// insert itself fail on PostgreSQL; now every event can be stored, with such characters
// replaced and its size bounded. Runs on PostgreSQL and on the embedded PGlite.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openDatabase, type Database } from '../../src/storage/database.ts';
import { migrateDatabase } from '../../src/storage/migrate.ts';
import { Store } from '../../src/storage/store.ts';
import { freshPostgresDatabase } from '../helpers/postgres.ts';
import { skipLoudly } from '../helpers/skip.ts';

const backends: [string, () => Promise<{ db: Database; drop?: () => Promise<void> } | { skip: string }>][] = [
  ['PostgreSQL', async () => {
    const fresh = await freshPostgresDatabase();
    if ('skip' in fresh) return fresh;
    return { db: await openDatabase({ url: fresh.url }), drop: fresh.drop };
  }],
  ['PGlite', async () => ({ db: await openDatabase({ dataDir: ':memory:' }) })],
];

for (const [name, open] of backends) {
  describe(`audit details are always storable: ${name}`, () => {
    let opened: Awaited<ReturnType<typeof open>>;
    let store: Store;

    before(async () => {
      opened = await open();
      if ('skip' in opened) return;
      await migrateDatabase(opened.db);
      store = new Store(opened.db.knex);
    });
    after(async () => {
      if (opened && !('skip' in opened)) {
        await opened.db.close();
        await opened.drop?.();
      }
    });

    test('NUL and unpaired surrogates in every field are replaced, not refused', async (t) => {
      if ('skip' in opened) return skipLoudly(t, opened.skip);
      await store.audit.record({
        type: 'test.nul\0',
        outcome: 'failure',
        userId: 'u\0',
        clientId: 'c\0',
        connectorId: 'x\0',
        ip: '127.0.0.1',
        details: { username: 'al\0ice', nested: { list: ['a\0', 'b\ud800'] }, ['key\0']: 1 },
      });
      const [event] = await store.audit.list({ type: 'test.nul\uFFFD' });
      assert.ok(event, 'the event was stored');
      assert.equal(event.userId, 'u\uFFFD');
      assert.equal(event.clientId, 'c\uFFFD');
      assert.equal(event.connectorId, 'x\uFFFD');
      assert.deepEqual(event.details, { username: 'al\uFFFDice', nested: { list: ['a\uFFFD', 'b\uFFFD'] }, ['key\uFFFD']: 1 });
    });

    test('long strings are cut and oversized details are replaced by a marker', async (t) => {
      if ('skip' in opened) return skipLoudly(t, opened.skip);
      await store.audit.record({ type: 'test.long', details: { reason: 'x'.repeat(100_000) } });
      const [long] = await store.audit.list({ type: 'test.long' });
      assert.ok((long.details.reason as string).length <= 1025);
      await store.audit.record({ type: 'test.huge', details: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, 'y'.repeat(1000)])) });
      const [huge] = await store.audit.list({ type: 'test.huge' });
      assert.equal(huge.details.truncated, true);
    });

    test('ordinary details are stored as given', async (t) => {
      if ('skip' in opened) return skipLoudly(t, opened.skip);
      await store.audit.record({ type: 'test.plain', details: { n: 1, ok: true, list: ['a', 'b'], none: null, name: 'Zoë 🙂' } });
      const [plain] = await store.audit.list({ type: 'test.plain' });
      assert.deepEqual(plain.details, { n: 1, ok: true, list: ['a', 'b'], none: null, name: 'Zoë 🙂' });
    });
  });
}
