// Reads the YAML config: ${ENV} substitution, environment overrides, schema validation. Every
// problem is collected and reported at once with its path; secret values are never echoed.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseDocument, type YAMLError } from 'yaml';
import { ConfigError, type ConfigIssue } from '../errors.ts';
import { configSchema, type Config } from './schema.ts';
import { isProductionMode, productionChecks } from './production-checks.ts';

type Env = Record<string, string | undefined>;

const ABSENT = Symbol('absent');
const REFERENCE = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;
const OPTIONAL_ALONE = /^\$\{([A-Za-z_][A-Za-z0-9_]*):-\}$/;

/** `clients[0].redirectUris[1]`; keys that are not plain words are quoted: `config["a.b"]`. */
function joinPath(base: string, key: string | number): string {
  if (typeof key === 'number') return `${base}[${key}]`;
  if (!/^[A-Za-z_$][\w$-]*$/.test(key)) return `${base}[${JSON.stringify(key)}]`;
  return base ? `${base}.${key}` : key;
}

function formatPath(segments: readonly PropertyKey[]): string {
  let out = '';
  for (const s of segments) out = joinPath(out, typeof s === 'number' ? s : String(s));
  return out;
}

/**
 * Replaces `${NAME}` and `${NAME:-default}` in every string of a parsed document; `$${` is a
 * literal `${`. A string that is exactly `${NAME:-}` and comes out empty makes its key (or list
 * item) absent, so `secret: ${APP_SECRET:-}` means "public client unless set". An unset variable
 * without a default is an issue at the path of the string that names it.
 */
export function substituteEnv(value: unknown, env: Env, at = ''): { value: unknown; issues: ConfigIssue[] } {
  const issues: ConfigIssue[] = [];
  const walk = (v: unknown, p: string): unknown => {
    if (typeof v === 'string') {
      const alone = OPTIONAL_ALONE.exec(v);
      if (alone && !env[alone[1]]) return ABSENT;
      return v.replace(REFERENCE, (match, name: string | undefined, fallback: string | undefined) => {
        if (match === '$${') return '${';
        const found = env[name!];
        if (found) return found;
        // `:-` as in the shell: the default also stands in for an empty value.
        if (fallback !== undefined) return fallback;
        issues.push({ path: p, message: `environment variable ${name} is ${found === undefined ? 'not set' : 'empty'}` });
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

// `${NAME}` is not a valid plain scalar inside a YAML flow collection (`{ url: ${DATABASE_URL} }`
// would be a syntax error, `{` and `}` being flow indicators), and ` #` in a default would start
// a comment. So references are swapped for same-length private-use placeholders before parsing
// (line and column numbers stay true) and put back in the parsed values. Values are still
// substituted after parsing: an environment value can never change the YAML structure.
const MARK = '\uE000';
const FILL = '\uF8FF';
const FIRST_INDEX = 0xe001;
const LAST_INDEX = 0xf7ff;
const TEXT_REFERENCE = /\$?\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}\r\n]*)?\}/g;
const PLACEHOLDER = /\uE000([\uE001-\uF7FF])\uF8FF*/g;

function protectReferences(text: string): { text: string; restore: (s: string) => string } {
  const originals: string[] = [];
  const identity = { text, restore: (s: string) => s };
  if (/[\uE000-\uF8FF]/.test(text)) return identity;
  const protectedText = text.replace(TEXT_REFERENCE, (ref) => {
    originals.push(ref);
    return MARK + String.fromCharCode(FIRST_INDEX + originals.length - 1) + FILL.repeat(ref.length - 2);
  });
  if (originals.length === 0 || originals.length > LAST_INDEX - FIRST_INDEX + 1) return identity;
  return { text: protectedText, restore: (s) => (s.includes(MARK) ? s.replace(PLACEHOLDER, (_, c: string) => originals[c.charCodeAt(0) - FIRST_INDEX]) : s) };
}

function restoreDeep(v: unknown, restore: (s: string) => string): unknown {
  if (typeof v === 'string') return restore(v);
  if (Array.isArray(v)) return v.map((item) => restoreDeep(item, restore));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, item]) => [restore(k), restoreDeep(item, restore)]));
  return v;
}

