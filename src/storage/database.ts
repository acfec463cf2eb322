// Opens the database: PostgreSQL when a URL is given, else the embedded PGlite (no server, no
// native build) under a data folder, or in memory.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/schema.ts';
import knexFactory, { type Knex } from 'knex';

type ResponseProcessor = new (config: Knex.Config) => { processResponse(obj: { method?: string }, runner: unknown): unknown };

// Loaded only when the embedded database is used: PostgreSQL deployments never pay for PGlite.
async function pgliteClient(): Promise<typeof Knex.Client> {
  const { default: ClientPgLite } = await import('knex-pglite');
  // knex-pglite derives the result's SQL command from knex's method name, and knex names
  // deletes `del`: knex then fails to recognise "DEL" and returns the raw result, not a count.
  class PgLiteClient extends (ClientPgLite as unknown as ResponseProcessor) {
    processResponse(obj: { method?: string }, runner: unknown): unknown {
      return super.processResponse(obj.method === 'del' ? { ...obj, method: 'delete' } : obj, runner);
    }
  }
  return PgLiteClient as unknown as typeof Knex.Client;
}

export interface Database {
  knex: Knex;
  /**
   * Connections for oidc-provider's short-lived artifacts (sessions, codes, tokens). On
   * PostgreSQL they commit asynchronously: a database crash can lose the last fraction of a
   * second of issued tokens (their holders sign in again), and in exchange token issuance is
   * not bound by WAL flushes. Users, credentials, keys and audit events stay synchronous.
   */
  artifacts: Knex;
  kind: 'postgres' | 'pglite';
  close(): Promise<void>;
}

export interface DatabaseOptions {
  url?: string;
  /** PGlite folder; ':memory:' for an in-memory database. */
  dataDir?: string;
  pool?: { min?: number; max?: number };
  /** Commit artifact writes synchronously too (default false: asynchronous, see Database.artifacts). */
  durableArtifacts?: boolean;
}

/** The database a config names: PostgreSQL at `database.url`, else PGlite under `<dataDir>/pglite` (`:memory:` for none). */
export function openConfiguredDatabase(config: Config, pool: DatabaseOptions['pool'] = config.database.pool): Promise<Database> {
  const { url, dataDir } = config.database;
  return openDatabase({ url, dataDir: dataDir === ':memory:' ? ':memory:' : path.join(dataDir, 'pglite'), pool });
}

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  let knex: Knex;
  let artifacts: Knex;
  let kind: Database['kind'];
  if (options.url) {
    kind = 'postgres';
    const pool = { min: options.pool?.min ?? 0, max: options.pool?.max ?? 10 };
    knex = knexFactory({ client: 'pg', connection: options.url, pool, acquireConnectionTimeout: 10_000 });
    artifacts = options.durableArtifacts
      ? knex
      : knexFactory({
          client: 'pg',
          connection: options.url,
          acquireConnectionTimeout: 10_000,
          pool: {
            ...pool,
            afterCreate(conn: { query(sql: string, cb: (err: Error | null) => void): void }, done: (err: Error | null, conn: unknown) => void) {
              conn.query('SET synchronous_commit TO off', (err) => done(err, conn));
            },
          },
        });
  } else {
    kind = 'pglite';
    const dir = options.dataDir ?? './data/pglite';
    if (dir !== ':memory:') mkdirSync(dir, { recursive: true });
    knex = knexFactory({
      client: await pgliteClient(),
      dialect: 'postgres',
      connection: dir === ':memory:' ? {} : { filename: dir },
    } as Knex.Config);
    // PGlite has one connection and one process: the same knex serves everything.
    artifacts = knex;
  }
  const close = async () => {
    await Promise.all([knex.destroy(), artifacts !== knex ? artifacts.destroy() : undefined]);
  };
  try {
    await knex.raw('SELECT 1');
  } catch (err) {
    await close();
    throw err;
  }
  return { knex, artifacts, kind, close };
}
