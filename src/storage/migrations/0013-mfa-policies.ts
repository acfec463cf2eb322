// Second-factor policies set through the admin API, one mode per level (src/mfa/mfa-policy.ts).
// The global level has the target ''. Config-file policies are not stored here: the config is read
// at start-up and merged with these rows when a login is resolved.
import type { Knex } from 'knex';

export const name = '0013-mfa-policies';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('mfa_policies', (t) => {
    t.text('kind').notNullable();
    t.text('target').notNullable();
    t.text('mode').notNullable();
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['kind', 'target']);
  });
  await knex.raw("ALTER TABLE mfa_policies ADD CONSTRAINT mfa_policies_kind CHECK (kind IN ('global', 'client', 'group', 'connector'))");
  await knex.raw("ALTER TABLE mfa_policies ADD CONSTRAINT mfa_policies_mode CHECK (mode IN ('required', 'optional', 'off'))");
  await knex.raw("ALTER TABLE mfa_policies ADD CONSTRAINT mfa_policies_global_target CHECK ((kind = 'global') = (target = ''))");
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('mfa_policies');
}
