// The connectors a broker runs: those in config (read-only), the implicit `local` connector
// when config declares none, and those stored in the database (managed at runtime, their
// secret fields sealed with secrets.tokenKeys).
import { z } from 'zod';
import type { Config } from '../config/schema.ts';
import { LINKING_POLICIES } from '../config/schema.ts';
import { mappersSchema } from '../accounts/identity-mappers.ts';
import { upstreamMfaSchema } from '../mfa/upstream-mfa-policy.ts';
import { connectorSecretsBinding, TokenCipher } from '../accounts/token-cipher.ts';
import { mergeSecrets } from '../connectors/secret-fields.ts';
import type { ConnectorEntry, ConnectorPolicy } from '../connectors/registry.ts';
import type { StoredConnector } from '../storage/connector-repository.ts';
import { ConnectorRepository } from '../storage/connector-repository.ts';
import type { Knex } from 'knex';

/** What the broker does with a stored connector's identities; the same fields as in config. */
export const connectorPolicySchema = z.strictObject({
  linking: z
    .strictObject({
      firstLogin: z.enum(LINKING_POLICIES).default('create'),
      trustEmail: z.boolean().default(false),
    })
    .prefault({}),
  storeTokens: z.boolean().default(false),
  mappers: mappersSchema,
  trustUpstreamMfa: z.boolean().default(false),
  upstreamMfa: upstreamMfaSchema,
});

/** The cipher of secrets.tokenKeys, or null when none are configured. */
export function configuredTokenCipher(config: Config): TokenCipher | null {
  return config.secrets.tokenKeys?.length ? new TokenCipher(config.secrets.tokenKeys) : null;
}

export function configConnectorEntries(config: Config): ConnectorEntry[] {
  const entries: ConnectorEntry[] = config.connectors.map((c, i) => ({
    id: c.id,
    type: c.type,
    name: c.name ?? c.id,
    enabled: c.enabled,
    config: c.config,
    policy: { linking: c.linking, storeTokens: c.storeTokens, mappers: c.mappers, trustUpstreamMfa: c.trustUpstreamMfa, upstreamMfa: c.upstreamMfa },
    origin: `connectors[${i}]`,
  }));
  if (!entries.some((e) => e.type === 'local')) {
    entries.unshift({ id: 'local', type: 'local', name: 'Username and password', enabled: true, config: {}, origin: 'connectors(implicit local)' });
  }
  return entries;
}

/** The secrets of a stored connector, opened; empty when it has none or they cannot be opened. */
export function storedSecrets(row: Pick<StoredConnector, 'id' | 'secrets'>, cipher: TokenCipher | null): Record<string, unknown> {
  if (!row.secrets || !cipher) return {};
  const opened = cipher.open(row.secrets, connectorSecretsBinding(row.id));
  return opened && typeof opened === 'object' ? (opened as Record<string, unknown>) : {};
}

/** A stored connector's policy, or null when it has none (or one no longer valid). */
export function storedPolicy(row: Pick<StoredConnector, 'policy'>): ConnectorPolicy | null {
  const policy = row.policy ? connectorPolicySchema.safeParse(row.policy) : null;
  return policy?.success ? (policy.data as ConnectorPolicy) : null;
}

/** A stored connector as the registry runs it: its secrets put back, its policy applied. */
export function storedConnectorEntry(row: StoredConnector, cipher: TokenCipher | null): ConnectorEntry {
  const policy = storedPolicy(row);
  return {
    id: row.id,
    type: row.type,
    name: row.name,
    enabled: row.enabled,
    config: mergeSecrets(row.config, storedSecrets(row, cipher)),
    ...(policy ? { policy } : {}),
    origin: `database connector "${row.id}"`,
  };
}

export async function databaseConnectorEntries(knex: Knex, taken: ReadonlySet<string>, cipher: TokenCipher | null = null): Promise<ConnectorEntry[]> {
  const rows = await new ConnectorRepository(knex).list();
  return rows.filter((r) => !taken.has(r.id)).map((r) => storedConnectorEntry(r, cipher));
}
