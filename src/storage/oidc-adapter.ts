// oidc-provider's storage adapter: one table for every short-lived artifact (sessions,
// interactions, codes, tokens, grants...), keyed (kind, id), one indexed statement (one round
// trip) per call. The statements are plain parameterized SQL (src/storage/pg-statements.ts):
// prepared once per connection on PostgreSQL, through knex.raw on PGlite; no query building on
// the token hot path. The Client model reads runtime-managed clients from the `clients` table.
import type { Knex } from 'knex';
import { errors, type Adapter, type AdapterPayload } from 'oidc-provider';
import { PREDECESSOR, currentExchange, successorUsed } from './refresh-grace.ts';
import { knexStatements, type SqlStatements, type Statement } from './pg-statements.ts';
import { DatabaseUnavailable } from './database-unavailable.ts';
import { BatchQueue } from './batch-queue.ts';
import { createClientLookup } from './client-lookup.ts';
import type { ChangeFeed } from './change-feed.ts';
import { ArtifactCache } from './artifact-cache.ts';
import { currentHold, takeCompanion, type Companion, type HeldWrites } from './held-writes.ts';
import { loginSessionWriteFrom } from './login-session-repository.ts';

const TABLE = 'oidc_payloads';

export interface OidcAdapterOptions {
  /** Seconds a just-rotated refresh token may be presented again (src/storage/refresh-grace.ts); 0: never. */
  refreshReuseGrace?: number;
  /** Where the statements run (Database.pg on PostgreSQL); default: knex.raw on the knex given. */
  statements?: SqlStatements;
  /** Caches stored clients, forgetting each as the feed announces its change (src/storage/client-lookup.ts). */
  changes?: Pick<ChangeFeed, 'subscribe'>;
  /**
   * The database belongs to this process alone and runs its statements inside it (PGlite): records
   * are also kept in memory (src/storage/artifact-cache.ts), and batches gather what arrives
   * within one turn of the event loop, since a statement running in-process leaves no time for
   * others to queue behind it.
   */
  singleProcess?: boolean;
}

const COLUMNS = 'payload, expires_at, consumed_at';
/** A save's conflict rule: the record's new payload and columns replace the stored ones. */
const ON_CONFLICT = 'ON CONFLICT (kind, id) DO UPDATE SET payload = excluded.payload, grant_id = excluded.grant_id, user_code = excluded.user_code, uid = excluded.uid, expires_at = excluded.expires_at';
/** Saves of many records from column arrays ($1..$7), only when `condition` holds. */
const saveRows = (condition = '') =>
  `INSERT INTO ${TABLE} (kind, id, payload, grant_id, user_code, uid, expires_at)
      SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::text[], $5::text[], $6::text[], $7::timestamptz[])${condition ? ` WHERE ${condition}` : ''}
      ${ON_CONFLICT}`;
