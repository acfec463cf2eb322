// `keybridge ldap sync <connector>` (also `keybridge sync <connector>`): one directory import
// now, with a progress bar on stderr and a summary on stdout.
import type { Config } from '../config/schema.ts';
import { ConnectorRegistry } from '../connectors/registry.ts';
import { syncDirectory } from '../federation/sync-directory.ts';
import { createLocalAccounts } from '../accounts/local-accounts.ts';
import { createLogger } from '../log.ts';
import { configConnectorEntries, configuredTokenCipher, databaseConnectorEntries } from '../server/connector-entries.ts';
import { createProgressReporter } from './progress-bar.ts';
import { withStore } from './with-store.ts';

export function runSync(config: Config, connectorId: string | undefined): Promise<number> {
  if (!connectorId) {
    console.error('name the connector to import: keybridge ldap sync <connector-id>');
    return Promise.resolve(2);
  }
  return withStore(config, async (store) => {
    const entries = [...configConnectorEntries(config), ...(await databaseConnectorEntries(store.knex, new Set(config.connectors.map((c) => c.id)), configuredTokenCipher(config)))];
    const entry = entries.find((e) => e.id === connectorId);
    if (!entry) {
      console.error(`no connector "${connectorId}" (known: ${entries.map((e) => e.id).join(', ')})`);
      return 2;
    }
    const logger = createLogger(config.log.level === 'info' ? 'warn' : config.log.level);
    const registry = await ConnectorRegistry.open([{ ...entry, enabled: true }], { logger, localAccounts: createLocalAccounts(store) });
    try {
      const registered = registry.get(connectorId);
      const sync = registered?.connector.sync;
      if (!sync) {
        console.error(`connector "${connectorId}" (type ${entry.type}) cannot list its users, so it cannot be imported`);
        return 2;
      }
      const progress = createProgressReporter(process.stderr);
      const result = await syncDirectory(store, connectorId, sync, { mappers: registered?.policy.mappers, onProgress: (p) => progress.update(p) });
      progress.done(result);
      console.log(
        `imported ${connectorId}: ${result.processed} users (${result.created} created, ${result.updated} updated, ${result.unchanged} unchanged, ${result.disabled} disabled, ${result.enabled} enabled again), ${result.groups} groups`,
      );
      return 0;
    } catch (err) {
      console.error(`import of ${connectorId} failed: ${(err as Error).message}`);
      return 1;
    } finally {
      await registry.close();
    }
  });
}
