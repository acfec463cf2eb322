// Single-use, expiring tokens behind the links in mails (migration 0015). Only the token's
// SHA-256 is stored. A token is consumed by one UPDATE ... WHERE unused AND unexpired RETURNING,
// so of two clicks (or two instances) exactly one wins.
import type { Knex } from 'knex';

export type ActionPurpose = 'register' | 'verify_email' | 'reset_password' | 'change_email';

export interface ActionToken {
  tokenHash: string;
  purpose: ActionPurpose;
  userId: string | null;
  email: string | null;
  data: Record<string, unknown>;
  expiresAt: Date;
  usedAt: Date | null;
  createdAt: Date;
}

interface Row {
  token_hash: string;
  purpose: ActionPurpose;
  user_id: string | null;
  email: string | null;
  data: Record<string, unknown> | string;
  expires_at: Date;
  used_at: Date | null;
  created_at: Date;
}

const fromRow = (r: Row): ActionToken => ({
  tokenHash: r.token_hash,
  purpose: r.purpose,
  userId: r.user_id,
  email: r.email,
  data: typeof r.data === 'string' ? (JSON.parse(r.data) as Record<string, unknown>) : (r.data ?? {}),
  expiresAt: new Date(r.expires_at),
  usedAt: r.used_at ? new Date(r.used_at) : null,
  createdAt: new Date(r.created_at),
});

export class ActionTokenRepository {
  readonly #knex: Knex;

  constructor(knex: Knex) {
    this.#knex = knex;
  }

  async insert(token: { tokenHash: string; purpose: ActionPurpose; userId?: string | null; email?: string | null; data?: Record<string, unknown>; expiresAt: Date }): Promise<void> {
    await this.#knex('action_tokens').insert({
      token_hash: token.tokenHash,
      purpose: token.purpose,
      user_id: token.userId ?? null,
      email: token.email ?? null,
      data: JSON.stringify(token.data ?? {}),
      expires_at: token.expiresAt,
    });
  }

  /** The token if it is one of `purposes`, unused and unexpired (a look: nothing is consumed). */
  async findUsable(tokenHash: string, purposes: readonly ActionPurpose[]): Promise<ActionToken | null> {
    const row = await this.#knex<Row>('action_tokens')
      .where({ token_hash: tokenHash })
      .whereIn('purpose', [...purposes])
      .whereNull('used_at')
      .andWhere('expires_at', '>', this.#knex.fn.now())
      .first();
    return row ? fromRow(row) : null;
  }

  /** Any token by its hash, used or not (to say why a link no longer works). */
  async find(tokenHash: string): Promise<ActionToken | null> {
    const row = await this.#knex<Row>('action_tokens').where({ token_hash: tokenHash }).first();
    return row ? fromRow(row) : null;
  }

  /** Uses the token up, atomically: null when it is unknown, used, expired or of another purpose. */
  async consume(tokenHash: string, purposes: readonly ActionPurpose[]): Promise<ActionToken | null> {
    const rows = (await this.#knex<Row>('action_tokens')
      .where({ token_hash: tokenHash })
      .whereIn('purpose', [...purposes])
      .whereNull('used_at')
      .andWhere('expires_at', '>', this.#knex.fn.now())
      .update({ used_at: this.#knex.fn.now() })
      .returning('*')) as Row[];
    return rows[0] ? fromRow(rows[0]) : null;
  }

  /** Ends every unused token of a user for `purpose` (a completed reset voids the other reset links). */
  async revokeForUser(userId: string, purpose: ActionPurpose): Promise<number> {
    return this.#knex('action_tokens').where({ user_id: userId, purpose }).whereNull('used_at').update({ used_at: this.#knex.fn.now() });
  }

  /** Deletes tokens expired for more than a day (kept that long to say "this link expired"). */
  async deleteExpired(): Promise<number> {
    return this.#knex('action_tokens').where('expires_at', '<', new Date(Date.now() - 86400_000)).delete();
  }
}
