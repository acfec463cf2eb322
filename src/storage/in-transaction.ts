import type { Knex } from 'knex';

/** Runs `fn` in the caller's transaction if there is one, else in a new one. */
export function inTransaction<T>(knex: Knex, fn: (trx: Knex) => Promise<T>): Promise<T> {
  return (knex as Knex.Transaction).isTransaction ? fn(knex) : knex.transaction(fn);
}
