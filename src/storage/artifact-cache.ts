// oidc-provider's records (tokens, codes, grants, sessions) held in memory beside the database,
// for a database that one process owns: the embedded PGlite, which runs inside this process and
// which no other process can open at the same time. Every write goes to the database first
// (write-through); the cache then answers lookups without a statement. On PostgreSQL, where
// other instances write the same rows, it is never used.
//
// A write to oidc_payloads outside the adapter (revoking a user's grants, a client's tokens, a
// refresh retry's duplicate) calls artifactsChanged(), which empties every cache of the process.
import type { Knex } from 'knex';
import type { AdapterPayload } from 'oidc-provider';

/** The stored form of one record, as the adapter reads it from the table. */
export interface CachedRow {
  payload: AdapterPayload;
  expires_at: Date | null;
  consumed_at: Date | null;
}

interface Entry {
  /** The payload as stored (JSON): every reader gets its own copy. */
  json: string;
  grantId: string | null;
  uid: string | null;
  expiresAt: number | null;
  consumedAt: number | null;
}

// Bumped by every write outside the adapters: each cache empties itself when it sees a new value.
let generation = 0;

/**
 * A write to oidc_payloads that did not go through the adapter: every cache of this process
 * forgets what it holds, now and again when the enclosing transaction (if any) ends.
 */
export function artifactsChanged(knex?: Knex): void {
  generation++;
  const trx = knex as (Knex.Transaction & { executionPromise?: Promise<unknown> }) | undefined;
  if (trx?.isTransaction) trx.executionPromise?.then(() => generation++, () => generation++);
}

const keyOf = (kind: string, id: string) => `${kind}\u0000${id}`;

/** oidc-provider's own models (lib/models), whose saved payload carries their consumption. */
const PROVIDER_KINDS = new Set([
  'AccessToken',
  'AuthorizationCode',
  'BackchannelAuthenticationRequest',
  'ClientCredentials',
  'DeviceCode',
  'Grant',
  'InitialAccessToken',
  'Interaction',
  'PreAuthorizedCode',
  'PushedAuthorizationRequest',
  'RefreshToken',
  'RegistrationAccessToken',
  'ReplayDetection',
  'Session',
]);

export class ArtifactCache {
  readonly #entries = new Map<string, Entry>();
  /** `kind\0uid` to the record's id (sessions are looked up by uid). */
  readonly #byUid = new Map<string, string>();
  readonly #max: number;
  #generation = generation;
  /** Bumped before and after every write: a lookup that overlapped one does not keep what it read. */
  #writes = 0;

  constructor(maxEntries = 10_000) {
    this.#max = maxEntries;
  }

  #current(): void {
    if (this.#generation === generation) return;
    this.#generation = generation;
    this.#entries.clear();
    this.#byUid.clear();
    this.#writes++;
  }

  /** A stamp to give back to `remember`: the read is kept only if no write came in between. */
  readStarted(): number {
    this.#current();
    return this.#writes;
  }

  /** Marks the start and the end of a write through the adapter. */
  writing(): void {
    this.#writes++;
  }

  #row(entry: Entry): CachedRow {
    return {
      payload: JSON.parse(entry.json) as AdapterPayload,
      expires_at: entry.expiresAt === null ? null : new Date(entry.expiresAt),
      consumed_at: entry.consumedAt === null ? null : new Date(entry.consumedAt),
    };
  }

  get(kind: string, id: string): CachedRow | undefined {
    this.#current();
    const key = keyOf(kind, id);
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    // Most recently used last: the oldest goes first when the cache is full.
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    return this.#row(entry);
  }

  getByUid(kind: string, uid: string): CachedRow | undefined {
    this.#current();
    const id = this.#byUid.get(keyOf(kind, uid));
    return id === undefined ? undefined : this.get(kind, id);
  }

  /**
   * A record as just saved. The table keeps a record's consumption through later saves (the
   * upsert leaves consumed_at alone), so a cached consumption stays too. A record not cached
   * whose consumption this process cannot know is only forgotten: one of Keybridge's own kinds,
   * whose single use is a claim() outside the payload (oidc-provider's models carry `consumed`
   * in the payload they save).
   */
  saved(kind: string, id: string, json: string, grantId: string | null, uid: string | null, expiresAt: Date | null): void {
    this.#current();
    const earlier = this.#entries.get(keyOf(kind, id));
    if (!earlier && !PROVIDER_KINDS.has(kind)) return;
    this.put(kind, id, json, grantId, uid, expiresAt, earlier && earlier.consumedAt !== null ? new Date(earlier.consumedAt) : null);
  }

  put(kind: string, id: string, json: string, grantId: string | null, uid: string | null, expiresAt: Date | null, consumedAt: Date | null): void {
    this.#current();
    const key = keyOf(kind, id);
    const earlier = this.#entries.get(key);
    if (earlier) {
      this.#entries.delete(key);
      if (earlier.uid !== null) this.#byUid.delete(keyOf(kind, earlier.uid));
    } else if (this.#entries.size >= this.#max) {
      const [oldestKey, oldest] = this.#entries.entries().next().value!;
      this.#entries.delete(oldestKey);
      if (oldest.uid !== null) this.#byUid.delete(keyOf(oldestKey.slice(0, oldestKey.indexOf('\u0000')), oldest.uid));
    }
    this.#entries.set(key, { json, grantId, uid, expiresAt: expiresAt?.getTime() ?? null, consumedAt: consumedAt?.getTime() ?? null });
    if (uid !== null) this.#byUid.set(keyOf(kind, uid), id);
  }

  /** A record read from the database by a lookup that began at `stamp`; kept unless a write came in between. */
  remember(kind: string, id: string, row: CachedRow & { grant_id?: string | null; uid?: string | null }, stamp: number): void {
    this.#current();
    if (stamp !== this.#writes) return;
    const payload = row.payload as AdapterPayload & { grantId?: string; uid?: string };
    this.put(kind, id, JSON.stringify(row.payload), payload.grantId ?? row.grant_id ?? null, payload.uid ?? row.uid ?? null, row.expires_at, row.consumed_at);
  }

  /** The record was consumed at `at` (the first consumption stays, as in the table). */
  consumed(kind: string, id: string, at: Date): void {
    this.#current();
    const entry = this.#entries.get(keyOf(kind, id));
    if (entry && entry.consumedAt === null) entry.consumedAt = at.getTime();
  }

  forget(kind: string, id: string): void {
    this.#current();
    const key = keyOf(kind, id);
    const entry = this.#entries.get(key);
    if (!entry) return;
    this.#entries.delete(key);
    if (entry.uid !== null) this.#byUid.delete(keyOf(kind, entry.uid));
  }

  forgetGrant(kind: string, grantId: string): void {
    this.#current();
    const prefix = `${kind}\u0000`;
    for (const [key, entry] of this.#entries) {
      if (entry.grantId === grantId && key.startsWith(prefix)) {
        this.#entries.delete(key);
        if (entry.uid !== null) this.#byUid.delete(keyOf(kind, entry.uid));
      }
    }
  }
}
