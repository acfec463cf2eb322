// Email: a durable outbox (a mail is stored before anything is sent, so a failed send is retried
// and never lost silently) and single-use action tokens for the links mails carry (verify an
// address, finish a registration, reset a password, change an address). Only a token's SHA-256
// is stored; the token itself exists in the mail alone.
import type { Knex } from 'knex';

export const name = '0015-email';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('email_outbox', (t) => {
    t.text('id').primary();
    t.text('recipient').notNullable();
    t.text('subject').notNullable();
    t.text('text_body').notNullable();
    t.text('html_body');
    /** What the mail is (verify_email, password_reset...): for audit and per-address limits. */
    t.text('kind').notNullable();
    t.text('user_id').references('id').inTable('users').onDelete('SET NULL');
    t.text('status').notNullable().defaultTo('pending');
    t.integer('attempts').notNullable().defaultTo(0);
    t.timestamp('next_attempt_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    /** While `sending`: the claim's end; a worker that died mid-send leaves a claim that runs out. */
    t.timestamp('claimed_until', { useTz: true });
    t.text('last_error');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('sent_at', { useTz: true });
  });
  await knex.raw("ALTER TABLE email_outbox ADD CONSTRAINT email_outbox_status CHECK (status IN ('pending', 'sending', 'sent', 'failed'))");
  await knex.raw("CREATE INDEX email_outbox_due ON email_outbox (next_attempt_at) WHERE status IN ('pending', 'sending')");
  await knex.raw('CREATE INDEX email_outbox_recipient ON email_outbox (lower(recipient), created_at)');

  await knex.schema.createTable('action_tokens', (t) => {
    /** base64url SHA-256 of the token in the link. */
    t.text('token_hash').primary();
    t.text('purpose').notNullable();
    t.text('user_id').references('id').inTable('users').onDelete('CASCADE');
    t.text('email');
    t.jsonb('data').notNullable().defaultTo('{}');
    t.timestamp('expires_at', { useTz: true }).notNullable();
    t.timestamp('used_at', { useTz: true });
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw("ALTER TABLE action_tokens ADD CONSTRAINT action_tokens_purpose CHECK (purpose IN ('register', 'verify_email', 'reset_password', 'change_email'))");
  await knex.raw('CREATE INDEX action_tokens_expires ON action_tokens (expires_at)');
  await knex.raw('CREATE INDEX action_tokens_user ON action_tokens (user_id) WHERE user_id IS NOT NULL');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('action_tokens');
  await knex.schema.dropTableIfExists('email_outbox');
}
