// Loads connector plugins by type name: the built-in `connectors/<type>/` folder first, then an
// npm package `keybridge-connector-<type>`. The broker never imports a concrete connector.
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import { ConfigError, type ConfigIssue } from '../errors.ts';
import type { Connector, ConnectorPlugin, ConnectorUrls, DirectorySync, LocalAccounts, ReplayGuard } from './contract.ts';
import { mappersSchema, type Mappers } from '../accounts/identity-mappers.ts';
import { DEFAULT_UPSTREAM_MFA, type UpstreamMfa } from '../mfa/upstream-mfa-policy.ts';

const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
const TYPE_NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;

/** What the broker (not the connector) does with a connector's identities. */
export interface ConnectorPolicy {
  linking: { firstLogin: 'create' | 'link-verified-email' | 'confirm'; trustEmail: boolean };
  storeTokens: boolean;
  mappers: Mappers;
  /** Accept the upstream's proof of a second factor (`upstreamMfa`) instead of a local one (src/mfa/upstream-mfa.ts). */
  trustUpstreamMfa: boolean;
  upstreamMfa: UpstreamMfa;
}

export const DEFAULT_POLICY: ConnectorPolicy = {
  linking: { firstLogin: 'create', trustEmail: false },
  storeTokens: false,
  mappers: mappersSchema.parse(undefined),
  trustUpstreamMfa: false,
  upstreamMfa: DEFAULT_UPSTREAM_MFA,
};

export interface ConnectorEntry {
  id: string;
  type: string;
  name: string;
  enabled: boolean;
  config: unknown;
  /** Absent: DEFAULT_POLICY. */
  policy?: ConnectorPolicy;
  /** Where this entry was declared, for error paths: `connectors[2]` or `database connector "x"`. */
  origin: string;
}

export interface RegisteredConnector {
  id: string;
  type: string;
  name: string;
  connector: Connector;
  policy: ConnectorPolicy;
}

/** The upstream calls the registry times: login, redirect start and callback, refresh, directory sync. */
export type ConnectorOperation = 'login' | 'start' | 'callback' | 'refresh' | 'sync';
/** failure: the upstream said no (`ok: false`); upstream_error: it answered wrongly; error: the call threw. */
export type ConnectorCallOutcome = 'success' | 'failure' | 'upstream_error' | 'error';
export type ConnectorCallObserver = (connectorId: string, operation: ConnectorOperation, outcome: ConnectorCallOutcome, seconds: number) => void;

export interface RegistryDependencies {
  logger: Logger;
  /** Told the duration and outcome of every upstream call (metrics). */
  observe?: ConnectorCallObserver;
  localAccounts: LocalAccounts;
  /** The broker passes its database guard; without one (tools, tests) a process-local one is used. */
  replayGuard?: ReplayGuard;
  /** The broker's public URL, for each connector's endpoint URLs (default http://localhost). */
  issuer?: string;
  fetch?: typeof fetch;
  /** Plugins handed over in code (embedding, tests), found before folders and packages. */
  plugins?: ReadonlyMap<string, ConnectorPlugin>;
}

/** For registries opened without the broker's database (CLI tools, tests): this process only. */
const seenKeys = new Map<string, number>();
const processReplayGuard: ReplayGuard = {
  async firstUse(key, expiresAt) {
    const now = Date.now();
    for (const [k, until] of seenKeys) if (until <= now) seenKeys.delete(k);
    if (seenKeys.has(key)) return false;
    seenKeys.set(key, expiresAt.getTime());
    return true;
  },
};

/** A connector's endpoints on the broker; the routes that serve them are in src/login/steps/authenticate/upstream-login.ts. */
export function connectorUrls(issuer: string, id: string): ConnectorUrls {
  const base = issuer.replace(/\/+$/, '');
  return { callback: `${base}/callback/${id}`, logout: `${base}/callback/${id}/logout`, metadata: `${base}/connectors/${id}/metadata` };
}

const pluginCache = new Map<string, Promise<ConnectorPlugin>>();

