// oidc-provider's storage adapter: one table for every short-lived artifact (sessions,
// interactions, codes, tokens, grants...), keyed (kind, id), one indexed statement (one round
// trip) per call. The statements are plain parameterized SQL (src/storage/pg-statements.ts):
// prepared once per connection on PostgreSQL, through knex.raw on PGlite; no query building on
// the token hot path. The Client model reads runtime-managed clients from the `clients` table.
import type { Knex } from 'knex';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { PREDECESSOR, currentExchange, successorUsed } from './refresh-grace.ts';
import { knexStatements, type SqlStatements } from './pg-statements.ts';
import { createClientLookup } from './client-lookup.ts';
import type { ChangeFeed } from './change-feed.ts';

const TABLE = 'oidc_payloads';

export interface OidcAdapterOptions {
  /** Seconds a just-rotated refresh token may be presented again (src/storage/refresh-grace.ts); 0: never. */
  refreshReuseGrace?: number;
  /** Where the statements run (Database.pg on PostgreSQL); default: knex.raw on the knex given. */
  statements?: SqlStatements;
  /** Caches stored clients, forgetting each as the feed announces its change (src/storage/client-lookup.ts). */
  changes?: Pick<ChangeFeed, 'subscribe'>;
}

const COLUMNS = 'payload, expires_at, consumed_at';
const SQL = {
  upsert: {
    name: 'kb_oidc_upsert',
    text: `INSERT INTO ${TABLE} (kind, id, payload, grant_id, user_code, uid, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
      ON CONFLICT (kind, id) DO UPDATE SET payload = excluded.payload, grant_id = excluded.grant_id, user_code = excluded.user_code, uid = excluded.uid, expires_at = excluded.expires_at`,
  },
  find: { name: 'kb_oidc_find', text: `SELECT kind, ${COLUMNS}, NULL AS grant_id FROM ${TABLE} WHERE id = $1 AND kind = ANY($2::text[])` },
  // A token whose grant oidc-provider reads right after it (userinfo, refresh, code exchange): both in one round trip.
  findWithGrant: {
    name: 'kb_oidc_find_with_grant',
    text: `SELECT p.kind, p.payload, p.expires_at, p.consumed_at, p.grant_id, g.payload AS grant_payload, g.expires_at AS grant_expires_at, g.consumed_at AS grant_consumed_at
      FROM ${TABLE} p LEFT JOIN ${TABLE} g ON g.kind = 'Grant' AND g.id = p.grant_id WHERE p.id = $1 AND p.kind = ANY($2::text[])`,
  },
  findByUserCode: { name: 'kb_oidc_find_user_code', text: `SELECT ${COLUMNS} FROM ${TABLE} WHERE kind = $1 AND user_code = $2 LIMIT 1` },
  findByUid: { name: 'kb_oidc_find_uid', text: `SELECT ${COLUMNS} FROM ${TABLE} WHERE kind = $1 AND uid = $2 LIMIT 1` },
  // A rotated refresh token is consumed in the statement that saves its successor.
  rotate: {
    name: 'kb_oidc_rotate',
    text: `WITH consumed AS (UPDATE ${TABLE} SET consumed_at = $9 WHERE kind = $1 AND id = $8 AND consumed_at IS NULL)
      INSERT INTO ${TABLE} (kind, id, payload, grant_id, user_code, uid, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
      ON CONFLICT (kind, id) DO UPDATE SET payload = excluded.payload, grant_id = excluded.grant_id, user_code = excluded.user_code, uid = excluded.uid, expires_at = excluded.expires_at`,
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

/** Kinds whose lookup oidc-provider follows with Grant.find. */
const WITH_GRANT = new Set(['AccessToken', 'RefreshToken', 'AuthorizationCode', 'DeviceCode', 'BackchannelAuthenticationRequest']);

/**
 * oidc-provider looks an unknown token up as several kinds at once (introspection and
 * revocation without a type hint ask AccessToken, ClientCredentials and RefreshToken in the
 * same tick). Lookups of one id issued in the same tick share one query.
 */
function createFindBatcher(sql: SqlStatements, grantRead: (grantId: string, row: Row) => void) {
  type Waiter = { resolve(row: Row | undefined): void; reject(err: unknown): void };
  type Found = Row & { kind: string; grant_id: string | null; grant_payload: AdapterPayload | null; grant_expires_at: Date | null; grant_consumed_at: Date | null };
  const pending = new Map<string, Map<string, Waiter[]>>();

  async function flush(id: string): Promise<void> {
    const waiting = pending.get(id)!;
    pending.delete(id);
    try {
      const kinds = [...waiting.keys()];
      // Lookups of one id as several kinds (introspection, revocation) need no grant.
      const withGrant = kinds.length === 1 && WITH_GRANT.has(kinds[0]);
      const { rows } = await sql.run<Found>(withGrant ? SQL.findWithGrant : SQL.find, [id, kinds]);
      for (const r of rows) if (r.grant_id && r.grant_payload) grantRead(r.grant_id, { payload: r.grant_payload, expires_at: r.grant_expires_at, consumed_at: r.grant_consumed_at });
      for (const [kind, waiters] of waiting) {
        const row = rows.find((r) => r.kind === kind);
        for (const w of waiters) w.resolve(row);
      }
    } catch (err) {
      for (const waiters of waiting.values()) for (const w of waiters) w.reject(err);
    }
  }

  return (kind: string, id: string): Promise<Row | undefined> =>
    new Promise((resolve, reject) => {
      let byKind = pending.get(id);
      if (!byKind) {
        byKind = new Map();
        pending.set(id, byKind);
        process.nextTick(() => void flush(id));
      }
      const waiters = byKind.get(kind) ?? [];
      waiters.push({ resolve, reject });
      byKind.set(kind, waiters);
    });
}

/** How long a grant read along with its token may answer Grant.find (the same request, in practice). */
const GRANT_READ_MS = 250;

/** A rotation's consumption, held back until its successor is saved (same token request). */
const pendingConsume = new WeakMap<object, { id: string; at: Date }>();

export function createOidcAdapter(knex: Knex, options: OidcAdapterOptions = {}): AdapterConstructor {
  const sql = options.statements ?? knexStatements(knex);
  // Grants read along with a token, each taken by the Grant.find that follows (then read fresh).
  const grantsRead = new Map<string, { row: Row; at: number }>();
  const findRow = createFindBatcher(sql, (grantId, row) => {
    if (grantsRead.size >= 1000) for (const [k, v] of grantsRead) if (Date.now() - v.at >= GRANT_READ_MS) grantsRead.delete(k);
    if (grantsRead.size < 10_000) grantsRead.set(grantId, { row, at: Date.now() });
  });
  const takeGrantRead = (grantId: string): Row | undefined => {
    const read = grantsRead.get(grantId);
    if (!read) return undefined;
    grantsRead.delete(grantId);
    return Date.now() - read.at < GRANT_READ_MS ? read.row : undefined;
  };
  const graceMs = (options.refreshReuseGrace ?? 0) * 1000;
  const findClient = createClientLookup(sql, { changes: options.changes });

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
      if (this.kind === 'Grant') grantsRead.delete(id);
      const pending = exchange && pendingConsume.get(exchange);
      if (pending) pendingConsume.delete(exchange);
      await sql.run(pending ? SQL.rotate : SQL.upsert, [
        this.kind,
        id,
        JSON.stringify(rotatedFrom ? { ...payload, [PREDECESSOR]: rotatedFrom } : payload),
        payload.grantId ?? null,
        payload.userCode ?? null,
        payload.uid ?? null,
        expiresIn ? new Date(Date.now() + expiresIn * 1000) : null,
        ...(pending ? [pending.id, pending.at] : []),
      ]);
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (this.#client) return this.#client.find(id) as Promise<AdapterPayload | undefined>;
      if (unstorable(id)) return undefined;
      const read = this.kind === 'Grant' ? takeGrantRead(id) : undefined;
      if (read) return live(read);
      const row = await findRow(this.kind, id);
      return live(graceMs && this.kind === 'RefreshToken' ? await withinGrace(id, row) : row);
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      if (unstorable(userCode)) return undefined;
      return live((await sql.run<Row>(SQL.findByUserCode, [this.kind, userCode])).rows[0]);
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      if (unstorable(uid)) return undefined;
      return live((await sql.run<Row>(SQL.findByUid, [this.kind, uid])).rows[0]);
    }

    async consume(id: string): Promise<void> {
      if (this.kind === 'RefreshToken') {
        const exchange = currentExchange();
        if (exchange) {
          exchange.rotatedFrom = id;
          // oidc-provider saves the successor next: one statement does both (SQL.rotate). Should
          // it never be saved, the token stays unconsumed, as if this request had not happened.
          pendingConsume.set(exchange, { id, at: new Date() });
          return;
        }
      }
      // The first consumption time stays: a repeat inside the refresh grace must not extend it.
      await sql.run(SQL.consume, [this.kind, id, new Date()]);
    }

    /** Consumes a live, unconsumed record atomically; false when another caller got there first. */
    async claim(id: string): Promise<boolean> {
      if (unstorable(id)) return false;
      return (await sql.run(SQL.claim, [this.kind, id, new Date()])).rowCount === 1;
    }

    async destroy(id: string): Promise<void> {
      if (this.#client) return this.#client.destroy(id) as Promise<void>;
      if (this.kind === 'Grant') grantsRead.delete(id);
      await sql.run(SQL.destroy, [this.kind, id]);
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      grantsRead.delete(grantId);
      await sql.run(SQL.revokeByGrantId, [this.kind, grantId]);
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
