// Whether a login needs a second factor. Each level that sets a mode applies: global, the client,
// the connector and every group of the user (nested parents included); the strictest wins
// (required > optional > off). Config and stored policies merge per level: a stored global mode
// replaces the config's (which is only the default); for the other levels a config entry wins,
// since the admin API refuses to change what the config declares.
//
// Every login reads the stored policies afresh, in the same query as the user's groups (when it
// begins, with its other facts), so a change made on any instance applies to the next login
// everywhere without a cache to expire.
import type { Config } from '../config/schema.ts';
import type { Store } from '../storage/store.ts';
import type { ApplicablePolicies, StoredMfaPolicy } from '../storage/mfa-policy-repository.ts';
import { MFA_MODES, type MfaMode } from './mfa-config.ts';

export interface MfaPolicyInput {
  userId: string;
  clientId: string;
  /** The connector the person signed in through; null when none (a passkey sign-in). */
  connectorId: string | null;
}

export interface MfaDecision {
  mode: MfaMode;
  /** The levels that set this mode: `global`, `client:<id>`, `connector:<id>`, `group:<name>`. */
  because: string[];
}

export interface MfaPolicy {
  /** `applicable`: the groups and stored policies this request already read for this input; read here when absent. */
  resolve(input: MfaPolicyInput, applicable?: ApplicablePolicies): Promise<MfaDecision>;
}

const strictness = (mode: MfaMode) => MFA_MODES.length - MFA_MODES.indexOf(mode);

/** A config map's entry; own keys only (a client named `constructor` is not Object's). */
const entry = (map: Record<string, MfaMode>, key: string): MfaMode | undefined => (Object.hasOwn(map, key) ? map[key] : undefined);

export function createMfaPolicy(deps: { config: Pick<Config, 'mfa'>; store: Store }): MfaPolicy {
  const { mfa } = deps.config;
  return {
    async resolve(input, applicable) {
      const { groups, policies } = applicable ?? (await deps.store.mfaPolicies.applicable(input));
      const stored = (kind: StoredMfaPolicy['kind'], target: string) => policies.find((p) => p.kind === kind && p.target === target)?.mode;
      const levels: Array<[string, MfaMode | undefined]> = [
        ['global', stored('global', '') ?? mfa.mode],
        [`client:${input.clientId}`, entry(mfa.clients, input.clientId) ?? stored('client', input.clientId)],
        ...(input.connectorId === null ? [] : ([[`connector:${input.connectorId}`, entry(mfa.connectors, input.connectorId) ?? stored('connector', input.connectorId)]] as Array<[string, MfaMode | undefined]>)),
        ...groups.map((g): [string, MfaMode | undefined] => [`group:${g}`, entry(mfa.groups, g) ?? stored('group', g)]),
      ];
      const set = levels.filter((l): l is [string, MfaMode] => l[1] !== undefined);
      const mode = set.reduce<MfaMode>((best, [, m]) => (strictness(m) > strictness(best) ? m : best), 'off');
      return { mode, because: set.filter(([, m]) => m === mode).map(([level]) => level) };
    },
  };
}
