// `keybridge check-config`: every problem in the config file and in stored connector rows,
// each with its path, in one report; outside production mode, what production mode would
// refuse is listed as warnings.
import { ConfigError, type ConfigIssue } from '../errors.ts';
import { loadConfig } from '../config/load-config.ts';
import { productionWarnings } from '../config/production-checks.ts';
import { checkConnectorEntries } from '../connectors/registry.ts';
import { openConfiguredDatabase } from '../storage/database.ts';
import { createPasswordPolicy } from '../accounts/password-policy.ts';
import { staticPasswordIssues } from '../accounts/seed-static-users.ts';
import { configConnectorEntries, configuredTokenCipher, databaseConnectorEntries } from '../server/connector-entries.ts';

export async function runCheckConfig(configPath: string | undefined): Promise<number> {
  // A ConfigError from the file itself is printed by the CLI's entry point (exit 1).
  const loaded = await loadConfig({ path: configPath });
  const { config } = loaded;
  const entries = configConnectorEntries(config);
  const issues: ConfigIssue[] = [];
  issues.push(...(await checkConnectorEntries(entries)).issues);

  // Stored connectors are checked when the database is reachable and already has the schema.
  try {
    const database = await openConfiguredDatabase(config, { min: 0, max: 1 });
    try {
      if (await database.knex.schema.hasTable('connectors')) {
        const stored = await databaseConnectorEntries(database.knex, new Set(entries.map((e) => e.id)), configuredTokenCipher(config));
        issues.push(...(await checkConnectorEntries(stored)).issues);
      }
    } finally {
      await database.close();
    }
  } catch (err) {
    process.stderr.write(`note: stored connectors not checked (database unavailable: ${(err as Error).message})\n`);
  }

  // Static users' plain-text passwords against the password policy (the start refuses them too).
  issues.push(...(await staticPasswordIssues(createPasswordPolicy(config.passwordPolicy, null), config.users)));

  // In production mode these already refused the config (loadConfig); elsewhere they warn.
  const warnings = productionWarnings(config);
  if (warnings.length) process.stderr.write(`${warnings.join('\n')}\n`);

  if (issues.length) {
    process.stderr.write(`${new ConfigError(issues, loaded.path).message}\n`);
    return 1;
  }
  console.log(`${loaded.path}: configuration is valid (${entries.length} connector${entries.length === 1 ? '' : 's'}, ${config.clients.length} client${config.clients.length === 1 ? '' : 's'})`);
  return 0;
}