/** The token table's statements (exported for the plan checks in test/protocol/hot-path-queries.test.ts). */
export const HOT_PATH_SQL = {
  upsert: {
    name: 'kb_oidc_upsert',
    text: `INSERT INTO ${TABLE} (kind, id, payload, grant_id, user_code, uid, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
      ${ON_CONFLICT}`,
  },
  // Several saves in one statement (one round trip, one commit): see createSaveBatcher.
  upsertMany: {
    name: 'kb_oidc_upsert_many',
    text: saveRows(),
  },
  // Lookups by (kind, id) pairs, several records in one round trip: see createFindBatcher.
  // Every lookup of these two is a LATERAL subquery with a LIMIT, which PostgreSQL cannot fold
  // into a plain join: each is a keyed index lookup per row asked for, whatever the statistics
  // say. As plain joins, a prepared plan made with the statistics of a few hundred sessions read
  // every session of the table for each token (a hash join over the kind), for the life of the
  // connection; the bench saw the rows read per login grow with every login.
  find: {
    name: 'kb_oidc_find',
    text: `SELECT p.kind, p.id, p.payload, p.expires_at, p.consumed_at, NULL AS grant_id
      FROM unnest($1::text[], $2::text[]) AS q(kind, id)
      CROSS JOIN LATERAL (SELECT kind, id, payload, expires_at, consumed_at FROM ${TABLE} WHERE kind = q.kind AND id = q.id LIMIT 1) p`,
  },
  // Tokens whose grant oidc-provider reads right after them (userinfo, refresh, code exchange),
  // and, for a token that ends with its browser session, that session (read at once to check the
  // binding): all in one round trip. The session is found by its uid index (kind || '' keeps the
  // planner off the indexes that lead by kind).
  findWithGrant: {
    name: 'kb_oidc_find_with_grant_session',
    text: `SELECT p.kind, p.id, p.payload, p.expires_at, p.consumed_at, p.grant_id, g.payload AS grant_payload, g.expires_at AS grant_expires_at, g.consumed_at AS grant_consumed_at,
        p.payload->>'sessionUid' AS session_uid, s.payload AS session_payload, s.expires_at AS session_expires_at, s.consumed_at AS session_consumed_at
      FROM unnest($1::text[], $2::text[]) AS q(kind, id)
      CROSS JOIN LATERAL (SELECT kind, id, payload, expires_at, consumed_at, grant_id FROM ${TABLE} WHERE kind = q.kind AND id = q.id LIMIT 1) p
      LEFT JOIN LATERAL (SELECT payload, expires_at, consumed_at FROM ${TABLE} WHERE kind = 'Grant' AND id = p.grant_id LIMIT 1) g ON true
      LEFT JOIN LATERAL (SELECT payload, expires_at, consumed_at FROM ${TABLE}
        WHERE p.payload->>'expiresWithSession' = 'true' AND uid = p.payload->>'sessionUid' AND kind || '' = 'Session' LIMIT 1) s ON true`,
  },
  // kind || '' keeps the planner off the primary key (kind, id): before the table's statistics
  // exist, the prepared plan otherwise read every record of the kind instead of the uid index.
  findByUserCode: { name: 'kb_oidc_find_user_code', text: `SELECT ${COLUMNS} FROM ${TABLE} WHERE user_code = $2 AND kind || '' = $1 LIMIT 1` },
  findByUid: { name: 'kb_oidc_find_uid', text: `SELECT ${COLUMNS} FROM ${TABLE} WHERE uid = $2 AND kind || '' = $1 LIMIT 1` },
  findByUidWithId: { name: 'kb_oidc_find_uid_id', text: `SELECT id, ${COLUMNS} FROM ${TABLE} WHERE uid = $2 AND kind || '' = $1 LIMIT 1` },
  // Saves that consume rotated refresh tokens in the same statement: a refresh's successor and
  // access token, with the predecessor consumed (several refreshes share one under load). The
  // consumed ids are also given as = ANY, so the update finds them by key: joined with the
  // unnest alone, the prepared plan read every refresh token (EXPLAIN: 6,000 rows for one).
  rotateMany: {
    name: 'kb_oidc_rotate_many',
    text: `WITH consumed AS (
        UPDATE ${TABLE} t SET consumed_at = c.at FROM unnest($8::text[], $9::timestamptz[]) AS c(id, at)
        WHERE t.kind = 'RefreshToken' AND t.id = ANY($8::text[]) AND t.id = c.id AND t.consumed_at IS NULL)
      ${saveRows()}`,
  },
  // A code exchange's claim of its code and the tokens it issues, in one statement: the tokens
  // are written only if this request consumed the code (rowCount 0: another got there first).
  claimAndSave: {
    name: 'kb_oidc_claim_save',
    text: `WITH claimed AS (
        UPDATE ${TABLE} SET consumed_at = $10 WHERE kind = $8 AND id = $9 AND consumed_at IS NULL AND (expires_at IS NULL OR expires_at > $10) RETURNING id)
      ${saveRows('EXISTS (SELECT 1 FROM claimed)')}`,
  },
  // A resume's writes (its session, grant and code: upsertMany's $1-$7), gated by the delete of
  // the interaction it finishes ($8): stored only if this request removed it (removed false:
  // another resume of it got there first). With them, the login's row from $9 on (all null when
  // the resume records none), returned as stored.
  resumeSave: {
    name: 'kb_oidc_resume_save',
    text: `WITH gate AS (DELETE FROM ${TABLE} WHERE kind = 'Interaction' AND id = $8 RETURNING id),
      login AS (${loginSessionWriteFrom('gate', 9)}),
      saved AS (${saveRows('EXISTS (SELECT 1 FROM gate)')})
      SELECT EXISTS (SELECT 1 FROM gate) AS removed, login.* FROM (VALUES (1)) AS one LEFT JOIN login ON true`,
  },
  consume: { name: 'kb_oidc_consume', text: `UPDATE ${TABLE} SET consumed_at = $3 WHERE kind = $1 AND id = $2 AND consumed_at IS NULL` },
  claim: {
    name: 'kb_oidc_claim',
    text: `UPDATE ${TABLE} SET consumed_at = $3 WHERE kind = $1 AND id = $2 AND consumed_at IS NULL AND (expires_at IS NULL OR expires_at > $3) RETURNING id`,
  },
  destroy: { name: 'kb_oidc_destroy', text: `DELETE FROM ${TABLE} WHERE kind = $1 AND id = $2` },
  revokeByGrantId: { name: 'kb_oidc_revoke_grant', text: `DELETE FROM ${TABLE} WHERE kind = $1 AND grant_id = $2` },
};

// PostgreSQL refuses text containing NUL: such an id can name no record, so it is not looked up.
const unstorable = (value: string) => value.includes('\0');

