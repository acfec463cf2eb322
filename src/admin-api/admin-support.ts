// Small pieces every admin resource uses: cursor pagination, entity tags, secret masking.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { invalid, stale } from './problem.ts';

export const MAX_PAGE = 200;

/** `limit` and `cursor` query parameters of every list operation. */
export const pageQuery = {
  limit: z.coerce.number().int().min(1).max(MAX_PAGE).default(50).describe(`Items per page (1-${MAX_PAGE}).`),
  cursor: z.string().max(512).optional().describe('The nextCursor of the previous page.'),
};

/** A list page: `nextCursor` is null on the last page. */
export function pageOf<T extends z.ZodType>(item: T) {
  return z.object({ items: z.array(item), nextCursor: z.string().nullable() });
}

/** An opaque cursor over the sort key of the last item returned. */
export function encodeCursor(key: unknown[]): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

/** The sort key a cursor holds, checked against the types the list expects. */
export function decodeCursor(cursor: string | undefined, shape: ReadonlyArray<'string' | 'number'>): Array<string | number> | null {
  if (cursor === undefined) return null;
  try {
    const key: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(key) && key.length === shape.length && key.every((v, i) => typeof v === shape[i] && (typeof v !== 'string' || (v.length <= 512 && !v.includes('\0'))))) return key as Array<string | number>;
  } catch {
    // falls through to the error below
  }
  throw invalid([{ path: 'query.cursor', message: 'is not a cursor this list returned' }]);
}

/** A strong entity tag over a representation (what a client read is what it must match). */
export function etagOf(representation: unknown): string {
  return `"${createHash('sha256').update(JSON.stringify(representation)).digest('base64url').slice(0, 27)}"`;
}

/** Refuses a write whose If-Match names none of the current tags (412); no header: no check. */
export function checkIfMatch(ifMatch: string[] | null, current: string): void {
  if (ifMatch === null || ifMatch.includes('*')) return;
  // Weak comparison (RFC 9110 13.1.1 allows it for If-Match only as strong; we accept W/ of our tag).
  if (!ifMatch.some((tag) => tag.replace(/^W\//, '') === current)) throw stale();
}

const SECRET_KEY = /(secret|password|passwd|privatekey|private_key|credential|apikey|api_key|token)s?$/i;
const NOT_SECRET = /^(tokenEndpointAuthMethod|token_endpoint_auth_method)$/i;

/** A copy with every secret-looking field replaced by "***" (audit before/after, responses). */
export function maskSecrets(value: unknown, depth = 0): unknown {
  if (depth > 8 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => maskSecrets(v, depth + 1));
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [k, SECRET_KEY.test(k) && !NOT_SECRET.test(k) && v !== null && v !== undefined && v !== '' ? '***' : maskSecrets(v, depth + 1)]),
  );
}

/** The fields that differ between two representations, as { field: { before, after } }, masked. */
export function changedFields(before: Record<string, unknown> | null | undefined, after: Record<string, unknown> | null | undefined): Record<string, { before: unknown; after: unknown }> {
  const b = before ?? {};
  const a = after ?? {};
  const shown = (key: string, v: unknown) => (v === undefined ? null : SECRET_KEY.test(key) && !NOT_SECRET.test(key) && v !== null && v !== '' ? '***' : maskSecrets(v));
  const changes: Record<string, { before: unknown; after: unknown }> = {};
  for (const key of new Set([...Object.keys(b), ...Object.keys(a)])) {
    if (JSON.stringify(b[key]) !== JSON.stringify(a[key])) changes[key] = { before: shown(key, b[key]), after: shown(key, a[key]) };
  }
  return changes;
}
