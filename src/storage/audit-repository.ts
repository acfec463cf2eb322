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

const INSERT_ONE = 'INSERT INTO audit_events (type, outcome, user_id, client_id, connector_id, ip, details) VALUES (?, ?, ?, ?, ?, ?, ?)';

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

/** Filters of the admin API's audit search; newest first, below `beforeId`. */
export interface AuditSearch {
  /** An exact type, or a prefix ending in `.*` (`login.*`). */
  type?: string;
  outcome?: 'success' | 'failure';
  userId?: string;
  /** The `username` an event's details carry (what was typed at a failed password login, which names no user id). */
  username?: string;
  /** Who made an admin change: the `details.actor`'s username, user id or client id. */
  actor?: string;
  clientId?: string;
  connectorId?: string;
  ip?: string;
  since?: Date;
  /** Exclusive. */
  until?: Date;
  beforeId?: string;
  limit: number;
}

/** Login counts per time bucket, connector and outcome (from the login.* events). */
export interface LoginCount {
  bucket: Date;
  connectorId: string | null;
  outcome: 'success' | 'failure';
  count: number;
}

/** The audit event types of a login attempt's end (one per attempt). */
export const LOGIN_EVENT_TYPES = ['login.success', 'login.failure', 'login.error', 'login.rejected', 'login.throttled'] as const;

const EVENT_ID = /^\d{1,18}$/;

function whereType(q: Knex.QueryBuilder, type: string | undefined): void {
  if (type?.endsWith('.*')) {
    const prefix = type.slice(0, -1).replace(/[\\%_]/g, (c) => `\\${c}`);
    q.where('type', 'like', `${prefix}%`);
  } else if (type) {
    q.where('type', type);
  }
}

