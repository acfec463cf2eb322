// `keybridge serve`: start, print where the broker is and how to sign in, stop cleanly on
// SIGINT/SIGTERM.
import { createHash, randomBytes } from 'node:crypto';
import type { Config } from '../config/schema.ts';
import { startBroker } from '../server/start-broker.ts';

function isLoopback(url: string): boolean {
  const host = new URL(url).hostname;
  return host === 'localhost' || host === '[::1]' || host.startsWith('127.');
}

function signInHint(config: Config): string[] {
  const client = config.clients.find((c) => c.grantTypes.includes('authorization_code') && c.redirectUris?.length);
  if (!client) return [];
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
  const lines = [
    `  Try a sign-in as "${client.id}": open`,
    `    ${url.href}`,
    `  then exchange the ?code=... your browser lands on:`,
    `    curl -s ${config.issuer}/token -d grant_type=authorization_code -d client_id=${client.id} \\`,
    `      -d redirect_uri=${client.redirectUris![0]} -d code_verifier=${verifier} -d code=CODE`,
  ];
  if (isLoopback(config.issuer)) {
    const user = config.users.find((u) => u.password);
    if (user) lines.push(`  Demo user: ${user.username} / ${user.password}`);
  }
  return lines;
}

export async function runServe(config: Config, configPath: string): Promise<number> {
  const broker = await startBroker(config);
  const lines = [
    '',
    `Keybridge is running: ${config.issuer}  (listening on ${broker.url}, config ${configPath}, ${broker.database.kind} database)`,
    `  Discovery: ${config.issuer}/.well-known/openid-configuration`,
    ...signInHint(config),
    '',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);

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
  return -1; // keep running
}
