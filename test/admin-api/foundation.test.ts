// The admin API's frame, on PGlite and PostgreSQL: who may call it (401/403, audited), what a
// caller without rights learns (nothing), problem+json errors with field paths, the OpenAPI
// document and its reference page, and the signing-key operations as the first resource.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { AdminApiClient, adminClientConfig, clientToken, consoleClientConfig, userToken, ADMIN_PREFIX, ADMIN_STORES as stores } from '../helpers/admin-api.ts';


for (const store of stores) {
  describe(`admin API frame on ${store.name}`, () => {
    let broker: TestBroker;
    let drop: () => Promise<void> = async () => {};
    let api: AdminApiClient;
    let skipped: string | undefined;

    before(async () => {
      const db = await store.url();
      if ('skip' in db) {
        skipped = db.skip;
        return;
      }
      drop = db.drop;
      broker = await startTestBroker({
        databaseUrl: db.url,
        config: {
          admin: { groups: ['admins'] },
          clients: [
            adminClientConfig('ops'),
            adminClientConfig('reader', ['admin:read']),
            adminClientConfig('key-keeper', ['admin:keys:write']),
            adminClientConfig('plain', ['profile']),
            consoleClientConfig(),
            { ...consoleClientConfig('other-app') },
          ],
          users: [
            { username: 'root', password: 'root-password-1', groups: ['admins'] },
            { username: 'mallory', password: 'mallory-password-1', groups: ['staff'] },
          ],
        },
      });
      api = new AdminApiClient(broker.issuer, await clientToken(broker.issuer, 'ops', 'admin:read admin:write'));
    });

    after(async () => {
      await broker?.close();
      await drop();
    });

    const live = (t: { skip(msg: string): void }) => {
      if (skipped) skipLoudly(t as never, skipped);
      return !skipped;
    };

    test('no token, a malformed token or an unknown token: 401 problem, audited, nothing about the API told', async (t) => {
      if (!live(t)) return;
      const none = await api.get('/keys', { token: null });
      assert.equal(none.status, 401);
      assert.match(none.headers.get('content-type')!, /^application\/problem\+json/);
      assert.match(none.headers.get('www-authenticate')!, /^Bearer realm="keybridge-admin"/);
      assert.equal(none.body.code, 'unauthorized');
      assert.equal(none.body.instance, none.headers.get('x-request-id'));
      // An anonymous caller cannot tell a real endpoint from a made-up one.
      const madeUp = await api.get('/no-such-thing', { token: null });
      assert.equal(madeUp.status, 401);
      const bogus = await api.get('/keys', { token: 'A'.repeat(43) });
      assert.equal(bogus.status, 401);
      const huge = await api.get('/keys', { token: 'A'.repeat(10_000) });
      assert.equal(huge.status, 401);
      const basic = await api.get('/keys', { token: null, headers: { authorization: 'Basic b3BzOm9wcw==' } });
      assert.equal(basic.status, 401);
      const events = await broker.store.audit.query({ type: 'admin.unauthenticated', limit: 10 });
      assert.ok(events.length >= 4, `expected the failures audited, got ${events.length}`);
      assert.ok(events.some((e) => e.details.reason === 'no_token'));
      assert.ok(events.some((e) => e.details.reason === 'invalid_token'));
    });

    test('a token without an admin scope is refused 403 and audited; a read-only token cannot write', async (t) => {
      if (!live(t)) return;
      const plain = await api.get('/keys', { token: await clientToken(broker.issuer, 'plain', 'profile') });
      assert.equal(plain.status, 403);
      assert.equal(plain.body.code, 'forbidden');
      const reader = await clientToken(broker.issuer, 'reader', 'admin:read');
      assert.equal((await api.get('/keys', { token: reader })).status, 200);
      const write = await api.post('/keys/rotate', undefined, { token: reader });
      assert.equal(write.status, 403);
      assert.equal(write.body.code, 'insufficient_scope');
      assert.match(write.headers.get('www-authenticate')!, /error="insufficient_scope"/);
      const forbidden = await broker.store.audit.query({ type: 'admin.forbidden', limit: 10 });
      assert.ok(forbidden.some((e) => e.clientId === 'reader' && e.details.reason === 'insufficient_scope'));
      assert.ok(forbidden.some((e) => e.clientId === 'plain' && e.details.reason === 'no_admin_scope'));
    });

    test('a client cannot be granted an admin scope it was not registered for', async (t) => {
      if (!live(t)) return;
      const res = await fetch(`${broker.issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from('reader:reader-secret-0123456789abcdef').toString('base64')}` },
        body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'admin:write' }),
      });
      assert.equal(res.status, 400);
    });

    test('a per-resource scope opens that resource only', async (t) => {
      if (!live(t)) return;
      const keeper = await clientToken(broker.issuer, 'key-keeper', 'admin:keys:write');
      const before = (await api.get('/keys')).body.items.filter((k: { status: string }) => k.status === 'active');
      const rotated = await api.post('/keys/rotate', undefined, { token: keeper });
      assert.equal(rotated.status, 200);
      const active = rotated.body.items.filter((k: { status: string }) => k.status === 'active');
      assert.equal(active.length, before.length);
      assert.ok(active.every((k: { kid: string }) => !before.some((b: { kid: string }) => b.kid === k.kid)), 'fresh keys are active');
      assert.ok(rotated.body.items.some((k: { kid: string; status: string }) => k.kid === before[0].kid && k.status === 'retired'), 'the old key stays published');
      for (const k of rotated.body.items) assert.equal(k.publicJwk.d, undefined, 'no private key material');
      // This instance signs with the new key at once.
      const jwks = (await (await fetch(`${broker.issuer}/jwks`)).json()) as { keys: Array<{ kid: string }> };
      assert.ok(active.every((k: { kid: string }) => jwks.keys.some((j) => j.kid === k.kid)));
      const [event]: any[] = await broker.store.audit.query({ type: 'admin.keys.rotate', limit: 1 });
      assert.equal(event.details.actor.clientId, 'key-keeper');
      assert.equal(event.details.requestId, rotated.headers.get('x-request-id'));
      // The fine scope does not reach other resources.
      assert.equal((await api.get('/users', { token: keeper })).status, 403);
    });

    test('an administrator signed in to the console client may call it; others may not', async (t) => {
      if (!live(t)) return;
      const root = await userToken(broker.issuer, 'keybridge-admin-console', 'root', 'root-password-1');
      assert.equal((await api.get('/keys', { token: root })).status, 200);
      const mallory = await userToken(broker.issuer, 'keybridge-admin-console', 'mallory', 'mallory-password-1');
      const refused = await api.get('/keys', { token: mallory });
      assert.equal(refused.status, 403);
      assert.equal(refused.body.detail, 'You are not an administrator.');
      // GET /me tells each caller who it is; the non-administrator learns only that it is not one.
      const me = await api.get('/me', { token: root });
      assert.equal(me.status, 200);
      assert.deepEqual({ ...me.body, userId: typeof me.body.userId }, { kind: 'user', clientId: 'keybridge-admin-console', userId: 'string', username: 'root', scopes: ['admin:write'] });
      assert.equal((await api.get('/me', { token: mallory })).status, 403);
      const service = await api.get('/me', { token: await clientToken(broker.issuer, 'reader', 'admin:read') });
      assert.deepEqual(service.body, { kind: 'client', clientId: 'reader', userId: null, username: null, scopes: ['admin:read'] });
      assert.equal((await api.get('/me', { token: await clientToken(broker.issuer, 'plain', 'profile') })).status, 403, 'a token with no admin scope at all is still refused');
      assert.equal((await api.get('/me', { token: null })).status, 401);
      // An admin's token for any other app is not an admin token.
      const elsewhere = await userToken(broker.issuer, 'other-app', 'root', 'root-password-1');
      assert.equal((await api.get('/keys', { token: elsewhere })).status, 403);
      // Disabling the admin takes their API access away at once.
      const rootUser = (await broker.store.users.findByUsername('root'))!;
      await broker.store.users.update(rootUser.id, { enabled: false });
      try {
        assert.equal((await api.get('/keys', { token: root })).status, 401);
      } finally {
        await broker.store.users.update(rootUser.id, { enabled: true });
      }
    });

    test('problems name the field: unknown endpoint 404, wrong method 405, a body where none is taken 415, a repeated parameter 400', async (t) => {
      if (!live(t)) return;
      const missing = await api.get('/nothing-here');
      assert.equal(missing.status, 404);
      assert.equal(missing.body.code, 'not_found');
      const method = await api.delete('/keys');
      assert.equal(method.status, 405);
      const body = await api.post('/keys/rotate', { surprise: true });
      assert.equal(body.status, 415);
      const repeated = await api.get('/keys?x=1&x=2');
      assert.equal(repeated.status, 400);
      assert.deepEqual(repeated.body.errors, [{ path: 'query.x', message: 'must be given once' }]);
      const badEncoding = await fetch(`${broker.issuer}${ADMIN_PREFIX}/keys%ff`, { headers: { authorization: `Bearer ${api.token}` } });
      assert.equal(badEncoding.status, 400);
    });

    test('a body refused at the edge (over 1 MiB, or a NUL) still answers problem+json', async (t) => {
      if (!live(t)) return;
      const huge = await api.request('POST', '/users', { rawBody: JSON.stringify({ username: 'x'.repeat(1_100_000) }), headers: { 'content-type': 'application/json' } });
      assert.equal(huge.status, 413);
      assert.match(huge.headers.get('content-type')!, /^application\/problem\+json/);
      assert.equal(huge.body.status, 413);
      const nul = await api.request('POST', '/users', { rawBody: '{"username":"a\u0000b"}', headers: { 'content-type': 'application/json' } });
      assert.equal(nul.status, 400);
      assert.match(nul.headers.get('content-type')!, /^application\/problem\+json/);
      // A NUL escaped inside a JSON string (what JSON.stringify sends) is refused naming its field.
      const escaped = await api.request('POST', '/users', { rawBody: '{"username":"nul-user","name":"a\\u0000b"}', headers: { 'content-type': 'application/json' } });
      assert.equal(escaped.status, 400);
      assert.deepEqual(escaped.body.errors.map((e: { path: string }) => e.path), ['body.name']);
      assert.equal((await api.get('/users?q=nul-user')).body.items.length, 0, 'nothing stored');
    });

    test('the request id is echoed when safe and generated otherwise', async (t) => {
      if (!live(t)) return;
      const mine = await api.get('/keys', { headers: { 'x-request-id': 'trace-0123456789' } });
      assert.equal(mine.headers.get('x-request-id'), 'trace-0123456789');
      const hostile = await api.get('/keys', { headers: { 'x-request-id': 'a b<script>' } });
      assert.match(hostile.headers.get('x-request-id')!, /^[0-9a-f-]{36}$/);
    });

    test('the OpenAPI document describes every operation and the reference page is served without a CDN', async (t) => {
      if (!live(t)) return;
      const doc = await api.document();
      assert.equal(doc.openapi, '3.1.0');
      const ids = Object.values(doc.paths).flatMap((p: any) => Object.values(p).map((o: any) => o.operationId));
      assert.equal(new Set(ids).size, ids.length, 'operationIds are unique');
      assert.ok(ids.includes('listKeys') && ids.includes('rotateKeys'));
      for (const [path, ops] of Object.entries(doc.paths) as Array<[string, Record<string, any>]>) {
        assert.ok(path.startsWith(ADMIN_PREFIX));
        for (const op of Object.values(ops)) for (const status of ['401', '403']) assert.ok(op.responses[status], `${path} documents ${status}`);
      }
      const page = await fetch(`${broker.issuer}/admin/api/docs`);
      assert.equal(page.status, 200);
      const html = await page.text();
      assert.doesNotMatch(html, /https?:\/\//, 'no external asset');
      const csp = page.headers.get('content-security-policy')!;
      assert.match(csp, /script-src 'self'/);
      assert.doesNotMatch(csp, /unsafe-inline/);
      for (const asset of ['swagger-ui-bundle.js', 'swagger-ui.css', 'init.js']) {
        const res = await fetch(`${broker.issuer}/admin/api/docs/${asset}`);
        assert.equal(res.status, 200, asset);
      }
      // fetch resolves the dots to /admin/package.json: the console's shell page, never the file.
      const traversal = await fetch(`${broker.issuer}/admin/api/docs/../../package.json`);
      assert.doesNotMatch(await traversal.text(), /devDependencies/);
      assert.equal((await fetch(`${broker.issuer}/admin/api/docs/%2e%2e%2f%2e%2e%2fpackage.json`)).status, 404);
    });

    test('repeated bad tokens from one address are throttled (429)', async (t) => {
      if (!live(t)) return;
      let throttled: Awaited<ReturnType<AdminApiClient['get']>> | undefined;
      for (let i = 0; i < 80 && !throttled; i++) {
        const res = await api.get('/keys', { token: `bad-token-${i}-0123456789` });
        if (res.status === 429) throttled = res;
        else assert.equal(res.status, 401);
      }
      assert.ok(throttled, 'expected a 429 after many bad tokens');
      assert.ok(Number(throttled.headers.get('retry-after')) > 0);
    });
  });
}
