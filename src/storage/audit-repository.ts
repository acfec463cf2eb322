import type { Knex } from 'knex';
import type { AuditEvent, NewAuditEvent } from './types.ts';
import { InvalidInput } from '../errors.ts';

interface Row {
  id: string | number;
  at: Date;
  type: string;
  outcome: 'success' | 'failure';
  user_id: string | null;
  client_id: string | null;
  connector_id: string | null;
  ip: string | null;
  details: Record<string, unknown>;
}

const fromRow = (r: Row): AuditEvent => ({
  id: String(r.id),
  at: r.at,
  type: r.type,
  outcome: r.outcome,
  userId: r.user_id,
  clientId: r.client_id,
  connectorId: r.connector_id,
  ip: r.ip,
  details: r.details ?? {},
});

export class AuditRepository {
  readonly #knex: Knex;

  constructor(knex: Knex) {
    this.#knex = knex;
  }

  async record(event: NewAuditEvent): Promise<void> {
    await this.recordMany([event]);
  }

  async recordMany(events: readonly NewAuditEvent[]): Promise<void> {
    if (!events.length) return;
    await this.#knex('audit_events').insert(events.map((event) => ({
      type: event.type,
      outcome: event.outcome ?? 'success',
      user_id: event.userId ?? null,
      client_id: event.clientId ?? null,
      connector_id: event.connectorId ?? null,
      ip: event.ip ?? null,
      details: JSON.stringify(event.details ?? {}),
    })));
  }

  async list(options: { type?: string; userId?: string; limit?: number; beforeId?: string } = {}): Promise<AuditEvent[]> {
    const q = this.#knex<Row>('audit_events').orderBy('id', 'desc').limit(options.limit ?? 100);
    if (options.type) q.where('type', options.type);
    if (options.userId) q.where('user_id', options.userId);
    if (options.beforeId !== undefined) {
      if (!/^\d{1,18}$/.test(options.beforeId)) throw new InvalidInput('beforeId must be an audit event id');
      q.where('id', '<', options.beforeId);
    }
    return (await q).map(fromRow);
  }
}
