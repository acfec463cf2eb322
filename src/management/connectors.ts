// Connectors as an operator manages them (admin API, CLI): config-declared ones are shown
// read-only; stored ones are created, changed, enabled, disabled and deleted here, validated by
// their plugin's own schema, their secret fields sealed with secrets.tokenKeys and never shown.
// Tests and directory imports run on demand. Every instance reloads a change within its poll.
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import type { ConnectorPlugin, ConnectorPreset, ConnectorTestReport } from '../connectors/contract.ts';
import { builtInConnectorTypes, ConnectorRegistry, loadPlugin, type ConnectorEntry, type ConnectorPolicy } from '../connectors/registry.ts';
import { mergeSecrets, splitSecrets } from '../connectors/secret-fields.ts';
import { connectorSecretsBinding, type TokenCipher } from '../accounts/token-cipher.ts';
import { createLocalAccounts } from '../accounts/local-accounts.ts';
import { runRecordedSync, SYNC_LEASE_MS } from '../federation/recorded-sync.ts';
import { acceptsNothing, NOTHING_ACCEPTED } from '../mfa/upstream-mfa-policy.ts';
import { configConnectorEntries, connectorPolicySchema, storedConnectorEntry, storedPolicy, storedSecrets } from '../server/connector-entries.ts';
import type { Store } from '../storage/store.ts';
import type { ConnectorSync, StoredConnector } from '../storage/connector-repository.ts';
import { AdminProblem, conflict, invalid, notFound, readOnly, type FieldError } from '../admin-api/problem.ts';

/** A connector as operators see it: its config without the secret fields. */
export interface ConnectorView {
  id: string;
  type: string;
  name: string;
  enabled: boolean;
  source: 'config' | 'database';
  /** Declared in config: change it there. */
  readOnly: boolean;
  config: Record<string, unknown>;
  /** The plugin's secret fields (write-only). */
  secretFields: string[];
  /** Which of them hold a value. */
  secretsSet: string[];
  policy: ConnectorPolicy | null;
  position: number;
  createdAt: string | null;
  updatedAt: string | null;
}

export interface ConnectorInput {
  id: string;
  type: string;
  name?: string;
  enabled?: boolean;
  config?: Record<string, unknown>;
  policy?: unknown;
  position?: number;
}

export interface ConnectorPatch {
  name?: string;
  enabled?: boolean;
  /** Replaces the config; a secret field left out keeps its stored value, null removes it. */
  config?: Record<string, unknown>;
  policy?: unknown;
  position?: number;
}

export interface ConnectorTestResult extends ConnectorTestReport {
  connectorId: string;
  type: string;
  /** False when the connector type has no test. */
  supported: boolean;
  testedAt: string;
}

/** A type operators can create, as its plugin describes it (GET /connector-types). */
export interface ConnectorTypeView {
  type: string;
  label: string;
  /** The plugin's own config schema as JSON Schema (the input side: defaults are optional). */
  configSchema: Record<string, unknown>;
  secretFields: string[];
  test: boolean;
  sync: boolean;
  presets: ConnectorPreset[];
}

/** How a connector's logins went lately, from the audit trail. */
export interface ConnectorStatus {
  lastSuccessAt: string | null;
  /** The latest login.error (the connector failed or its upstream did not answer) or upstream_error failure. */
  lastError: { at: string; message: string } | null;
}

export interface ConnectorServiceDependencies {
  config: Config;
  store: Store;
  /** secrets.tokenKeys; null when none are configured (then no secret can be stored). */
  cipher: TokenCipher | null;
  logger: Logger;
  /** The broker's running connectors (absent in the CLI: imports need a broker). */
  registry?: () => ConnectorRegistry;
  plugins?: ReadonlyMap<string, ConnectorPlugin>;
  /** After a change to a stored connector: reload this instance now (others poll). */
  afterChange?: () => Promise<unknown>;
}

const TEST_TIMEOUT_MS = 30_000;

const pathOf = (where: string, path: readonly PropertyKey[]) => [where, ...path.map(String)].join('.');

export class ConnectorService {
  readonly #deps: ConnectorServiceDependencies;
  readonly #running = new Set<Promise<void>>();
  // The types cannot change while the process runs: computed on first use.
  #types: Promise<ConnectorTypeView[]> | undefined;

  constructor(deps: ConnectorServiceDependencies) {
    this.#deps = deps;
  }