function yamlIssue(error: YAMLError, restore: (s: string) => string): ConfigIssue {
  const message = restore(error.message.split('\n')[0])
    .replace(/ at line \d+, column \d+:?$/, '')
    // The quoted token is source text, which may be a secret written in the file.
    .replace(/: ".*"$/, '');
  const at = error.linePos?.[0];
  return { path: at ? `line ${at.line}, column ${at.col}` : '(yaml)', message };
}

const asRecord = (v: unknown): Record<string, unknown> | undefined => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);

/** Sets raw[section][key], leaving a section that is not a mapping for the schema to report. */
function setIn(raw: Record<string, unknown>, section: string, key: string, value: unknown): boolean {
  if (raw[section] === undefined || raw[section] === null) raw[section] = {};
  const target = asRecord(raw[section]);
  if (!target) return false;
  target[key] = value;
  return true;
}

/** Environment overrides; returns which variable set which path, for the messages. */
function applyOverrides(raw: Record<string, unknown>, env: Env, issues: ConfigIssue[]): Map<string, string> {
  const setBy = new Map<string, string>();
  if (env.KEYBRIDGE_ISSUER) {
    raw.issuer = env.KEYBRIDGE_ISSUER;
    setBy.set('issuer', 'KEYBRIDGE_ISSUER');
  }
  if (env.DATABASE_URL && setIn(raw, 'database', 'url', env.DATABASE_URL)) setBy.set('database.url', 'DATABASE_URL');
  if (env.KEYBRIDGE_LISTEN && setIn(raw, 'http', 'listen', env.KEYBRIDGE_LISTEN)) setBy.set('http.listen', 'KEYBRIDGE_LISTEN');
  // After KEYBRIDGE_LISTEN: a platform's PORT replaces the port and keeps the configured host.
  if (env.PORT) {
    if (!/^\d{1,5}$/.test(env.PORT) || Number(env.PORT) > 65535) {
      issues.push({ path: 'http.listen', message: 'PORT must be a port number from 0 to 65535' });
    } else {
      const current = asRecord(raw.http)?.listen;
      const listen = typeof current === 'string' ? current : '127.0.0.1:5556';
      const host = listen.includes(':') ? listen.slice(0, listen.lastIndexOf(':')) : listen;
      if (setIn(raw, 'http', 'listen', `${host}:${env.PORT}`)) setBy.set('http.listen', setBy.has('http.listen') ? 'KEYBRIDGE_LISTEN and PORT' : 'PORT');
    }
  }
  if (env.LOG_LEVEL && setIn(raw, 'log', 'level', env.LOG_LEVEL)) setBy.set('log.level', 'LOG_LEVEL');
  return setBy;
}

// Values under these keys (and the database URL and its password) are masked in any message.
const SECRET_KEY = /secret|password|passwd|cookieKeys|privateKey|bindPW|token$/i;

function secretValues(raw: unknown): string[] {
  const found: string[] = [];
  const collect = (v: unknown, secret: boolean): void => {
    if (typeof v === 'string' && secret) found.push(v);
    else if (Array.isArray(v)) v.forEach((item) => collect(item, secret));
    else if (v && typeof v === 'object') for (const [k, item] of Object.entries(v)) collect(item, secret || SECRET_KEY.test(k));
  };
  collect(raw, false);
  const url = asRecord(asRecord(raw)?.database)?.url;
  if (typeof url === 'string') {
    found.push(url);
    const password = /^[a-z]+:\/\/[^:/@]*:([^@]*)@/i.exec(url)?.[1];
    if (password) found.push(password, safeDecode(password));
  }
  return found.filter((s) => s.length >= 4).sort((a, b) => b.length - a.length);
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

// Just enough of zod's internals to find the keys allowed at a path, for "did you mean".
interface SchemaNode {
  _zod: { def: { type: string; shape?: Record<string, SchemaNode>; element?: SchemaNode; innerType?: SchemaNode; in?: SchemaNode } };
}

function allowedKeys(segments: readonly PropertyKey[]): string[] {
  const unwrap = (node: SchemaNode | undefined): SchemaNode | undefined => {
    let n = node;
    while (n && ['default', 'prefault', 'optional', 'nullable', 'readonly', 'pipe'].includes(n._zod.def.type)) n = n._zod.def.innerType ?? n._zod.def.in;
    return n;
  };
  let node = unwrap(configSchema as unknown as SchemaNode);
  for (const s of segments) {
    const def = node?._zod.def;
    node = unwrap(def?.type === 'array' ? def.element : def?.type === 'object' ? def.shape?.[String(s)] : undefined);
  }
  return node?._zod.def.type === 'object' ? Object.keys(node._zod.def.shape ?? {}) : [];
}

function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length];
}

