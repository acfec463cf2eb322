import type { Knex } from 'knex';

/**
 * Named, expiring leases in the database: whoever holds an unexpired lease runs the job, others
 * skip it. A crashed holder's lease simply runs out.
 */
export class LeaseRepository {
  readonly #knex: Knex;

  constructor(knex: Knex) {
    this.#knex = knex;
  }

  /** Takes (or renews, for the same holder) the lease; false when someone else holds it. */
  async acquire(name: string, holder: string, ttlMs: number): Promise<boolean> {
    const now = new Date();
    const expiresAt = new Date(now.getTime() + ttlMs);
    const rows = await this.#knex('leases')
      .insert({ name, holder, expires_at: expiresAt })
      .onConflict('name')
      .merge({ holder, expires_at: expiresAt })
      .where((q) => q.where('leases.expires_at', '<', now).orWhere('leases.holder', holder))
      .returning('holder');
    return rows.length === 1 && (rows[0] as { holder: string }).holder === holder;
  }

  async release(name: string, holder: string): Promise<void> {
    await this.#knex('leases').where({ name, holder }).delete();
  }
}
