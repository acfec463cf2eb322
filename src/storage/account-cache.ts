// The account behind a token (user row and group names) for userinfo, refresh and code exchange:
// one prepared statement, and the answer kept for ACCOUNT_TTL_MS. Every write through
// UserRepository or GroupRepository forgets the accounts it touches at once (this process), so
// the instance that disables, deletes or regroups a user never serves the old answer again;
// other instances see the change when their entry ages out, within ACCOUNT_TTL_MS (the 2 s that
// README promises for an admin change to reach every instance).
import type { Knex } from 'knex';
import type { User } from './types.ts';
import type { SqlStatements } from './pg-statements.ts';
import { USER_SQL, userFromRow, type UserRow } from './user-repository.ts';

export const ACCOUNT_TTL_MS = 2_000;
const MAX_ENTRIES = 10_000;

export interface Account {
  user: User;
  groups: string[];
}

export type AccountLookup = (userId: string) => Promise<Account | null>;

const entries = new Map<string, { value: Account; at: number }>();
// Bumped by every change: a read that began before a change does not store what it read.
let generation = 0;

/** Forgets one account (or all, e.g. when a group is deleted) in this process. */
export function accountChanged(userId?: string): void {
  generation++;
  if (userId === undefined) entries.clear();
  else entries.delete(userId);
}

/**
 * A write to one account (or all) through `knex`: forgotten now, and again when the enclosing
 * transaction ends, so a read between the write and the commit cannot keep the old answer.
 */
export function accountWrite(knex: Knex, userId?: string): void {
  accountChanged(userId);
  const trx = knex as Knex.Transaction & { executionPromise?: Promise<unknown> };
  if (trx.isTransaction) trx.executionPromise?.then(() => accountChanged(userId), () => accountChanged(userId));
}

export function createAccountLookup(sql: SqlStatements, ttlMs = ACCOUNT_TTL_MS): AccountLookup {
  return async function findAccountRow(userId) {
    const hit = entries.get(userId);
    if (hit && Date.now() - hit.at < ttlMs) return hit.value;
    const started = generation;
    const { rows } = await sql.run<UserRow & { groups: string[] | null }>(USER_SQL.findWithGroups, [userId]);
    const row = rows[0];
    // Misses are not kept: the user may be being created right now.
    if (!row) return null;
    const value = { user: userFromRow(row), groups: row.groups ?? [] };
    if (ttlMs > 0 && started === generation) {
      if (entries.size >= MAX_ENTRIES) entries.delete(entries.keys().next().value!);
      entries.set(userId, { value, at: Date.now() });
    }
    return value;
  };
}