async function importPlugin(type: string): Promise<ConnectorPlugin> {
  if (!TYPE_NAME.test(type)) throw new Error(`"${type}" is not a valid connector type name`);
  const builtIn = path.join(REPO_ROOT, 'connectors', type, 'index.ts');
  let mod: { default?: unknown };
  if (existsSync(builtIn)) {
    mod = await import(pathToFileURL(builtIn).href);
  } else {
    const pkg = `keybridge-connector-${type}`;
    try {
      mod = await import(pkg);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') {
        throw new Error(`unknown connector type "${type}" (no connectors/${type}/ folder and no npm package ${pkg})`);
      }
      throw err;
    }
  }
  const plugin = mod.default as ConnectorPlugin | undefined;
  if (!plugin || typeof plugin.create !== 'function' || !plugin.configSchema || plugin.type !== type) {
    throw new Error(`connector package for type "${type}" does not default-export a ConnectorPlugin with type "${type}"`);
  }
  return plugin;
}

/** The types of the built-in `connectors/<type>/` folders. */
export function builtInConnectorTypes(): string[] {
  return readdirSync(path.join(REPO_ROOT, 'connectors'), { withFileTypes: true })
    .filter((d) => d.isDirectory() && TYPE_NAME.test(d.name) && existsSync(path.join(REPO_ROOT, 'connectors', d.name, 'index.ts')))
    .map((d) => d.name)
    .sort();
}

export function loadPlugin(type: string): Promise<ConnectorPlugin> {
  let cached = pluginCache.get(type);
  if (!cached) {
    cached = importPlugin(type);
    pluginCache.set(type, cached);
    cached.catch(() => pluginCache.delete(type));
  }
  return cached;
}

function formatPath(segments: readonly PropertyKey[]): string {
  let out = '';
  for (const s of segments) out += typeof s === 'number' ? `[${s}]` : `.${String(s)}`;
  return out;
}

/** Validates every entry's `config` with its plugin's schema; returns all problems, never throws. */
export async function checkConnectorEntries(entries: readonly ConnectorEntry[], plugins?: ReadonlyMap<string, ConnectorPlugin>): Promise<{ issues: ConfigIssue[]; valid: Map<string, { plugin: ConnectorPlugin; config: unknown }> }> {
  const issues: ConfigIssue[] = [];
  const valid = new Map<string, { plugin: ConnectorPlugin; config: unknown }>();
  for (const entry of entries) {
    let plugin: ConnectorPlugin;
    try {
      plugin = plugins?.get(entry.type) ?? (await loadPlugin(entry.type));
    } catch (err) {
      issues.push({ path: `${entry.origin}.type`, message: (err as Error).message });
      continue;
    }
    const parsed = plugin.configSchema.safeParse(entry.config ?? {});
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        issues.push({ path: `${entry.origin}.config${formatPath(issue.path)}`, message: issue.message });
      }
      continue;
    }
    valid.set(entry.id, { plugin, config: parsed.data });
  }
  return { issues, valid };
}

function outcomeOf(result: unknown): ConnectorCallOutcome {
  const r = result as { ok?: unknown; reason?: unknown } | null;
  if (r?.ok !== false) return 'success';
  return r.reason === 'upstream_error' ? 'upstream_error' : 'failure';
}

/** Calls `fn` on `self`, reporting how long it took and how it ended. */
function timed<A extends unknown[], R>(self: object, fn: (...args: A) => Promise<R>, report: (outcome: ConnectorCallOutcome, seconds: number) => void) {
  return async (...args: A): Promise<R> => {
    const started = performance.now();
    try {
      const result = await fn.apply(self, args);
      report(outcomeOf(result), (performance.now() - started) / 1000);
      return result;
    } catch (err) {
      report('error', (performance.now() - started) / 1000);
      throw err;
    }
  };
}

// Each page of a directory import is one upstream call.
function timedPages<T>(pages: AsyncIterable<T>, report: (outcome: ConnectorCallOutcome, seconds: number) => void): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      const it = pages[Symbol.asyncIterator]();
      return {
        next: timed(it, it.next, report),
        return: it.return ? (value?: unknown) => it.return!(value) : undefined,
        throw: it.throw ? (err?: unknown) => it.throw!(err) : undefined,
      };
    },
  };
}

