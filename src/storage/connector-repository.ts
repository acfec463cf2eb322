import type { Knex } from 'knex';
import { uniquely } from './unique-violation.ts';

/** A connector stored in the database (managed at runtime); `secrets` is a sealed blob. */
export interface StoredConnector {
  id: string;
  type: string;
  name: string;
  enabled: boolean;
  /** The config without its secret fields. */
  config: Record<string, unknown>;
  /** The secret fields, sealed with the token cipher (null: none). */
  secrets: string | null;
  /** linking, storeTokens, mappers, trustUpstreamMfa, upstreamMfa (null: the defaults). */
  policy: Record<string, unknown> | null;
  position: number;
  createdAt: Date;
  updatedAt: Date;
}

export type ConnectorSyncState = 'running' | 'succeeded' | 'failed';

export interface ConnectorSync {
  id: string;
  connectorId: string;
  state: ConnectorSyncState;
  progress: Record<string, unknown>;
  error: string | null;
  startedAt: Date;
  updatedAt: Date;
  finishedAt: Date | null;
}

interface Row {
  id: string;
  type: string;
  name: string;
  enabled: boolean;
  config: Record<string, unknown> | string;
  secrets: string | null;
  policy: Record<string, unknown> | string | null;
  position: number;
  created_at: Date | string;
  updated_at: Date | string;
}

const json = <T>(v: T | string): T => (typeof v === 'string' ? (JSON.parse(v) as T) : v);
const date = (v: Date | string) => (v instanceof Date ? v : new Date(v));

function fromRow(r: Row): StoredConnector {
  return {
    id: r.id,
    type: r.type,
    name: r.name,
    enabled: r.enabled,
    config: json(r.config) ?? {},
    secrets: r.secrets,
    policy: r.policy === null ? null : json(r.policy),
    position: r.position,
    createdAt: date(r.created_at),
    updatedAt: date(r.updated_at),
  };
}

function syncFromRow(r: Record<string, any>): ConnectorSync {
  return {
    id: r.id,
    connectorId: r.connector_id,
    state: r.state,
    progress: json(r.progress) ?? {},
    error: r.error ?? null,
    startedAt: date(r.started_at),
    updatedAt: date(r.updated_at),
    finishedAt: r.finished_at ? date(r.finished_at) : null,
  };
}

export class ConnectorRepository {
  readonly #knex: Knex;

  constructor(knex: Knex) {
    this.#knex = knex;
  }

  async list(): Promise<StoredConnector[]> {
    const rows = await this.#knex('connectors').select('*').orderBy([{ column: 'position' }, { column: 'id' }]);
    return rows.map(fromRow);
  }

  /** `forUpdate`: locks the row until the transaction ends (two admins updating one connector). */
  async find(id: string, options: { forUpdate?: boolean } = {}): Promise<StoredConnector | null> {
    const q = this.#knex('connectors').where({ id }).first();
    const row = (await (options.forUpdate ? q.forUpdate() : q)) as Row | undefined;
    return row ? fromRow(row) : null;
  }

  async insert(c: Omit<StoredConnector, 'createdAt' | 'updatedAt'>): Promise<StoredConnector> {
    const [row] = await uniquely(`connector "${c.id}"`, () =>
      this.#knex('connectors')
        .insert({ id: c.id, type: c.type, name: c.name, enabled: c.enabled, config: JSON.stringify(c.config), secrets: c.secrets, policy: c.policy === null ? null : JSON.stringify(c.policy), position: c.position })
        .returning('*'),
    );
    return fromRow(row as Row);
  }

  /** Changes the given fields and stamps updated_at (what instances watch to reload); null when gone. */
  async update(id: string, fields: Partial<Pick<StoredConnector, 'name' | 'enabled' | 'config' | 'secrets' | 'policy' | 'position'>>): Promise<StoredConnector | null> {
    const patch: Record<string, unknown> = { updated_at: this.#knex.fn.now() };
    if (fields.name !== undefined) patch.name = fields.name;
    if (fields.enabled !== undefined) patch.enabled = fields.enabled;
    if (fields.config !== undefined) patch.config = JSON.stringify(fields.config);
    if (fields.secrets !== undefined) patch.secrets = fields.secrets;
    if (fields.policy !== undefined) patch.policy = fields.policy === null ? null : JSON.stringify(fields.policy);
    if (fields.position !== undefined) patch.position = fields.position;
    const [row] = await this.#knex('connectors').where({ id }).update(patch).returning('*');
    return row ? fromRow(row as Row) : null;
  }

  async delete(id: string): Promise<boolean> {
    return (await this.#knex('connectors').where({ id }).delete()) > 0;
  }

  /**
   * A fingerprint of the whole table (row count and a digest of every id with its updated_at to
   * the microsecond): any insert, update or delete changes it, including a write whose
   * transaction started before a newer one committed (which a max(updated_at) would miss).
   * Instances poll it to reload connectors; the table holds tens of rows.
   */
  async changeStamp(): Promise<string> {
    const result = await this.#knex.raw(
      "SELECT count(*)::int AS n, md5(coalesce(string_agg(id || '@' || (extract(epoch FROM updated_at) * 1000000)::bigint::text, ',' ORDER BY id), '')) AS digest FROM connectors",
    );
    const row = (result.rows ?? result)[0] as { n: number; digest: string };
    return `${row.n}:${row.digest}`;
  }

  async startSync(id: string, connectorId: string, progress: Record<string, unknown>): Promise<ConnectorSync> {
    const [row] = await this.#knex('connector_syncs').insert({ id, connector_id: connectorId, state: 'running', progress: JSON.stringify(progress) }).returning('*');
    return syncFromRow(row);
  }

  async updateSync(id: string, fields: { state?: ConnectorSyncState; progress?: Record<string, unknown>; error?: string | null; finished?: boolean }): Promise<void> {
    const patch: Record<string, unknown> = { updated_at: this.#knex.fn.now() };
    if (fields.state) patch.state = fields.state;
    if (fields.progress) patch.progress = JSON.stringify(fields.progress);
    if (fields.error !== undefined) patch.error = fields.error;
    if (fields.finished) patch.finished_at = this.#knex.fn.now();
    await this.#knex('connector_syncs').where({ id }).update(patch);
  }

  /** The connector's most recent recorded import (admin API or schedule), or null. */
  async latestSync(connectorId: string): Promise<ConnectorSync | null> {
    const row = await this.#knex('connector_syncs').where({ connector_id: connectorId }).orderBy([{ column: 'started_at', order: 'desc' }, { column: 'id', order: 'desc' }]).first();
    return row ? syncFromRow(row) : null;
  }

  async findSync(id: string): Promise<ConnectorSync | null> {
    const row = await this.#knex('connector_syncs').where({ id }).first();
    return row ? syncFromRow(row) : null;
  }
}
