// Adaptive batching for hot-path statements. While fewer than `maxInFlight` batches are running,
// an item goes to the database at once, alone: no added latency when the broker is quiet. Under
// load, items arriving while every slot is busy wait and leave together when a slot frees: one
// statement, one round trip and one commit for all of them, so the batch size follows the load.
//
// With `linger`, an item waits for the end of the current turn of the event loop (setImmediate)
// before it goes: for a database that runs statements inside this process (PGlite), where the
// event loop is blocked while one runs and nothing can queue behind it, what arrives in one turn
// (the requests read from the sockets together) still goes as one statement.
//
// With `keyOf`, items of one key never run concurrently and keep their order: an item whose key
// is in flight (or already in the batch being built) waits for the next batch.

export interface BatchQueueOptions<T> {
  maxInFlight: number;
  maxBatch: number;
  /** Sends a batch and settles every item of it; must not reject. */
  send(batch: T[]): Promise<void>;
  keyOf?: (item: T) => string;
  /** Gather the items of one event-loop turn before sending (see above). */
  linger?: boolean;
}

export class BatchQueue<T> {
  readonly #options: BatchQueueOptions<T>;
  #queue: T[] = [];
  #inFlight = 0;
  readonly #busyKeys = new Map<string, number>();
  #lingering = false;

  constructor(options: BatchQueueOptions<T>) {
    this.#options = options;
  }

  push(item: T): void {
    this.pushMany([item]);
  }

  /** Several items at once: when a slot is free, they leave together rather than the first alone. */
  pushMany(items: readonly T[]): void {
    this.#queue.push(...items);
    if (!this.#options.linger) return this.#pump();
    if (this.#lingering) return;
    this.#lingering = true;
    setImmediate(() => {
      this.#lingering = false;
      this.#pump();
    });
  }

  #take(): T[] {
    const { keyOf, maxBatch } = this.#options;
    if (!keyOf) return this.#queue.splice(0, maxBatch);
    const batch: T[] = [];
    const rest: T[] = [];
    const inBatch = new Set<string>();
    const held = new Set<string>();
    for (const item of this.#queue) {
      const key = keyOf(item);
      if (batch.length < maxBatch && !held.has(key) && !inBatch.has(key) && !this.#busyKeys.has(key)) {
        batch.push(item);
        inBatch.add(key);
      } else {
        // Later items of this key must wait behind this one.
        held.add(key);
        rest.push(item);
      }
    }
    this.#queue = rest;
    return batch;
  }

  #pump(): void {
    while (this.#inFlight < this.#options.maxInFlight && this.#queue.length) {
      const batch = this.#take();
      if (!batch.length) return;
      const keys = this.#options.keyOf ? batch.map(this.#options.keyOf) : [];
      for (const k of keys) this.#busyKeys.set(k, (this.#busyKeys.get(k) ?? 0) + 1);
      this.#inFlight++;
      void this.#options.send(batch).finally(() => {
        this.#inFlight--;
        for (const k of keys) {
          const n = this.#busyKeys.get(k)! - 1;
          if (n) this.#busyKeys.set(k, n);
          else this.#busyKeys.delete(k);
        }
        this.#pump();
      });
    }
  }
}
