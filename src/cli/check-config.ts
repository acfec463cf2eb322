// `keybridge check-config`: every problem in the config file and in stored connector rows,
// each with its path, in one report.
import { ConfigError, type ConfigIssue } from '../errors.ts';
import { pgliteDir } from '../config/pglite-dir.ts';
import { loadConfig } from '../config/load-config.ts';
import { checkConnectorEntries } from '../connectors/registry.ts';
import { openDatabase } from '../storage/database.ts';
import { configConnectorEntries, databaseConnectorEntries } from '../server/connector-entries.ts';

export async function runCheckConfig(configPath: string | undefined): Promise<number> {
  let loaded;
  try {
    loaded = await loadConfig({ path: configPath });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    throw err;
  }
  const { config } = loaded;
  const entries = configConnectorEntries(config);
  const issues: ConfigIssue[] = [];
  issues.push(...(await checkConnectorEntries(entries)).issues);

  // Stored connectors are checked when the database is reachable and already has the schema.
  try {
    const database = await openDatabase({ url: config.database.url, dataDir: pgliteDir(config), pool: { min: 0, max: 1 } });
    try {
      if (await database.knex.schema.hasTable('connectors')) {
        const stored = await databaseConnectorEntries(database.knex, new Set(entries.map((e) => e.id)));
        issues.push(...(await checkConnectorEntries(stored)).issues);
      }
    } finally {
      await database.close();
    }
  } catch (err) {
    process.stderr.write(`note: stored connectors not checked (database unavailable: ${(err as Error).message})\n`);
  }

  if (issues.length) {
    process.stderr.write(`${new ConfigError(issues, loaded.path).message}\n`);
    return 1;
  }
  console.log(`${loaded.path}: configuration is valid (${entries.length} connector${entries.length === 1 ? '' : 's'}, ${config.clients.length} client${config.clients.length === 1 ? '' : 's'})`);
  return 0;
}
