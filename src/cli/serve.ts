// `keybridge serve`: start, print where the broker is and how to sign in, stop cleanly on
// SIGINT/SIGTERM.
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/schema.ts';
import { parseConfig } from '../config/load-config.ts';
import { productionWarnings } from '../config/production-checks.ts';
import { startBroker } from '../server/start-broker.ts';

/** The demo config shipped with Keybridge: the only one whose credentials the hint may print. */
const SHIPPED_DEMO_CONFIG = path.resolve(import.meta.dirname, '../../config/dev.yaml');

function isLoopback(url: string): boolean {
  const host = new URL(url).hostname;
  return host === 'localhost' || host === '[::1]' || host.startsWith('127.');
}

/** The shipped demo config as written (no environment), when `configPath` is that file; else null. */
function shippedDemo(configPath: string): Config | null {
  if (path.resolve(configPath) !== SHIPPED_DEMO_CONFIG) return null;
  try {
    return parseConfig(readFileSync(SHIPPED_DEMO_CONFIG, 'utf8'), { env: {} });
  } catch {
    return null;
  }
}

function signInHint(config: Config, configPath: string): string[] {
  const client = config.clients.find((c) => c.grantTypes.includes('authorization_code') && c.redirectUris?.length);
  if (!client) return [];
  const demo = shippedDemo(configPath);
  const verifier = randomBytes(32).toString('base64url');
  const url = new URL(`${config.issuer}/auth`);
  url.search = new URLSearchParams({
    client_id: client.id,
    response_type: 'code',
    scope: 'openid profile email groups',
    redirect_uri: client.redirectUris![0],
    state: randomBytes(8).toString('base64url'),
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  }).toString();
  // A confidential client authenticates at /token. Only the shipped demo's own secret is ever
  // printed; any other config gets a placeholder (its secrets stay out of terminals and logs).
  const demoSecret = demo?.clients.find((c) => c.id === client.id)?.secret;
  const secret = client.secret !== undefined && client.secret === demoSecret ? client.secret : '<client-secret>';
  const method = client.tokenEndpointAuthMethod ?? (client.secret ? 'client_secret_basic' : 'none');
  const auth = method === 'client_secret_basic' ? `-u '${client.id}:${secret}'` : method === 'client_secret_post' ? `-d client_id=${client.id} -d 'client_secret=${secret}'` : `-d client_id=${client.id}`;
  const lines = [
    `  Try a sign-in as "${client.id}": open`,
    `    ${url.href}`,
    `  then exchange the ?code=... your browser lands on:`,
    `    curl -s ${config.issuer}/token ${auth} -d grant_type=authorization_code \\`,
    `      -d redirect_uri=${client.redirectUris![0]} -d code_verifier=${verifier} -d code=CODE`,
  ];
  // The demo user's password is printed only for the shipped demo config and its own demo
  // user: for any other config it would be a real person's password on a terminal.
  if (demo && isLoopback(config.issuer)) {
    const shipped = demo.users.find((u) => u.password);
    const user = shipped && config.users.find((u) => u.username === shipped.username && u.password === shipped.password);
    if (user) lines.push(`  Demo user: ${user.username} / ${user.password}`);
  }
  return lines;
}

export async function runServe(config: Config, configPath: string): Promise<number> {
  // What production mode would refuse, one line each (in production mode it refused already).
  const warnings = productionWarnings(config);
  if (warnings.length) process.stderr.write(`${warnings.join('\n')}\n`);
  const broker = await startBroker(config);
  // Handlers first: whoever reads the banner may signal at once.
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    broker.logger.info({ signal }, 'shutting down');
    broker.close().then(
      () => process.exit(0),
      (err) => {
        broker.logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  const lines = [
    '',
    `Keybridge is running: ${config.issuer}  (listening on ${broker.url}, config ${configPath}, ${broker.database.kind} database)`,
    `  Discovery: ${config.issuer}/.well-known/openid-configuration`,
    ...(config.admin.console.enabled ? [`  Admin console: ${config.issuer}/admin/${config.admin.groups.length ? ` (for members of ${config.admin.groups.join(', ')})` : ' (no admin.groups configured: nobody can sign in to it yet)'}`] : []),
    ...(config.account.enabled ? [`  Account console: ${config.issuer}/account/ (people manage their own profile, sign-in methods, sessions and apps)`] : []),
    ...signInHint(config, configPath),
    '',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);

  return -1; // keep running
}
