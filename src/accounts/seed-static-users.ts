// Static users from config are seeded into the database at start. Config is authoritative for
// them: profile, enabled flag, password and `config`-sourced memberships follow the file.
import type { Knex } from 'knex';
import type { Config } from '../config/schema.ts';
import type { Store } from '../storage/store.ts';
import { hashPassword, verifyPassword } from './passwords.ts';

const SEED_LOCK = 0x4b425f55; // "KB_U": one instance seeds at a time

/** The hash to store for a config user, or null when the stored one already matches. */
async function wantedHash(store: Store, u: Config['users'][number]): Promise<string | null> {
  const existing = await store.users.findByUsername(u.username);
  const stored = existing ? await store.credentials.getPasswordHash(existing.id) : null;
  if (u.passwordHash) return stored === u.passwordHash ? null : u.passwordHash;
  if (stored && (await verifyPassword(stored, u.password!))) return null;
  return hashPassword(u.password!);
}

export async function seedStaticUsers(store: Store, users: Config['users']): Promise<{ created: number; updated: number }> {
  let created = 0;
  let updated = 0;
  if (users.length === 0) return { created, updated };
  // argon2 work happens up front and in parallel (it is most of the start-up cost), outside
  // the lock; the writes then run in one short transaction.
  const hashes = await Promise.all(users.map((u) => wantedHash(store, u)));
  await store.transaction(async (tx) => {
    await (tx.knex as Knex).raw('SELECT pg_advisory_xact_lock(?)', [SEED_LOCK]);
    for (const [i, u] of users.entries()) {
      const profile = {
        username: u.username,
        email: u.email ?? null,
        emailVerified: u.emailVerified,
        name: u.name ?? null,
        givenName: u.givenName ?? null,
        familyName: u.familyName ?? null,
        enabled: u.enabled,
      };
      let user = await tx.users.findByUsername(u.username);
      if (!user) {
        user = await tx.users.create(profile);
        created++;
      } else {
        await tx.users.update(user.id, profile);
        updated++;
      }
      const hash = hashes[i];
      if (hash) await tx.credentials.setPassword(user.id, hash);
      await tx.groups.setMemberships(user.id, u.groups, 'config');
    }
  });
  return { created, updated };
}
