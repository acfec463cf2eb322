// URLs come from the configured issuer whatever Host, X-Forwarded-* or the request target say;
// the client address is the one the trusted proxy appended; an https issuer works behind a TLS
// proxy; discovery and JWKS may be cached.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { stringify } from 'yaml';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { Browser } from '../helpers/browser.ts';
import { freePort } from '../helpers/free-port.ts';
import { parseConfig } from '../../src/config/load-config.ts';
import { startBroker, type Broker } from '../../src/server/start-broker.ts';
import { pino } from 'pino';

const RP = 'http://127.0.0.1:9/cb';

/** A raw request, so Host and the request target are exactly what an attacker sends. */
function rawGet(url: string, path: string, headers: Record<string, string>): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, path, method: 'GET', headers, setHost: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

function authorizationPath(clientId = 'spa'): string {
  const verifier = randomBytes(32).toString('base64url');
  return `/auth?${new URLSearchParams({ client_id: clientId, response_type: 'code', scope: 'openid', redirect_uri: RP, state: 's', code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256' })}`;
}

const clients = [{ id: 'spa', redirectUris: [RP], postLogoutRedirectUris: ['http://127.0.0.1:9/bye'], firstParty: true }];
const users = [{ username: 'alice', password: 'alice-password-1' }];

describe('URLs derive from the issuer', () => {
  let broker: TestBroker;
  before(async () => {
    const port = await freePort();
    broker = await startTestBroker({ port, config: { http: { listen: `127.0.0.1:${port}`, trustProxy: true }, clients, users } });
  });
  after(() => broker?.close());

  const endpointsOf = (body: string) => {
    const doc = JSON.parse(body) as Record<string, unknown>;
    return Object.entries(doc).filter(([k, v]) => typeof v === 'string' && (k.endsWith('_endpoint') || k === 'jwks_uri' || k === 'issuer')).map(([, v]) => v as string);
  };

  for (const [name, path, headers] of [
    ['a spoofed Host', '/.well-known/openid-configuration', { host: 'evil.example' }],
    ['X-Forwarded-Host and -Proto from a trusted proxy', '/.well-known/openid-configuration', { host: 'evil.example', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' }],
    ['an absolute-form request target', 'http://evil.example/.well-known/openid-configuration', { host: 'evil.example' }],
  ] as const) {
    test(`discovery ignores ${name}`, async () => {
      const res = await rawGet(broker.url, path, headers);
      assert.equal(res.status, 200);
      const urls = endpointsOf(res.body);
      assert.ok(urls.length >= 5);
      for (const u of urls) assert.ok(u.startsWith(`${broker.issuer}/`) || u === broker.issuer, `${u} is not under ${broker.issuer}`);
      assert.doesNotMatch(res.body, /evil\.example/);
    });
  }

  test('the logout confirmation form posts to the issuer, not the spoofed host', async () => {
    const res = await rawGet(broker.url, '/session/end?client_id=spa', { host: 'evil.example', 'x-forwarded-host': 'evil.example', accept: 'text/html' });
    assert.equal(res.status, 200);
    assert.match(res.body, new RegExp(`action="${broker.issuer}/session/end/confirm"`));
    assert.doesNotMatch(res.body, /evil\.example/);
  });

  test('discovery and JWKS carry a Cache-Control suited to them', async () => {
    const discovery = await fetch(`${broker.url}/.well-known/openid-configuration`);
    assert.equal(discovery.headers.get('cache-control'), 'public, max-age=3600');
    const jwks = await fetch(`${broker.url}/jwks`);
    assert.equal(jwks.headers.get('cache-control'), 'public, max-age=300');
  });

  test('the client address is the one the trusted proxy appended, not the leftmost X-Forwarded-For entry', async () => {
    const browser = new Browser(broker.url);
    const page = await browser.go(`${broker.url}${authorizationPath()}`);
    const action = /action="([^"]*\/login)"/.exec(page.html)![1];
    const csrf = /name="csrf" value="([^"]*)"/.exec(page.html)![1];
    const res = await browser.request(new URL(action, broker.url).href, {
      form: { csrf, connector: 'local', username: 'alice', password: 'wrong-password' },
      headers: { 'x-forwarded-for': '6.6.6.6, 203.0.113.7' },
    });
    assert.equal(res.status, 401);
    const event = await broker.store.knex('audit_events').where({ type: 'login.failure' }).orderBy('id', 'desc').first('ip');
    assert.equal(event.ip, '203.0.113.7');
  });
});

describe('client address without a trusted proxy', () => {
  test('X-Forwarded-For is ignored entirely', async () => {
    const broker = await startTestBroker({ config: { clients, users } });
    try {
      const browser = new Browser(broker.url);
      const page = await browser.go(`${broker.url}${authorizationPath()}`);
      const action = /action="([^"]*\/login)"/.exec(page.html)![1];
      const csrf = /name="csrf" value="([^"]*)"/.exec(page.html)![1];
      await browser.request(new URL(action, broker.url).href, { form: { csrf, connector: 'local', username: 'alice', password: 'wrong' }, headers: { 'x-forwarded-for': '6.6.6.6' } });
      const event = await broker.store.knex('audit_events').where({ type: 'login.failure' }).first('ip');
      assert.match(event.ip, /^(::ffff:)?127\.0\.0\.1$/);
    } finally {
      await broker.close();
    }
  });
});

describe('an https issuer behind a TLS proxy', () => {
  let broker: Broker;
  let issuer: string;
  const logs: { level: number; msg: string }[] = [];
  before(async () => {
    const port = await freePort();
    issuer = `https://127.0.0.1:${port}`;
    const config = parseConfig(stringify({ issuer, http: { listen: `127.0.0.1:${port}` }, database: { dataDir: ':memory:' }, log: { level: 'silent' }, clients, users }), { env: {}, source: 'test' });
    broker = await startBroker(config, { logger: pino({ level: 'warn' }, { write: (line: string) => void logs.push(JSON.parse(line)) }) });
  });

  test('the broker warns at start that client addresses will be the proxy\'s, and how to fix it', () => {
    const warning = logs.find((l) => l.level === 40 && /trustProxy/.test(l.msg));
    assert.ok(warning, JSON.stringify(logs));
    assert.match(warning.msg, /Set http\.trustProxy: true/);
  });
  after(() => broker?.close());

  test('a sign-in starts (no "secure cookie over unencrypted connection" error page), with Secure cookies', async () => {
    const res = await fetch(`${broker.url}${authorizationPath()}`, { redirect: 'manual' });
    assert.equal(res.status, 303);
    const cookies = res.headers.getSetCookie();
    assert.ok(cookies.length > 0);
    for (const c of cookies) assert.match(c, /;\s*secure/i);
    const location = res.headers.get('location')!;
    assert.ok(location.startsWith('/interaction/') || location.startsWith(`${issuer}/interaction/`), location);
    const browser = new Browser(broker.url);
    const page = await browser.go(`${broker.url}${authorizationPath()}`);
    assert.equal(page.status, 200);
    assert.match(page.html, /name="password"/);
  });
});
