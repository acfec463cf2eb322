// The audit trail as administrators read it: filtered pages newest first, and exports of
// everything a filter matches as JSON lines or CSV, read page by page so an export of a large
// trail never holds more than one page in memory.
import type { Store } from '../storage/store.ts';
import type { AuditSearch } from '../storage/audit-repository.ts';
import type { AuditEvent } from '../storage/types.ts';

export type AuditFilter = Omit<AuditSearch, 'beforeId' | 'limit'>;

export interface AuditEventView {
  id: string;
  at: string;
  type: string;
  outcome: 'success' | 'failure';
  userId: string | null;
  clientId: string | null;
  connectorId: string | null;
  ip: string | null;
  details: Record<string, unknown>;
}

const EXPORT_PAGE = 500;
export const CSV_COLUMNS = ['id', 'at', 'type', 'outcome', 'userId', 'clientId', 'connectorId', 'ip', 'details'] as const;

export function auditEventView(e: AuditEvent): AuditEventView {
  return { id: e.id, at: e.at.toISOString(), type: e.type, outcome: e.outcome, userId: e.userId, clientId: e.clientId, connectorId: e.connectorId, ip: e.ip, details: e.details };
}

export async function searchAudit(store: Store, filter: AuditFilter, page: { beforeId?: string; limit: number }): Promise<AuditEventView[]> {
  return (await store.audit.search({ ...filter, ...page })).map(auditEventView);
}

/** Every matching event, newest first, a page at a time (events recorded meanwhile are newer and not included). */
export async function* auditEvents(store: Store, filter: AuditFilter): AsyncGenerator<AuditEventView> {
  let beforeId: string | undefined;
  for (;;) {
    const page = await store.audit.search({ ...filter, beforeId, limit: EXPORT_PAGE });
    for (const event of page) yield auditEventView(event);
    if (page.length < EXPORT_PAGE) return;
    beforeId = page.at(-1)!.id;
  }
}

/**
 * One CSV cell (RFC 4180): a value a spreadsheet would run as a formula (= + - @, or a tab or
 * carriage return that some read before them) gets a leading apostrophe; quotes, commas and line
 * breaks are quoted.
 */
export function csvCell(value: string | null): string {
  if (value === null) return '';
  const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
}

/** The export as text chunks (one per page): JSON lines, or CSV with a header row. */
export async function* exportAudit(store: Store, filter: AuditFilter, format: 'jsonl' | 'csv'): AsyncGenerator<string> {
  let chunk = format === 'csv' ? `${CSV_COLUMNS.join(',')}\r\n` : '';
  let count = 0;
  for await (const e of auditEvents(store, filter)) {
    chunk +=
      format === 'jsonl'
        ? `${JSON.stringify(e)}\n`
        : `${[e.id, e.at, e.type, e.outcome, e.userId, e.clientId, e.connectorId, e.ip, JSON.stringify(e.details)].map(csvCell).join(',')}\r\n`;
    if (++count % EXPORT_PAGE === 0) {
      yield chunk;
      chunk = '';
    }
  }
  if (chunk) yield chunk;
}
