// Parameterized SQL for the token hot path, without knex's query building: on PostgreSQL named
// prepared statements on a raw `pg` pool (parsed and planned once per connection), elsewhere
// (PGlite) the same text through knex.raw. Texts use $1..$n and contain no `?`.
import type { Knex } from 'knex';

// The little of node-postgres used here (the project has no @types/pg).
export interface Pool {
  query(config: { name: string; text: string; values: unknown[] }): Promise<{ rows: unknown[]; rowCount: number | null }>;
  on(event: 'error', listener: (err: Error) => void): unknown;
  end(): Promise<void>;
}
export type PoolConfig = Record<string, unknown>;
import { DatabaseUnavailable, isDatabaseUnavailable } from './database-unavailable.ts';

export interface Statement {
  /** Unique per text: PostgreSQL prepares it once per connection under this name. */
  name: string;
  text: string;
}

export interface SqlResult<R> {
  rows: R[];
  rowCount: number;
}

export interface SqlStatements {
  run<R = Record<string, unknown>>(statement: Statement, values: readonly unknown[]): Promise<SqlResult<R>>;
}

// pg-pool's own wait-for-a-connection timeout, which database-unavailable.ts does not name.
const POOL_WAIT_TIMEOUT = 'timeout exceeded when trying to connect';

/**
 * A raw pg pool whose failures read like knex's: a database that is down, refusing or hung
 * becomes DatabaseUnavailable (503), reported through `outage` (the same tracker as knex).
 */
export async function openPgStatements(config: PoolConfig, outage: { failed(err: unknown): DatabaseUnavailable; answered(): void }): Promise<{ pool: Pool; statements: SqlStatements }> {
  const { default: pg } = (await import('pg' as string)) as { default: { Pool: new (config: PoolConfig) => Pool } };
  const pool = new pg.Pool(config);
  // An idle connection the server closed: the pool drops it; without a listener it would crash the process.
  pool.on('error', () => {});
  const statements: SqlStatements = {
    async run<R>(statement: Statement, values: readonly unknown[]): Promise<SqlResult<R>> {
      try {
        // pool.query releases a failed connection with its error, so a timed-out one is discarded.
        const result = await pool.query({ name: statement.name, text: statement.text, values: values as unknown[] });
        outage.answered();
        return { rows: result.rows as R[], rowCount: result.rowCount ?? 0 };
      } catch (err) {
        if (isDatabaseUnavailable(err) || (err instanceof Error && err.message.includes(POOL_WAIT_TIMEOUT))) throw outage.failed(err);
        throw err;
      }
    },
  };
  return { pool, statements };
}

interface PgliteConnection {
  query(text: string, values: unknown[]): Promise<{ rows: unknown[]; affectedRows?: number }>;
}

/**
 * PGlite's own `query(text, params)` on knex's single connection: taken from and returned to
 * knex's pool, so a statement waits while a knex transaction holds the connection.
 */
export function pgliteStatements(knex: Knex): SqlStatements {
  const client = knex.client as unknown as { acquireConnection(): Promise<PgliteConnection>; releaseConnection(connection: PgliteConnection): Promise<unknown> };
  return {
    async run<R>(statement: Statement, values: readonly unknown[]): Promise<SqlResult<R>> {
      const connection = await client.acquireConnection();
      try {
        const result = await connection.query(statement.text, values as unknown[]);
        return { rows: result.rows as R[], rowCount: result.affectedRows || result.rows.length };
      } finally {
        await client.releaseConnection(connection);
      }
    },
  };
}

const arrayLiteral = (items: unknown[]) =>
  `{${items.map((v) => (v === null || v === undefined ? 'NULL' : `"${(v instanceof Date ? v.toISOString() : String(v)).replace(/["\\]/g, (ch) => `\\${ch}`)}"`)).join(',')}}`;

/** The same statements through knex.raw (PGlite, or a knex transaction). */
export function knexStatements(knex: Knex): SqlStatements {
  const converted = new Map<string, { sql: string; order: number[] }>();
  return {
    async run<R>(statement: Statement, values: readonly unknown[]): Promise<SqlResult<R>> {
      let c = converted.get(statement.name);
      if (!c) {
        const order: number[] = [];
        const sql = statement.text.replace(/\$(\d+)/g, (_, n: string) => {
          order.push(Number(n) - 1);
          return '?';
        });
        c = { sql, order };
        converted.set(statement.name, c);
      }
      // knex.raw would expand an array into a list: it goes as a PostgreSQL array literal.
      const bindings = c.order.map((i) => (Array.isArray(values[i]) ? arrayLiteral(values[i] as unknown[]) : values[i]));
      const result = (await knex.raw(c.sql, bindings as Knex.RawBinding[])) as { rows?: R[]; rowCount?: number; affectedRows?: number };
      return { rows: result.rows ?? [], rowCount: result.rowCount ?? result.affectedRows ?? 0 };
    },
  };
}
