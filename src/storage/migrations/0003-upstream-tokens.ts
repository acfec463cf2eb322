// Brokered logins: upstream OAuth tokens kept per federated identity (encrypted by the broker
// before they reach the database) for connector refresh, when the upstream last confirmed the
// identity, and the extra token claims a connector's mappers produced for a login session.
import type { Knex } from 'knex';

export const name = '0003-upstream-tokens';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('federated_identities', (t) => {
    /** Ciphertext (see src/accounts/token-cipher.ts); never plaintext. */
    t.text('tokens');
    t.timestamp('checked_at', { useTz: true });
  });
  await knex.schema.alterTable('login_sessions', (t) => {
    t.jsonb('claims').notNullable().defaultTo('{}');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('login_sessions', (t) => {
    t.dropColumn('claims');
  });
  await knex.schema.alterTable('federated_identities', (t) => {
    t.dropColumn('tokens');
    t.dropColumn('checked_at');
  });
}
