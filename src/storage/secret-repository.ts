import type { Knex } from 'knex';

/** Server-wide secrets (cookie keys, CSRF key) shared by every instance. */
export class SecretRepository {
  readonly #knex: Knex;

  constructor(knex: Knex) {
    this.#knex = knex;
  }

  async get<T>(name: string): Promise<T | null> {
    const row = await this.#knex('server_secrets').where({ name }).first('value');
    return row ? (row.value as T) : null;
  }

  /** The stored value, or `make()`'s if none: the first writer wins, so instances agree. */
  async getOrCreate<T>(name: string, make: () => T): Promise<T> {
    const existing = await this.get<T>(name);
    if (existing !== null) return existing;
    await this.#knex('server_secrets').insert({ name, value: JSON.stringify(make()) }).onConflict('name').ignore();
    return (await this.get<T>(name)) as T;
  }
}
