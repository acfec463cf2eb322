// Static users from config are seeded into the database at start. Config is authoritative for
// them: profile, enabled flag, password and `config`-sourced memberships follow the file.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Knex } from 'knex';
import type { Config } from '../config/schema.ts';
import type { Store } from '../storage/store.ts';
import { hashPassword, verifyPassword } from './passwords.ts';

const SEED_LOCK = 0x4b425f55; // "KB_U": one instance seeds at a time
const FINGERPRINT_KEY = 'static-user-fingerprint-key';

/**
 * Proof that a stored hash was made from (or checked against) a config password, so that a
 * start where nothing changed does no argon2 work (about 20 ms per user otherwise). Bound to the
 * stored hash: a password changed by any other means (admin API) no longer matches, and the
 * config password is checked and set again. Kept in the credential's `data`.
 */
function fingerprint(key: Buffer, storedHash: string, password: string): string {
  return createHmac('sha256', key).update(JSON.stringify([storedHash, password])).digest('base64url');
}

function sameFingerprint(a: unknown, b: string): boolean {
  if (typeof a !== 'string' || a.length !== b.length) return false;
  return timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

interface Wanted {
  /** The hash to store, or null when the stored one already matches. */
  hash: string | null;
  /** The fingerprint to record (password users), or null. */
  fingerprint: string | null;
  /** argon2 operations this user cost. */
  argon2: number;
}

async function wanted(store: Store, key: Buffer, u: Config['users'][number]): Promise<Wanted> {
  const existing = await store.users.findByUsername(u.username);
  const row = existing
    ? ((await (store.knex as Knex)('credentials').where({ user_id: existing.id, type: 'password' }).first('secret', 'data')) as { secret: string; data: Record<string, unknown> | null } | undefined)
    : undefined;
  const stored = row?.secret ?? null;
  if (u.passwordHash) return { hash: stored === u.passwordHash ? null : u.passwordHash, fingerprint: null, argon2: 0 };
  const password = u.password!;
  if (stored) {
    const expected = fingerprint(key, stored, password);
    if (sameFingerprint(row?.data?.configFingerprint, expected)) return { hash: null, fingerprint: null, argon2: 0 };
    if (await verifyPassword(stored, password)) return { hash: null, fingerprint: expected, argon2: 1 };
  }
  const hash = await hashPassword(password);
  return { hash, fingerprint: fingerprint(key, hash, password), argon2: stored ? 2 : 1 };
}

/** Seeds the config's users; `argon2` counts the hash and verify operations it needed. */
export async function seedStaticUsers(store: Store, users: Config['users']): Promise<{ created: number; updated: number; argon2: number }> {
  let created = 0;
  let updated = 0;
  if (users.length === 0) return { created, updated, argon2: 0 };
  const key = Buffer.from(await store.secrets.getOrCreate(FINGERPRINT_KEY, () => randomBytes(32).toString('base64url')), 'base64url');
  // argon2 work (only for passwords new or changed since the last start) happens up front and
  // in parallel, outside the lock; the writes then run in one short transaction.
  const wants = await Promise.all(users.map((u) => wanted(store, key, u)));
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
      const { hash, fingerprint: fp } = wants[i];
      if (hash) await tx.credentials.setPassword(user.id, hash);
      if (fp) {
        await (tx.knex as Knex).raw("UPDATE credentials SET data = data || jsonb_build_object('configFingerprint', ?::text) WHERE user_id = ? AND type = 'password'", [fp, user.id]);
      }
      await tx.groups.setMemberships(user.id, u.groups, 'config');
    }
  });
  return { created, updated, argon2: wants.reduce((n, w) => n + w.argon2, 0) };
}