interface Row {
  payload: AdapterPayload;
  expires_at: Date | null;
  consumed_at: Date | null;
}

function live(row: Row | undefined): AdapterPayload | undefined {
  if (!row) return undefined;
  if (row.expires_at && row.expires_at.getTime() <= Date.now()) return undefined;
  const { [PREDECESSOR]: _predecessor, ...payload } = row.payload as AdapterPayload & { [PREDECESSOR]?: string };
  return row.consumed_at ? { ...payload, consumed: Math.floor(row.consumed_at.getTime() / 1000) } : payload;
}

function clientAdapter(knex: Knex, find: (id: string) => Promise<AdapterPayload | undefined>): Adapter {
  return {
    async upsert(id, payload) {
      await knex('clients')
        .insert({ id, metadata: JSON.stringify(payload) })
        .onConflict('id')
        .merge({ metadata: JSON.stringify(payload), updated_at: new Date() });
    },
    async find(id) {
      if (unstorable(id)) return undefined;
      return find(id);
    },
    async findByUserCode() {
      return undefined;
    },
    async findByUid() {
      return undefined;
    },
    async consume() {},
    async destroy(id) {
      await knex('clients').where({ id }).delete();
    },
    async revokeByGrantId() {},
  };
}

/** oidc-provider's Adapter, plus an atomic single-use claim for Keybridge's own records. */
export type KeybridgeAdapter = Adapter & { claim(id: string): Promise<boolean> };
export type AdapterConstructor = new (name: string) => KeybridgeAdapter;

/**
 * Single-use grant sources: oidc-provider reads one, checks it is unconsumed, then consumes it.
 * Two redemptions at once (two instances, or two requests on one) would both pass that check;
 * their consumption is a claim instead, and only the first wins (RFC 6749 section 4.1.2: a code
 * used more than once must be refused).
 */
const SINGLE_USE = new Map([
  ['AuthorizationCode', 'authorization code'],
  ['DeviceCode', 'device code'],
  ['BackchannelAuthenticationRequest', 'backchannel authentication request'],
]);

/** What an authorization request holds back to save with the session (held-writes.ts). */
const HELD_KINDS = new Set(['Grant', 'AuthorizationCode']);
const heldKey = (kind: string, id: string) => `${kind}\u0000${id}`;

/** Kinds whose lookup oidc-provider follows with Grant.find. */
const WITH_GRANT = new Set(['AccessToken', 'RefreshToken', 'AuthorizationCode', 'DeviceCode', 'BackchannelAuthenticationRequest']);

/**
 * Statements of one kind running at once before further items wait to go together (batch-queue.ts).
 * One: a lookup or save goes at once when none is running, and under load everything that
 * arrives meanwhile goes in the next statement. Measured on the benchmark's shared core, one slot
 * ran about a third of the statements of four (0.09 against 0.30 per introspection) and answered
 * more requests (introspection 2,860-3,030/s against 2,290-2,450/s).
 */
const FIND_SLOTS = 1;
const SAVE_SLOTS = 1;
const MAX_BATCH = 200;

/**
 * Lookups share statements three ways. Lookups of one id in the same tick go as one: oidc-provider
 * looks an unknown token up as several kinds at once (introspection and revocation without a
 * type hint ask AccessToken, ClientCredentials and RefreshToken together). Lookups of different
 * ids made in the same tick leave together, even when the database is idle (the login page reads
 * its interaction and the login's state so). And under load, lookups that wait for a free slot go
 * together (BatchQueue): one statement answers many requests.
 */
