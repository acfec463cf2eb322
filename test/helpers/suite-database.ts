// A fresh database for one suite: opened in its `before`, dropped in its `after`, and a loud
// skip for each test when this store cannot run here (PostgreSQL not reachable).
import type { TestContext } from 'node:test';
import { freshPostgresDatabase } from './postgres.ts';
import { skipLoudly } from './skip.ts';

type Open = () => Promise<{ url: string | undefined; drop(): Promise<void> } | { skip: string }>;

/** The stores a suite runs on: PGlite in memory (url undefined) and a fresh PostgreSQL database. */
export const STORES: ReadonlyArray<{ name: string; url: Open }> = [
  { name: 'PGlite', url: async () => ({ url: undefined, drop: async () => {} }) },
  { name: 'PostgreSQL', url: freshPostgresDatabase },
];

export class SuiteDatabase {
  /** The database URL once open (undefined for PGlite in memory). */
  url: string | undefined;
  /** Why this store cannot run here, when it cannot. */
  skipped: string | undefined;
  #drop: () => Promise<void> = async () => {};
  readonly #open: Open;

  constructor(open: Open = freshPostgresDatabase) {
    this.#open = open;
  }

  /** Opens a fresh database; false when this store cannot run here. */
  async open(): Promise<boolean> {
    const db = await this.#open();
    if ('skip' in db) {
      this.skipped = db.skip;
      return false;
    }
    this.#drop = db.drop;
    this.url = db.url;
    return true;
  }

  async drop(): Promise<void> {
    await this.#drop();
  }

  /** Whether a test can run; skips it loudly when it cannot. */
  live(t: { skip(message: string): void }): boolean {
    if (this.skipped) skipLoudly(t as TestContext, this.skipped);
    return !this.skipped;
  }
}
