// The connectors a broker runs: those in config (read-only), the implicit `local` connector
// when config declares none, and those stored in the database (managed at runtime).
import type { Config } from '../config/schema.ts';
import type { ConnectorEntry } from '../connectors/registry.ts';
import type { Knex } from 'knex';

export function configConnectorEntries(config: Config): ConnectorEntry[] {
  const entries: ConnectorEntry[] = config.connectors.map((c, i) => ({
    id: c.id,
    type: c.type,
    name: c.name ?? c.id,
    enabled: c.enabled,
    config: c.config,
    policy: { linking: c.linking, storeTokens: c.storeTokens, mappers: c.mappers },
    origin: `connectors[${i}]`,
  }));
  if (!entries.some((e) => e.type === 'local')) {
    entries.unshift({ id: 'local', type: 'local', name: 'Username and password', enabled: true, config: {}, origin: 'connectors(implicit local)' });
  }
  return entries;
}

export async function databaseConnectorEntries(knex: Knex, taken: ReadonlySet<string>): Promise<ConnectorEntry[]> {
  const rows = await knex('connectors').select('id', 'type', 'name', 'enabled', 'config').orderBy([{ column: 'position' }, { column: 'id' }]);
  return rows
    .filter((r: { id: string }) => !taken.has(r.id))
    .map((r: { id: string; type: string; name: string; enabled: boolean; config: unknown }) => ({
      id: r.id,
      type: r.type,
      name: r.name,
      enabled: r.enabled,
      config: r.config,
      origin: `database connector "${r.id}"`,
    }));
}
