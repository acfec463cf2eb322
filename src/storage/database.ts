// Opens the database: PostgreSQL when a URL is given, else the embedded PGlite (no server, no
// native build) under a data folder, or in memory.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import knexFactory, { type Knex } from 'knex';
import { DatabaseUnavailable, isDatabaseUnavailable } from './database-unavailable.ts';
import { seedFromPgliteTemplate } from './pglite-template.ts';
import { lockDataDir } from './pglite-lock.ts';
import { openPgStatements, type Pool, type SqlStatements } from './pg-statements.ts';

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

/**
 * The embedded database for development and small installs, sized for it: PostgreSQL's server
 * defaults (128 MB of shared buffers, 100 connections) would make most of the process's memory
 * for a database of a few MB with one connection. PGlite itself runs with fsync off (-F).
 */
export const PGLITE_SETTINGS: Readonly<Record<string, string>> = {
  shared_buffers: '8MB',
  wal_buffers: '256kB',
  work_mem: '2MB',
  maintenance_work_mem: '8MB',
  temp_buffers: '1MB',
  max_connections: '4',
  synchronous_commit: 'off',
};

async function openPglite(dir: string) {
  const { PGlite } = await import('@electric-sql/pglite');
  const settings = Object.entries(PGLITE_SETTINGS).flatMap(([name, value]) => ['-c', `${name}=${value}`]);
  return new PGlite({ dataDir: dir === ':memory:' ? undefined : dir, startParams: [...PGlite.defaultStartParams, ...settings] });
}

type PgConnection = { __knex__disposed?: unknown };
type PgClientClass = new (config: Knex.Config) => {
  acquireConnection(): Promise<PgConnection>;
  _query(connection: PgConnection, obj: unknown): Promise<unknown>;
};

/**
 * Notices when the database stops answering and when it answers again: one warn line per
 * outage instead of an error with a stack per request.
 */
class OutageTracker {
  readonly #logger: Logger | undefined;
  #down = false;

  constructor(logger: Logger | undefined) {
    this.#logger = logger;
  }

  failed(err: unknown): DatabaseUnavailable {
    if (!this.#down) {
      this.#down = true;
      const e = err as { code?: string; message?: string };
      this.#logger?.warn({ code: e.code, reason: e.message }, 'database unavailable: answering 503 until it is back');
    }
    return err instanceof DatabaseUnavailable ? err : new DatabaseUnavailable(err);
  }