function createFindBatcher(sql: SqlStatements, grantRead: (grantId: string, row: Row, uses: number) => void, sessionRead: (uid: string, row: Row | null, uses: number) => void, linger: boolean) {
  type Waiter = { resolve(row: Row | undefined): void; reject(err: unknown): void };
  type Found = Row & {
    kind: string;
    id: string;
    grant_id: string | null;
    grant_payload: AdapterPayload | null;
    grant_expires_at: Date | null;
    grant_consumed_at: Date | null;
    session_uid?: string | null;
    session_payload?: AdapterPayload | null;
    session_expires_at?: Date | null;
    session_consumed_at?: Date | null;
  };
  type Lookup = { id: string; byKind: Map<string, Waiter[]> };
  const pending = new Map<string, Lookup>();

  async function send(batch: Lookup[]): Promise<void> {
    const kinds: string[] = [];
    const ids: string[] = [];
    let withGrant = false;
    for (const lookup of batch) {
      // From here on a lookup of this id starts a new batch.
      if (pending.get(lookup.id) === lookup) pending.delete(lookup.id);
      // A lookup of one id as several kinds (introspection, revocation) needs no grant.
      if (lookup.byKind.size === 1 && WITH_GRANT.has(lookup.byKind.keys().next().value!)) withGrant = true;
      for (const kind of lookup.byKind.keys()) {
        kinds.push(kind);
        ids.push(lookup.id);
      }
    }
    try {
      const { rows } = await sql.run<Found>(withGrant ? HOT_PATH_SQL.findWithGrant : HOT_PATH_SQL.find, [kinds, ids]);
      const byKey = new Map<string, Found>();
      for (const r of rows) byKey.set(`${r.kind}\u0000${r.id}`, r);
      for (const { id, byKind } of batch) {
        for (const [kind, waiters] of byKind) {
          const r = byKey.get(`${kind}\u0000${id}`);
          // What oidc-provider reads next, once per caller that got this token.
          if (r?.grant_id && r.grant_payload) grantRead(r.grant_id, { payload: r.grant_payload, expires_at: r.grant_expires_at, consumed_at: r.grant_consumed_at }, waiters.length);
          // A session-bound token: its session as read in the same statement, or its absence.
          if (r?.session_uid && (r.payload as { expiresWithSession?: boolean }).expiresWithSession === true) {
            sessionRead(r.session_uid, r.session_payload ? { payload: r.session_payload, expires_at: r.session_expires_at ?? null, consumed_at: r.session_consumed_at ?? null } : null, waiters.length);
          }
          for (const w of waiters) w.resolve(r);
        }
      }
    } catch (err) {
      for (const { byKind } of batch) for (const waiters of byKind.values()) for (const w of waiters) w.reject(err);
    }
  }
  const queue = new BatchQueue<Lookup>({ maxInFlight: FIND_SLOTS, maxBatch: MAX_BATCH, send, linger });
  // The lookups created in this tick, queued together on the next.
  let created: Lookup[] = [];
  const queueCreated = () => {
    const lookups = created;
    created = [];
    queue.pushMany(lookups);
  };

  return (kind: string, id: string): Promise<Row | undefined> =>
    new Promise((resolve, reject) => {
      let lookup = pending.get(id);
      if (!lookup) {
        lookup = { id, byKind: new Map() };
        pending.set(id, lookup);
        // Queued on the next tick; lookups of the same id join it until its batch is sent.
        if (!created.length) process.nextTick(queueCreated);
        created.push(lookup);
      }
      const waiters = lookup.byKind.get(kind) ?? [];
      waiters.push({ resolve, reject });
      lookup.byKind.set(kind, waiters);
    });
}

type SaveValues = [kind: string, id: string, payload: string, grantId: string | null, userCode: string | null, uid: string | null, expiresAt: Date | null];
/** No login row in kb_oidc_resume_save (its 13 parameters from $9 on). */
const LOGIN_NULLS: readonly null[] = Array.from({ length: 13 }, () => null);
/** Rows as the column arrays the unnest statements take ($1..$7). */
const columnsOf = (rows: SaveValues[]) => rows[0].map((_, c) => rows.map((row) => row[c]));
/** A rotated refresh token's consumption: its id and when. */
type Consumption = { id: string; at: Date };

/**
 * Saves that wait for a free slot under load (concurrent token requests) go to the database
 * together as one multi-row upsert: one round trip and one commit for all of them (BatchQueue).
 * Each caller still learns only once its own row is committed, and saves of one record keep
 * their order. Should a multi-row statement fail for anything but an unavailable database, each
 * row is written alone, so that one bad row fails only its own request.
 */
function createSaveBatcher(sql: SqlStatements, linger: boolean) {
  /** One caller's rows, saved together; a rotation also consumes its predecessor in the same statement. */
  type Item = { rows: SaveValues[]; consume?: Consumption; resolve(): void; reject(err: unknown): void };

  async function write(items: Item[]): Promise<void> {
    const rows = items.flatMap((item) => item.rows);
    const consumed = items.flatMap((item) => (item.consume ? [item.consume] : []));
    if (!consumed.length && rows.length === 1) {
      await sql.run(HOT_PATH_SQL.upsert, rows[0]);
      return;
    }
    const columns = columnsOf(rows);
    if (consumed.length) await sql.run(HOT_PATH_SQL.rotateMany, [...columns, consumed.map((x) => x.id), consumed.map((x) => x.at)]);
    else await sql.run(HOT_PATH_SQL.upsertMany, columns);
  }

  async function writeAlone(item: Item): Promise<void> {
    try {
      await write([item]);
      item.resolve();
    } catch (err) {
      item.reject(err);
    }
  }

  async function send(batch: Item[]): Promise<void> {
    if (batch.length === 1) return writeAlone(batch[0]);
    try {
      await write(batch);
      for (const item of batch) item.resolve();
    } catch (err) {
      if (err instanceof DatabaseUnavailable) {
        for (const item of batch) item.reject(err);
        return;
      }
      for (const item of batch) await writeAlone(item);
    }
  }
  const queue = new BatchQueue<Item>({ maxInFlight: SAVE_SLOTS, maxBatch: MAX_BATCH, send, linger, keyOf: (item) => `${item.rows[0][0]}\u0000${item.rows[0][1]}` });

  return (rows: SaveValues[], consume?: Consumption): Promise<void> => new Promise((resolve, reject) => queue.push({ rows, consume, resolve, reject }));
}

