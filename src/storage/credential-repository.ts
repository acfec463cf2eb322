import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { NotFound } from '../errors.ts';

export interface CredentialInfo {
  id: string;
  type: string;
  data: Record<string, unknown>;
  createdAt: Date;
  updatedAt: Date;
}

export class CredentialRepository {
  readonly #knex: Knex;

  constructor(knex: Knex) {
    this.#knex = knex;
  }

  /**
   * The one password credential of a user, replaced if present; stamps when it changed (expiry)
   * and forgets that the old one met the password policy.
   */
  async setPassword(userId: string, hash: string): Promise<void> {
    await this.#knex.raw<unknown>(
      `INSERT INTO credentials (id, user_id, type, secret) VALUES (?, ?, 'password', ?)
       ON CONFLICT (user_id) WHERE type = 'password' DO UPDATE SET secret = EXCLUDED.secret, updated_at = now(), password_changed_at = now(), policy_checked = NULL`,
      [randomUUID(), userId, hash],
    ).catch((err: { code?: string }) => {
      if (err.code === '23503') throw new NotFound(`user ${userId}`, { cause: err });
      throw err;
    });
  }

  async getPasswordHash(userId: string): Promise<string | null> {
    const row = await this.#knex('credentials').where({ user_id: userId, type: 'password' }).first('secret');
    return row?.secret ?? null;
  }

  /** Which of these users have a password, in one query (listings). */
  async withPassword(userIds: readonly string[]): Promise<Set<string>> {
    if (!userIds.length) return new Set();
    const rows = await this.#knex('credentials').where({ type: 'password' }).whereIn('user_id', [...userIds]).select('user_id');
    return new Set(rows.map((r: { user_id: string }) => r.user_id));
  }

  /** Credential metadata only: secrets never leave through a listing. */
  async list(userId: string): Promise<CredentialInfo[]> {
    const rows = await this.#knex('credentials').where({ user_id: userId }).orderBy('created_at').select('id', 'type', 'data', 'created_at', 'updated_at');
    return rows.map((r) => ({ id: r.id, type: r.type, data: r.data ?? {}, createdAt: r.created_at, updatedAt: r.updated_at }));
  }

  async remove(userId: string, type: string): Promise<number> {
    return this.#knex('credentials').where({ user_id: userId, type }).delete();
  }
}
