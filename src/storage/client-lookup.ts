// oidc-provider asks its Client model for every non-static client on every request (token,
// authorization, introspection...). This answers from the `clients` table, through a small
// in-memory cache that the change feed empties when a client changes on any instance, so the
// token hot path does not pay a query per request and a change is seen within the feed's delay.
import type { AdapterPayload } from 'oidc-provider';
import type { SqlStatements } from './pg-statements.ts';
import type { ChangeFeed } from './change-feed.ts';
import { HASHED_SECRET, type SecretHash } from '../oidc/hashed-client-secrets.ts';

export const CLIENT_FIND = {
  name: 'kb_client_find_hashed',
  text: 'SELECT metadata, first_party, secret_hash, previous_secret_hash, previous_secret_expires_at FROM clients WHERE id = $1 AND enabled = true',
};

interface Row {
  metadata: Record<string, unknown>;
  first_party: boolean;
  secret_hash: string | null;
  previous_secret_hash: string | null;
  previous_secret_expires_at: Date | null;
}

/** oidc-provider metadata of a stored client: hashed secrets replace the secret (hashed-client-secrets.ts). */
export function clientPayload(id: string, row: Row): AdapterPayload {
  const payload: Record<string, unknown> = { ...row.metadata, client_id: id, first_party: row.first_party };
  if (row.secret_hash) {
    const hashes: SecretHash[] = [{ hash: row.secret_hash, until: null }];
    if (row.previous_secret_hash && row.previous_secret_expires_at) hashes.push({ hash: row.previous_secret_hash, until: Math.floor(row.previous_secret_expires_at.getTime() / 1000) });
    payload.client_secret = HASHED_SECRET;
    payload.secret_hashes = hashes;
  }
  return payload as AdapterPayload;
}

// Bounds memory against lookups of made-up client ids (each is cached as "none").
const MAX_ENTRIES = 5000;

export interface ClientLookupOptions {
  /** Drops cached clients as they change (every instance); without it nothing is cached. */
  changes?: Pick<ChangeFeed, 'subscribe'>;
  /** Longest a cached answer is used even without a change notice (default 60 s). */
  maxAgeMs?: number;
}

export function createClientLookup(sql: SqlStatements, options: ClientLookupOptions = {}): (id: string) => Promise<AdapterPayload | undefined> {
  const read = async (id: string) => {
    const row = (await sql.run<Row>(CLIENT_FIND, [id])).rows[0];
    return row ? clientPayload(id, row) : undefined;
  };
  if (!options.changes) return read;
  const maxAge = options.maxAgeMs ?? 60_000;
  const cache = new Map<string, { value: AdapterPayload | undefined; at: number }>();
  // A read that started before a change must not store what it read after the change was heard.
  let generation = 0;
  options.changes.subscribe('client', (id) => {
    generation++;
    if (id === null) cache.clear();
    else cache.delete(id);
  });
  return async (id) => {
    const hit = cache.get(id);
    if (hit && Date.now() - hit.at < maxAge) return hit.value;
    const started = generation;
    const value = await read(id);
    if (started === generation) {
      if (cache.size >= MAX_ENTRIES) cache.clear();
      cache.set(id, { value, at: Date.now() });
    }
    return value;
  };
}