function timedSync(sync: DirectorySync, report: (outcome: ConnectorCallOutcome, seconds: number) => void): DirectorySync {
  return new Proxy(sync, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (prop === 'listUsers') return () => timedPages(sync.listUsers(), report);
      if ((prop === 'countUsers' || prop === 'listGroups') && typeof value === 'function') return timed(target, value as () => Promise<unknown>, report);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/**
 * The connector as the broker sees it, with its upstream calls timed. A proxy rather than a
 * copy, so class-based connectors (private fields, getters) keep working: every method runs
 * with the connector itself as `this`.
 */
function timedConnector(id: string, connector: Connector, observe: ConnectorCallObserver): Connector {
  const reporter = (operation: ConnectorOperation) => (outcome: ConnectorCallOutcome, seconds: number) => {
    try {
      observe(id, operation, outcome, seconds);
    } catch {
      // an observer must never break a login
    }
  };
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(connector, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (value === undefined || value === null) return value;
      const cached = wrapped.get(prop);
      if (cached && (cached as { source?: unknown }).source === value) return (cached as { fn: unknown }).fn;
      let fn: unknown;
      if ((prop === 'login' || prop === 'start' || prop === 'callback' || prop === 'refresh') && typeof value === 'function') fn = timed(target, value as (...args: unknown[]) => Promise<unknown>, reporter(prop));
      else if (prop === 'sync' && typeof value === 'object') fn = timedSync(value as DirectorySync, reporter('sync'));
      else if (typeof value === 'function') fn = value.bind(target);
      else return value;
      wrapped.set(prop, { source: value, fn });
      return fn;
    },
  });
}

/** What `apply` changed. */
export interface RegistryChanges {
  added: string[];
  replaced: string[];
  removed: string[];
  /** Entries that could not start (invalid, or create() threw); a running older version stays. */
  failed: Array<{ id: string; message: string }>;
}

/** How long a replaced or removed connector instance lives on for the logins already using it. */
const RETIRE_GRACE_MS = 60_000;

// What decides whether a running instance still matches its entry.
const fingerprintOf = (e: ConnectorEntry) => JSON.stringify([e.type, e.name, e.config, e.policy ?? null]);

