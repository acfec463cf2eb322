// Applies pending migrations with knex's migrator (its lock table makes concurrent starts of
// several instances safe).
import type { Knex } from 'knex';
import { migrations, type Migration } from './migrations/index.ts';

const source: Knex.MigrationSource<Migration> = {
  getMigrations: async () => [...migrations],
  getMigrationName: (m) => m.name,
  getMigration: async (m) => m,
};

export async function migrateLatest(knex: Knex): Promise<string[]> {
  const [, applied] = (await knex.migrate.latest({ migrationSource: source, tableName: 'keybridge_migrations' })) as [number, string[]];
  return applied;
}
