// Tells every instance that an object managed at runtime (a client, a connector...) changed, so
// each can drop what it cached of it. Small on purpose:
//
//   await feed.notify(trx, 'client', id);   // inside the transaction that makes the change
//   const stop = feed.subscribe('client', (id) => cache.forget(id)); // id null: anything of that kind
//
// How it reaches the other instances:
// - PostgreSQL: `pg_notify('keybridge_changes', ...)` sent in the writing transaction (PostgreSQL
//   delivers it at commit, and never for a rolled-back one) to a dedicated LISTEN connection per
//   instance, which reconnects when it drops. A notification can still be missed (the listener was
//   reconnecting), so each change also bumps its kind's row in `change_versions`, polled every
//   `pollMs` (1 s): a bumped version tells listeners "anything of that kind may have changed".
// - PGlite: one process, so the change is announced in-process once its transaction commits.
// This instance's own listeners hear of a change as soon as it commits, on both stores.
import type { Knex } from 'knex';
import type { Logger } from 'pino';

export const CHANGES_CHANNEL = 'keybridge_changes';

/** The id null means: anything of the kind may have changed (a missed notification). */
export type ChangeListener = (id: string | null) => void;

/** What repositories need to announce a change; a ChangeFeed, or the SQL alone (CLI). */
export interface ChangeNotifier {
  notify(knex: Knex, kind: string, id: string): Promise<void>;
}

// NOTIFY payloads are limited to 8000 bytes; a longer id is announced as "anything of the kind".
const MAX_ID = 1000;

/** The SQL part of a change: bumps the kind's version and queues the notification. */
export async function announceChange(knex: Knex, kind: string, id: string): Promise<void> {
  // The row lock taken here orders the kind's changes: versions commit one after another.
  const { rows } = (await knex.raw(
    `INSERT INTO change_versions (kind, version, changed_at) VALUES (?, 1, now())
     ON CONFLICT (kind) DO UPDATE SET version = change_versions.version + 1, changed_at = now() RETURNING version`,
    [kind],
  )) as { rows: Array<{ version: string | number }> };
  const version = String(rows[0].version);
  await knex.raw('SELECT pg_notify(?, ?)', [CHANGES_CHANNEL, JSON.stringify({ kind, id: id.length <= MAX_ID ? id : null, version })]);
}

/** Announces changes without hearing any (one-shot CLI commands). */
export const sqlOnlyNotifier: ChangeNotifier = { notify: announceChange };

// The little of node-postgres' Client used here.
interface ListenClient {
  connect(): Promise<unknown>;
  query(text: string): Promise<unknown>;
  end(): Promise<void>;
  on(event: 'notification', fn: (msg: { channel: string; payload?: string }) => void): unknown;
  on(event: 'error' | 'end', fn: (err?: Error) => void): unknown;
  removeAllListeners(): unknown;
}

export interface ChangeFeedOptions {
  /** PostgreSQL URL: listen there and poll `change_versions`; absent (PGlite): in-process only. */
  url?: string;
  logger?: Logger;
  /** How often versions are compared on PostgreSQL (default 1000 ms). */
  pollMs?: number;
}

export class ChangeFeed implements ChangeNotifier {
  readonly #knex: Knex;
  readonly #options: ChangeFeedOptions;
  readonly #listeners = new Map<string, Set<ChangeListener>>();
  readonly #versions = new Map<string, string>();
  #client: ListenClient | undefined;
  #timers: NodeJS.Timeout[] = [];
  #closed = false;
  #polling = false;
  #seeded = false;

  private constructor(knex: Knex, options: ChangeFeedOptions) {
    this.#knex = knex;
    this.#options = options;
  }

