// Reads the YAML config: ${ENV} substitution, environment overrides, schema validation. Every
// problem is collected and reported at once with its path; secret values are never echoed.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { ConfigError, type ConfigIssue } from '../errors.ts';
import { configSchema, type Config } from './schema.ts';

type Env = Record<string, string | undefined>;

const ABSENT = Symbol('absent');
const REFERENCE = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

function joinPath(base: string, key: string | number): string {
  return typeof key === 'number' ? `${base}[${key}]` : base ? `${base}.${key}` : key;
}

/** Replaces ${NAME} and ${NAME:-default} in every string; `$${` is a literal `${`. */
export function substituteEnv(value: unknown, env: Env, at = ''): { value: unknown; issues: ConfigIssue[] } {
  const issues: ConfigIssue[] = [];
  const walk = (v: unknown, p: string): unknown => {
    if (typeof v === 'string') {
      const whole = /^\$\{([A-Za-z_][A-Za-z0-9_]*):-\}$/.exec(v);
      if (whole && !env[whole[1]]) return ABSENT;
      return v.replace(REFERENCE, (match, name: string | undefined, fallback: string | undefined) => {
        if (match === '$${') return '${';
        const found = env[name!];
        if (found !== undefined && found !== '') return found;
        if (fallback !== undefined) return fallback;
        issues.push({ path: p, message: `environment variable ${name} is not set` });
        return '';
      });
    }
    if (Array.isArray(v)) return v.map((item, i) => walk(item, joinPath(p, i))).filter((item) => item !== ABSENT);
    if (v && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, item] of Object.entries(v)) {
        const next = walk(item, joinPath(p, k));
        if (next !== ABSENT) out[k] = next;
      }
      return out;
    }
    return v;
  };
  const result = walk(value, at);
  return { value: result === ABSENT ? undefined : result, issues };
}

function setIn(obj: Record<string, unknown>, keys: string[], value: unknown): void {
  let cur = obj;
  for (const k of keys.slice(0, -1)) {
    if (!cur[k] || typeof cur[k] !== 'object' || Array.isArray(cur[k])) cur[k] = {};
    cur = cur[k] as Record<string, unknown>;
  }
  cur[keys[keys.length - 1]] = value;
}

function applyOverrides(raw: Record<string, unknown>, env: Env): void {
  if (env.KEYBRIDGE_ISSUER) raw.issuer = env.KEYBRIDGE_ISSUER;
  if (env.DATABASE_URL) setIn(raw, ['database', 'url'], env.DATABASE_URL);
  if (env.KEYBRIDGE_LISTEN) setIn(raw, ['http', 'listen'], env.KEYBRIDGE_LISTEN);
  if (env.PORT) {
    const current = ((raw.http as Record<string, unknown> | undefined)?.listen as string | undefined) ?? '127.0.0.1:5556';
    const host = current.includes(':') ? current.slice(0, current.lastIndexOf(':')) : '127.0.0.1';
    setIn(raw, ['http', 'listen'], `${host}:${env.PORT}`);
  }
  if (env.LOG_LEVEL) setIn(raw, ['log', 'level'], env.LOG_LEVEL);
}

function formatPath(segments: readonly PropertyKey[]): string {
  let out = '';
  for (const s of segments) out = joinPath(out, typeof s === 'number' ? s : String(s));
  return out;
}

export function parseConfig(text: string, options: { env?: Env; source?: string } = {}): Config {
  const env = options.env ?? process.env;
  const doc = parseDocument(text);
  if (doc.errors.length) {
    throw new ConfigError(doc.errors.map((e) => ({
      path: e.linePos ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : '(yaml)',
      message: e.message.split('\n')[0],
    })), options.source);
  }
  const parsed = doc.toJS() ?? {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError([{ path: '', message: 'the config must be a YAML mapping' }], options.source);
  const { value, issues } = substituteEnv(parsed, env);
  const raw = (value ?? {}) as Record<string, unknown>;
  applyOverrides(raw, env);
  const result = configSchema.safeParse(raw);
  if (result.success && issues.length === 0) return result.data;
  const all = [...issues];
  if (!result.success) {
    const envPaths = new Set(issues.map((i) => i.path));
    for (const issue of result.error.issues) {
      // A value that came out empty because its variable is unset was reported already.
      if (envPaths.has(formatPath(issue.path))) continue;
      const message = issue.code === 'unrecognized_keys' ? `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}` : issue.message;
      all.push({ path: formatPath(issue.path), message });
    }
  }
  throw new ConfigError(all, options.source);
}

export async function loadConfig(options: { path?: string; env?: Env } = {}): Promise<{ config: Config; path: string }> {
  const env = options.env ?? process.env;
  const file = path.resolve(options.path ?? env.KEYBRIDGE_CONFIG ?? 'config/dev.yaml');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ path: '', message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }], file);
  }
  return { config: parseConfig(text, { env, source: file }), path: file };
}
