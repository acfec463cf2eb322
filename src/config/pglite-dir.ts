import path from 'node:path';
import type { Config } from './schema.ts';

/** Where the embedded database lives: `<dataDir>/pglite`, or in memory for `dataDir: ":memory:"`. */
export function pgliteDir(config: Config): string {
  return config.database.dataDir === ':memory:' ? ':memory:' : path.join(config.database.dataDir, 'pglite');
}
