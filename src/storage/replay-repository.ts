// One-time use of message ids across every instance: the first insert of a key wins; a later
// one (a replayed SAML assertion, here or on another instance) finds it taken until it expires.
import type { Knex } from 'knex';

export class ReplayRepository {
  readonly #knex: Knex;

  constructor(knex: Knex) {
    this.#knex = knex;
  }

  /** Records `key` as used until `expiresAt`; false when it was already used and has not expired. */
  async firstUse(key: string, expiresAt: Date, now = new Date()): Promise<boolean> {
    const rows = await this.#knex('replay_guard')
      .insert({ key, expires_at: expiresAt })
      .onConflict('key')
      .merge({ expires_at: expiresAt })
      // An expired record no longer guards anything: it may be taken again.
      .where('replay_guard.expires_at', '<=', now)
      .returning('key');
    return rows.length === 1;
  }

  async deleteExpired(now = new Date()): Promise<number> {
    return this.#knex('replay_guard').where('expires_at', '<=', now).delete();
  }
}
