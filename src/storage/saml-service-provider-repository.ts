// SAML service providers registered at runtime (the CLI, later the admin API). Each row's
// settings have the shape of one config `samlIdp.serviceProviders[]` entry and are validated with
// the same schema when used; config entries win over a row with the same entity ID.
import type { Knex } from 'knex';
import { uniquely } from './unique-violation.ts';

export interface StoredServiceProvider {
  entityId: string;
  settings: Record<string, unknown>;
  enabled: boolean;
  createdAt: Date;
  updatedAt: Date;
}

interface Row {
  entity_id: string;
  settings: Record<string, unknown>;
  enabled: boolean;
  created_at: Date;
  updated_at: Date;
}

const fromRow = (r: Row): StoredServiceProvider => ({ entityId: r.entity_id, settings: r.settings ?? {}, enabled: r.enabled, createdAt: r.created_at, updatedAt: r.updated_at });

export class SamlServiceProviderRepository {
  readonly #knex: Knex;

  constructor(knex: Knex) {
    this.#knex = knex;
  }

  async find(entityId: string): Promise<StoredServiceProvider | null> {
    const row = await this.#knex<Row>('saml_service_providers').where({ entity_id: entityId }).first();
    return row ? fromRow(row) : null;
  }

  async list(): Promise<StoredServiceProvider[]> {
    return (await this.#knex<Row>('saml_service_providers').orderBy('entity_id')).map(fromRow);
  }

  /** By entity ID in byte order (collation "C", the order JavaScript compares in), after `afterEntityId`. */
  async page(options: { afterEntityId?: string; limit: number }): Promise<StoredServiceProvider[]> {
    const query = this.#knex<Row>('saml_service_providers').orderByRaw('entity_id COLLATE "C"').limit(options.limit);
    if (options.afterEntityId !== undefined) query.whereRaw('entity_id COLLATE "C" > ?', [options.afterEntityId]);
    return (await query).map(fromRow);
  }

  /** The row, locked for update until the transaction ends (read-check-write of the admin API). */
  async lock(entityId: string): Promise<StoredServiceProvider | null> {
    const row = await this.#knex<Row>('saml_service_providers').where({ entity_id: entityId }).forUpdate().first();
    return row ? fromRow(row) : null;
  }

  async create(input: { entityId: string; settings: Record<string, unknown>; enabled?: boolean }): Promise<StoredServiceProvider> {
    const [row] = await uniquely(`SAML service provider "${input.entityId}"`, () =>
      this.#knex<Row>('saml_service_providers')
        .insert({ entity_id: input.entityId, settings: JSON.stringify({ ...input.settings, entityId: input.entityId }) as unknown as Record<string, unknown>, enabled: input.enabled ?? true })
        .returning('*'),
    );
    return fromRow(row as Row);
  }

  async update(entityId: string, patch: { settings?: Record<string, unknown>; enabled?: boolean }): Promise<StoredServiceProvider | null> {
    const changes: Partial<Row> = { updated_at: new Date() };
    if (patch.settings) changes.settings = JSON.stringify({ ...patch.settings, entityId }) as unknown as Record<string, unknown>;
    if (patch.enabled !== undefined) changes.enabled = patch.enabled;
    const [row] = await this.#knex<Row>('saml_service_providers').where({ entity_id: entityId }).update(changes).returning('*');
    return row ? fromRow(row as Row) : null;
  }

  async delete(entityId: string): Promise<boolean> {
    return (await this.#knex('saml_service_providers').where({ entity_id: entityId }).delete()) > 0;
  }
}
