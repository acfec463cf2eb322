// Usernames are compared by an RFC 8265 key (NFKC + case folding, src/accounts/normalize-username.ts)
// kept in `username_key`, unique; the display `username` is stored NFKC. Existing rows are
// rewritten here, and two cases need a decision:
// - Two usernames that fold to one key: the older account (created_at, then id) keeps the name,
//   the newer one is renamed `<name>-2` (or the next free suffix).
// - A username containing `@` (an upstream's preferred_username, or `users add` with an email):
//   it could shadow another account's email, so it becomes the part before `@` (plus a suffix
//   when that is taken). Such a user signs in with the email, or the new username.
// Every rename is written to the audit log as `user.renamed` with the old and new name, for the
// operator to tell the people concerned. The migration never fails on a collision.
//
// Also repairs identities that a refused login stripped of the directory's "blocked" marker
// (the bug left such users disabled for good): the marker is restored from the audit trail.
import type { Knex } from 'knex';
import { deriveUsername, displayUsername, usernameKey } from '../../accounts/normalize-username.ts';

export const name = '0006-username-keys';

interface UserRow {
  id: string;
  username: string;
}

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('users', (t) => {
    t.text('username_key');
  });

  // The old index would trip over intermediate states of the renames below.
  await knex.raw('DROP INDEX IF EXISTS users_username_lower');
  const rows: UserRow[] = await knex('users').select('id', 'username').orderBy([{ column: 'created_at' }, { column: 'id' }]);
  // First every name that stays (oldest first), then the renamed ones pick around all of them,
  // so a rename never takes the name of a later, untouched account.
  const taken = new Set<string>();
  const pending: Array<UserRow & { display: string }> = [];
  for (const row of rows) {
    const display = displayUsername(row.username);
    if (display && !display.includes('@') && !taken.has(usernameKey(display))) {
      taken.add(usernameKey(display));
      await knex('users').where({ id: row.id }).update({ username: display, username_key: usernameKey(display) });
    } else {
      pending.push({ ...row, display });
    }
  }
  const renames: Array<{ id: string; from: string; to: string; reason: string }> = [];
  for (const row of pending) {
    const hasAt = row.display.includes('@');
    const base = (hasAt ? deriveUsername(row.display) : row.display) || 'user';
    let chosen = base;
    for (let n = 2; taken.has(usernameKey(chosen)); n++) chosen = `${base}-${n}`;
    taken.add(usernameKey(chosen));
    renames.push({ id: row.id, from: row.username, to: chosen, reason: hasAt ? 'contains_at' : 'username_collision' });
    await knex('users').where({ id: row.id }).update({ username: chosen, username_key: usernameKey(chosen) });
  }
  if (renames.length) {
    await knex('audit_events').insert(renames.map((r) => ({
      type: 'user.renamed',
      user_id: r.id,
      details: JSON.stringify({ from: r.from, to: r.to, reason: r.reason, via: 'migration 0006' }),
    })));
  }

  await knex.raw('ALTER TABLE users ALTER COLUMN username_key SET NOT NULL');
  // Stricter than the old lower(username) index, which is not recreated.
  await knex.raw('CREATE UNIQUE INDEX users_username_key ON users (username_key)');

  await knex.raw(`
    UPDATE federated_identities f
       SET data = jsonb_set(f.data, '{blocked}', to_jsonb(last.reason)), digest = NULL
      FROM users u,
           (SELECT DISTINCT ON (a.user_id, a.connector_id) a.user_id, a.connector_id, a.type, a.details->>'reason' AS reason, a.details->>'via' AS via
              FROM audit_events a
             WHERE a.type IN ('user.disabled', 'user.enabled') AND a.user_id IS NOT NULL AND a.connector_id IS NOT NULL
             ORDER BY a.user_id, a.connector_id, a.id DESC) last
     WHERE u.id = f.user_id AND last.user_id = f.user_id AND last.connector_id = f.connector_id
       AND u.enabled = false AND u.managed_by = f.connector_id
       AND (f.data->'blocked' IS NULL OR f.data->'blocked' = 'null'::jsonb)
       AND last.type = 'user.disabled' AND last.via = 'sync' AND last.reason IS NOT NULL`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS users_username_key');
  await knex.schema.alterTable('users', (t) => {
    t.dropColumn('username_key');
  });
  await knex.raw('CREATE UNIQUE INDEX IF NOT EXISTS users_username_lower ON users (lower(username))');
}