export class ConnectorRegistry {
  #connectors: RegisteredConnector[] = [];
  readonly #fingerprints = new Map<string, string>();
  readonly #deps: RegistryDependencies;
  readonly #retiring = new Set<{ connector: Connector; timer: NodeJS.Timeout }>();
  #applying: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(deps: RegistryDependencies) {
    this.#deps = deps;
  }

  /** Validates and instantiates the enabled entries; all problems are thrown at once. */
  static async open(entries: readonly ConnectorEntry[], deps: RegistryDependencies): Promise<ConnectorRegistry> {
    const enabled = entries.filter((e) => e.enabled);
    const { issues, valid } = await checkConnectorEntries(enabled, deps.plugins);
    if (issues.length) throw new ConfigError(issues);
    const registry = new ConnectorRegistry(deps);
    const created: RegisteredConnector[] = [];
    try {
      for (const entry of enabled) {
        created.push(await registry.#create(entry, valid.get(entry.id)!));
        registry.#fingerprints.set(entry.id, fingerprintOf(entry));
      }
    } catch (err) {
      await Promise.allSettled(created.map((c) => c.connector.close?.()));
      throw err;
    }
    registry.#connectors = created;
    return registry;
  }

  async #create(entry: ConnectorEntry, checked: { plugin: ConnectorPlugin; config: unknown }): Promise<RegisteredConnector> {
    const deps = this.#deps;
    const logger = deps.logger.child({ connector: { type: entry.type, id: entry.id } });
    let connector;
    try {
      connector = await checked.plugin.create({
        id: entry.id,
        name: entry.name,
        config: checked.config,
        logger,
        fetch: deps.fetch ?? globalThis.fetch,
        urls: connectorUrls(deps.issuer ?? 'http://localhost', entry.id),
        services: { localAccounts: deps.localAccounts, replayGuard: deps.replayGuard ?? processReplayGuard },
      });
    } catch (err) {
      // A connector that cannot start (unreadable CA file, ...) is a configuration problem.
      throw new ConfigError([{ path: `${entry.origin}.config`, message: `connector "${entry.id}" cannot start: ${(err as Error).message}` }]);
    }
    if (deps.observe) connector = timedConnector(entry.id, connector, deps.observe);
    return { id: entry.id, type: entry.type, name: entry.name, connector, policy: entry.policy ?? DEFAULT_POLICY };
  }

  /**
   * Makes the running connectors match `entries` (every entry, config and database alike):
   * new and changed enabled entries get a fresh instance, disabled and deleted ones go, the
   * unchanged keep theirs. The list is swapped in one step, so a request sees the old set or the
   * new one; a replaced instance is closed only after a grace period, so logins that hold it
   * (a password check, an LDAP bind) finish on it. An entry that cannot start is reported and,
   * when an older version of it runs, that one stays. Calls are serialized.
   */
  apply(entries: readonly ConnectorEntry[], options: { graceMs?: number } = {}): Promise<RegistryChanges> {
    const run = this.#applying.then(() => this.#apply(entries, options.graceMs ?? RETIRE_GRACE_MS));
    this.#applying = run.catch(() => {});
    return run;
  }

  async #apply(entries: readonly ConnectorEntry[], graceMs: number): Promise<RegistryChanges> {
    const changes: RegistryChanges = { added: [], replaced: [], removed: [], failed: [] };
    if (this.#closed) return changes;
    const current = new Map(this.#connectors.map((c) => [c.id, c]));
    const enabled = entries.filter((e) => e.enabled);
    const changed = enabled.filter((e) => !current.has(e.id) || this.#fingerprints.get(e.id) !== fingerprintOf(e));
    const { issues, valid } = await checkConnectorEntries(changed, this.#deps.plugins);
    for (const issue of issues) {
      const entry = changed.find((e) => issue.path.startsWith(e.origin));
      changes.failed.push({ id: entry?.id ?? '?', message: `${issue.path}: ${issue.message}` });
    }
    const next: RegisteredConnector[] = [];
    const retired: RegisteredConnector[] = [];
    const fingerprints = new Map<string, string>();
    for (const entry of enabled) {
      const running = current.get(entry.id);
      const checked = changed.includes(entry) ? valid.get(entry.id) : undefined;
      if (checked) {
        try {
          next.push(await this.#create(entry, checked));
          fingerprints.set(entry.id, fingerprintOf(entry));
          if (running) {
            retired.push(running);
            changes.replaced.push(entry.id);
          } else changes.added.push(entry.id);
          continue;
        } catch (err) {
          changes.failed.push({ id: entry.id, message: (err as Error).message });
        }
      }
      if (running) {
        next.push(running);
        fingerprints.set(entry.id, this.#fingerprints.get(entry.id)!);
      }
    }
    const kept = new Set(next.map((c) => c.id));
    for (const c of this.#connectors) {
      if (!kept.has(c.id)) {
        retired.push(c);
        changes.removed.push(c.id);
      }
    }
    if (this.#closed) {
      // closed while instances were being created: nobody will use them
      await Promise.allSettled(next.filter((c) => !current.has(c.id) || current.get(c.id) !== c).map((c) => c.connector.close?.()));
      return changes;
    }
    this.#connectors = next;
    this.#fingerprints.clear();
    for (const [id, f] of fingerprints) this.#fingerprints.set(id, f);
    for (const c of retired) this.#retire(c.connector, graceMs);
    return changes;
  }

  #retire(connector: Connector, graceMs: number): void {
    const item = {
      connector,
      timer: setTimeout(() => {
        this.#retiring.delete(item);
        connector.close?.().catch((err: unknown) => this.#deps.logger.warn({ err }, 'closing a replaced connector failed'));
      }, graceMs),
    };
    item.timer.unref();
    this.#retiring.add(item);
  }

  get(id: string): RegisteredConnector | undefined {
    return this.#connectors.find((c) => c.id === id);
  }

  list(): readonly RegisteredConnector[] {
    return this.#connectors;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#applying;
    const retiring = [...this.#retiring];
    this.#retiring.clear();
    for (const r of retiring) clearTimeout(r.timer);
    await Promise.allSettled([...this.#connectors.map((c) => c.connector.close?.()), ...retiring.map((r) => r.connector.close?.())]);
  }
}
