// oidc-provider's storage adapter on knex: one table for every short-lived artifact (sessions,
// interactions, codes, tokens, grants...), keyed (kind, id), one indexed statement per call.
// The Client model reads runtime-managed clients from the `clients` table.
import type { Knex } from 'knex';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { PREDECESSOR, currentExchange, successorUsed } from './refresh-grace.ts';

const TABLE = 'oidc_payloads';

export interface OidcAdapterOptions {
  /** Seconds a just-rotated refresh token may be presented again (src/storage/refresh-grace.ts); 0: never. */
  refreshReuseGrace?: number;
}

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

function clientAdapter(knex: Knex): Adapter {
  return {
    async upsert(id, payload) {
      await knex('clients')
        .insert({ id, metadata: JSON.stringify(payload) })
        .onConflict('id')
        .merge({ metadata: JSON.stringify(payload), updated_at: new Date() });
    },
    async find(id) {
      if (unstorable(id)) return undefined;
      const row = await knex('clients').where({ id, enabled: true }).first('metadata', 'first_party');
      return row ? { ...row.metadata, client_id: id, first_party: row.first_party } : undefined;
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
 * oidc-provider looks an unknown token up as several kinds at once (introspection and
 * revocation without a type hint ask AccessToken, ClientCredentials and RefreshToken in the
 * same tick). Lookups of one id issued in the same tick share one query.
 */
function createFindBatcher(knex: Knex) {
  type Waiter = { resolve(row: Row | undefined): void; reject(err: unknown): void };
  const pending = new Map<string, Map<string, Waiter[]>>();

  async function flush(id: string): Promise<void> {
    const waiting = pending.get(id)!;
    pending.delete(id);
    try {
      const rows = await knex(TABLE).where('id', id).whereIn('kind', [...waiting.keys()]).select<(Row & { kind: string })[]>('kind', 'payload', 'expires_at', 'consumed_at');
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

export function createOidcAdapter(knex: Knex, options: OidcAdapterOptions = {}): AdapterConstructor {
  const findRow = createFindBatcher(knex);
  const graceMs = (options.refreshReuseGrace ?? 0) * 1000;

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
      this.#client = name === 'Client' ? clientAdapter(knex) : undefined;
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
      if (this.#client) return this.#client.upsert(id, payload, expiresIn ?? 0) as Promise<void>;
      // A rotated refresh token's successor names it, so a repeat can find the successor.
      const rotatedFrom = this.kind === 'RefreshToken' ? currentExchange()?.rotatedFrom : undefined;
      const row = {
        kind: this.kind,
        id,
        payload: JSON.stringify(rotatedFrom ? { ...payload, [PREDECESSOR]: rotatedFrom } : payload),
        grant_id: payload.grantId ?? null,
        user_code: payload.userCode ?? null,
        uid: payload.uid ?? null,
        expires_at: expiresIn ? new Date(Date.now() + expiresIn * 1000) : null,
      };
      await knex(TABLE).insert(row).onConflict(['kind', 'id']).merge(['payload', 'grant_id', 'user_code', 'uid', 'expires_at']);
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (this.#client) return this.#client.find(id) as Promise<AdapterPayload | undefined>;
      if (unstorable(id)) return undefined;
      const row = await findRow(this.kind, id);
      return live(graceMs && this.kind === 'RefreshToken' ? await withinGrace(id, row) : row);
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      if (unstorable(userCode)) return undefined;
      return live(await knex(TABLE).where({ kind: this.kind, user_code: userCode }).first<Row>('payload', 'expires_at', 'consumed_at'));
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      if (unstorable(uid)) return undefined;
      return live(await knex(TABLE).where({ kind: this.kind, uid }).first<Row>('payload', 'expires_at', 'consumed_at'));
    }

    async consume(id: string): Promise<void> {
      if (this.kind === 'RefreshToken') {
        const exchange = currentExchange();
        if (exchange) exchange.rotatedFrom = id;
      }
      // The first consumption time stays: a repeat inside the refresh grace must not extend it.
      await knex(TABLE).where({ kind: this.kind, id }).whereNull('consumed_at').update({ consumed_at: new Date() });
    }

    /** Consumes a live, unconsumed record atomically; false when another caller got there first. */
    async claim(id: string): Promise<boolean> {
      const rows = await knex(TABLE)
        .where({ kind: this.kind, id })
        .whereNull('consumed_at')
        .andWhere((q) => q.whereNull('expires_at').orWhere('expires_at', '>', new Date()))
        .update({ consumed_at: new Date() }, ['id']);
      return rows.length === 1;
    }

    async destroy(id: string): Promise<void> {
      if (this.#client) return this.#client.destroy(id) as Promise<void>;
      await knex(TABLE).where({ kind: this.kind, id }).delete();
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      await knex(TABLE).where({ kind: this.kind, grant_id: grantId }).delete();
    }
  };
}

/** Deletes expired artifacts and retired keys past their grace period. */
export async function purgeExpired(knex: Knex, now = new Date()): Promise<{ payloads: number; signingKeys: number }> {
  const payloads = await knex(TABLE).where('expires_at', '<=', now).delete();
  const signingKeys = await knex('signing_keys').where('status', 'retired').andWhere('remove_after', '<=', now).delete();
  return { payloads, signingKeys };
}
