// Opens the database: PostgreSQL when a URL is given, else the embedded PGlite (no server, no
// native build) under a data folder, or in memory.
import { mkdirSync } from 'node:fs';
import knexFactory, { type Knex } from 'knex';
import ClientPgLite from 'knex-pglite';

// knex-pglite derives the result's SQL command from knex's method name, and knex names deletes
// `del`: knex then fails to recognise "DEL" and returns the raw result instead of the row count.
class PgLiteClient extends (ClientPgLite as unknown as new (config: Knex.Config) => { processResponse(obj: { method?: string }, runner: unknown): unknown }) {
  processResponse(obj: { method?: string }, runner: unknown): unknown {
    return super.processResponse(obj.method === 'del' ? { ...obj, method: 'delete' } : obj, runner);
  }
}

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
      client: PgLiteClient as unknown as typeof Knex.Client,
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
