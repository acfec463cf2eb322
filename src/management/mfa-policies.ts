// Second-factor policies as an administrator manages them: the config file's and the stored ones
// in one list. Config entries for clients, groups and connectors are read-only (the file would
// put them back); the config's global mode is only a default, so a stored one replaces it.
import type { Config } from '../config/schema.ts';
import type { Store } from '../storage/store.ts';
import type { MfaPolicyKind, StoredMfaPolicy } from '../storage/mfa-policy-repository.ts';
import type { MfaMode } from '../mfa/mfa-config.ts';
import { notFound, readOnly } from '../admin-api/problem.ts';

export type TargetKind = Exclude<MfaPolicyKind, 'global'>;

export interface MfaPolicyView {
  kind: MfaPolicyKind;
  target: string;
  mode: MfaMode;
  source: 'config' | 'stored';
  readOnly: boolean;
  updatedAt: string | null;
}

export interface MfaPolicyDependencies {
  config: Pick<Config, 'mfa'>;
  store: Store;
  /** Whether a client or connector with this id exists (config, internal or stored). */
  exists(kind: 'client' | 'connector', id: string): Promise<boolean>;
}

const ORDER: Record<MfaPolicyKind, number> = { global: 0, client: 1, connector: 2, group: 3 };
const CONFIG_MAPS = { client: 'clients', group: 'groups', connector: 'connectors' } as const;

const configEntries = (config: Pick<Config, 'mfa'>, kind: TargetKind): Record<string, MfaMode> => config.mfa[CONFIG_MAPS[kind]];
const inConfig = (config: Pick<Config, 'mfa'>, kind: TargetKind, target: string) => Object.hasOwn(configEntries(config, kind), target);
const storedView = (p: StoredMfaPolicy): MfaPolicyView => ({ kind: p.kind, target: p.target, mode: p.mode, source: 'stored', readOnly: false, updatedAt: p.updatedAt.toISOString() });
const label = (kind: MfaPolicyKind, target: string) => (kind === 'global' ? 'The global second-factor policy' : `The second-factor policy of ${kind} "${target}"`);

/** Every level that sets a mode: global first, then clients, connectors and groups by target. */
export async function listMfaPolicies(deps: Pick<MfaPolicyDependencies, 'config' | 'store'>): Promise<MfaPolicyView[]> {
  const { config } = deps;
  const stored = await deps.store.mfaPolicies.list();
  const global = stored.find((p) => p.kind === 'global');
  const views: MfaPolicyView[] = [global ? storedView(global) : { kind: 'global', target: '', mode: config.mfa.mode, source: 'config', readOnly: false, updatedAt: null }];
  for (const kind of ['client', 'connector', 'group'] as const) {
    for (const [target, mode] of Object.entries(configEntries(config, kind))) views.push({ kind, target, mode, source: 'config', readOnly: true, updatedAt: null });
  }
  // A stored row the config has since declared is shadowed by it (the config entry applies).
  for (const p of stored) if (p.kind !== 'global' && !inConfig(config, p.kind, p.target)) views.push(storedView(p));
  return views.sort((a, b) => ORDER[a.kind] - ORDER[b.kind] || (a.target < b.target ? -1 : a.target > b.target ? 1 : 0));
}

function writable(deps: Pick<MfaPolicyDependencies, 'config'>, kind: MfaPolicyKind, target: string): void {
  if (kind !== 'global' && inConfig(deps.config, kind, target)) throw readOnly(label(kind, target), 'the configuration file (source: config)');
}

/** Sets a level's mode. Clients and connectors must exist; groups need not (an upstream may bring them later). */
export async function setMfaPolicy(deps: MfaPolicyDependencies, kind: MfaPolicyKind, target: string, mode: MfaMode): Promise<{ before: StoredMfaPolicy | null; view: MfaPolicyView }> {
  writable(deps, kind, target);
  if ((kind === 'client' || kind === 'connector') && !(await deps.exists(kind, target))) throw notFound(`${kind === 'client' ? 'Client' : 'Connector'} "${target}"`);
  const { before, after } = await deps.store.mfaPolicies.set(kind, target, mode);
  return { before, view: storedView(after) };
}

/** Removes a stored level; the global level falls back to the config's mode. */
export async function clearMfaPolicy(deps: Pick<MfaPolicyDependencies, 'config' | 'store'>, kind: MfaPolicyKind, target: string): Promise<StoredMfaPolicy> {
  writable(deps, kind, target);
  const removed = await deps.store.mfaPolicies.remove(kind, target);
  if (!removed) throw notFound(kind === 'global' ? 'A stored global second-factor policy' : `A stored second-factor policy of ${kind} "${target}"`);
  return removed;
}
