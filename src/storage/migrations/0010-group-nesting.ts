// Nested groups (a group inside a group: members of the child are members of every ancestor in
// the `groups` claim), where a group came from (local, config or the connector that asserted it
// first: those are read-only in the admin API), and indexes for the admin API's audit filters.
import type { Knex } from 'knex';

export const name = '0010-group-nesting';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('group_parents', (t) => {
    t.text('group_id').notNullable().references('groups.id').onDelete('CASCADE');
    t.text('parent_id').notNullable().references('groups.id').onDelete('CASCADE');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    // (group_id, parent_id) drives the walk up from a user's groups on the token hot path.
    t.primary(['group_id', 'parent_id']);
    t.index(['parent_id']);
  });
  await knex.schema.alterTable('groups', (t) => {
    t.text('source').notNullable().defaultTo('local');
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  // Groups that only an upstream or the config file ever asserted belong to it.
  await knex.raw(`UPDATE groups g SET source = s.source FROM (
      SELECT group_id, min(source) AS source FROM memberships GROUP BY group_id HAVING bool_and(source <> 'local')
    ) s WHERE s.group_id = g.id`);
  // The admin API filters the audit trail by these, newest first (by id).
  await knex.raw('CREATE INDEX audit_events_client_id ON audit_events (client_id, id) WHERE client_id IS NOT NULL');
  await knex.raw('CREATE INDEX audit_events_connector_id ON audit_events (connector_id, id) WHERE connector_id IS NOT NULL');
  await knex.raw('CREATE INDEX audit_events_ip ON audit_events (ip, id) WHERE ip IS NOT NULL');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS audit_events_ip');
  await knex.raw('DROP INDEX IF EXISTS audit_events_connector_id');
  await knex.raw('DROP INDEX IF EXISTS audit_events_client_id');
  await knex.schema.alterTable('groups', (t) => {
    t.dropColumn('updated_at');
    t.dropColumn('source');
  });
  await knex.schema.dropTableIfExists('group_parents');
}