  async #plugin(type: string, path = 'body.type'): Promise<ConnectorPlugin> {
    try {
      return this.#deps.plugins?.get(type) ?? (await loadPlugin(type));
    } catch (err) {
      throw invalid([{ path, message: (err as Error).message }]);
    }
  }

  async #secretFieldsOf(type: string): Promise<string[] | null> {
    try {
      return [...((this.#deps.plugins?.get(type) ?? (await loadPlugin(type))).secretFields ?? [])];
    } catch {
      return null;
    }
  }

  #configEntries(): ConnectorEntry[] {
    return configConnectorEntries(this.#deps.config);
  }

  async #configView(entry: ConnectorEntry): Promise<ConnectorView> {
    const fields = await this.#secretFieldsOf(entry.type);
    const { config, secrets } = splitSecrets((entry.config ?? {}) as Record<string, unknown>, fields ?? []);
    return {
      id: entry.id,
      type: entry.type,
      name: entry.name,
      enabled: entry.enabled,
      source: 'config',
      readOnly: true,
      // A type that does not load cannot say which fields are secret: show none of its config.
      config: fields === null ? {} : config,
      secretFields: fields ?? [],
      secretsSet: Object.keys(secrets),
      policy: entry.policy ?? null,
      position: 0,
      createdAt: null,
      updatedAt: null,
    };
  }

  async #storedView(row: StoredConnector): Promise<ConnectorView> {
    const fields = (await this.#secretFieldsOf(row.type)) ?? [];
    const secrets = row.secrets === null ? [] : Object.keys(storedSecrets(row, this.#deps.cipher));
    return {
      id: row.id,
      type: row.type,
      name: row.name,
      enabled: row.enabled,
      source: 'database',
      readOnly: false,
      // Stored configs never hold secrets; the split is a second guard for rows written by hand.
      config: splitSecrets(row.config, fields).config,
      secretFields: fields,
      secretsSet: secrets,
      policy: storedPolicy(row),
      position: row.position,
      createdAt: row.createdAt.toISOString(),
      updatedAt: row.updatedAt.toISOString(),
    };
  }

  /** Every connector, config ones (which win on an id clash) and stored ones, ordered by id. */
  async list(filter: { type?: string; source?: 'config' | 'database'; enabled?: boolean } = {}): Promise<ConnectorView[]> {
    const config = this.#configEntries();
    const taken = new Set(config.map((e) => e.id));
    const views = [...(await Promise.all(config.map((e) => this.#configView(e))))];
    for (const row of await this.#deps.store.connectors.list()) if (!taken.has(row.id)) views.push(await this.#storedView(row));
    return views
      .filter((v) => (filter.type === undefined || v.type === filter.type) && (filter.source === undefined || v.source === filter.source) && (filter.enabled === undefined || v.enabled === filter.enabled))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /**
   * Every type that loads: the built-in folders and the plugins handed over in code. Types whose
   * plugin fails to load are left out (their config connectors still list, read-only).
   */
  types(): Promise<ConnectorTypeView[]> {
    return (this.#types ??= this.#loadTypes());
  }

  async #loadTypes(): Promise<ConnectorTypeView[]> {
    const names = new Set([...builtInConnectorTypes(), ...(this.#deps.plugins?.keys() ?? [])]);
    const views: ConnectorTypeView[] = [];
    for (const type of [...names].sort()) {
      let plugin: ConnectorPlugin;
      try {
        plugin = await this.#plugin(type);
      } catch {
        continue;
      }
      let configSchema: Record<string, unknown>;
      try {
        configSchema = z.toJSONSchema(plugin.configSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
      } catch (err) {
        this.#deps.logger.warn({ err, type }, 'a connector config schema has no JSON Schema form');
        configSchema = { type: 'object' };
      }
      const about = plugin.about;
      views.push({
        type,
        label: about?.label ?? type,
        configSchema,
        secretFields: [...(plugin.secretFields ?? [])],
        test: about?.test ?? false,
        sync: about?.sync ?? false,
        presets: (about?.presets ?? []).map((p) => ({ ...p, config: { ...p.config } })),
      });
    }
    return views;
  }

  /** The latest successful login and the latest error through each connector (audit trail), in one query. */
  async statuses(ids: readonly string[]): Promise<Map<string, ConnectorStatus>> {
    const found = await this.#deps.store.audit.latestLoginOutcomes(ids);
    const statuses = new Map<string, ConnectorStatus>();
    for (const id of ids) {
      const o = found.get(id);
      const candidates: Array<{ at: Date; message: string }> = [];
      if (o?.error) {
        const stage = typeof o.error.details.stage === 'string' ? o.error.details.stage : 'login';
        candidates.push({ at: o.error.at, message: `the connector failed or its upstream did not answer (${stage})` });
      }
      if (o?.upstreamFailure) {
        const detail = typeof o.upstreamFailure.details.detail === 'string' ? `: ${o.upstreamFailure.details.detail}` : '';
        candidates.push({ at: o.upstreamFailure.at, message: `the upstream's answer was refused${detail}` });
      }
      const latest = candidates.sort((a, b) => b.at.getTime() - a.at.getTime())[0];
      statuses.set(id, { lastSuccessAt: o?.successAt?.toISOString() ?? null, lastError: latest ? { at: latest.at.toISOString(), message: latest.message } : null });
    }
    return statuses;
  }

  /** One connector, or null. */
  async get(id: string): Promise<ConnectorView | null> {
    const entry = this.#configEntries().find((e) => e.id === id);
    if (entry) return this.#configView(entry);
    const row = await this.#deps.store.connectors.find(id);
    return row ? this.#storedView(row) : null;
  }

  #refuseConfigOwned(id: string): void {
    if (this.#configEntries().some((e) => e.id === id)) throw readOnly(`Connector "${id}"`, 'the configuration file (source: config)');
  }

  /** The policy as given, checked like config checks it. */
  #policy(input: unknown, where: string): ConnectorPolicy | null {
    if (input === undefined || input === null) return null;
    const parsed = connectorPolicySchema.safeParse(input);
    if (!parsed.success) throw invalid(parsed.error.issues.map((i) => ({ path: pathOf(where, i.path), message: i.message })));
    const policy = parsed.data as ConnectorPolicy;
    const errors: FieldError[] = [];
    if (policy.storeTokens && !this.#deps.cipher) errors.push({ path: `${where}.storeTokens`, message: 'needs secrets.tokenKeys (a key of at least 32 characters) to encrypt the stored tokens' });
    if (acceptsNothing(policy.trustUpstreamMfa, policy.upstreamMfa)) errors.push({ path: `${where}.upstreamMfa`, message: NOTHING_ACCEPTED });
    if (policy.linking.firstLogin === 'link-verified-email' && !policy.linking.trustEmail) errors.push({ path: `${where}.linking.trustEmail`, message: 'must be true for firstLogin "link-verified-email" (otherwise it never links by email; use "confirm")' });
    if (errors.length) throw invalid(errors);
    return policy;
  }

  /** Checks `config` with the plugin's own schema; the problems carry `body.config.<field>` paths. */
  #checkConfig(plugin: ConnectorPlugin, config: Record<string, unknown>): void {
    const parsed = plugin.configSchema.safeParse(config);
    if (!parsed.success) throw invalid(parsed.error.issues.map((i) => ({ path: pathOf('body.config', i.path), message: i.message })), 'The connector config is not valid.');
  }

  /**
   * Starts the connector once, the way every instance will (create() contacts no upstream): a
   * connector that cannot start (an unreadable CA file) or that accepts upstream-initiated logins
   * for a client without an initiateLoginUri would fail on every instance, so it is refused now.
   */
  async #trialStart(id: string, type: string, config: Record<string, unknown>): Promise<void> {
    const origin = 'body';
    let registry: ConnectorRegistry;
    try {
      registry = await ConnectorRegistry.open([{ id, type, name: id, enabled: true, config, origin }], { logger: this.#deps.logger, localAccounts: createLocalAccounts(this.#deps.store), issuer: this.#deps.config.issuer, plugins: this.#deps.plugins });
    } catch (err) {
      const issues = (err as { issues?: FieldError[] }).issues;
      if (!issues) throw err;
      throw invalid(issues.map((i) => ({ path: i.path, message: i.message })), 'The connector cannot start.');
    }
    try {
      const connector = registry.get(id)?.connector;
      const client = connector?.kind === 'redirect' ? connector.unsolicited?.client : undefined;
      if (client && !this.#deps.config.clients.some((c) => c.id === client && c.initiateLoginUri)) {
        throw invalid([{ path: 'body.config', message: `accepts upstream-initiated logins for client "${client}", which must be a configured client with an initiateLoginUri` }]);
      }
    } finally {
      await registry.close();
    }
  }

  /** The secrets sealed for storage; refused without secrets.tokenKeys (never stored in clear). */
  #seal(id: string, secrets: Record<string, unknown>): string | null {
    const names = Object.keys(secrets);
    if (!names.length) return null;
    if (!this.#deps.cipher) {
      throw new AdminProblem(409, 'secrets_unavailable', `The connector config holds secret fields (${names.map((n) => `config.${n}`).join(', ')}), and secrets.tokenKeys is not configured: Keybridge stores connector secrets only encrypted with secrets.tokenKeys. Configure secrets.tokenKeys on every instance, or declare this connector in the configuration file.`);
    }
    return this.#deps.cipher.seal(secrets, connectorSecretsBinding(id));
  }

  async create(input: ConnectorInput): Promise<ConnectorView> {
    this.#refuseConfigOwned(input.id);
    const plugin = await this.#plugin(input.type);
    const config = input.config ?? {};
    this.#checkConfig(plugin, config);
    const policy = this.#policy(input.policy, 'body.policy');
    await this.#trialStart(input.id, input.type, config);
    const split = splitSecrets(config, plugin.secretFields ?? []);
    const row = await this.#deps.store.connectors.insert({
      id: input.id,
      type: input.type,
      name: input.name ?? input.id,
      enabled: input.enabled ?? true,
      config: split.config,
      secrets: this.#seal(input.id, split.secrets),
      policy: policy as Record<string, unknown> | null,
      position: input.position ?? 0,
    });
    await this.#changed();
    return this.#storedView(row);
  }

  /**
   * Applies `patch` to a stored connector in one transaction, the row locked; `check` sees the
   * current representation first (If-Match). Returns before and after.
   */
  async update(id: string, patch: ConnectorPatch, check: (current: ConnectorView) => void = () => {}): Promise<{ before: ConnectorView; after: ConnectorView; secretsChanged: string[] }> {
    this.#refuseConfigOwned(id);
    const result = await this.#deps.store.transaction(async (store) => {
      const row = await store.connectors.find(id, { forUpdate: true });
      if (!row) throw notFound(`Connector "${id}"`);
      const before = await this.#storedView(row);
      check(before);
      const fields: Parameters<typeof store.connectors.update>[1] = {};
      let secretsChanged: string[] = [];
      if (patch.config !== undefined) {
        const plugin = await this.#plugin(row.type, 'type');
        const given = splitSecrets(patch.config, plugin.secretFields ?? []);
        const secrets: Record<string, unknown> = { ...storedSecrets(row, this.#deps.cipher) };
        for (const [path, value] of Object.entries(given.secrets)) {
          if (value === null) delete secrets[path];
          else secrets[path] = value;
        }
        const previous = storedSecrets(row, this.#deps.cipher);
        secretsChanged = [...new Set([...Object.keys(previous), ...Object.keys(secrets)])].filter((k) => JSON.stringify(previous[k]) !== JSON.stringify(secrets[k]));
        const merged = mergeSecrets(given.config, secrets);
        this.#checkConfig(plugin, merged);
        await this.#trialStart(id, row.type, merged);
        fields.config = given.config;
        fields.secrets = this.#seal(id, secrets);
      }
      if (patch.policy !== undefined) fields.policy = this.#policy(patch.policy, 'body.policy') as Record<string, unknown> | null;
      if (patch.name !== undefined) fields.name = patch.name;
      if (patch.enabled !== undefined) fields.enabled = patch.enabled;
      if (patch.position !== undefined) fields.position = patch.position;
      const updated = await store.connectors.update(id, fields);
      if (!updated) throw notFound(`Connector "${id}"`);
      return { before, after: await this.#storedView(updated), secretsChanged };
    });
    await this.#changed();
    return result;
  }

  /** Deletes a stored connector; its users and their links stay (they sign in no more through it). */
  async delete(id: string, check: (current: ConnectorView) => void = () => {}): Promise<ConnectorView> {
    this.#refuseConfigOwned(id);
    const before = await this.#deps.store.transaction(async (store) => {
      const row = await store.connectors.find(id, { forUpdate: true });
      if (!row) throw notFound(`Connector "${id}"`);
      const view = await this.#storedView(row);
      check(view);
      await store.connectors.delete(id);
      return view;
    });
    await this.#changed();
    return before;
  }

  async #changed(): Promise<void> {
    try {
      await this.#deps.afterChange?.();
    } catch (err) {
      // Stored already; the poll catches up.
      this.#deps.logger.warn({ err }, 'reloading connectors after a change failed');
    }
  }

  /** The entry the registry would run for `id` (config or stored, secrets put back), or null. */
  async #entry(id: string): Promise<ConnectorEntry | null> {
    const configured = this.#configEntries().find((e) => e.id === id);
    if (configured) return configured;
    const row = await this.#deps.store.connectors.find(id);
    return row ? storedConnectorEntry(row, this.#deps.cipher) : null;
  }

  /**
   * Runs the connector's test on an instance of its own (disabled connectors can be tested
   * before they are enabled); never throws for what the upstream or the config does wrong.
   */
  async test(id: string): Promise<ConnectorTestResult> {
    const entry = await this.#entry(id);
    if (!entry) throw notFound(`Connector "${id}"`);
    const base = { connectorId: id, type: entry.type, testedAt: new Date().toISOString() };
    let registry: ConnectorRegistry;
    try {
      registry = await ConnectorRegistry.open([{ ...entry, enabled: true }], {
        logger: this.#deps.logger,
        localAccounts: createLocalAccounts(this.#deps.store),
        issuer: this.#deps.config.issuer,
        plugins: this.#deps.plugins,
      });
    } catch (err) {
      const issues = (err as { issues?: Array<{ path: string; message: string }> }).issues;
      const detail = issues ? issues.map((i) => `${i.path.replace(entry.origin, '').replace(/^\./, '')}: ${i.message}`).join('; ') : (err as Error).message;
      const field = issues?.[0]?.path.replace(entry.origin, '').replace(/^\./, '');
      return { ...base, supported: true, ok: false, steps: [{ name: 'create', ok: false, detail, ...(field ? { field } : {}), ms: 0 }], found: {} };
    }
    try {
      const connector = registry.get(id)!.connector;
      if (!connector.test) return { ...base, supported: false, ok: false, steps: [{ name: 'test', ok: false, detail: `connectors of type ${entry.type} have no test`, ms: 0 }], found: {} };
      let report: ConnectorTestReport;
      let timer: NodeJS.Timeout | undefined;
      try {
        // Each step has its own timeouts; this bounds a connector that has none.
        const overdue = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${TEST_TIMEOUT_MS / 1000} s`)), TEST_TIMEOUT_MS);
        });
        report = await Promise.race([connector.test(), overdue]);
      } catch (err) {
        report = { ok: false, steps: [{ name: 'test', ok: false, detail: (err as Error).message, ms: 0 }], found: {} };
      } finally {
        clearTimeout(timer);
      }
      // Fields are named from the request's point of view, where the console shows them.
      const steps = report.steps.map((s) => (s.field ? { ...s, field: `config.${s.field}` } : s));
      return { ...base, supported: true, ok: report.ok, steps, found: report.found };
    } finally {
      await registry.close();
    }
  }

  /**
   * Starts a directory import of a running connector in the background (one at a time across
   * instances: the same lease as scheduled imports); its progress is stored as it goes.
   */
  async startSync(id: string): Promise<ConnectorSync> {
    const view = await this.get(id);
    if (!view) throw notFound(`Connector "${id}"`);
    const registered = this.#deps.registry?.().get(id);
    if (!registered) throw conflict(`Connector "${id}" is not running${view.enabled ? ' yet on this instance' : ' (it is disabled)'}; enable it to import its users.`, 'connector_not_running');
    const sync = registered.connector.sync;
    if (!sync) throw conflict(`Connectors of type ${view.type} cannot list their users, so they cannot be imported.`, 'sync_not_supported');
    const syncId = randomUUID();
    const lease = `sync:${id}`;
    const { store, logger } = this.#deps;
    if (!(await store.leases.acquire(lease, syncId, SYNC_LEASE_MS))) throw conflict(`An import of connector "${id}" is already running.`, 'sync_running');
    let started: ConnectorSync;
    try {
      started = await store.connectors.startSync(syncId, id, {});
    } catch (err) {
      await store.leases.release(lease, syncId).catch(() => {});
      throw err;
    }
    const run = runRecordedSync({ store, logger: logger.child({ connector: { type: view.type, id } }) }, { syncId, connectorId: id, sync, mappers: registered.policy.mappers, lease, holder: syncId }).then(() => {});
    this.#running.add(run);
    void run.finally(() => this.#running.delete(run));
    return started;
  }

  /** The latest import, started through the API or by the schedule, on any instance; or null. */
  latestSync(id: string): Promise<ConnectorSync | null> {
    return this.#deps.store.connectors.latestSync(id);
  }

  /** Waits for the imports this instance runs (broker shutdown). */
  async close(): Promise<void> {
    await Promise.allSettled([...this.#running]);
  }
}
