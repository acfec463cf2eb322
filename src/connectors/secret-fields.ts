// A plugin's secret config fields (ConnectorPlugin.secretFields, dotted paths) taken out of a
// config and put back: stored connectors keep them sealed apart, and nothing that shows a
// connector's config (admin API, CLI, audit) ever holds them.

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function getPath(obj: Json, path: string): unknown {
  let at: unknown = obj;
  for (const key of path.split('.')) {
    if (!isObject(at) || !Object.hasOwn(at, key)) return undefined;
    at = at[key];
  }
  return at;
}

function setPath(obj: Json, path: string, value: unknown): void {
  const keys = path.split('.');
  let at = obj;
  for (const key of keys.slice(0, -1)) {
    if (!isObject(at[key])) at[key] = {};
    at = at[key] as Json;
  }
  at[keys.at(-1)!] = value;
}

function deletePath(obj: Json, path: string): void {
  const keys = path.split('.');
  let at: unknown = obj;
  for (const key of keys.slice(0, -1)) {
    if (!isObject(at)) return;
    at = at[key];
  }
  if (isObject(at)) delete at[keys.at(-1)!];
}

/** A deep copy of `config` without the secret fields, and the secrets found (by path). */
export function splitSecrets(config: Json, paths: readonly string[]): { config: Json; secrets: Record<string, unknown> } {
  const plain = structuredClone(config);
  const secrets: Record<string, unknown> = {};
  for (const path of paths) {
    const value = getPath(plain, path);
    if (value !== undefined) secrets[path] = value;
    deletePath(plain, path);
  }
  return { config: plain, secrets };
}

/** `config` with the secrets put back at their paths (a copy). */
export function mergeSecrets(config: Json, secrets: Record<string, unknown>): Json {
  const merged = structuredClone(config);
  for (const [path, value] of Object.entries(secrets)) if (value !== undefined && value !== null) setPath(merged, path, value);
  return merged;
}
