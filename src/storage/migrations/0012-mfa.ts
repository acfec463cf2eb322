// Second factors (TOTP, WebAuthn/passkeys, recovery codes) and required actions.
// - mfa_factors: one row per enrolled factor. TOTP secrets are stored sealed (token cipher);
//   WebAuthn rows keep the credential id (unique across users: a passkey names its account) and
//   public key. `confirmed` is false while a TOTP enrolment waits for its first code.
// - mfa_used_steps: TOTP time steps already accepted per factor, so a code cannot be used twice
//   within its window, also across instances (the primary key is the check).
// - mfa_recovery_codes: SHA-256 of each single-use recovery code.
// - required_actions: what a user must do before their next login finishes (update_password,
//   configure_mfa...).
import type { Knex } from 'knex';

export const name = '0012-mfa';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('mfa_factors', (t) => {
    t.text('id').primary();
    t.text('user_id').notNullable().references('users.id').onDelete('CASCADE');
    t.text('type').notNullable();
    t.text('name').notNullable();
    t.text('secret');
    t.text('credential_id');
    t.text('public_key');
    t.bigInteger('sign_count').notNullable().defaultTo(0);
    t.jsonb('data').notNullable().defaultTo('{}');
    t.boolean('confirmed').notNullable().defaultTo(false);
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('last_used_at', { useTz: true });
    t.index(['user_id']);
  });
  await knex.raw("ALTER TABLE mfa_factors ADD CONSTRAINT mfa_factors_type CHECK (type IN ('totp', 'webauthn'))");
  await knex.raw('CREATE UNIQUE INDEX mfa_factors_credential_id ON mfa_factors (credential_id) WHERE credential_id IS NOT NULL');

  await knex.schema.createTable('mfa_used_steps', (t) => {
    t.text('factor_id').notNullable().references('mfa_factors.id').onDelete('CASCADE');
    t.bigInteger('step').notNullable();
    t.timestamp('used_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['factor_id', 'step']);
  });

  await knex.schema.createTable('mfa_recovery_codes', (t) => {
    t.text('user_id').notNullable().references('users.id').onDelete('CASCADE');
    t.text('code_hash').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('used_at', { useTz: true });
    t.primary(['user_id', 'code_hash']);
  });

  await knex.schema.createTable('required_actions', (t) => {
    t.text('user_id').notNullable().references('users.id').onDelete('CASCADE');
    t.text('action').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['user_id', 'action']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('required_actions');
  await knex.schema.dropTableIfExists('mfa_recovery_codes');
  await knex.schema.dropTableIfExists('mfa_used_steps');
  await knex.schema.dropTableIfExists('mfa_factors');
}
