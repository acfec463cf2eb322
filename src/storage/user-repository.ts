import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { NewUser, User, UserPatch } from './types.ts';
import { uniquely } from './unique-violation.ts';
import { InvalidInput } from '../errors.ts';
import { displayUsername, usernameKey, usernameProblem } from '../accounts/normalize-username.ts';
import { accountWrite } from './account-cache.ts';
import { userGroupsSubquery } from './user-groups-sql.ts';
import { knexStatements, type SqlStatements } from './pg-statements.ts';
import type { StoredPasswordFacts } from '../connectors/contract.ts';

export interface UserRow {
  id: string;
  username: string;
  /** RFC 8265 comparison key of `username` (unique); lookups go by it. */
  username_key: string;
  email: string | null;
  email_verified: boolean;
  name: string | null;
  given_name: string | null;
  family_name: string | null;
  enabled: boolean;
  attributes: Record<string, unknown>;
  managed_by: string | null;
  created_at: Date;
  updated_at: Date;
}

type Row = UserRow;

/** The columns userFromRow reads, for statements that name them (alias `u`). */
export const USER_COLUMNS = 'u.id, u.username, u.email, u.email_verified, u.name, u.given_name, u.family_name, u.enabled, u.attributes, u.managed_by, u.created_at, u.updated_at';

/** A local account as a password login reads it: the user, its groups, its password hash and what the password policy asks of it. */
export interface LoginAccount {
  user: User;
  groups: string[];
  passwordHash: string | null;
  passwordFacts: StoredPasswordFacts | null;
}

// The statements of a login and of the lookups every login makes, prepared (src/storage/pg-statements.ts).
const loginAccount = (name: string, where: string) => ({
  name,
  text: `SELECT ${USER_COLUMNS}, ${userGroupsSubquery('u.id')} AS groups,
      c.secret AS password_hash, c.password_changed_at, c.policy_checked
    FROM users u LEFT JOIN LATERAL (
      SELECT c.secret, c.password_changed_at, c.policy_checked FROM credentials c WHERE c.user_id = u.id AND c.type = 'password' LIMIT 1
    ) c ON true
    WHERE ${where}`,
});
export const USER_SQL = {
  findById: { name: 'kb_user_find', text: `SELECT ${USER_COLUMNS} FROM users u WHERE u.id = $1` },
  // The account behind a token (the account cache, userinfo, the SAML IdP): the user and its groups.
  findWithGroups: { name: 'kb_account_find', text: `SELECT ${USER_COLUMNS}, ${userGroupsSubquery('u.id')} AS groups FROM users u WHERE u.id = $1` },
  loginAccountByKey: loginAccount('kb_login_account_key', 'u.username_key = $1'),
  // users_email_lower: a unique index on lower(email), for the users that have one.
  loginAccountByEmail: loginAccount('kb_login_account_email', 'lower(u.email) = lower($1) AND u.email IS NOT NULL'),
  loginAccountById: loginAccount('kb_login_account_id', 'u.id = $1'),
};

export interface UserSearch {
  q?: string;
  group?: string;
  connector?: string;
  enabled?: boolean;
  /** The (username key, id) of the last user of the previous page. */
  after?: [string, string];
  limit: number;
}

