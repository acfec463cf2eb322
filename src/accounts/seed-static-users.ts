// Static users from config are seeded into the database at start. Config is authoritative for
// them: profile, enabled flag, password and `config`-sourced memberships follow the file.
import type { Knex } from 'knex';
import type { Config } from '../config/schema.ts';
import type { Store } from '../storage/store.ts';
import { hashPassword, verifyPassword } from './passwords.ts';

const SEED_LOCK = 0x4b425f55; // "KB_U": one instance seeds at a time

export async function seedStaticUsers(store: Store, users: Config['users']): Promise<{ created: number; updated: number }> {
  let created = 0;
  let updated = 0;
  if (users.length === 0) return { created, updated };
  await store.transaction(async (tx) => {
    await (tx.knex as Knex).raw('SELECT pg_advisory_xact_lock(?)', [SEED_LOCK]);
    for (const u of users) {
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
      const stored = await tx.credentials.getPasswordHash(user.id);
      if (u.passwordHash) {
        if (stored !== u.passwordHash) await tx.credentials.setPassword(user.id, u.passwordHash);
      } else if (u.password && (!stored || !(await verifyPassword(stored, u.password)))) {
        await tx.credentials.setPassword(user.id, await hashPassword(u.password));
      }
      await tx.groups.setMemberships(user.id, u.groups, 'config');
    }
  });
  return { created, updated };
}
