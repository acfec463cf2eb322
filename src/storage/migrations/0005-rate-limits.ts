// Rate-limit and brute-force counters (src/limits), shared by every instance on one database.
// The shape is the one rate-limiter-flexible's PostgreSQL store reads and writes; `expire` is
// in epoch milliseconds.
import type { Knex } from 'knex';

export const name = '0005-rate-limits';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('rate_limits', (t) => {
    t.string('key', 255).primary();
    t.integer('points').notNullable().defaultTo(0);
    t.bigInteger('expire');
    t.index(['expire']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('rate_limits');
}
