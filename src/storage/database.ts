// Opens the database: PostgreSQL when a URL is given, else the embedded PGlite (no server, no
// native build) under a data folder, or in memory.
import { mkdirSync } from 'node:fs';
import knexFactory, { type Knex } from 'knex';
import ClientPgLite from 'knex-pglite';

export interface Database {
  knex: Knex;
  kind: 'postgres' | 'pglite';
  close(): Promise<void>;
}

export interface DatabaseOptions {
  url?: string;
  /** PGlite folder; ':memory:' for an in-memory database. */
  dataDir?: string;
  pool?: { min?: number; max?: number };
}

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  let knex: Knex;
  let kind: Database['kind'];
  if (options.url) {
    kind = 'postgres';
    knex = knexFactory({
      client: 'pg',
      connection: options.url,
      pool: { min: options.pool?.min ?? 0, max: options.pool?.max ?? 10 },
      acquireConnectionTimeout: 10_000,
    });
  } else {
    kind = 'pglite';
    const dir = options.dataDir ?? './data/pglite';
    if (dir !== ':memory:') mkdirSync(dir, { recursive: true });
    knex = knexFactory({
      client: ClientPgLite as unknown as typeof Knex.Client,
      dialect: 'postgres',
      connection: dir === ':memory:' ? {} : { filename: dir },
    } as Knex.Config);
  }
  try {
    await knex.raw('SELECT 1');
  } catch (err) {
    await knex.destroy();
    throw err;
  }
  return { knex, kind, close: () => knex.destroy() };
}
