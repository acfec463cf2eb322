// Hostile text at the edge. PostgreSQL refuses a NUL byte in text, so a %00 that reached a
// query answered 500 and logged an error with a stack, for anyone, unauthenticated. Every such
// input (and any that is not UTF-8) is now refused as 400 invalid_request before it is parsed
// or stored, oversized bodies as 413; nothing logs at error level.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { once } from 'node:events';
import { freshPostgresDatabase } from '../helpers/postgres.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { Browser, findForm } from '../helpers/browser.ts';
import { assertNoErrorLogs, basic, codeFlowTokens, RP, startFaultBroker, type FaultBroker } from './fault-broker.ts';

const RP_CLIENT = { id: 'rp', secret: 'rp-secret-0123456789abcdef' };
// The two kinds of text PostgreSQL (or any sane consumer) cannot take.
const BAD = [
  { name: 'NUL', encoded: '%00' },
  { name: 'invalid UTF-8', encoded: '%FF' },
];

describe('hostile input is refused at the edge', () => {
  let db: Awaited<ReturnType<typeof freshPostgresDatabase>>;
  let broker: FaultBroker;
  let refreshToken: string;

  before(async () => {
    db = await freshPostgresDatabase();
    if ('skip' in db) return;
    broker = await startFaultBroker({
      databaseUrl: db.url,
      config: {
        clients: [{ ...RP_CLIENT, redirectUris: [RP], firstParty: true, grantTypes: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'] }],
        users: [{ username: 'alice', password: 'alice-password-1', email: 'alice@example.org' }],
      },
    });
    refreshToken = (await codeFlowTokens(broker.issuer, RP_CLIENT)).refresh_token;
  });

  after(async () => {
    await broker?.close();
    if (db && !('skip' in db)) await db.drop();
  });

  const postForm = (path: string, body: string, headers: Record<string, string> = {}) =>
    fetch(`${broker.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body, redirect: 'manual' });

  async function assertRefused(res: Response, what: string, status = 400): Promise<void> {
    const text = await res.text();
    assert.equal(res.status, status, `${what}: ${res.status} ${text.slice(0, 300)}`);
    if (/json/.test(res.headers.get('content-type') ?? '')) assert.equal(JSON.parse(text).error, 'invalid_request', what);
  }

  for (const bad of BAD) {
    test(`${bad.name} in a refresh_token at /token: 400 invalid_request`, async (t) => {
      if ('skip' in db) return skipLoudly(t, db.skip);
      const from = broker.logs.length;
      const res = await postForm('/token', `grant_type=refresh_token&refresh_token=${bad.encoded}`, { authorization: basic(RP_CLIENT.id, RP_CLIENT.secret) });
      assert.match(res.headers.get('content-type') ?? '', /json/);
      await assertRefused(res, 'refresh_token');
      // A real token with the bad byte appended is refused too, and the real one still works.
      await assertRefused(await postForm('/token', `grant_type=refresh_token&refresh_token=${refreshToken}${bad.encoded}`, { authorization: basic(RP_CLIENT.id, RP_CLIENT.secret) }), 'refresh_token suffix');
      assertNoErrorLogs(broker.logs, from);
    });

    test(`${bad.name} in an introspection token: 400`, async (t) => {
      if ('skip' in db) return skipLoudly(t, db.skip);
      const from = broker.logs.length;
      await assertRefused(await postForm('/token/introspection', `token=${bad.encoded}`, { authorization: basic(RP_CLIENT.id, RP_CLIENT.secret) }), 'introspection');
      await assertRefused(await postForm('/token/revocation', `token=x${bad.encoded}`, { authorization: basic(RP_CLIENT.id, RP_CLIENT.secret) }), 'revocation');
      assertNoErrorLogs(broker.logs, from);
    });

    test(`${bad.name} in the client credentials (HTTP Basic) and in a query string: 400`, async (t) => {
      if ('skip' in db) return skipLoudly(t, db.skip);
      const from = broker.logs.length;
      const creds = `Basic ${Buffer.from(`rp${bad.encoded}:secret`).toString('base64')}`;
      await assertRefused(await postForm('/token', 'grant_type=client_credentials', { authorization: creds }), 'basic auth');
      await assertRefused(await fetch(`${broker.url}/auth?client_id=rp${bad.encoded}&response_type=code`, { headers: { accept: 'text/html' } }), '/auth query');
      await assertRefused(await fetch(`${broker.url}/me?access_token=${bad.encoded}`), 'userinfo query');
      assertNoErrorLogs(broker.logs, from);
    });

    test(`${bad.name} in the login form's username: the error page, 400`, async (t) => {
      if ('skip' in db) return skipLoudly(t, db.skip);
      const from = broker.logs.length;
      const browser = new Browser(broker.issuer);
      const url = `${broker.issuer}/auth?${new URLSearchParams({ client_id: 'rp', response_type: 'code', redirect_uri: RP, scope: 'openid', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' })}`;
      const page = await browser.go(url);
      const form = findForm(page.html, '/login');
      assert.ok(form, 'a login form');
      const cookie = [...browser.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
      const body = `${new URLSearchParams({ ...form.hidden, password: 'alice-password-1' })}&username=al${bad.encoded}ice`;
      const res = await postForm(new URL(form.action, page.url).pathname, body, { cookie, accept: 'text/html' });
      assert.match(res.headers.get('content-type') ?? '', /html/);
      await assertRefused(res, 'login username');
      assertNoErrorLogs(broker.logs, from);
    });

    test(`${bad.name} in a device user_code: 400`, async (t) => {
      if ('skip' in db) return skipLoudly(t, db.skip);
      const from = broker.logs.length;
      const browser = new Browser(broker.issuer);
      const page = await browser.go(`${broker.issuer}/device`);
      const form = findForm(page.html, '/device');
      assert.ok(form, 'the user code form');
      const cookie = [...browser.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
      const body = `${new URLSearchParams(form.hidden)}&user_code=ABCD${bad.encoded}`;
      await assertRefused(await postForm('/device', body, { cookie, accept: 'text/html' }), 'device user_code (form)');
      await assertRefused(await fetch(`${broker.url}/device?user_code=AB${bad.encoded}`, { headers: { accept: 'text/html', cookie } }), 'device user_code (link)');
      assertNoErrorLogs(broker.logs, from);
    });

    test(`${bad.name} in an upstream callback's state: 400`, async (t) => {
      if ('skip' in db) return skipLoudly(t, db.skip);
      const from = broker.logs.length;
      await assertRefused(await fetch(`${broker.url}/callback/corp?state=s${bad.encoded}&code=c`, { headers: { accept: 'text/html' } }), 'callback state (GET)');
      await assertRefused(await postForm('/callback/corp', `state=s${bad.encoded}&SAMLResponse=x`, { accept: 'text/html' }), 'callback state (POST)');
      assertNoErrorLogs(broker.logs, from);
    });
  }

  test('a NUL inside a JSON body: 400', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const from = broker.logs.length;
    const res = await fetch(`${broker.url}/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"grant_type":"refresh_token","refresh_token":"a\\u0000b"}' });
    await assertRefused(res, 'JSON body');
    assertNoErrorLogs(broker.logs, from);
  });

  test('a 1 MB body at /token: 413, declared or chunked', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const from = broker.logs.length;
    const big = `grant_type=refresh_token&refresh_token=${'a'.repeat(1024 * 1024)}`;
    await assertRefused(await postForm('/token', big, { authorization: basic(RP_CLIENT.id, RP_CLIENT.secret) }), 'declared length', 413);
    // Without a Content-Length (chunked), the limit applies while reading.
    const chunked = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(big));
        controller.close();
      },
    });
    const res = await fetch(`${broker.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(RP_CLIENT.id, RP_CLIENT.secret) }, body: chunked, duplex: 'half' } as RequestInit);
    await assertRefused(res, 'chunked', 413);
    assertNoErrorLogs(broker.logs, from);
  });

  test('raw (not percent-encoded) NUL and non-UTF-8 bytes in a form body, and in the client credentials: 400', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const from = broker.logs.length;
    for (const [name, byte] of [['NUL', 0x00], ['0xFF', 0xff], ['a lone continuation byte', 0x80]] as const) {
      const body = Buffer.concat([Buffer.from('grant_type=refresh_token&refresh_token=ab'), Buffer.from([byte]), Buffer.from('cd')]);
      const res = await fetch(`${broker.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(RP_CLIENT.id, RP_CLIENT.secret) }, body });
      await assertRefused(res, `raw ${name} in the form`);
      const credentials = Buffer.concat([Buffer.from('rp'), Buffer.from([byte]), Buffer.from(':rp-secret-0123456789abcdef')]).toString('base64');
      await assertRefused(await postForm('/token', 'grant_type=client_credentials', { authorization: `Basic ${credentials}` }), `raw ${name} in HTTP Basic`);
    }
    assertNoErrorLogs(broker.logs, from);
  });

  test('a client that sends part of its body and hangs up: nothing logged as an error', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const from = broker.logs.length;
    // Koa's default error handler would print a stack with console.error, outside the logger.
    const printed: unknown[] = [];
    const consoleError = console.error;
    console.error = (...args: unknown[]) => void printed.push(args);
    try {
      const { port } = new URL(broker.url);
      for (const [path, type] of [['/token', 'application/x-www-form-urlencoded'], ['/token/introspection', 'application/x-www-form-urlencoded'], ['/admin/api/v1/users', 'application/json'], ['/callback/local', 'application/x-www-form-urlencoded']] as const) {
        const socket = connect(Number(port), '127.0.0.1');
        await once(socket, 'connect');
        socket.write(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: ${type}\r\nContent-Length: 1000\r\nAuthorization: ${basic(RP_CLIENT.id, RP_CLIENT.secret)}\r\n\r\ngrant_type=refresh_`);
        await new Promise((r) => setTimeout(r, 100));
        socket.destroy();
      }
      // What the server logs about them, it logs while it notices the hang-ups.
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      console.error = consoleError;
    }
    assert.deepEqual(printed, [], 'nothing printed to stderr');
    assertNoErrorLogs(broker.logs, from);
    assert.ok(broker.logs.slice(from).some((l) => l.level === 20 && /client went away/.test(l.msg ?? '')), 'the hang-ups are noted at debug level');
    assert.ok(!broker.logs.slice(from).some((l) => /database unavailable/.test(l.msg ?? '')), 'a client hanging up is not a database outage');
    // And the next request is served.
    assert.equal((await fetch(`${broker.url}/.well-known/openid-configuration`)).status, 200);
  });

  test('a device code form posted without a live session goes back to the form, not a 500', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const from = broker.logs.length;
    for (const cookie of [undefined, 'kb_session=no-such-session; kb_session.sig=forged']) {
      const res = await postForm('/device', 'xsrf=abc&user_code=BCDF-GHJK', { accept: 'text/html', ...(cookie ? { cookie } : {}) });
      assert.equal(res.status, 303, `cookie ${cookie}: ${res.status}`);
      assert.equal(res.headers.get('location'), '/device');
    }
    const browser = new Browser(broker.issuer);
    const page = await browser.go(`${broker.issuer}/device`);
    assert.ok(findForm(page.html, '/device'), 'the form it is sent back to works');
    assertNoErrorLogs(broker.logs, from);
  });

  test('methods nothing implements (PROPFIND, MKCOL, LOCK...) get 405, never a 5xx', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    // (fetch refuses to send TRACE; it takes the same path as these.)
    for (const method of ['PROPFIND', 'MKCOL', 'LOCK', 'SEARCH', 'PURGE']) {
      for (const path of ['/', '/auth', '/interaction/x', '/admin/api', '/callback/local', '/no-such-path']) {
        const res = await fetch(`${broker.url}${path}`, { method, redirect: 'manual' });
        await res.text();
        assert.equal(res.status, 405, `${method} ${path}`);
        assert.match(res.headers.get('allow') ?? '', /GET/, `${method} ${path}: Allow`);
      }
    }
  });

  test('ordinary requests still parse after the edge check (refresh, introspection)', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const res = await postForm('/token', new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken }).toString(), { authorization: basic(RP_CLIENT.id, RP_CLIENT.secret) });
    const body = (await res.json()) as { refresh_token: string; access_token: string };
    assert.equal(res.status, 200, JSON.stringify(body));
    refreshToken = body.refresh_token;
    const introspection = await postForm('/token/introspection', new URLSearchParams({ token: body.access_token }).toString(), { authorization: basic(RP_CLIENT.id, RP_CLIENT.secret) });
    assert.equal(((await introspection.json()) as { active: boolean }).active, true);
  });
});
