// Builds a broker for one suite from its own config, through the same parser and start-up as
// `keybridge serve`, on a free loopback port.
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load-config.ts';
import { startBroker, type Broker, type StartOptions } from '../../src/server/start-broker.ts';
import { freePort } from './free-port.ts';

export interface TestBroker extends Broker {
  issuer: string;
}

export async function startTestBroker(options: { config?: Record<string, unknown>; databaseUrl?: string; port?: number; keyPollMs?: number; syncFirstRunMs?: number; connectorPollMs?: number; plugins?: StartOptions['plugins']; logger?: StartOptions['logger'] } = {}): Promise<TestBroker> {
  const port = options.port ?? (await freePort());
  const issuer = `http://127.0.0.1:${port}`;
  const raw = {
    issuer,
    http: { listen: `127.0.0.1:${port}` },
    database: options.databaseUrl ? { url: options.databaseUrl } : { dataDir: ':memory:' },
    log: { level: process.env.TEST_LOG_LEVEL ?? 'silent' },
    ...options.config,
  };
  const config = parseConfig(stringify(raw), { env: {}, source: 'test config' });
  const broker = await startBroker(config, { keyPollMs: options.keyPollMs, syncFirstRunMs: options.syncFirstRunMs, connectorPollMs: options.connectorPollMs, plugins: options.plugins, logger: options.logger });
  return Object.assign(broker, { issuer });
}
