// The audit trail: filtered pages newest first, and streamed exports (JSON lines or CSV) of
// everything a filter matches (src/management/audit-trail.ts).
import { z } from 'zod';
import type { Store } from '../../storage/store.ts';
import { defineRoute, type AdminRoute } from '../admin-route.ts';
import { decodeCursor, encodeCursor, pageOf, pageQuery } from '../admin-support.ts';
import { invalid } from '../problem.ts';
import { exportAudit, searchAudit, type AuditFilter } from '../../management/audit-trail.ts';

const TYPE = /^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*(?:\.\*)?$/i;
const text = (max: number, what: string) => z.string().min(1).max(max).describe(what);
const time = (what: string) => z.iso.datetime({ offset: true }).describe(`${what} (ISO 8601 with a zone, e.g. 2026-01-31T08:00:00Z).`);

const filters = {
  type: z.string().max(200).regex(TYPE, 'must be an event type (login.failure) or a prefix ending in .* (login.*)').optional().describe('An event type, or a prefix ending in .* (login.*).'),
  outcome: z.enum(['success', 'failure']).optional(),
  userId: text(256, "The user's id.").optional(),
  username: text(256, 'The username the event\'s details carry, exactly (a failed password login records what was typed, and no user id).').optional(),
  actor: text(256, "Who made an admin change: the username, user id or client id in the event's details.actor, exactly.").optional(),
  clientId: text(256, 'The OIDC client id.').optional(),
  connectorId: text(256, 'The connector id.').optional(),
  ip: text(100, 'The client address, exactly as recorded.').optional(),
  since: time('Events at or after this time').optional(),
  until: time('Events before this time').optional(),
};

type Filters = z.output<z.ZodObject<typeof filters>>;

/** until must come after since; the error names `until`. */
const ordered = <T extends { since?: string; until?: string }>(q: T, ctx: z.RefinementCtx) => {
  // zod runs this even when a field failed: only valid times are compared.
  if (Number.isNaN(Date.parse(q.since ?? '')) || Number.isNaN(Date.parse(q.until ?? ''))) return;
  if (q.since && q.until && Date.parse(q.until) <= Date.parse(q.since)) ctx.addIssue({ code: 'custom', path: ['until'], message: 'must be after since' });
};

function toFilter(q: Filters): AuditFilter {
  return { ...q, since: q.since ? new Date(q.since) : undefined, until: q.until ? new Date(q.until) : undefined };
}

export const auditEventSchema = z.object({
  id: z.string().describe('Increasing: a later event has a larger id.'),
  at: z.iso.datetime(),
  type: z.string(),
  outcome: z.enum(['success', 'failure']),
  userId: z.string().nullable(),
  clientId: z.string().nullable(),
  connectorId: z.string().nullable(),
  ip: z.string().nullable(),
  details: z.record(z.string(), z.unknown()).describe("What else was recorded; admin changes carry `actor`, `requestId`, `target` and `changes` (each field's before and after, secrets as '***')."),
});

export function auditRoutes(deps: { store: Store }): AdminRoute[] {
  const { store } = deps;
  const common = { resource: 'audit', tag: 'Audit', access: 'read' } as const;
  return [
    defineRoute({
      ...common,
      method: 'get',
      path: '/audit',
      operationId: 'listAuditEvents',
      summary: 'Search the audit trail',
      description: 'Newest first. Every filter given must match.',
      query: z.object({ ...pageQuery, ...filters }).superRefine(ordered),
      responses: { 200: { description: 'A page of events.', schema: pageOf(auditEventSchema) } },
      async handler({ query }) {
        const { limit, cursor, ...rest } = query;
        const before = decodeCursor(cursor, ['string']);
        if (before && !/^\d{1,18}$/.test(before[0] as string)) throw invalid([{ path: 'query.cursor', message: 'is not a cursor this list returned' }]);
        const items = await searchAudit(store, toFilter(rest), { beforeId: before?.[0] as string | undefined, limit: limit + 1 });
        const page = items.slice(0, limit);
        return { body: { items: page, nextCursor: items.length > limit ? encodeCursor([page.at(-1)!.id]) : null } };
      },
    }),
    defineRoute({
      ...common,
      method: 'get',
      path: '/audit/export',
      operationId: 'exportAuditEvents',
      summary: 'Export the audit trail',
      description:
        'Everything the filters match, newest first, streamed: JSON lines (one event per line, as in the search) or CSV ' +
        '(columns id, at, type, outcome, userId, clientId, connectorId, ip, details as JSON; a cell starting with = + - @ gets a leading apostrophe so spreadsheets do not run it).',
      query: z.object({ format: z.enum(['jsonl', 'csv']).default('jsonl'), ...filters }).superRefine(ordered),
      responses: { 200: { description: 'The events, as a download.', contentTypes: ['application/x-ndjson', 'text/csv'] } },
      async handler({ query }) {
        const { format, ...rest } = query;
        const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
        return {
          stream: exportAudit(store, toFilter(rest), format),
          contentType: format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8',
          headers: { 'Content-Disposition': `attachment; filename="keybridge-audit-${stamp}.${format}"` },
        };
      },
    }),
  ];
}
