// Finds a passport Strategy class by module name or path. Resolution starts at the broker's
// working directory, so an operator installs strategies next to their config; the bridge's own
// location (the repository's node_modules) is the fallback.
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

/** A passport strategy constructor: `new Strategy(options, verify)`. */
export type StrategyClass = new (options: Record<string, unknown>, verify: (...args: unknown[]) => void) => object;

const NOT_FOUND = new Set(['MODULE_NOT_FOUND', 'ERR_MODULE_NOT_FOUND', 'ERR_PACKAGE_PATH_NOT_EXPORTED']);

function isStrategyClass(value: unknown): value is StrategyClass {
  return typeof value === 'function' && typeof (value as { prototype?: { authenticate?: unknown } }).prototype?.authenticate === 'function';
}

async function importModule(specifier: string): Promise<Record<string, unknown>> {
  const cwd = process.cwd();
  if (specifier.startsWith('/') || specifier.startsWith('./') || specifier.startsWith('../')) {
    return import(pathToFileURL(path.resolve(cwd, specifier)).href);
  }
  let resolved: string | undefined;
  try {
    resolved = createRequire(path.join(cwd, 'keybridge-config.js')).resolve(specifier);
  } catch (err) {
    // ESM-only packages (no "require" condition) are not resolvable this way; import() below is.
    if (!NOT_FOUND.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
  }
  return import(resolved ? pathToFileURL(resolved).href : specifier);
}

/** The Strategy class `exportName` (or, by default, `Strategy`, the default export, the module itself); throws a message naming the module. */
export async function loadStrategyClass(specifier: string, exportName?: string): Promise<StrategyClass> {
  let mod: Record<string, unknown>;
  try {
    mod = await importModule(specifier);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (NOT_FOUND.has(e.code ?? '') && String(e.message).includes(specifier.replace(/^\.\//, ''))) {
      throw new Error(`passport strategy module "${specifier}" cannot be found (install it with npm install ${specifier}, or check the path)`);
    }
    throw new Error(`passport strategy module "${specifier}" cannot be loaded: ${e.message}`);
  }
  // import() of a CommonJS module puts module.exports on `default` (and its detectable names beside it).
  const cjs = mod.default as Record<string, unknown> | undefined;
  if (exportName) {
    const found = mod[exportName] ?? cjs?.[exportName];
    if (isStrategyClass(found)) return found;
    throw new Error(`passport strategy module "${specifier}" has no Strategy class in its export "${exportName}"`);
  }
  for (const candidate of [mod.Strategy, cjs?.Strategy, mod.default, mod]) {
    if (isStrategyClass(candidate)) return candidate;
  }
  throw new Error(`passport strategy module "${specifier}" exports no Strategy class (looked for "Strategy", the default export and the module itself; name it with export:)`);
}
