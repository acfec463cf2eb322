// The password policy (src/accounts/password-policy.ts):
// - password_history: argon2id hashes of a user's recent passwords (the current one included),
//   so the last N cannot be chosen again; trimmed to N whenever a password is set.
// - credentials.password_changed_at: when the password was last set, for expiry. Existing
//   passwords count as changed now (at migration time), so nobody expires on upgrade.
// - credentials.policy_checked: the stamp of the policy rules the stored password was last found
//   to meet, so a login checks a password against the rules once, not at every sign-in; cleared
//   whenever the password changes.
// - required_actions.reason: why update_password was asked (temporary, expired, policy; null:
//   an administrator asked), so the page can say why.
import type { Knex } from 'knex';

export const name = '0014-password-policy';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('password_history', (t) => {
    t.text('id').primary();
    t.text('user_id').notNullable().references('users.id').onDelete('CASCADE');
    t.text('hash').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['user_id', 'created_at']);
  });
  // now() is stable, so PostgreSQL fills existing rows with the migration's time without a rewrite.
  await knex.raw('ALTER TABLE credentials ADD COLUMN password_changed_at timestamptz NOT NULL DEFAULT now()');
  await knex.raw('ALTER TABLE credentials ADD COLUMN policy_checked text');
  await knex.raw('ALTER TABLE required_actions ADD COLUMN reason text');
  await knex.raw("ALTER TABLE required_actions ADD CONSTRAINT required_actions_reason CHECK (reason IN ('temporary', 'expired', 'policy'))");
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE required_actions DROP CONSTRAINT IF EXISTS required_actions_reason');
  await knex.raw('ALTER TABLE required_actions DROP COLUMN IF EXISTS reason');
  await knex.raw('ALTER TABLE credentials DROP COLUMN IF EXISTS policy_checked');
  await knex.raw('ALTER TABLE credentials DROP COLUMN IF EXISTS password_changed_at');
  await knex.schema.dropTableIfExists('password_history');
}
