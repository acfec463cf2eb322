// Static users from config are seeded into the database at start. Config is authoritative for
// them: profile, enabled flag, password and `config`-sourced memberships follow the file. A
// plain-text password must meet the password policy: one that does not stops the start with a
// ConfigError naming the user and the reason, before anything is written. (A passwordHash cannot
// be checked.) The check runs once per password and policy, not at every start.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Knex } from 'knex';
import type { Config } from '../config/schema.ts';
import type { Store } from '../storage/store.ts';
import type { User } from '../storage/types.ts';
import { displayUsername } from './normalize-username.ts';
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
  user: User;
  /** The password credential, when there is one. */
  secret: string | null;
  data: Record<string, unknown> | null;
  policyChecked: string | null;
  /** The names of the groups the config gave the user (memberships of source `config`). */
  configGroups: string[];
}

async function storedUser(store: Store, username: string): Promise<Stored | null> {
  const user = await store.users.findByUsername(username);
  if (!user) return null;
  const knex = store.knex as Knex;
  const [credential, groups] = await Promise.all([
    knex('credentials').where({ user_id: user.id, type: 'password' }).first('secret', 'data', 'policy_checked') as Promise<{ secret: string; data: Record<string, unknown> | null; policy_checked: string | null } | undefined>,
    knex('memberships as m').join('groups as g', 'g.id', 'm.group_id').where({ 'm.user_id': user.id, 'm.source': 'config' }).pluck('g.name') as Promise<string[]>,
  ]);
  return { user, secret: credential?.secret ?? null, data: credential?.data ?? null, policyChecked: credential?.policy_checked ?? null, configGroups: groups };
}

/** What the config says of a user's profile, as UserRepository writes it. */
const profileOf = (u: Config['users'][number]) => ({
  username: u.username,
  email: u.email ?? null,
  emailVerified: u.emailVerified,
  name: u.name ?? null,
  givenName: u.givenName ?? null,
  familyName: u.familyName ?? null,
  enabled: u.enabled,
});

/** The stored user already is what the config says, password and policy check included: nothing to write. */
function unchanged(stored: Stored | null, u: Config['users'][number], want: Wanted, policyStamp: string): boolean {
  if (!stored || want.hash !== null || want.fingerprint !== null) return false;
  if (u.password !== undefined && stored.policyChecked !== policyStamp) return false;
  const profile = profileOf(u);
  // Usernames are stored in their display form (normalize-username.ts).
  const sameProfile = (Object.keys(profile) as Array<keyof typeof profile>).every((k) => stored.user[k] === (k === 'username' ? displayUsername(profile.username) : profile[k]));
  const groups = new Set(u.groups);
  return sameProfile && stored.configGroups.length === groups.size && stored.configGroups.every((g) => groups.has(g));
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
 * Seeds the config's users; `argon2` counts the hash and verify operations it needed, and
 * `unchanged` the users already stored as the config says (nothing written for them: a start
 * where the config did not change writes nothing). Throws a ConfigError, with nothing written,
 * when a plain-text password breaks `passwordPolicy`.
 */
export async function seedStaticUsers(
  store: Store,
  users: Config['users'],
  passwordPolicy: PasswordPolicyConfig = passwordPolicySchema.parse(undefined),
): Promise<{ created: number; updated: number; unchanged: number; argon2: number }> {
  let created = 0;
  let updated = 0;
  if (users.length === 0) return { created, updated, unchanged: 0, argon2: 0 };
  const key = Buffer.from(await store.secrets.getOrCreate(FINGERPRINT_KEY, () => randomBytes(32).toString('base64url')), 'base64url');
  const policy = createPasswordPolicy(passwordPolicy, store);
  // Each user as stored, read once for the policy check, for what to write and whether to write.
  const rows = await Promise.all(users.map((u) => storedUser(store, u.username)));
  // Checked before against these rules and unchanged since: no zxcvbn work at this start.
  const issues = await staticPasswordIssues(policy, users, async (u) => {
    const stored = rows[users.indexOf(u)];
    return stored?.secret != null && stored.policyChecked === policy.stamp && sameFingerprint(stored.data?.configFingerprint, fingerprint(key, stored.secret, u.password!));
  });
  if (issues.length) throw new ConfigError(issues);
  // argon2 work (only for passwords new or changed since the last start) happens up front and
  // in parallel, outside the lock; the writes then run in one short transaction.
  const wants = await Promise.all(users.map((u, i) => wanted(rows[i], key, u)));
  const changed = users.flatMap((u, i) => (unchanged(rows[i], u, wants[i], policy.stamp) ? [] : [{ u, want: wants[i] }]));
  if (changed.length) {
    await store.transaction(async (tx) => {
      await (tx.knex as Knex).raw('SELECT pg_advisory_xact_lock(?)', [SEED_LOCK]);
      for (const { u, want } of changed) {
        const profile = profileOf(u);
        let user = await tx.users.findByUsername(u.username);
        if (!user) {
          user = await tx.users.create(profile);
          created++;
        } else {
          await tx.users.update(user.id, profile);
          updated++;
        }
        if (want.hash) await tx.credentials.setPassword(user.id, want.hash);
        if (want.fingerprint) {
          await (tx.knex as Knex).raw("UPDATE credentials SET data = data || jsonb_build_object('configFingerprint', ?::text) WHERE user_id = ? AND type = 'password'", [want.fingerprint, user.id]);
        }
        // The plain-text password passed the policy above; a passwordHash was never checked.
        if (u.password !== undefined) await tx.passwords.markChecked(user.id, policy.stamp);
        await tx.groups.setMemberships(user.id, u.groups, 'config');
      }
    });
  }
  return { created, updated, unchanged: users.length - changed.length, argon2: wants.reduce((n, w) => n + w.argon2, 0) };
}
