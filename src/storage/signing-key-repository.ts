import type { Knex } from 'knex';
import type { SigningKey } from './types.ts';
import { uniquely } from './unique-violation.ts';
import { inTransaction } from './in-transaction.ts';

interface Row {
  kid: string;
  alg: string;
  private_jwk: Record<string, unknown>;
  status: 'active' | 'retired';
  created_at: Date;
  retired_at: Date | null;
  remove_after: Date | null;
}

const fromRow = (r: Row): SigningKey => ({
  kid: r.kid,
  alg: r.alg,
  privateJwk: r.private_jwk,
  status: r.status,
  createdAt: r.created_at,
  retiredAt: r.retired_at,
  removeAfter: r.remove_after,
});

export class SigningKeyRepository {
  readonly #knex: Knex;

  constructor(knex: Knex) {
    this.#knex = knex;
  }

  #publishable(now: Date) {
    return this.#knex<Row>('signing_keys').where((q) => q.where('status', 'active').orWhere('remove_after', '>', now));
  }

  /** Active keys (newest first), then retired keys still within their grace period. */
  async listPublishable(now = new Date()): Promise<SigningKey[]> {
    const rows = await this.#publishable(now).orderByRaw("CASE WHEN status = 'active' THEN 0 ELSE 1 END, created_at DESC, kid");
    return rows.map(fromRow);
  }

  async insert(key: { kid: string; alg: string; privateJwk: Record<string, unknown> }): Promise<void> {
    await uniquely(`signing key "${key.kid}"`, () =>
      this.#knex('signing_keys').insert({ kid: key.kid, alg: key.alg, private_jwk: JSON.stringify(key.privateJwk), status: 'active' }),
    );
  }

  /** Retires every active key (published until removeAfter) and activates the new ones, atomically. */
  async rotate(fresh: Array<{ kid: string; alg: string; privateJwk: Record<string, unknown> }>, removeAfter: Date): Promise<void> {
    const run = async (trx: Knex) => {
      await trx('signing_keys').where('status', 'active').update({ status: 'retired', retired_at: new Date(), remove_after: removeAfter });
      const repo = new SigningKeyRepository(trx);
      for (const key of fresh) await repo.insert(key);
    };
    await inTransaction(this.#knex, run);
  }

  async purgeExpired(now = new Date()): Promise<number> {
    return this.#knex('signing_keys').where('status', 'retired').andWhere('remove_after', '<=', now).delete();
  }

  /** Changes whenever the publishable set changes; instances poll it to notice rotations. */
  async fingerprint(now = new Date()): Promise<string> {
    const rows = await this.#publishable(now).orderBy('kid').select('kid', 'status');
    return rows.map((r) => `${r.kid}:${r.status}`).join(',');
  }
}