  /** Starts listening (PostgreSQL) or just dispatching in-process (PGlite). */
  static async open(knex: Knex, options: ChangeFeedOptions = {}): Promise<ChangeFeed> {
    const feed = new ChangeFeed(knex, options);
    if (options.url) {
      await feed.#poll();
      await feed.#listen().catch((err) => feed.#retry(err));
      const timer = setInterval(() => void feed.#poll(), options.pollMs ?? 1000);
      timer.unref();
      feed.#timers.push(timer);
    }
    return feed;
  }

  async notify(knex: Knex, kind: string, id: string): Promise<void> {
    await announceChange(knex, kind, id);
    const fire = () => this.#dispatch(kind, id);
    // After the commit: a listener that re-reads at once must see the change.
    const done = (knex as Knex.Transaction).isTransaction ? (knex as Knex.Transaction & { executionPromise?: Promise<unknown> }).executionPromise : undefined;
    if (done) done.then(fire, fire);
    else fire();
  }

  subscribe(kind: string, fn: ChangeListener): () => void {
    let set = this.#listeners.get(kind);
    if (!set) this.#listeners.set(kind, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    const client = this.#client;
    this.#client = undefined;
    client?.removeAllListeners();
    await client?.end().catch(() => {});
  }

  #dispatch(kind: string, id: string | null): void {
    for (const fn of this.#listeners.get(kind) ?? []) {
      try {
        fn(id);
      } catch (err) {
        this.#options.logger?.warn({ err, kind }, 'change listener failed');
      }
    }
  }

  #dispatchAll(): void {
    for (const kind of this.#listeners.keys()) this.#dispatch(kind, null);
  }

  async #listen(): Promise<void> {
    const { default: pg } = (await import('pg' as string)) as { default: { Client: new (config: Record<string, unknown>) => ListenClient } };
    const client = new pg.Client({ connectionString: this.#options.url, connectionTimeoutMillis: 3000, keepAlive: true });
    client.on('error', (err) => this.#lost(client, err));
    client.on('end', () => this.#lost(client));
    client.on('notification', (msg) => {
      if (msg.channel !== CHANGES_CHANNEL || !msg.payload) return;
      try {
        const { kind, id, version } = JSON.parse(msg.payload) as { kind?: unknown; id?: unknown; version?: unknown };
        if (typeof kind !== 'string') return;
        // The next version in sequence: nothing was missed, and the poll need not clear the kind again.
        const known = this.#versions.get(kind);
        if (typeof version === 'string' && known !== undefined && BigInt(version) === BigInt(known) + 1n) this.#versions.set(kind, version);
        this.#dispatch(kind, typeof id === 'string' ? id : null);
      } catch {
        // not ours
      }
    });
    await client.connect();
    await client.query(`LISTEN ${CHANGES_CHANNEL}`);
    if (this.#closed) {
      await client.end();
      return;
    }
    this.#client = client;
  }

  #lost(client: ListenClient, err?: Error): void {
    if (this.#closed || this.#client !== client) return;
    this.#client = undefined;
    client.removeAllListeners();
    client.end().catch(() => {});
    this.#retry(err);
  }

  #retry(err: unknown, delayMs = 1000): void {
    if (this.#closed) return;
    this.#options.logger?.warn({ reason: (err as Error | undefined)?.message }, 'change notifications lost; reconnecting (changes are polled meanwhile)');
    const timer = setTimeout(() => {
      this.#timers = this.#timers.filter((t) => t !== timer);
      this.#listen().then(
        // Whatever was announced while nobody listened.
        () => this.#dispatchAll(),
        (again) => this.#retry(again, Math.min(delayMs * 2, 10_000)),
      );
    }, delayMs);
    timer.unref();
    this.#timers.push(timer);
  }

  async #poll(): Promise<void> {
    if (this.#polling || this.#closed) return;
    this.#polling = true;
    try {
      const rows = (await this.#knex('change_versions').select('kind', 'version')) as Array<{ kind: string; version: string | number }>;
      for (const row of rows) {
        const version = String(row.version);
        const known = this.#versions.get(row.kind);
        this.#versions.set(row.kind, version);
        // The first poll only learns where each kind stands.
        if (known !== version && (known !== undefined || this.#seeded)) this.#dispatch(row.kind, null);
      }
      this.#seeded = true;
    } catch (err) {
      this.#options.logger?.debug({ reason: (err as Error).message }, 'change poll failed');
    } finally {
      this.#polling = false;
    }
  }
}
