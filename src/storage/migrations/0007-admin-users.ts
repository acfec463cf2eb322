// What the admin API's user operations need to be fast on large directories:
// - prefix search (`q`) on the username key, the lower-cased email and the lower-cased name:
//   text_pattern_ops indexes, because a LIKE 'abc%' cannot use a btree in a non-C collation;
// - a user's grants and browser sessions in oidc_payloads, by the payload's accountId. The index
//   is partial (Grant and Session rows only) so token inserts, the hot path, do not maintain it;
// - the address a browser session signed in from (login_sessions.ip), for the sessions listing.
import type { Knex } from 'knex';

export const name = '0007-admin-users';

export async function up(knex: Knex): Promise<void> {
  await knex.raw('CREATE INDEX users_username_key_prefix ON users (username_key text_pattern_ops)');
  await knex.raw('CREATE INDEX users_email_prefix ON users (lower(email) text_pattern_ops) WHERE email IS NOT NULL');
  await knex.raw('CREATE INDEX users_name_prefix ON users (lower(name) text_pattern_ops) WHERE name IS NOT NULL');
  await knex.raw("CREATE INDEX oidc_payloads_account ON oidc_payloads ((payload->>'accountId')) WHERE kind IN ('Grant', 'Session')");
  await knex.schema.alterTable('login_sessions', (t) => {
    t.text('ip');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('login_sessions', (t) => {
    t.dropColumn('ip');
  });
  for (const index of ['oidc_payloads_account', 'users_name_prefix', 'users_email_prefix', 'users_username_key_prefix']) await knex.raw(`DROP INDEX IF EXISTS ${index}`);
}