function unknownKeyMessage(key: string, allowed: string[]): string {
  const folded = key.toLowerCase().replace(/[-_]/g, '');
  let best: string | undefined;
  // Short keys get little slack: `foo` is not a typo of `log`.
  let bestScore = (key.length <= 4 ? 1 : key.length <= 8 ? 2 : 3) + 1;
  for (const candidate of allowed) {
    const score = candidate.toLowerCase() === folded ? 0 : distance(key.toLowerCase(), candidate.toLowerCase());
    if (score < bestScore) [best, bestScore] = [candidate, score];
  }
  return best ? `unknown key (did you mean "${best}"?)` : 'unknown key';
}

/** Parses and validates config text; throws one ConfigError with every problem found. */
export function parseConfig(text: string, options: { env?: Env; source?: string } = {}): Config {
  const env = options.env ?? process.env;
  const { text: protectedText, restore } = protectReferences(text);
  const doc = parseDocument(protectedText, { merge: true, prettyErrors: true });
  if (doc.errors.length) throw new ConfigError(doc.errors.map((e) => yamlIssue(e, restore)), options.source);

  const parsed = restoreDeep(doc.toJS() ?? {}, restore);
  if (!asRecord(parsed)) throw new ConfigError([{ path: '', message: 'must be a YAML mapping (key: value lines)' }], options.source);
  const { value, issues: envIssues } = substituteEnv(parsed, env);
  const raw = asRecord(value) ?? {};
  const issues = [...envIssues];
  const setBy = applyOverrides(raw, env, issues);

  const result = configSchema.safeParse(raw, {
    error: (iss) => (iss.code === 'invalid_type' && iss.input === undefined ? 'is required' : undefined),
  });
  if (result.success && issues.length === 0) {
    // Production mode is checked on the validated config, so its rules read typed values.
    if (!isProductionMode(result.data, env)) return result.data;
    const config: Config = { ...result.data, mode: 'production' };
    const problems = productionChecks(config);
    if (problems.length) throw new ConfigError(problems, `${options.source ?? 'config'} (production mode; NODE_ENV=production or mode: production)`);
    return config;
  }

  if (!result.success) {
    const envPaths = envIssues.map((i) => i.path);
    for (const issue of result.error.issues) {
      const at = formatPath(issue.path);
      // A value that came out empty because its variable is unset was reported already.
      if (envPaths.some((p) => at === p || at.startsWith(`${p}.`) || at.startsWith(`${p}[`))) continue;
      if (issue.code === 'unrecognized_keys') {
        const allowed = allowedKeys(issue.path);
        for (const key of issue.keys) issues.push({ path: joinPath(at, key), message: unknownKeyMessage(key, allowed) });
        continue;
      }
      const source = setBy.get(at);
      issues.push({ path: at, message: source ? `${issue.message} (set by ${source})` : issue.message });
    }
  }

  const secrets = secretValues(raw);
  const masked = issues.map((i) => ({ path: i.path, message: secrets.reduce((m, s) => m.split(s).join('[redacted]'), i.message) }));
  throw new ConfigError(masked, options.source);
}

/**
 * Reads the config file: `options.path`, else `$KEYBRIDGE_CONFIG`, else `config/dev.yaml`
 * (relative paths from the working directory).
 */
export async function loadConfig(options: { path?: string; env?: Env } = {}): Promise<{ config: Config; path: string }> {
  const env = options.env ?? process.env;
  const file = path.resolve(options.path || env.KEYBRIDGE_CONFIG || 'config/dev.yaml');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (code ?? (err as Error).message);
    throw new ConfigError([{ path: '', message: `cannot read config file ${file}: ${why}` }], file);
  }
  return { config: parseConfig(text, { env, source: file }), path: file };
}
