// The initial schema. PostgreSQL dialect; the same migrations run on PGlite.
import type { Knex } from 'knex';

export const name = '0001-initial';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('users', (t) => {
    t.text('id').primary();
    t.text('username').notNullable();
    t.text('email');
    t.boolean('email_verified').notNullable().defaultTo(false);
    t.text('name');
    t.text('given_name');
    t.text('family_name');
    t.boolean('enabled').notNullable().defaultTo(true);
    t.jsonb('attributes').notNullable().defaultTo('{}');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw('CREATE UNIQUE INDEX users_username_lower ON users (lower(username))');
  await knex.raw('CREATE UNIQUE INDEX users_email_lower ON users (lower(email)) WHERE email IS NOT NULL');

  await knex.schema.createTable('credentials', (t) => {
    t.text('id').primary();
    t.text('user_id').notNullable().references('users.id').onDelete('CASCADE');
    t.text('type').notNullable();
    t.text('secret').notNullable();
    t.jsonb('data').notNullable().defaultTo('{}');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['user_id', 'type']);
  });
  await knex.raw("CREATE UNIQUE INDEX credentials_one_password ON credentials (user_id) WHERE type = 'password'");

  await knex.schema.createTable('federated_identities', (t) => {
    t.text('id').primary();
    t.text('user_id').notNullable().references('users.id').onDelete('CASCADE');
    t.text('connector_id').notNullable();
    t.text('subject').notNullable();
    t.text('username');
    t.text('email');
    t.jsonb('data').notNullable().defaultTo('{}');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('last_login_at', { useTz: true });
    t.unique(['connector_id', 'subject']);
    t.index(['user_id']);
  });

  await knex.schema.createTable('groups', (t) => {
    t.text('id').primary();
    t.text('name').notNullable().unique();
    t.text('description');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });

  await knex.schema.createTable('memberships', (t) => {
    t.text('user_id').notNullable().references('users.id').onDelete('CASCADE');
    t.text('group_id').notNullable().references('groups.id').onDelete('CASCADE');
    // 'local' for memberships managed here, 'config' for static users, else the connector id
    // that asserted them. Each source keeps its own row, so one source clearing a group does
    // not take away what another still asserts.
    t.text('source').notNullable().defaultTo('local');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['user_id', 'group_id', 'source']);
    t.index(['group_id']);
  });

  await knex.schema.createTable('clients', (t) => {
    t.text('id').primary();
    // oidc-provider client metadata (snake_case, as in RFC 7591).
    t.jsonb('metadata').notNullable();
    t.boolean('first_party').notNullable().defaultTo(false);
    t.boolean('enabled').notNullable().defaultTo(true);
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });

  await knex.schema.createTable('connectors', (t) => {
    t.text('id').primary();
    t.text('type').notNullable();
    t.text('name').notNullable();
    t.boolean('enabled').notNullable().defaultTo(true);
    t.jsonb('config').notNullable().defaultTo('{}');
    t.integer('position').notNullable().defaultTo(0);
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });

  await knex.schema.createTable('signing_keys', (t) => {
    t.text('kid').primary();
    t.text('alg').notNullable();
    t.jsonb('private_jwk').notNullable();
    // 'active' keys sign; 'retired' keys are only published until retire_after passes.
    t.text('status').notNullable().defaultTo('active');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('retired_at', { useTz: true });
    t.timestamp('remove_after', { useTz: true });
    t.index(['status']);
  });

  await knex.schema.createTable('server_secrets', (t) => {
    t.text('name').primary();
    t.jsonb('value').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });

  await knex.schema.createTable('oidc_payloads', (t) => {
    t.text('kind').notNullable();
    t.text('id').notNullable();
    t.jsonb('payload').notNullable();
    t.text('grant_id');
    t.text('user_code');
    t.text('uid');
    t.timestamp('expires_at', { useTz: true });
    t.timestamp('consumed_at', { useTz: true });
    t.primary(['kind', 'id']);
    t.index(['grant_id']);
    t.index(['expires_at']);
  });
  await knex.raw('CREATE INDEX oidc_payloads_user_code ON oidc_payloads (user_code) WHERE user_code IS NOT NULL');
  await knex.raw('CREATE INDEX oidc_payloads_uid ON oidc_payloads (uid) WHERE uid IS NOT NULL');

  // Which connector signed an oidc-provider session in (session uid is carried by every token).
  await knex.schema.createTable('login_sessions', (t) => {
    t.text('session_uid').primary();
    t.text('user_id').notNullable().references('users.id').onDelete('CASCADE');
    t.text('connector_id').notNullable();
    t.text('federated_identity_id');
    t.jsonb('amr').notNullable().defaultTo('[]');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('expires_at', { useTz: true });
    t.index(['user_id']);
    t.index(['expires_at']);
  });

  await knex.schema.createTable('audit_events', (t) => {
    t.bigIncrements('id').primary();
    t.timestamp('at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.text('type').notNullable();
    t.text('outcome').notNullable().defaultTo('success');
    t.text('user_id');
    t.text('client_id');
    t.text('connector_id');
    t.text('ip');
    t.jsonb('details').notNullable().defaultTo('{}');
    t.index(['at']);
    t.index(['type', 'at']);
    t.index(['user_id', 'at']);
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of [
    'audit_events', 'login_sessions', 'oidc_payloads', 'server_secrets', 'signing_keys', 'connectors',
    'clients', 'memberships', 'groups', 'federated_identities', 'credentials', 'users',
  ]) {
    await knex.schema.dropTableIfExists(table);
  }
}