export function userFromRow(r: Row): User {
  return {
    id: r.id,
    username: r.username,
    email: r.email,
    emailVerified: r.email_verified,
    name: r.name,
    givenName: r.given_name,
    familyName: r.family_name,
    enabled: r.enabled,
    attributes: r.attributes ?? {},
    managedBy: r.managed_by ?? null,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function toRow(u: UserPatch): Partial<Row> {
  const row: Partial<Row> = {};
  if (u.username !== undefined) {
    // Every path that writes a username (config, CLI, admin, linking, import) meets this check.
    const problem = usernameProblem(u.username);
    if (problem) throw new InvalidInput(`username ${problem}`);
    row.username = displayUsername(u.username);
    row.username_key = usernameKey(u.username);
  }
  if (u.email !== undefined) row.email = u.email;
  if (u.emailVerified !== undefined) row.email_verified = u.emailVerified;
  if (u.name !== undefined) row.name = u.name;
  if (u.givenName !== undefined) row.given_name = u.givenName;
  if (u.familyName !== undefined) row.family_name = u.familyName;
  if (u.enabled !== undefined) row.enabled = u.enabled;
  if (u.managedBy !== undefined) row.managed_by = u.managedBy;
  if (u.attributes !== undefined) row.attributes = JSON.stringify(u.attributes) as unknown as Record<string, unknown>;
  return row;
}

export class UserRepository {
  readonly #knex: Knex;
  readonly #sql: SqlStatements;

  /** `sql`: prepared statements for the lookups of every login (default: the same text through this knex). */
  constructor(knex: Knex, sql: SqlStatements = knexStatements(knex)) {
    this.#knex = knex;
    this.#sql = sql;
  }

  async create(input: NewUser): Promise<User> {
    const row = { id: randomUUID(), ...toRow({ emailVerified: false, enabled: true, attributes: {}, ...input }) };
    const [created] = await uniquely(`user "${input.username}"`, () => this.#knex<Row>('users').insert(row).returning('*'));
    return userFromRow(created as Row);
  }

  /** Many users in one statement (imports); all or none. */
  async createMany(inputs: readonly NewUser[]): Promise<User[]> {
    if (!inputs.length) return [];
    const rows = inputs.map((input) => ({ id: randomUUID(), ...toRow({ emailVerified: false, enabled: true, attributes: {}, ...input }) }));
    const created = await uniquely(`one of ${inputs.length} users`, () => this.#knex<Row>('users').insert(rows).returning('*'));
    return (created as Row[]).map(userFromRow);
  }

  /** Which of these usernames are taken, as their keys (`usernameKey`), in one query. */
  async takenUsernames(names: readonly string[]): Promise<Set<string>> {
    if (!names.length) return new Set();
    const rows = await this.#knex('users').whereIn('username_key', names.map(usernameKey)).select('username_key');
    return new Set(rows.map((r: { username_key: string }) => r.username_key));
  }

  /** Which of these emails are taken (lower-cased), in one query. */
  async takenEmails(emails: readonly string[]): Promise<Set<string>> {
    if (!emails.length) return new Set();
    const rows = await this.#knex('users').whereIn(this.#knex.raw('lower(email)') as never, emails.map((e) => e.toLowerCase())).select(this.#knex.raw('lower(email) as email'));
    return new Set(rows.map((r: { email: string }) => r.email));
  }

  async findById(id: string): Promise<User | null> {
    const { rows } = await this.#sql.run<Row>(USER_SQL.findById, [id]);
    return rows[0] ? userFromRow(rows[0]) : null;
  }

  /**
   * A local account for a password login, with its groups and password hash, in one statement:
   * by id, or by the identifier typed. An identifier with `@` is an email, anything else a
   * username. No username contains `@`, so one account's username can never shadow another
   * account's email.
   */
  async findLoginAccount(by: { id: string } | { login: string }): Promise<LoginAccount | null> {
    const [statement, value] = 'id' in by
      ? [USER_SQL.loginAccountById, by.id]
      : by.login.includes('@') ? [USER_SQL.loginAccountByEmail, by.login] : [USER_SQL.loginAccountByKey, usernameKey(by.login)];
    const { rows } = await this.#sql.run<Row & { groups: string[] | null; password_hash: string | null; password_changed_at: Date | null; policy_checked: string | null }>(statement, [value]);
    const row = rows[0];
    if (!row) return null;
    const passwordFacts = row.password_hash === null ? null : { changedAt: new Date(row.password_changed_at!).getTime(), policyChecked: row.policy_checked ?? null };
    return { user: userFromRow(row), groups: row.groups ?? [], passwordHash: row.password_hash, passwordFacts };
  }

  /** The user and the sorted names of all its groups, in one round trip (token hot path). */
  async findWithGroups(id: string): Promise<{ user: User; groups: string[] } | null> {
    const { rows } = await this.#sql.run<Row & { groups: string[] | null }>(USER_SQL.findWithGroups, [id]);
    return rows[0] ? { user: userFromRow(rows[0]), groups: rows[0].groups ?? [] } : null;
  }

  /** By the username's key: `Zoë`, `ZOË` and the decomposed `zoe\u0308` find the same user. */
  async findByUsername(username: string): Promise<User | null> {
    const row = await this.#knex<Row>('users').where({ username_key: usernameKey(username) }).first();
    return row ? userFromRow(row) : null;
  }

  async findByEmail(email: string): Promise<User | null> {
    const row = await this.#knex<Row>('users').whereRaw('lower(email) = lower(?)', [email]).first();
    return row ? userFromRow(row) : null;
  }

  async update(id: string, patch: UserPatch): Promise<User | null> {
    const row = toRow(patch);
    accountWrite(this.#knex, id);
    const [updated] = await uniquely(`user "${patch.username ?? patch.email ?? id}"`, () =>
      this.#knex<Row>('users').where({ id }).update({ ...row, updated_at: new Date() }).returning('*'),
    );
    // Again after the write: a read between the two may have kept the old row.
    accountWrite(this.#knex, id);
    return updated ? userFromRow(updated as Row) : null;
  }

  async delete(id: string): Promise<boolean> {
    accountWrite(this.#knex, id);
    const deleted = (await this.#knex('users').where({ id }).delete()) > 0;
    accountWrite(this.#knex, id);
    return deleted;
  }

  async list(options: { search?: string; limit?: number; offset?: number } = {}): Promise<{ items: User[]; total: number }> {
    const base = this.#knex<Row>('users');
    if (options.search) {
      const like = `%${options.search.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      base.where((q) => q.whereRaw('lower(username) LIKE ?', [like]).orWhereRaw('lower(email) LIKE ?', [like]).orWhereRaw('lower(name) LIKE ?', [like]));
    }
    const [{ n }] = await base.clone().count<{ n: string | number }[]>('* as n');
    const rows = await base.orderBy('username').limit(options.limit ?? 50).offset(options.offset ?? 0);
    return { items: rows.map(userFromRow), total: Number(n) };
  }

  /**
   * One page of users in username-key order (then id), after `after` (the last key of the
   * previous page). `q` is a case-insensitive prefix of the username key, the email or the name;
   * each has a text_pattern_ops index (migration 0007), so a prefix search stays fast on large
   * directories. `connector`: linked to an identity of that connector, or managed by it.
   */
  async search(options: UserSearch): Promise<User[]> {
    const k = this.#knex;
    const q = k<Row>('users as u').select('u.*');
    if (options.q) {
      const escape = (v: string) => v.replace(/[\\%_]/g, (c) => `\\${c}`);
      const key = `${escape(usernameKey(options.q))}%`;
      const lower = `${escape(options.q.trim().toLowerCase())}%`;
      q.where((w) => w.whereRaw('u.username_key LIKE ?', [key]).orWhereRaw('lower(u.email) LIKE ?', [lower]).orWhereRaw('lower(u.name) LIKE ?', [lower]));
    }
    if (options.enabled !== undefined) q.where('u.enabled', options.enabled);
    if (options.group !== undefined) {
      q.whereExists(k('memberships as m').join('groups as g', 'g.id', 'm.group_id').whereRaw('m.user_id = u.id').andWhere('g.name', options.group).select(k.raw('1')));
    }
    if (options.connector !== undefined) {
      const connector = options.connector;
      q.where((w) => w.where('u.managed_by', connector).orWhereExists(k('federated_identities as f').whereRaw('f.user_id = u.id').andWhere('f.connector_id', connector).select(k.raw('1'))));
    }
    if (options.after) q.whereRaw('(u.username_key, u.id) > (?, ?)', options.after);
    return (await q.orderBy([{ column: 'u.username_key' }, { column: 'u.id' }]).limit(options.limit)).map(userFromRow);
  }

  /** The user's groups, each with every source asserting the membership ('local', 'config', a connector id). */
  async memberships(userId: string): Promise<Array<{ name: string; sources: string[] }>> {
    const rows: Array<{ name: string; sources: string[] }> = await this.#knex('memberships as m')
      .join('groups as g', 'g.id', 'm.group_id')
      .where('m.user_id', userId)
      .groupBy('g.name')
      .orderBy('g.name')
      .select('g.name', this.#knex.raw('array_agg(m.source ORDER BY m.source) AS sources'));
    return rows.map((r) => ({ name: r.name, sources: r.sources }));
  }

  /** The row, locked until the enclosing transaction ends (read-check-write updates). */
  async findByIdForUpdate(id: string): Promise<User | null> {
    const row = await this.#knex<Row>('users').where({ id }).forUpdate().first();
    return row ? userFromRow(row) : null;
  }

  async count(): Promise<number> {
    const [{ n }] = await this.#knex('users').count<{ n: string | number }[]>('* as n');
    return Number(n);
  }
}
