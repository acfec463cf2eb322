// User federation (directory import): which upstream owns a user's profile, and per federated
// identity when a sync last saw it, when a sync found it gone, and a digest of what the upstream
// said, so a second sync only writes what changed. And leases, so one instance runs each import.
import type { Knex } from 'knex';

export const name = '0002-directory-sync';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('users', (t) => {
    t.text('managed_by');
  });
  await knex.schema.alterTable('federated_identities', (t) => {
    t.text('digest');
    t.timestamp('synced_at', { useTz: true });
    t.timestamp('removed_at', { useTz: true });
    t.index(['connector_id', 'synced_at']);
  });
  // Time-limited named leases: one instance at a time runs a scheduled job (a connector's import).
  await knex.schema.createTable('leases', (t) => {
    t.text('name').primary();
    t.text('holder').notNullable();
    t.timestamp('expires_at', { useTz: true }).notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('leases');
  await knex.schema.alterTable('federated_identities', (t) => {
    t.dropIndex(['connector_id', 'synced_at']);
    t.dropColumn('digest');
    t.dropColumn('synced_at');
    t.dropColumn('removed_at');
  });
  await knex.schema.alterTable('users', (t) => {
    t.dropColumn('managed_by');
  });
}
