// A broker for the fault suites: started like test/helpers/test-broker.ts, but with a logger
// whose lines the suite can read (to assert that hostile input or an outage never logs an
// error with a stack), and a plain code flow that returns the raw token response.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load-config.ts';
import { startBroker, type Broker } from '../../src/server/start-broker.ts';
import { freePort } from '../helpers/free-port.ts';
import { Browser } from '../helpers/browser.ts';
import { signIn } from '../helpers/login-flow.ts';

export interface LogLine {
  level: number;
  msg?: string;
  err?: { stack?: string; message?: string };
  [key: string]: unknown;
}

export interface FaultBroker extends Broker {
  issuer: string;
  logs: LogLine[];
}

const ERROR = 50;

export async function startFaultBroker(options: { config?: Record<string, unknown>; databaseUrl?: string } = {}): Promise<FaultBroker> {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const { database, ...rest } = options.config ?? {};
  const raw = {
    issuer,
    http: { listen: `127.0.0.1:${port}` },
    database: { ...(options.databaseUrl ? { url: options.databaseUrl } : { dataDir: ':memory:' }), ...(database as object | undefined) },
    log: { level: 'debug' },
    ...rest,
  };
  const config = parseConfig(stringify(raw), { env: {}, source: 'test config' });
  const logs: LogLine[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) });
  const broker = await startBroker(config, { logger });
  return Object.assign(broker, { issuer, logs });
}

/** Log lines at error level or above, or carrying a stack trace, since `from` (an index into logs). */
export function errorLines(logs: LogLine[], from = 0): LogLine[] {
  return logs.slice(from).filter((l) => l.level >= ERROR || typeof l.err?.stack === 'string');
}

export function assertNoErrorLogs(logs: LogLine[], from = 0): void {
  const bad = errorLines(logs, from);
  assert.equal(bad.length, 0, `error-level or stack-carrying log lines:\n${bad.map((l) => JSON.stringify(l).slice(0, 600)).join('\n')}`);
}

export const RP = 'http://127.0.0.1:9/cb'; // never contacted: the browser stops at the RP's origin

/** Signs alice in through the real login page and redeems the code: the raw token response. */
export async function codeFlowTokens(issuer: string, client: { id: string; secret: string }, user = { username: 'alice', password: 'alice-password-1' }): Promise<{ access_token: string; refresh_token: string; id_token: string }> {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const url = new URL('/auth', issuer);
  url.search = new URLSearchParams({ client_id: client.id, response_type: 'code', redirect_uri: RP, scope: 'openid offline_access', prompt: 'consent', code_challenge: challenge, code_challenge_method: 'S256', state: 'st' }).toString();
  const callback = new URL(await signIn(new Browser(issuer), url.href, user));
  const code = callback.searchParams.get('code');
  assert.ok(code, `no code in ${callback.href}`);
  const res = await fetch(new URL('/token', issuer), {
    method: 'POST',
    headers: { authorization: basic(client.id, client.secret), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: RP, code_verifier: verifier }),
  });
  const body = (await res.json()) as { access_token: string; refresh_token: string; id_token: string };
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.ok(body.refresh_token, 'a refresh token was issued');
  return body;
}

export function basic(id: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

/** One refresh_token grant; returns status and body. */
export async function refresh(baseUrl: string, client: { id: string; secret: string }, refreshToken: string): Promise<{ status: number; body: Record<string, string> }> {
  const res = await fetch(new URL('/token', baseUrl), {
    method: 'POST',
    headers: { authorization: basic(client.id, client.secret), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, string> };
}
