// The account console shows each browser session's device: the user agent it signed in with.
import type { Knex } from 'knex';

export const name = '0016-account-console';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('login_sessions', (t) => {
    t.text('user_agent').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('login_sessions', (t) => {
    t.dropColumn('user_agent');
  });
}
