// Static users from config are seeded into the database at start. Config is authoritative for
// them: profile, enabled flag, password and `config`-sourced memberships follow the file. A
// plain-text password must meet the password policy: one that does not stops the start with a
// ConfigError naming the user and the reason, before anything is written. (A passwordHash cannot
// be checked.) The check runs once per password and policy, not at every start.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Knex } from 'knex';
import type { Config } from '../config/schema.ts';
import type { Store } from '../storage/store.ts';
import { ConfigError, type ConfigIssue } from '../errors.ts';
import { passwordPolicySchema, type PasswordPolicyConfig } from '../config/password-policy-schema.ts';
import { hashPassword, verifyPassword } from './passwords.ts';
import { createPasswordPolicy, type PasswordPolicy } from './password-policy.ts';

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

interface Stored {
  id: string;
  secret: string;
  data: Record<string, unknown> | null;
  policyChecked: string | null;
}

async function storedCredential(store: Store, username: string): Promise<Stored | null> {
  const existing = await store.users.findByUsername(username);
  if (!existing) return null;
  const row = (await (store.knex as Knex)('credentials').where({ user_id: existing.id, type: 'password' }).first('secret', 'data', 'policy_checked')) as
    | { secret: string; data: Record<string, unknown> | null; policy_checked: string | null }
    | undefined;
  return row ? { id: existing.id, secret: row.secret, data: row.data, policyChecked: row.policy_checked } : null;
}

/**
 * Why the config's plain-text passwords break the policy: one issue per user (start-up and
 * check-config). `skip`: users already found to meet these rules with this very password.
 */
export async function staticPasswordIssues(policy: PasswordPolicy, users: Config['users'], skip: (u: Config['users'][number]) => Promise<boolean> = async () => false): Promise<ConfigIssue[]> {
  const issues: ConfigIssue[] = [];
  for (const [i, u] of users.entries()) {
    if (u.password === undefined || (await skip(u))) continue;
    const problem = await policy.problem(u.password, { username: u.username, email: u.email, name: u.name });
    if (problem) issues.push({ path: `users.${i}.password`, message: `the password of user "${u.username}" ${problem.message} (passwordPolicy; reason: ${problem.code})` });
  }
  return issues;
}

interface Wanted {
  /** The hash to store, or null when the stored one already matches. */
  hash: string | null;
  /** The fingerprint to record (password users), or null. */
  fingerprint: string | null;
  /** argon2 operations this user cost. */
  argon2: number;
}

async function wanted(row: Stored | null, key: Buffer, u: Config['users'][number]): Promise<Wanted> {
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

/**
 * Seeds the config's users; `argon2` counts the hash and verify operations it needed. Throws a
 * ConfigError, with nothing written, when a plain-text password breaks `passwordPolicy`.
 */
export async function seedStaticUsers(
  store: Store,
  users: Config['users'],
  passwordPolicy: PasswordPolicyConfig = passwordPolicySchema.parse(undefined),
): Promise<{ created: number; updated: number; argon2: number }> {
  let created = 0;
  let updated = 0;
  if (users.length === 0) return { created, updated, argon2: 0 };
  const key = Buffer.from(await store.secrets.getOrCreate(FINGERPRINT_KEY, () => randomBytes(32).toString('base64url')), 'base64url');
  const policy = createPasswordPolicy(passwordPolicy, store);
  // Each user's stored password, read once for the policy check and for what to write.
  const rows = await Promise.all(users.map((u) => storedCredential(store, u.username)));
  // Checked before against these rules and unchanged since: no zxcvbn work at this start.
  const issues = await staticPasswordIssues(policy, users, async (u) => {
    const stored = rows[users.indexOf(u)];
    return stored?.policyChecked === policy.stamp && sameFingerprint(stored.data?.configFingerprint, fingerprint(key, stored.secret, u.password!));
  });
  if (issues.length) throw new ConfigError(issues);
  // argon2 work (only for passwords new or changed since the last start) happens up front and
  // in parallel, outside the lock; the writes then run in one short transaction.
  const wants = await Promise.all(users.map((u, i) => wanted(rows[i] ?? null, key, u)));
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
      // The plain-text password passed the policy above; a passwordHash was never checked.
      if (u.password !== undefined) await tx.passwords.markChecked(user.id, policy.stamp);
      await tx.groups.setMemberships(user.id, u.groups, 'config');
    }
  });
  return { created, updated, argon2: wants.reduce((n, w) => n + w.argon2, 0) };
}
