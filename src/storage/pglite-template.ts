// An initialized PGlite data folder made once, at `npm install` (package.json postinstall), so
// that a fresh data folder is a file copy instead of an initdb run (4-5 s of WASM at start).
// It lives under node_modules/.cache, keyed by the PGlite version: a new PGlite makes a new one.
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);

function pgliteVersion(): string {
  const main = require.resolve('@electric-sql/pglite');
  let dir = path.dirname(main);
  while (!existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
  return (JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version: string }).version;
}

/** Where the template for the installed PGlite lives (it may not exist). */
export function pgliteTemplateDir(): string {
  const nodeModules = path.resolve(import.meta.dirname, '../../node_modules');
  return path.join(nodeModules, '.cache', 'keybridge', `pglite-${pgliteVersion()}`);
}

const isInitialized = (dir: string) => existsSync(path.join(dir, 'PG_VERSION'));

/** Builds the template unless present; returns its folder. Safe to run concurrently (rename is atomic). */
export async function ensurePgliteTemplate(dir = pgliteTemplateDir()): Promise<string> {
  if (isInitialized(dir)) return dir;
  const { PGlite } = await import('@electric-sql/pglite');
  const building = `${dir}.${process.pid}.tmp`;
  rmSync(building, { recursive: true, force: true });
  mkdirSync(building, { recursive: true });
  const db = new PGlite(building);
  await db.waitReady;
  await db.close();
  try {
    renameSync(building, dir);
  } catch (err) {
    rmSync(building, { recursive: true, force: true });
    if (!isInitialized(dir)) throw err;
  }
  return dir;
}

/**
 * Fills an empty data folder from the template, if there is one. Returns whether it did; false
 * leaves the folder to PGlite's own initdb. A folder holding anything is never touched.
 */
export function seedFromPgliteTemplate(dataDir: string): boolean {
  if (existsSync(dataDir) && readdirSync(dataDir).length > 0) return false;
  let template: string;
  try {
    template = pgliteTemplateDir();
  } catch {
    return false;
  }
  if (!isInitialized(template)) return false;
  cpSync(template, dataDir, { recursive: true });
  return true;
}

// `node src/storage/pglite-template.ts`: the install step (package.json postinstall).
if (import.meta.main) {
  const started = performance.now();
  ensurePgliteTemplate().then(
    (dir) => process.stdout.write(`keybridge: PGlite template ready in ${Math.round(performance.now() - started)} ms (${path.relative(process.cwd(), dir)})\n`),
    (err: Error) => process.stdout.write(`keybridge: no PGlite template (${err.message}); the first start will run initdb\n`),
  );
}
