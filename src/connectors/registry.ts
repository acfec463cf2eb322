// Loads connector plugins by type name: the built-in `connectors/<type>/` folder first, then an
// npm package `keybridge-connector-<type>`. The broker never imports a concrete connector.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import { ConfigError, type ConfigIssue } from '../errors.ts';
import type { Connector, ConnectorPlugin, ConnectorUrls, DirectorySync, LocalAccounts, ReplayGuard } from './contract.ts';
import { mappersSchema, type Mappers } from '../accounts/identity-mappers.ts';

const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
const TYPE_NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;

/** What the broker (not the connector) does with a connector's identities. */
export interface ConnectorPolicy {
  linking: { firstLogin: 'create' | 'link-verified-email' | 'confirm'; trustEmail: boolean };
  storeTokens: boolean;
  mappers: Mappers;
}

export const DEFAULT_POLICY: ConnectorPolicy = { linking: { firstLogin: 'create', trustEmail: false }, storeTokens: false, mappers: mappersSchema.parse(undefined) };

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

/** A connector's endpoints on the broker; the routes that serve them are in interaction-routes. */
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

export class ConnectorRegistry {
  readonly #connectors: RegisteredConnector[];

  private constructor(connectors: RegisteredConnector[]) {
    this.#connectors = connectors;
  }

  /** Validates and instantiates the enabled entries; all problems are thrown at once. */
  static async open(entries: readonly ConnectorEntry[], deps: RegistryDependencies): Promise<ConnectorRegistry> {
    const enabled = entries.filter((e) => e.enabled);
    const { issues, valid } = await checkConnectorEntries(enabled, deps.plugins);
    if (issues.length) throw new ConfigError(issues);
    const created: RegisteredConnector[] = [];
    try {
      for (const entry of enabled) {
        const { plugin, config } = valid.get(entry.id)!;
        const logger = deps.logger.child({ connector: { type: entry.type, id: entry.id } });
        let connector;
        try {
          connector = await plugin.create({
            id: entry.id,
            name: entry.name,
            config,
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
        created.push({ id: entry.id, type: entry.type, name: entry.name, connector, policy: entry.policy ?? DEFAULT_POLICY });
      }
    } catch (err) {
      await Promise.allSettled(created.map((c) => c.connector.close?.()));
      throw err;
    }
    return new ConnectorRegistry(created);
  }

  get(id: string): RegisteredConnector | undefined {
    return this.#connectors.find((c) => c.id === id);
  }

  list(): readonly RegisteredConnector[] {
    return this.#connectors;
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.#connectors.map((c) => c.connector.close?.()));
  }
}
