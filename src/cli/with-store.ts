// Opens the configured database (migrated) for a one-shot CLI command, then closes it.
import type { Config } from '../config/schema.ts';
import { pgliteDir } from '../config/pglite-dir.ts';
import { openDatabase } from '../storage/database.ts';
import { migrateLatest } from '../storage/migrate.ts';
import { Store } from '../storage/store.ts';

export async function withStore(config: Config, fn: (store: Store, applied: string[]) => Promise<number>): Promise<number> {
  const database = await openDatabase({ url: config.database.url, dataDir: pgliteDir(config), pool: { min: 0, max: 2 } });
  try {
    const applied = await migrateLatest(database.knex, { serialize: database.kind === 'postgres' });
    return await fn(new Store(database.knex), applied);
  } finally {
    await database.close();
  }
}
