import type { Knex } from 'knex';
import type { StoredClient } from './types.ts';
import { uniquely } from './unique-violation.ts';

interface Row {
  id: string;
  metadata: Record<string, unknown>;
  first_party: boolean;
  enabled: boolean;
  created_at: Date;
  updated_at: Date;
}

const fromRow = (r: Row): StoredClient => ({ id: r.id, metadata: r.metadata, firstParty: r.first_party, enabled: r.enabled, createdAt: r.created_at, updatedAt: r.updated_at });

/** Clients managed at runtime (config clients are static and never stored here). */
export class ClientRepository {
  readonly #knex: Knex;

  constructor(knex: Knex) {
    this.#knex = knex;
  }

  async find(id: string): Promise<StoredClient | null> {
    const row = await this.#knex<Row>('clients').where({ id }).first();
    return row ? fromRow(row) : null;
  }

  async list(): Promise<StoredClient[]> {
    return (await this.#knex<Row>('clients').orderBy('id')).map(fromRow);
  }

  async create(input: { id: string; metadata: Record<string, unknown>; firstParty?: boolean; enabled?: boolean }): Promise<StoredClient> {
    const [row] = await uniquely(`client "${input.id}"`, () =>
      this.#knex<Row>('clients')
        .insert({ id: input.id, metadata: JSON.stringify({ ...input.metadata, client_id: input.id }) as unknown as Record<string, unknown>, first_party: input.firstParty ?? false, enabled: input.enabled ?? true })
        .returning('*'),
    );
    return fromRow(row as Row);
  }

  async update(id: string, patch: { metadata?: Record<string, unknown>; firstParty?: boolean; enabled?: boolean }): Promise<StoredClient | null> {
    const update: Record<string, unknown> = { updated_at: new Date() };
    if (patch.metadata) update.metadata = JSON.stringify({ ...patch.metadata, client_id: id });
    if (patch.firstParty !== undefined) update.first_party = patch.firstParty;
    if (patch.enabled !== undefined) update.enabled = patch.enabled;
    const [row] = await this.#knex<Row>('clients').where({ id }).update(update).returning('*');
    return row ? fromRow(row as Row) : null;
  }

  async delete(id: string): Promise<boolean> {
    return (await this.#knex('clients').where({ id }).delete()) > 0;
  }
}