/** What `latestLoginOutcomes` finds for one connector. */
export interface ConnectorLoginOutcomes {
  successAt: Date | null;
  error: { at: Date; details: Record<string, unknown> } | null;
  upstreamFailure: { at: Date; details: Record<string, unknown> } | null;
}

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
    whereType(q, filter.type);
    if (filter.userId) q.where('user_id', filter.userId);
    if (filter.since) q.where('at', '>=', filter.since);
    if (filter.afterId !== undefined) {
      if (!EVENT_ID.test(filter.afterId)) throw new InvalidInput('afterId must be an audit event id');
      return (await q.where('id', '>', filter.afterId).orderBy('id', 'asc')).map(fromRow);
    }
    return (await q.orderBy('id', 'desc')).map(fromRow).reverse();
  }

  /** Events matching every given filter, newest first, below `beforeId` (the admin API's pages). */
  async search(filter: AuditSearch): Promise<AuditEvent[]> {
    const q = this.#knex<Row>('audit_events').orderBy('id', 'desc').limit(filter.limit);
    whereType(q, filter.type);
    if (filter.outcome) q.where('outcome', filter.outcome);
    if (filter.userId) q.where('user_id', filter.userId);
    if (filter.username) q.whereRaw("details->>'username' = ?", [filter.username]);
    if (filter.actor) q.whereRaw("(details->'actor'->>'username' = ? OR details->'actor'->>'userId' = ? OR details->'actor'->>'clientId' = ?)", [filter.actor, filter.actor, filter.actor]);
    if (filter.clientId) q.where('client_id', filter.clientId);
    if (filter.connectorId) q.where('connector_id', filter.connectorId);
    if (filter.ip) q.where('ip', filter.ip);
    if (filter.since) q.where('at', '>=', filter.since);
    if (filter.until) q.where('at', '<', filter.until);
    if (filter.beforeId !== undefined) {
      if (!EVENT_ID.test(filter.beforeId)) throw new InvalidInput('beforeId must be an audit event id');
      q.where('id', '<', filter.beforeId);
    }
    return (await q).map(fromRow);
  }

  /**
   * For each connector id, in one round trip: its newest login.success, its newest login.error,
   * and the newest upstream_error among its last `failureWindow` login.failure events (the
   * connector status of the admin API). Each is one probe of (connector_id, type, id).
   */
  async latestLoginOutcomes(connectorIds: readonly string[], failureWindow = 20): Promise<Map<string, ConnectorLoginOutcomes>> {
    const result = new Map<string, ConnectorLoginOutcomes>();
    const ids = [...new Set(connectorIds)];
    if (!ids.length) return result;
    const { rows } = (await this.#knex.raw(
      `SELECT c.id, s.at AS success_at, e.at AS error_at, e.details AS error_details, f.at AS failure_at, f.details AS failure_details
         FROM unnest(ARRAY[${ids.map(() => '?').join(', ')}]::text[]) AS c(id)
         LEFT JOIN LATERAL (SELECT at FROM audit_events WHERE connector_id = c.id AND type = 'login.success' ORDER BY id DESC LIMIT 1) s ON true
         LEFT JOIN LATERAL (SELECT at, details FROM audit_events WHERE connector_id = c.id AND type = 'login.error' ORDER BY id DESC LIMIT 1) e ON true
         LEFT JOIN LATERAL (
           SELECT at, details FROM (SELECT id, at, details FROM audit_events WHERE connector_id = c.id AND type = 'login.failure' ORDER BY id DESC LIMIT ?) recent
            WHERE details->>'reason' = 'upstream_error' ORDER BY id DESC LIMIT 1
         ) f ON true`,
      [...ids, failureWindow],
    )) as { rows: Array<{ id: string; success_at: Date | null; error_at: Date | null; error_details: Record<string, unknown> | null; failure_at: Date | null; failure_details: Record<string, unknown> | null }> };
    for (const r of rows) {
      result.set(r.id, {
        successAt: r.success_at ? new Date(r.success_at) : null,
        error: r.error_at ? { at: new Date(r.error_at), details: r.error_details ?? {} } : null,
        upstreamFailure: r.failure_at ? { at: new Date(r.failure_at), details: r.failure_details ?? {} } : null,
      });
    }
    return result;
  }

  /** Login attempts per bucket (`hour` or `day`, UTC), connector and outcome, in [from, to). */
  async loginCounts(from: Date, to: Date, bucket: 'hour' | 'day'): Promise<LoginCount[]> {
    const { rows } = (await this.#knex.raw(
      `SELECT to_char(date_trunc(?, at AT TIME ZONE 'UTC'), 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS bucket, connector_id, outcome, count(*)::int AS count
         FROM audit_events WHERE type IN (${LOGIN_EVENT_TYPES.map(() => '?').join(', ')}) AND at >= ? AND at < ?
         GROUP BY 1, 2, 3 ORDER BY 1, 2 NULLS FIRST, 3`,
      [bucket, ...LOGIN_EVENT_TYPES, from, to],
    )) as { rows: Array<{ bucket: string; connector_id: string | null; outcome: 'success' | 'failure'; count: number }> };
    // Buckets are UTC wall times written out with their zone, whatever the session's time zone.
    return rows.map((r) => ({ bucket: new Date(r.bucket), connectorId: r.connector_id, outcome: r.outcome, count: Number(r.count) }));
  }

  /** Failed logins since `since` by reason (the event's `reason`, else its type), most frequent first. */
  async loginFailureReasons(since: Date, limit: number): Promise<Array<{ reason: string; count: number }>> {
    const { rows } = (await this.#knex.raw(
      `SELECT coalesce(details->>'reason', type) AS reason, count(*)::int AS count FROM audit_events
         WHERE type IN (${LOGIN_EVENT_TYPES.map(() => '?').join(', ')}) AND outcome = 'failure' AND at >= ?
         GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?`,
      [...LOGIN_EVENT_TYPES, since, limit],
    )) as { rows: Array<{ reason: string; count: number }> };
    return rows.map((r) => ({ reason: r.reason, count: Number(r.count) }));
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
    const rows = events.map((event) => ({
      type: storableText(event.type, 200),
      outcome: event.outcome ?? 'success',
      user_id: optionalText(event.userId),
      client_id: optionalText(event.clientId),
      connector_id: optionalText(event.connectorId),
      ip: optionalText(event.ip, 100),
      details: storableDetails(event.details),
    }));
    if (rows.length === 1) {
      // One event (every login's): a statement PostgreSQL prepares once per connection, on knex's
      // own (synchronously committing) pool or transaction, without knex's query building.
      const r = rows[0]!;
      await this.#knex.raw(INSERT_ONE, [r.type, r.outcome, r.user_id, r.client_id, r.connector_id, r.ip, r.details]).options({ name: 'kb_audit_insert' });
    } else {
      await this.#knex('audit_events').insert(rows);
    }
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
