// SAML: a replay guard for message ids (shared by every instance), the upstream session behind
// each login (for single logout both ways) and when the person last signed in upstream (for
// bounded refresh), and the broker's own SAML IdP side: service providers registered in the
// database and which of them each browser session signed in to (for SLO).
import type { Knex } from 'knex';

export const name = '0004-saml';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('replay_guard', (t) => {
    t.text('key').primary();
    t.timestamp('expires_at', { useTz: true }).notNullable();
    t.index(['expires_at']);
  });
  await knex.schema.alterTable('login_sessions', (t) => {
    t.timestamp('authenticated_at', { useTz: true });
    t.text('upstream_subject');
    t.text('upstream_sid');
    t.jsonb('upstream_session');
    t.index(['connector_id', 'upstream_subject']);
  });
  await knex.schema.createTable('saml_service_providers', (t) => {
    t.text('entity_id').primary();
    /** The service provider's settings, as in the config file's `samlIdp.serviceProviders[]`. */
    t.jsonb('settings').notNullable();
    t.boolean('enabled').notNullable().defaultTo(true);
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.schema.createTable('saml_idp_sessions', (t) => {
    t.text('session_uid').notNullable();
    t.text('sp_entity_id').notNullable();
    t.text('name_id').notNullable();
    t.text('name_id_format').notNullable();
    t.text('session_index').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('expires_at', { useTz: true }).notNullable();
    t.primary(['session_uid', 'sp_entity_id']);
    t.index(['sp_entity_id', 'name_id']);
    t.index(['expires_at']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('saml_idp_sessions');
  await knex.schema.dropTableIfExists('saml_service_providers');
  await knex.schema.alterTable('login_sessions', (t) => {
    t.dropIndex(['connector_id', 'upstream_subject']);
    t.dropColumn('authenticated_at');
    t.dropColumn('upstream_subject');
    t.dropColumn('upstream_sid');
    t.dropColumn('upstream_session');
  });
  await knex.schema.dropTableIfExists('replay_guard');
}
