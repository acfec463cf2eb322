// What the password policy keeps beside the password credential itself: the recent hashes
// (no reuse of the last N), when the password last changed (expiry), and why a user must
// choose a new one (the update_password required action's reason).
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { NotFound } from '../errors.ts';

/** Why update_password was asked; null: an administrator asked (required actions API). */
export type PasswordChangeReason = 'temporary' | 'expired' | 'policy';

export class PasswordRepository {
  readonly #knex: Knex;

  constructor(knex: Knex) {
    this.#knex = knex;
  }

  /** The newest `limit` hashes of the user's password history, newest first. */
  async recentHashes(userId: string, limit: number): Promise<string[]> {
    if (limit <= 0) return [];
    const rows = await this.#knex('password_history').where({ user_id: userId }).orderBy([{ column: 'created_at', order: 'desc' }, { column: 'id', order: 'desc' }]).limit(limit).select('hash');
    return rows.map((r: { hash: string }) => r.hash);
  }

  /**
   * Adds a hash to the user's history and keeps only the newest `keep` (0: none kept). Call in
   * the transaction that sets the password, so history and credential never disagree.
   */
  async remember(userId: string, hash: string, keep: number): Promise<void> {
    if (keep > 0) {
      // clock_timestamp(): two passwords set in one transaction still have an order.
      await this.#knex
        .raw('INSERT INTO password_history (id, user_id, hash, created_at) VALUES (?, ?, ?, clock_timestamp())', [randomUUID(), userId, hash])
        .catch((err: { code?: string }) => {
          if (err.code === '23503') throw new NotFound(`user ${userId}`, { cause: err });
          throw err;
        });
    }
    await this.#knex.raw(
      `DELETE FROM password_history WHERE user_id = ? AND id NOT IN (
         SELECT id FROM password_history WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT ?)`,
      [userId, userId, keep],
    );
  }

  /** When the user's password was last set, or null without a password. */
  async changedAt(userId: string): Promise<Date | null> {
    return (await this.loginFacts(userId))?.changedAt ?? null;
  }

  /** What a login asks of the stored password in one read: when it was set, and which policy stamp it met. */
  async loginFacts(userId: string): Promise<{ changedAt: Date; policyChecked: string | null } | null> {
    const row = await this.#knex('credentials').where({ user_id: userId, type: 'password' }).first('password_changed_at', 'policy_checked');
    return row ? { changedAt: new Date(row.password_changed_at), policyChecked: row.policy_checked ?? null } : null;
  }

  /** The stored password meets the policy rules with this stamp. */
  async markChecked(userId: string, stamp: string): Promise<void> {
    await this.#knex('credentials').where({ user_id: userId, type: 'password' }).update({ policy_checked: stamp });
  }

  /** Asks for update_password at the next login (kept until a new password is set), with why. */
  async requireChange(userId: string, reason: PasswordChangeReason | null): Promise<void> {
    await this.#knex.raw(
      `INSERT INTO required_actions (user_id, action, reason) VALUES (?, 'update_password', ?)
       ON CONFLICT (user_id, action) DO UPDATE SET reason = EXCLUDED.reason`,
      [userId, reason],
    );
  }

  /** Why update_password is asked of the user: undefined when it is not, null when an administrator asked. */
  async changeReason(userId: string): Promise<PasswordChangeReason | null | undefined> {
    const row = await this.#knex('required_actions').where({ user_id: userId, action: 'update_password' }).first('reason');
    return row ? (row.reason ?? null) : undefined;
  }

}
