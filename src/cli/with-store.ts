// Opens the configured database (migrated) for a one-shot CLI command, then closes it.
import type { Config } from '../config/schema.ts';
import { openConfiguredDatabase } from '../storage/database.ts';
import { migrateDatabase } from '../storage/migrate.ts';
import { Store } from '../storage/store.ts';

export async function withStore(config: Config, fn: (store: Store, applied: string[]) => Promise<number>): Promise<number> {
  const database = await openConfiguredDatabase(config, { min: 0, max: 2 });
  try {
    const applied = await migrateDatabase(database);
    return await fn(new Store(database.knex), applied);
  } finally {
    await database.close();
  }
}
