// Connectors managed at runtime (admin API): their secret config fields kept apart, encrypted
// with secrets.tokenKeys (`secrets`, null when none); the broker's policy for their identities
// (`policy`, null: the defaults); and directory imports (started through the API or by the
// schedule), so every instance can report a run's progress.
import type { Knex } from 'knex';

export const name = '0009-connector-admin';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('connectors', (t) => {
    t.text('secrets');
    t.jsonb('policy');
  });
  await knex.schema.createTable('connector_syncs', (t) => {
    t.text('id').primary();
    t.text('connector_id').notNullable();
    // running | succeeded | failed
    t.text('state').notNullable();
    t.jsonb('progress').notNullable().defaultTo('{}');
    t.text('error');
    t.timestamp('started_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('finished_at', { useTz: true });
    t.index(['connector_id', 'started_at']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('connector_syncs');
  await knex.schema.alterTable('connectors', (t) => {
    t.dropColumn('secrets');
    t.dropColumn('policy');
  });
}
