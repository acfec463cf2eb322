import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { openDatabase } from '../../src/storage/database.ts';
import { migrateLatest } from '../../src/storage/migrate.ts';
import { Store } from '../../src/storage/store.ts';
import { storageConformance } from './conformance.ts';
import { pgliteStatements } from '../../src/storage/pg-statements.ts';

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