  answered(): void {
    if (!this.#down) return;
    this.#down = false;
    this.#logger?.info('database available again');
  }
}

/**
 * knex's pg client, where a database that is down, refusing or hung surfaces as one error type
 * (DatabaseUnavailable, answered 503), and a connection whose query timed out is thrown away
 * (node-postgres leaves it busy with the hung query). A subclass rather than a wrapper because
 * knex builds transaction clients from the client's prototype.
 */
async function resilientPgClient(outages: OutageTracker): Promise<typeof Knex.Client> {
  const { default: PgClient } = (await import('knex/lib/dialects/postgres/index.js' as string)) as { default: PgClientClass };
  class ResilientPgClient extends PgClient {
    async acquireConnection(): Promise<PgConnection> {
      try {
        return await super.acquireConnection();
      } catch (err) {
        throw isDatabaseUnavailable(err) ? outages.failed(err) : err;
      }
    }

    async _query(connection: PgConnection, obj: unknown): Promise<unknown> {
      try {
        const result = await super._query(connection, obj);
        outages.answered();
        return result;
      } catch (err) {
        if (!isDatabaseUnavailable(err)) throw err;
        connection.__knex__disposed = err;
        throw outages.failed(err);
      }
    }
  }
  return ResilientPgClient as unknown as typeof Knex.Client;
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
  /**
   * PostgreSQL only: a raw pg pool with the artifacts' commit mode and the same timeouts, and
   * named prepared statements on it for the token hot path (src/storage/pg-statements.ts).
   */
  pg?: { pool: Pool; statements: SqlStatements };
  close(): Promise<void>;
}

export interface DatabaseOptions {
  url?: string;
  /** PGlite folder; ':memory:' for an in-memory database. */
  dataDir?: string;
  pool?: { min?: number; max?: number };
  /** Commit artifact writes synchronously too (default false: asynchronous, see Database.artifacts). */
  durableArtifacts?: boolean;
  /**
   * PostgreSQL: the longest one statement may run (server-side statement_timeout, plus a
   * client-side bound a little longer for a server that hangs without answering); 0: none.
   */
  statementTimeoutMs?: number;
  /** PostgreSQL: how long a request waits for a pooled connection, or for a new one to open. */
  acquireTimeoutMs?: number;
  /** Receives one warn line when the database becomes unavailable and one when it is back. */
  logger?: Logger;
}

// A client-side bound only slightly longer than the server's, so a live server cancels first
// (the connection stays usable) and a hung one is still cut off.
const CLIENT_TIMEOUT_MARGIN_MS = 500;

/** The database a config names: PostgreSQL at `database.url`, else PGlite under `<dataDir>/pglite` (`:memory:` for none). */
export function openConfiguredDatabase(config: Config, pool: DatabaseOptions['pool'] = config.database.pool, logger?: Logger): Promise<Database> {
  const { url, dataDir, statementTimeoutMs, acquireTimeoutMs } = config.database;
  return openDatabase({ url, dataDir: dataDir === ':memory:' ? ':memory:' : path.join(dataDir, 'pglite'), pool, statementTimeoutMs, acquireTimeoutMs, logger });
}

const quiet = () => {};

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  let knex: Knex;
  let artifacts: Knex;
  let kind: Database['kind'];
  let pg: Database['pg'];
  let unlock = () => {};
  if (options.url) {
    kind = 'postgres';
    const pool = { min: options.pool?.min ?? 0, max: options.pool?.max ?? 10 };
    const statementTimeoutMs = options.statementTimeoutMs ?? 5_000;
    const acquireTimeoutMs = options.acquireTimeoutMs ?? 3_000;
    const connection = {
      connectionString: options.url,
      connectionTimeoutMillis: acquireTimeoutMs,
      ...(statementTimeoutMs > 0 ? { statement_timeout: statementTimeoutMs, query_timeout: statementTimeoutMs + CLIENT_TIMEOUT_MARGIN_MS } : {}),
    };
    const outages = new OutageTracker(options.logger);
    const client = await resilientPgClient(outages);
    // knex's own console warnings ("Acquire connection error") would repeat per request.
    const log = { warn: quiet, error: quiet, debug: quiet, deprecate: quiet };
    knex = knexFactory({ client, connection, pool, acquireConnectionTimeout: acquireTimeoutMs, log });
    artifacts = options.durableArtifacts
      ? knex
      : knexFactory({
          client,
          connection,
          acquireConnectionTimeout: acquireTimeoutMs,
          log,
          pool: {
            ...pool,
            afterCreate(conn: { query(sql: string, cb: (err: Error | null) => void): void }, done: (err: Error | null, conn: unknown) => void) {
              conn.query('SET synchronous_commit TO off', (err) => done(err, conn));
            },
          },
        });
    pg = await openPgStatements(
      {
        ...connection,
        min: pool.min,
        max: pool.max,
        // Every statement on this pool looks records up by key. Prepared once, a statement keeps
        // the plan made for the table's size back then: made while the token table was small, a
        // hash join reading the whole table looked cheaper, and stayed as the table grew (seen in
        // the benchmark: hundreds of rows read per refresh). Index plans are kept whatever the size.
        // Generic plans, always: left to choose, PostgreSQL planned the token lookups afresh at
        // every execution (their array parameters make the generic plan look dearer than it is),
        // which cost more than running them (a lookup's bind took 160-360 us, its execution
        // 30-70 us). test/protocol/hot-path-queries.test.ts checks each statement's generic plan.
        options: `${options.durableArtifacts ? '' : '-c synchronous_commit=off '}-c enable_seqscan=off -c plan_cache_mode=force_generic_plan`,
      },
      outages,
    );
  } else {
    kind = 'pglite';
    const dir = options.dataDir ?? './data/pglite';
    if (dir !== ':memory:') {
      mkdirSync(dir, { recursive: true });
      unlock = lockDataDir(dir);
      seedFromPgliteTemplate(dir);
    }
    try {
      knex = knexFactory({
        client: await pgliteClient(),
        dialect: 'postgres',
        connection: { pglite: await openPglite(dir) },
      } as Knex.Config);
    } catch (err) {
      unlock();
      throw err;
    }
    // PGlite has one connection and one process: the same knex serves everything.
    artifacts = knex;
  }
  const close = async () => {
    try {
      await Promise.all([knex.destroy(), artifacts !== knex ? artifacts.destroy() : undefined, pg?.pool.end()]);
    } finally {
      unlock();
    }
  };
  try {
    await knex.raw('SELECT 1');
  } catch (err) {
    await close();
    throw err;
  }
  return { knex, artifacts, kind, pg, close };
}
