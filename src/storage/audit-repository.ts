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

// What an audit event carries often comes from the request (usernames, upstream errors,
// states). PostgreSQL refuses NUL and unpaired surrogates in text and jsonb, so a hostile
// value would make the write itself fail; such characters are replaced, and sizes are capped
// so one event cannot grow the log without bound.
const MAX_STRING = 1024;
const MAX_DEPTH = 6;
const MAX_ITEMS = 50;
const MAX_DETAILS_BYTES = 16 * 1024;

function storableText(value: string, max = MAX_STRING): string {
  const clean = value.toWellFormed().replaceAll('\0', '\uFFFD');
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

function storableValue(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return storableText(value);
  if (value === null || typeof value !== 'object') return typeof value === 'bigint' ? String(value) : value;
  if (depth >= MAX_DEPTH) return '[nested too deep]';
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.slice(0, MAX_ITEMS).map((v) => storableValue(v, depth + 1));
  return Object.fromEntries(Object.entries(value).slice(0, MAX_ITEMS).map(([k, v]) => [storableText(k, 200), storableValue(v, depth + 1)]));
}

/** The details as they can always be stored: clean text, bounded size. */
export function storableDetails(details: Record<string, unknown> | undefined): string {
  const json = JSON.stringify(storableValue(details ?? {}, 0));
  return json.length <= MAX_DETAILS_BYTES ? json : JSON.stringify({ truncated: true, bytes: json.length });
}

const optionalText = (value: string | null | undefined, max = MAX_STRING) => (value == null ? null : storableText(value, max));

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

/** Told about events once they are stored (committed, when recorded in a transaction). */
export type AuditListener = (events: readonly NewAuditEvent[]) => void;

/** Filters for `query`; every one optional. */
export interface AuditQuery {
  /** An exact type, or a prefix ending in `.*` (`login.*`). */
  type?: string;
  userId?: string;
  since?: Date;
  /** Only events after this id, oldest first (following the trail). */
  afterId?: string;
  /** At most this many: the newest ones, or the first ones after `afterId` (default 50). */
  limit?: number;
}

const EVENT_ID = /^\d{1,18}$/;

export class AuditRepository {
  readonly #knex: Knex;
  readonly #onRecord: AuditListener | undefined;

  constructor(knex: Knex, onRecord?: AuditListener) {
    this.#knex = knex;
    this.#onRecord = onRecord;
  }

  /** Events matching `filter`, oldest first. */
  async query(filter: AuditQuery = {}): Promise<AuditEvent[]> {
    const q = this.#knex<Row>('audit_events').limit(filter.limit ?? 50);
    if (filter.type?.endsWith('.*')) {
      const prefix = filter.type.slice(0, -1).replace(/[\\%_]/g, (c) => `\\${c}`);
      q.where('type', 'like', `${prefix}%`);
    } else if (filter.type) {
      q.where('type', filter.type);
    }
    if (filter.userId) q.where('user_id', filter.userId);
    if (filter.since) q.where('at', '>=', filter.since);
    if (filter.afterId !== undefined) {
      if (!EVENT_ID.test(filter.afterId)) throw new InvalidInput('afterId must be an audit event id');
      return (await q.where('id', '>', filter.afterId).orderBy('id', 'asc')).map(fromRow);
    }
    return (await q.orderBy('id', 'desc')).map(fromRow).reverse();
  }

  /** Tells the listener after the insert, and only once the surrounding transactions commit. */
  #notify(events: readonly NewAuditEvent[]): void {
    const listener = this.#onRecord;
    if (!listener) return;
    const pending: Promise<unknown>[] = [];
    for (let trx = this.#knex as Knex.Transaction | undefined; trx?.isTransaction; trx = (trx as { parentTransaction?: Knex.Transaction }).parentTransaction) {
      if (trx.executionPromise) pending.push(trx.executionPromise);
    }
    // An observer (metrics) must never fail the audit write it watches.
    const tell = () => {
      try {
        listener(events);
      } catch {
        // ignored: see above
      }
    };
    if (!pending.length) return tell();
    Promise.all(pending).then(tell, () => {});
  }

  async record(event: NewAuditEvent): Promise<void> {
    await this.recordMany([event]);
  }

  async recordMany(events: readonly NewAuditEvent[]): Promise<void> {
    if (!events.length) return;
    await this.#knex('audit_events').insert(events.map((event) => ({
      type: storableText(event.type, 200),
      outcome: event.outcome ?? 'success',
      user_id: optionalText(event.userId),
      client_id: optionalText(event.clientId),
      connector_id: optionalText(event.connectorId),
      ip: optionalText(event.ip, 100),
      details: storableDetails(event.details),
    })));
    this.#notify(events);
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