/** How long a record read along with a token may answer the lookup that follows (the same request, in practice). */
const READ_ALONG_MS = 250;

/**
 * Records read along with tokens (a token's grant, its session), each answering as many later
 * lookups as callers got the token from that statement, within READ_ALONG_MS; any later lookup
 * reads afresh. A write or deletion of the record through this process forgets it.
 */
function readAlong<T>() {
  const entries = new Map<string, { value: T; uses: number; at: number }>();
  return {
    put(key: string, value: T, uses: number): void {
      const now = Date.now();
      if (entries.size >= 1000) for (const [k, v] of entries) if (now - v.at >= READ_ALONG_MS) entries.delete(k);
      const earlier = entries.get(key);
      const left = earlier && now - earlier.at < READ_ALONG_MS ? earlier.uses : 0;
      if (entries.size < 10_000 || earlier) entries.set(key, { value, uses: left + uses, at: now });
    },
    /** The value read along, once per use; undefined when there is none left (or it is too old): look it up. */
    take(key: string): T | undefined {
      const read = entries.get(key);
      if (!read) return undefined;
      const fresh = Date.now() - read.at < READ_ALONG_MS;
      if (!fresh || --read.uses <= 0) entries.delete(key);
      return fresh ? read.value : undefined;
    },
    forget(key: string): void {
      entries.delete(key);
    },
    clear(): void {
      entries.clear();
    },
  };
}

/** A single-use grant source's claim (a code), held back to go with the tokens the same token request saves. */
type Claim = { kind: string; id: string; at: Date; label: string };
const pendingClaim = new WeakMap<object, Claim>();
/** The access token saved after a held claim, waiting for the refresh token that may follow it. */
const heldIssue = new WeakMap<object, { claim: Claim; rows: SaveValues[] }>();

/** A rotation's consumption, held back until its successor is saved (same token request). */
const pendingConsume = new WeakMap<object, Consumption>();
/** A rotation (successor and consumption) held back until the access token of the same request is saved. */
const heldRotation = new WeakMap<object, { values: SaveValues; consume: Consumption }>();

