// Clients managed at runtime (admin API, `keybridge clients`): their secrets are stored only as
// SHA-256 hashes (a generated 256-bit secret needs no slow hash, and the token endpoint is a hot
// path), with the previous hash kept until an overlap ends after a rotation. `change_versions`
// counts changes per kind of object so that every instance notices one it missed on the
// notification channel (src/storage/change-feed.ts).
import type { Knex } from 'knex';

export const name = '0008-client-secrets';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('clients', (t) => {
    t.text('secret_hash');
    t.text('previous_secret_hash');
    t.timestamp('previous_secret_expires_at', { useTz: true });
  });
  await knex.schema.createTable('change_versions', (t) => {
    t.text('kind').primary();
    t.bigInteger('version').notNullable().defaultTo(0);
    t.timestamp('changed_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('change_versions');
  await knex.schema.alterTable('clients', (t) => {
    t.dropColumn('secret_hash');
    t.dropColumn('previous_secret_hash');
    t.dropColumn('previous_secret_expires_at');
  });
}
