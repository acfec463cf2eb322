// Applies pending migrations with knex's migrator. Several instances may start at once on one
// PostgreSQL: knex's own lock table is itself created by the first migration run, so the runs
// are serialized with an advisory lock held by a transaction on a separate connection.
import type { Knex } from 'knex';
import { migrations, type Migration } from './migrations/index.ts';
import type { Database } from './database.ts';

const source: Knex.MigrationSource<Migration> = {
  getMigrations: async () => [...migrations],
  getMigrationName: (m) => m.name,
  getMigration: async (m) => m,
};

const MIGRATION_LOCK = 0x4b425f4d; // "KB_M"

/** True when every migration is recorded as applied: the common start, one query and no lock. */
async function upToDate(knex: Knex): Promise<boolean> {
  try {
    const rows = (await knex('keybridge_migrations').select('name')) as Array<{ name: string }>;
    const applied = new Set(rows.map((r) => r.name));
    return migrations.every((m) => applied.has(m.name));
  } catch {
    return false; // no migrations table yet: a fresh database
  }
}

async function run(knex: Knex): Promise<string[]> {
  const [, applied] = (await knex.migrate.latest({ migrationSource: source, tableName: 'keybridge_migrations' })) as [number, string[]];
  return applied;
}

/** Migrates an opened database, serialized across instances where several can share it. */
export function migrateDatabase(database: Database): Promise<string[]> {
  return migrateLatest(database.knex, { serialize: database.kind === 'postgres' });
}

/**
 * `serialize` needs a pool of at least two connections (PostgreSQL); the embedded PGlite has a
 * single connection and a single process, so it runs without the advisory lock.
 */
export async function migrateLatest(knex: Knex, options: { serialize?: boolean } = {}): Promise<string[]> {
  if (await upToDate(knex)) return [];
  if (!options.serialize) return run(knex);
  const lock = await knex.transaction();
  try {
    await lock.raw('SELECT pg_advisory_xact_lock(?)', [MIGRATION_LOCK]);
    return await run(knex);
  } finally {
    await lock.commit();
  }
}