export function createOidcAdapter(knex: Knex, options: OidcAdapterOptions = {}): AdapterConstructor {
  const sql = options.statements ?? knexStatements(knex);
  // Grants read along with a token, taken by the Grant.find that follows it in each request.
  const grantsRead = readAlong<Row>();
  // Sessions read along with a session-bound token, by uid (null: the session is gone), each
  // taken by the Session.findByUid that checks the binding.
  const sessionsRead = readAlong<Row | null>();
  const linger = options.singleProcess === true;
  const findRow = createFindBatcher(sql, grantsRead.put, sessionsRead.put, linger);
  const graceMs = (options.refreshReuseGrace ?? 0) * 1000;
  const batchedSave = createSaveBatcher(sql, linger);
  const cache = options.singleProcess ? new ArtifactCache() : undefined;

  /** Saves rows (and a rotation's consumption); the cache, if any, then holds what was written. */
  async function save(rows: SaveValues[], consume?: Consumption): Promise<void> {
    await writeRows(rows, () => batchedSave(rows, consume));
    if (consume) cache?.consumed('RefreshToken', consume.id, consume.at);
  }

  /**
   * Runs `write`, which stores `rows` unless it answers false; the cache, if any, then holds what
   * was stored. Whether they were.
   */
  async function writeRows(rows: SaveValues[], write: () => Promise<boolean | void>): Promise<boolean> {
    if (!cache) return (await write()) !== false;
    let stored: boolean;
    cache.writing();
    try {
      stored = (await write()) !== false;
    } catch (err) {
      for (const [kind, id] of rows) cache.forget(kind, id);
      throw err;
    } finally {
      cache.writing();
    }
    if (stored) for (const [kind, id, json, grantId, , uid, expiresAt] of rows) cache.saved(kind, id, json, grantId, uid, expiresAt);
    return stored;
  }

  /** Consumes a live, unconsumed record atomically; false when another caller got there first. */
  async function claimRecord(kind: string, id: string, at: Date): Promise<boolean> {
    const claimed = (await change(() => sql.run(HOT_PATH_SQL.claim, [kind, id, at]))).rowCount === 1;
    if (claimed) cache?.consumed(kind, id, at);
    else cache?.forget(kind, id);
    return claimed;
  }

  /**
   * A statement that changes records outside save(): a lookup overlapping it keeps nothing, and
   * `forget` (records it removes) runs before and after it.
   */
  async function change<T>(run: () => Promise<T>, forget?: () => void): Promise<T> {
    if (!cache) return run();
    forget?.();
    cache.writing();
    try {
      return await run();
    } finally {
      cache.writing();
      forget?.();
    }
  }
  const findClient = createClientLookup(sql, { changes: options.changes });
  /** kb_oidc_upsert with a companion write, by the companion's name. */
  const withCompanion = new Map<string, Statement>();

  /** Writes what an authorization request held, with `first` (its session's save) ahead of it. */
  async function writeHeld(hold: HeldWrites, first?: SaveValues): Promise<void> {
    const rows = [...(first ? [first] : []), ...(hold.rows.values() as Iterable<SaveValues>)];
    hold.rows.clear();
    hold.flush = undefined;
    const { gate, alongside } = hold;
    hold.gate = hold.discard = hold.alongside = undefined;
    try {
      if (gate) await writeGated(gate.id, rows, alongside);
      // The session's row leads: two requests of one session never share a statement (BatchQueue keys).
      else if (rows.length) await save(rows);
    } catch (err) {
      hold.failed = true;
      throw err;
    }
  }

  /** One save with the companion write its request left for it (held-writes.ts), in a statement of their own. */
  async function saveWith(companion: Companion, values: SaveValues): Promise<void> {
    let statement = withCompanion.get(companion.name);
    if (!statement) {
      statement = { name: `kb_oidc_upsert_${companion.name}`, text: `WITH companion AS (${companion.text(8)}) ${HOT_PATH_SQL.upsert.text}` };
      withCompanion.set(companion.name, statement);
    }
    try {
      await writeRows([values], async () => {
        await sql.run(statement, [...values, ...companion.values]);
      });
    } catch (err) {
      // Whatever refused the save, the companion is still owed: by itself (it handles its own failure).
      await companion.alone();
      throw err;
    }
  }

  /**
   * A resume's held writes, in one statement of their own (never batched with other requests'):
   * stored only if its delete of the interaction removed it; else refused as oidc-provider refuses
   * the resume of a finished interaction (its error page, with no cookie changed).
   */
  async function writeGated(interactionId: string, rows: SaveValues[], alongside: HeldWrites['alongside']): Promise<void> {
    let result: Row & { removed: boolean } | undefined;
    try {
      const columns = rows.length ? columnsOf(rows) : Array.from({ length: 7 }, () => []);
      const login = alongside?.params ?? LOGIN_NULLS;
      await change(
        () => writeRows(rows, async () => {
          [result] = (await sql.run<Row & { removed: boolean }>(HOT_PATH_SQL.resumeSave, [...columns, interactionId, ...login])).rows;
          return result?.removed === true;
        }),
        () => cache?.forget('Interaction', interactionId),
      );
    } catch (err) {
      alongside?.settled(null);
      throw err;
    }
    alongside?.settled(result?.removed ? (result as unknown as Record<string, unknown>) : null);
    if (result?.removed) return;
    // An error page, as when the resume finds its interaction gone: not a redirect to the client.
    const refusal = new errors.SessionNotFound('interaction session not found');
    refusal.allow_redirect = false;
    throw refusal;
  }

  /**
   * Claims a held single-use grant source and saves the tokens issued from it, in one statement:
   * written only when this request consumed it. Refused as oidc-provider refuses a code it reads
   * as consumed, without the grant's revocation (the winner may still be answering; a later replay
   * revokes its tokens).
   */
  async function saveClaimed(claim: Claim, rows: SaveValues[]): Promise<void> {
    let claimed: boolean;
    if (!rows.length) claimed = await claimRecord(claim.kind, claim.id, claim.at);
    else {
      try {
        claimed = await writeRows(rows, async () => (await sql.run(HOT_PATH_SQL.claimAndSave, [...columnsOf(rows), claim.kind, claim.id, claim.at])).rowCount > 0);
      } catch (err) {
        cache?.forget(claim.kind, claim.id);
        throw err;
      }
      if (claimed) cache?.consumed(claim.kind, claim.id, claim.at);
      else cache?.forget(claim.kind, claim.id);
    }
    if (!claimed) throw new errors.InvalidGrant(`${claim.label} already consumed`);
  }

  /** A refresh token rotated moments ago, presented again in a token request: see refresh-grace.ts. */
  async function withinGrace(id: string, row: Row | undefined): Promise<Row | undefined> {
    const exchange = currentExchange();
    const grantId = (row?.payload as { grantId?: string } | undefined)?.grantId;
    if (!row?.consumed_at || !exchange || !grantId || Date.now() - row.consumed_at.getTime() >= graceMs) return row;
    if (await successorUsed(knex, id, grantId)) return row;
    exchange.repeated = { id, grantId };
    return { ...row, consumed_at: null };
  }

  return class KnexOidcAdapter implements KeybridgeAdapter {
    readonly kind: string;
    readonly #client: Adapter | undefined;

    constructor(name: string) {
      this.kind = name;
      this.#client = name === 'Client' ? clientAdapter(knex, findClient) : undefined;
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
      if (this.#client) return this.#client.upsert(id, payload, expiresIn ?? 0) as Promise<void>;
      // A rotated refresh token's successor names it, so a repeat can find the successor.
      const exchange = this.kind === 'RefreshToken' ? currentExchange() : undefined;
      const rotatedFrom = exchange?.rotatedFrom;
      if (this.kind === 'Grant') grantsRead.forget(id);
      if (this.kind === 'Session' && payload.uid) sessionsRead.forget(payload.uid);
      const pending = exchange && pendingConsume.get(exchange);
      if (pending) pendingConsume.delete(exchange);
      const values: SaveValues = [
        this.kind,
        id,
        JSON.stringify(rotatedFrom ? { ...payload, [PREDECESSOR]: rotatedFrom } : payload),
        payload.grantId ?? null,
        payload.userCode ?? null,
        payload.uid ?? null,
        expiresIn ? new Date(Date.now() + expiresIn * 1000) : null,
      ];
      // A code exchange: its code's claim (and the access token after it) wait for the next save,
      // normally the refresh token, and all go in one statement (saveClaimed).
      const issuing = currentExchange();
      const issue = issuing && heldIssue.get(issuing);
      if (issuing && issue) {
        heldIssue.delete(issuing);
        issuing.flush = undefined;
        return saveClaimed(issue.claim, [...issue.rows, values]);
      }
      const claim = issuing && pendingClaim.get(issuing);
      if (issuing && claim) {
        pendingClaim.delete(issuing);
        if (this.kind !== 'AccessToken') return saveClaimed(claim, [values]);
        // No refresh token may follow: then refreshGrace writes these before the answer leaves.
        heldIssue.set(issuing, { claim, rows: [values] });
        issuing.flush = async () => {
          const held = heldIssue.get(issuing);
          if (!held) return;
          heldIssue.delete(issuing);
          await saveClaimed(held.claim, held.rows);
        };
        return;
      }
      if (pending && exchange) {
        // The rotation waits for the access token oidc-provider saves next in this request: one
        // statement consumes the predecessor and saves both. Should the request fail before
        // that, nothing is written (the presented token stays usable); should it answer
        // without saving one, refreshGrace writes the rotation before the answer leaves.
        heldRotation.set(exchange, { values, consume: pending });
        exchange.flush = async () => {
          const held = heldRotation.get(exchange);
          if (!held) return;
          heldRotation.delete(exchange);
          await save([held.values], held.consume);
        };
        return;
      }
      const tokenExchange = this.kind === 'AccessToken' ? currentExchange() : undefined;
      const held = tokenExchange && heldRotation.get(tokenExchange);
      if (held) {
        heldRotation.delete(tokenExchange);
        tokenExchange.flush = undefined;
        await save([held.values, values], held.consume);
        return;
      }
      const hold = currentHold();
      if (hold && HELD_KINDS.has(this.kind)) {
        hold.rows.set(heldKey(this.kind, id), values);
        hold.flush ??= () => writeHeld(hold);
        return;
      }
      if ((hold?.rows.size || hold?.gate) && this.kind === 'Session') return writeHeld(hold, values);
      const companion = takeCompanion();
      if (companion) return saveWith(companion, values);
      await save([values]);
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (this.#client) return this.#client.find(id) as Promise<AdapterPayload | undefined>;
      if (unstorable(id)) return undefined;
      if (this.kind === 'Interaction' && currentHold()?.gate?.id === id) return undefined;
      const held = HELD_KINDS.has(this.kind) ? (currentHold()?.rows.get(heldKey(this.kind, id)) as SaveValues | undefined) : undefined;
      if (held) return live({ payload: JSON.parse(held[2]) as AdapterPayload, expires_at: held[6], consumed_at: null });
      let row = (this.kind === 'Grant' ? grantsRead.take(id) : undefined) ?? cache?.get(this.kind, id);
      if (!row) {
        const stamp = cache?.readStarted();
        row = await findRow(this.kind, id);
        if (row && cache) cache.remember(this.kind, id, row, stamp!);
      }
      return live(graceMs && this.kind === 'RefreshToken' ? await withinGrace(id, row) : row);
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      if (unstorable(userCode)) return undefined;
      return live((await sql.run<Row>(HOT_PATH_SQL.findByUserCode, [this.kind, userCode])).rows[0]);
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      if (unstorable(uid)) return undefined;
      if (this.kind === 'Session') {
        const read = sessionsRead.take(uid);
        if (read !== undefined) return read ? live(read) : undefined;
      }
      const cached = cache?.getByUid(this.kind, uid);
      if (cached) return live(cached);
      const stamp = cache?.readStarted();
      const row = (await sql.run<Row & { id: string }>(cache ? HOT_PATH_SQL.findByUidWithId : HOT_PATH_SQL.findByUid, [this.kind, uid])).rows[0];
      if (row && cache) cache.remember(this.kind, row.id, { ...row, uid }, stamp!);
      return live(row);
    }

    async consume(id: string): Promise<void> {
      if (this.kind === 'RefreshToken') {
        const exchange = currentExchange();
        if (exchange) {
          exchange.rotatedFrom = id;
          // oidc-provider saves the successor next: one statement does both, with the access token (HOT_PATH_SQL.rotateMany). Should
          // it never be saved, the token stays unconsumed, as if this request had not happened.
          pendingConsume.set(exchange, { id, at: new Date() });
          return;
        }
      }
      const label = SINGLE_USE.get(this.kind);
      if (label) {
        const exchange = currentExchange();
        if (exchange && !unstorable(id)) {
          // Claimed with the tokens this request saves next (saveClaimed): should the request fail
          // before, nothing is written and nothing was issued; should it answer without saving
          // one, refreshGrace claims it before the answer leaves.
          const claim: Claim = { kind: this.kind, id, at: new Date(), label };
          pendingClaim.set(exchange, claim);
          exchange.flush = async () => {
            if (pendingClaim.get(exchange) !== claim) return;
            pendingClaim.delete(exchange);
            await saveClaimed(claim, []);
          };
          return;
        }
        // Refused as oidc-provider refuses a code it reads as consumed, without the grant's
        // revocation: the winner may still be saving its tokens; a later replay revokes them.
        if (!(await this.claim(id))) throw new errors.InvalidGrant(`${label} already consumed`);
        return;
      }
      // The first consumption time stays: a repeat inside the refresh grace must not extend it.
      const at = new Date();
      await change(() => sql.run(HOT_PATH_SQL.consume, [this.kind, id, at]));
      cache?.consumed(this.kind, id, at);
    }

    /** Consumes a live, unconsumed record atomically; false when another caller got there first. */
    async claim(id: string): Promise<boolean> {
      if (unstorable(id)) return false;
      return claimRecord(this.kind, id, new Date());
    }

    async destroy(id: string): Promise<void> {
      if (this.#client) return this.#client.destroy(id) as Promise<void>;
      const hold = currentHold();
      hold?.rows.delete(heldKey(this.kind, id));
      if (this.kind === 'Interaction' && hold && !hold.gate && !unstorable(id)) {
        // A resume: the delete goes with the session's save, and decides whether it is stored
        // (held-writes.ts); should the request fail, it goes alone.
        hold.gate = { kind: this.kind, id };
        hold.flush ??= () => writeHeld(hold);
        hold.discard = async () => {
          await change(() => sql.run(HOT_PATH_SQL.destroy, [this.kind, id]), () => cache?.forget(this.kind, id));
        };
        return;
      }
      if (this.kind === 'Grant') grantsRead.forget(id);
      if (this.kind === 'Session') sessionsRead.clear();
      const { rowCount } = await change(() => sql.run(HOT_PATH_SQL.destroy, [this.kind, id]), () => cache?.forget(this.kind, id));
      // oidc-provider destroys an interaction only as it resumes the authorization request the
      // interaction finished. Two resumes of one interaction at once (the same request sent
      // twice, to one instance or to two) both read it first: only the one whose delete removed
      // it goes on to issue a code, the other is answered as a resume of a finished interaction.
      if (this.kind === 'Interaction' && rowCount === 0) throw new errors.SessionNotFound('interaction session not found');
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      grantsRead.forget(grantId);
      await change(() => sql.run(HOT_PATH_SQL.revokeByGrantId, [this.kind, grantId]), () => cache?.forgetGrant(this.kind, grantId));
    }
  };
}

/**
 * Deletes expired artifacts and retired keys past their grace period. Artifacts go in batches of
 * `batch` rows, one short statement each: a backlog of expired tokens neither runs into the
 * statement timeout nor holds a long transaction while requests go on.
 */
export async function purgeExpired(knex: Knex, now = new Date(), batch = 5_000): Promise<{ payloads: number; signingKeys: number }> {
  let payloads = 0;
  for (;;) {
    const deleted = await knex(TABLE)
      .whereIn(['kind', 'id'], knex(TABLE).select('kind', 'id').where('expires_at', '<=', now).limit(batch))
      .delete();
    payloads += deleted;
    if (deleted < batch) break;
  }
  const signingKeys = await knex('signing_keys').where('status', 'retired').andWhere('remove_after', '<=', now).delete();
  return { payloads, signingKeys };
}
