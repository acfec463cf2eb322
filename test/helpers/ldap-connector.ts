// Shared by the directory suites: build a connector from raw config the way the registry does,
// open an admin connection to a test directory, and unwrap a successful login.
import assert from 'node:assert/strict';
import { Client } from 'ldapts';
import pino from 'pino';
import { connectorUrls } from '../../src/connectors/registry.ts';
import type { ConnectorPlugin, LoginResult, PasswordConnector, UpstreamIdentity } from '../../src/connectors/contract.ts';

/** Validates `config` with the plugin's schema (throws on a bad one) and creates the connector. */
export async function createDirectoryConnector(plugin: ConnectorPlugin<never>, id: string, config: unknown): Promise<PasswordConnector> {
  const parsed = plugin.configSchema.parse(config);
  return (await plugin.create({ id, name: id, config: parsed, logger: pino({ level: 'silent' }), fetch, urls: connectorUrls('https://broker.example.org', 'upstream'), services: {} as never })) as PasswordConnector;
}

/** A connection bound as `dn` (the directory's admin, for changing entries under test). */
export async function boundClient(url: string, dn: string, password: string): Promise<Client> {
  const client = new Client({ url });
  await client.bind(dn, password);
  return client;
}

export function expectOk(result: LoginResult): UpstreamIdentity {
  assert.ok(result.ok, `expected success, got ${JSON.stringify(result)}`);
  return result.identity;
}
