// OIDC clients through the admin API, on PGlite and PostgreSQL: config clients listed read-only,
// stored clients created (secret shown once, stored hashed), changed with ETags, rotated with an
// overlap, deleted with their tokens; private_key_jwt and per-client ID token algorithm and
// lifetimes; every change audited without the secret; and, on PostgreSQL, two instances on one
// database seeing each other's changes within 2 s.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as oidc from 'openid-client';
import { SignJWT, decodeProtectedHeader, exportJWK, generateKeyPair } from 'jose';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { freshPostgresDatabase } from '../helpers/postgres.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { Browser } from '../helpers/browser.ts';
import { signIn } from '../helpers/login-flow.ts';
import { AdminApiClient, adminClientConfig, clientToken, ADMIN_PREFIX, ADMIN_STORES as stores } from '../helpers/admin-api.ts';

const RP = 'http://127.0.0.1:9/cb'; // never contacted: the browser stops at the RP's origin


const sha256 = (s: string) => createHash('sha256').update(s).digest('base64url');

/** A client_credentials request as a service would send it; returns status and body. */
async function credentials(issuer: string, id: string, secret: string, options: { post?: boolean; scope?: string } = {}): Promise<{ status: number; body: Record<string, any> }> {
  const form = new URLSearchParams({ grant_type: 'client_credentials', ...(options.scope ? { scope: options.scope } : {}) });
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (options.post) {
    form.set('client_id', id);
    form.set('client_secret', secret);
  } else {
    headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
  }
  const res = await fetch(`${issuer}/token`, { method: 'POST', headers, body: form });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

/** Polls `check` until it holds or `ms` pass; returns how long it took. */
async function within(ms: number, what: string, check: () => Promise<boolean>): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await check()) return Date.now() - start;
    if (Date.now() - start > ms) assert.fail(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const brokerConfig = {
  admin: { groups: ['admins'] },
  clients: [
    adminClientConfig('ops'),
    adminClientConfig('reader', ['admin:read']),
    adminClientConfig('client-keeper', ['admin:clients:write']),
    { id: 'cfg-app', secret: 'cfg-app-secret-0123456789abcdef', redirectUris: [RP], name: 'Config app' },
    { id: 'a-public', redirectUris: [RP] },
  ],
  users: [{ username: 'alice', password: 'alice-password-1', email: 'alice@example.org' }],
};

for (const store of stores) {
  describe(`admin API clients on ${store.name}`, () => {
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
      broker = await startTestBroker({ databaseUrl: db.url, config: brokerConfig });
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

    const create = async (body: Record<string, unknown>) => {
      const res = await api.post('/clients', body);
      assert.equal(res.status, 201, JSON.stringify(res.body));
      return res;
    };

    test('no token: 401; a read-only token cannot write; a per-resource scope opens clients', async (t) => {
      if (!live(t)) return;
      assert.equal((await api.get('/clients', { token: null })).status, 401);
      assert.equal((await api.post('/clients', { id: 'x' }, { token: null })).status, 401);
      assert.equal((await api.delete('/clients/cfg-app', { token: 'A'.repeat(43) })).status, 401);
      const reader = await clientToken(broker.issuer, 'reader', 'admin:read');
      assert.equal((await api.get('/clients', { token: reader })).status, 200);
      const refused = await api.post('/clients', { id: 'by-reader', redirectUris: [RP] }, { token: reader });
      assert.equal(refused.status, 403);
      assert.equal(await broker.store.clients.find('by-reader'), null);
      const keeper = await clientToken(broker.issuer, 'client-keeper', 'admin:clients:write');
      const made = await api.post('/clients', { id: 'by-keeper', redirectUris: [RP] }, { token: keeper });
      assert.equal(made.status, 201);
      assert.equal((await api.get('/keys', { token: keeper })).status, 403, 'the clients scope does not open keys');
    });

    test('no one hands a client admin scopes they do not hold; a client without scopes gets no admin scope', async (t) => {
      if (!live(t)) return;
      const keeper = await clientToken(broker.issuer, 'client-keeper', 'admin:clients:write');
      const escalate = await api.post('/clients', { id: 'escalator', grantTypes: ['client_credentials'], scopes: ['admin:write'] }, { token: keeper });
      assert.equal(escalate.status, 403);
      assert.equal(escalate.body.code, 'insufficient_scope');
      assert.equal(await broker.store.clients.find('escalator'), null);
      const keys = await api.post('/clients', { id: 'escalator', grantTypes: ['client_credentials'], scopes: ['admin:keys:write'] }, { token: keeper });
      assert.equal(keys.status, 403);
      // Within the caller's own rights it is allowed.
      const own = await api.post('/clients', { id: 'sub-keeper', grantTypes: ['client_credentials'], scopes: ['admin:clients:read'] }, { token: keeper });
      assert.equal(own.status, 201);
      // Without scopes: the broker's scopes, none of them admin.
      const plain = await create({ id: 'no-scopes', grantTypes: ['client_credentials'] });
      assert.ok(plain.body.scopes.includes('openid'));
      assert.ok(!plain.body.scopes.some((s: string) => s.startsWith('admin:')));
      const token = await credentials(broker.issuer, 'no-scopes', plain.body.clientSecret, { scope: 'admin:write' });
      assert.equal(token.status, 400);
      assert.equal(token.body.error, 'invalid_scope');
    });

    test('the list shows config clients read-only and pages through everything with a cursor', async (t) => {
      if (!live(t)) return;
      for (const id of ['page-1', 'page-2', 'page-3', 'Upper-app', 'b_app']) await create({ id, redirectUris: [RP] });
      const first = await api.get('/clients?limit=200');
      const all = first.body.items as Array<{ id: string; source: string; readOnly: boolean }>;
      const cfg = all.find((c) => c.id === 'cfg-app')!;
      assert.equal(cfg.source, 'config');
      assert.equal(cfg.readOnly, true);
      assert.equal(all.find((c) => c.id === 'page-2')!.source, 'database');
      assert.deepEqual(all.map((c) => c.id), [...all.map((c) => c.id)].sort());
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page: { status: number; body: any } = await api.get(`/clients?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
        assert.equal(page.status, 200);
        assert.ok(page.body.items.length <= 2);
        seen.push(...page.body.items.map((c: { id: string }) => c.id));
        cursor = page.body.nextCursor;
      } while (cursor);
      assert.deepEqual(seen, all.map((c) => c.id), 'pages join up to the whole list, without repeats or gaps');
      for (const c of all) assert.equal(JSON.stringify(c).includes('secret-0123456789'), false, 'no config secret is shown');
      assert.equal((await api.get('/clients?limit=201')).status, 400);
      assert.equal((await api.get('/clients?limit=0')).status, 400);
      const badCursor = await api.get('/clients?cursor=bm9wZQ');
      assert.equal(badCursor.status, 400);
      assert.equal(badCursor.body.errors[0].path, 'query.cursor');
    });

    test('a created client: secret shown once and stored hashed, ETag on read, audited without the secret', async (t) => {
      if (!live(t)) return;
      const made = await create({ id: 'hashed-app', name: 'Hashed', redirectUris: [RP], postLogoutRedirectUris: ['http://127.0.0.1:9/bye'] });
      const secret: string = made.body.clientSecret;
      assert.match(secret, /^[A-Za-z0-9_-]{43}$/, '256 random bits');
      assert.equal(made.headers.get('location'), `${ADMIN_PREFIX}/clients/hashed-app`);
      assert.ok(made.headers.get('etag'));
      assert.equal(made.body.secretStatus.set, true);
      const read = await api.get('/clients/hashed-app');
      assert.equal(read.status, 200);
      assert.equal(read.body.clientSecret, undefined);
      assert.equal(read.text.includes(secret), false);
      assert.equal(read.headers.get('etag'), made.headers.get('etag'));
      const row = await broker.store.knex('clients').where({ id: 'hashed-app' }).first();
      assert.equal(JSON.stringify(row).includes(secret), false, 'the row never holds the secret');
      assert.equal(row.secret_hash, sha256(secret));
      const [event]: any[] = await broker.store.audit.query({ type: 'admin.client.create', limit: 1 });
      assert.equal(event.clientId, 'hashed-app');
      assert.equal(event.details.actor.clientId, 'ops');
      assert.equal(event.details.requestId, made.headers.get('x-request-id'));
      assert.equal(event.details.changes.redirectUris.after[0], RP);
      assert.equal(JSON.stringify(event).includes(secret), false, 'the audit never holds the secret');
      // The same secret twice? Two clients never share one.
      const other = await create({ id: 'hashed-app-2', redirectUris: [RP] });
      assert.notEqual(other.body.clientSecret, secret);
    });

    test('validation: every bad field is named with its path, and nothing is stored', async (t) => {
      if (!live(t)) return;
      const bad = await api.post('/clients', {
        id: 'bad/id',
        redirectUris: ['https://app.example/cb#frag', '/relative', 'javascript:alert(1)'],
        backchannelLogoutUri: 'ftp://x.example/',
        name: 'n'.repeat(201),
        grantTypes: ['implicit'],
        surprise: true,
      });
      assert.equal(bad.status, 400);
      const paths = bad.body.errors.map((e: { path: string }) => e.path);
      for (const p of ['body.id', 'body.redirectUris.0', 'body.redirectUris.1', 'body.redirectUris.2', 'body.backchannelLogoutUri', 'body.name', 'body.grantTypes.0']) assert.ok(paths.includes(p), `${p} in ${paths}`);
      assert.ok(bad.body.errors.some((e: { path: string; message: string }) => e.path === 'body' && /surprise/.test(e.message)) || paths.some((p: string) => p.includes('surprise')), 'the unknown key is named');
      const noRedirect = await api.post('/clients', { id: 'no-redirect' });
      assert.equal(noRedirect.status, 400);
      assert.deepEqual(noRedirect.body.errors.map((e: { path: string }) => e.path), ['body.redirectUris']);
      const longUri = await api.post('/clients', { id: 'long-uri', redirectUris: [`https://app.example/${'a'.repeat(3000)}`] });
      assert.equal(longUri.status, 400);
      assert.equal(longUri.body.errors[0].path, 'body.redirectUris.0');
      const alg = await api.post('/clients', { id: 'bad-alg', redirectUris: [RP], idTokenSignedResponseAlg: 'PS256' });
      assert.equal(alg.status, 400, 'PS256 is not among keys.algorithms');
      assert.equal(alg.body.errors[0].path, 'body.idTokenSignedResponseAlg');
      const publicCc = await api.post('/clients', { id: 'public-cc', grantTypes: ['client_credentials'], tokenEndpointAuthMethod: 'none' });
      assert.equal(publicCc.status, 400);
      assert.equal(publicCc.body.errors[0].path, 'body.tokenEndpointAuthMethod');
      const { privateKey } = await generateKeyPair('ES256', { extractable: true });
      const privateJwk = await api.post('/clients', { id: 'leaky', grantTypes: ['client_credentials'], tokenEndpointAuthMethod: 'private_key_jwt', jwks: { keys: [await exportJWK(privateKey)] } });
      assert.equal(privateJwk.status, 400, 'a private key is refused');
      assert.equal(privateJwk.body.errors[0].path, 'body.jwks.keys.0');
      const noKeys = await api.post('/clients', { id: 'keyless', grantTypes: ['client_credentials'], tokenEndpointAuthMethod: 'private_key_jwt' });
      assert.equal(noKeys.status, 400);
      const scope = await api.post('/clients', { id: 'odd-scope', redirectUris: [RP], scopes: ['openid', 'made-up'] });
      assert.equal(scope.status, 400);
      assert.equal(scope.body.errors[0].path, 'body.scopes.1');
      const lifetime = await api.post('/clients', { id: 'forever', grantTypes: ['client_credentials'], tokenLifetimes: { accessToken: 10 ** 9 } });
      assert.equal(lifetime.status, 400);
      assert.equal(lifetime.body.errors[0].path, 'body.tokenLifetimes.accessToken');
      for (const id of ['odd-scope', 'bad/id', 'no-redirect', 'long-uri', 'bad-alg', 'public-cc', 'leaky', 'keyless', 'forever']) assert.equal(await broker.store.clients.find(id), null, id);
    });

    test('ids of config, internal and console clients are taken; a repeated id is a conflict', async (t) => {
      if (!live(t)) return;
      for (const id of ['cfg-app', 'keybridge-admin-console', 'keybridge-saml-idp']) {
        const res = await api.post('/clients', { id, redirectUris: [RP] });
        assert.equal(res.status, 409, id);
        assert.equal(await broker.store.clients.find(id), null);
      }
      await create({ id: 'twice', redirectUris: [RP] });
      const again = await api.post('/clients', { id: 'twice', redirectUris: [RP] });
      assert.equal(again.status, 409);
      assert.equal(again.body.code, 'already_exists');
    });

    test('a client created through the API completes a code flow with its ID token algorithm; client_credentials with its own lifetime', async (t) => {
      if (!live(t)) return;
      const made = await create({ id: 'flow-app', redirectUris: [RP], firstParty: true, idTokenSignedResponseAlg: 'ES256', tokenLifetimes: { idToken: 600, accessToken: 300 } });
      const rp = await oidc.discovery(new URL(broker.issuer), 'flow-app', made.body.clientSecret, undefined, { execute: [oidc.allowInsecureRequests] });
      const verifier = oidc.randomPKCECodeVerifier();
      const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: RP, scope: 'openid profile offline_access', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state: 'st', prompt: 'consent' });
      const callback = await signIn(new Browser(broker.issuer), url.href, { username: 'alice', password: 'alice-password-1' });
      const tokens = await oidc.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier, expectedState: 'st' });
      assert.equal(tokens.claims()!.aud, 'flow-app');
      assert.equal(decodeProtectedHeader(tokens.id_token!).alg, 'ES256');
      const claims = tokens.claims()!;
      assert.equal(claims.exp - claims.iat, 600);
      assert.equal(tokens.expires_in, 300, 'the client\'s access token lifetime');
      const refreshed = await oidc.refreshTokenGrant(rp, tokens.refresh_token!);
      assert.ok(refreshed.access_token);

      const svc = await create({ id: 'svc-app', grantTypes: ['client_credentials'], tokenEndpointAuthMethod: 'client_secret_post', tokenLifetimes: { clientCredentials: 120 } });
      const ok = await credentials(broker.issuer, 'svc-app', svc.body.clientSecret, { post: true });
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      assert.equal(ok.body.expires_in, 120);
      assert.equal((await credentials(broker.issuer, 'svc-app', 'wrong-secret-0123456789', { post: true })).status, 401);
      // The stored hash is not a secret: presenting it fails, as does the marker.
      assert.equal((await credentials(broker.issuer, 'svc-app', sha256(svc.body.clientSecret), { post: true })).status, 401);
      assert.equal((await credentials(broker.issuer, 'svc-app', 'keybridge:hashed-client-secret', { post: true })).status, 401);
    });

    test('private_key_jwt: a client assertion signed with the registered key authenticates; another key does not', async (t) => {
      if (!live(t)) return;
      const { publicKey, privateKey } = await generateKeyPair('ES256');
      const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
      const made = await create({ id: 'jwt-app', grantTypes: ['client_credentials'], tokenEndpointAuthMethod: 'private_key_jwt', jwks: { keys: [jwk] } });
      assert.equal(made.body.clientSecret, undefined, 'no secret for a key-authenticated client');
      assert.equal(made.body.secretStatus.set, false);
      const assertion = (key: CryptoKey) =>
        new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer('jwt-app').setSubject('jwt-app').setAudience(broker.issuer).setIssuedAt().setExpirationTime('1m').setJti(crypto.randomUUID()).sign(key);
      const send = async (key: CryptoKey) => {
        const res = await fetch(`${broker.issuer}/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'jwt-app', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: await assertion(key) }),
        });
        return { status: res.status, body: (await res.json()) as Record<string, unknown> };
      };
      const ok = await send(privateKey);
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      const other = await generateKeyPair('ES256');
      assert.equal((await send(other.privateKey)).status, 401);
      // Keys may also be published at a URL (fetched by oidc-provider, which refuses private addresses).
      const byUri = await create({ id: 'jwks-uri-app', grantTypes: ['client_credentials'], tokenEndpointAuthMethod: 'private_key_jwt', jwksUri: 'https://keys.example.com/jwks.json' });
      assert.equal(byUri.body.jwksUri, 'https://keys.example.com/jwks.json');
      const both = await api.post('/clients', { id: 'jwks-both', grantTypes: ['client_credentials'], tokenEndpointAuthMethod: 'private_key_jwt', jwks: { keys: [jwk] }, jwksUri: 'https://keys.example.com/jwks.json' });
      assert.equal(both.status, 400);
      assert.equal(both.body.errors[0].path, 'body.jwksUri');
      const rotate = await api.post('/clients/jwt-app/rotate-secret', {});
      assert.equal(rotate.status, 409, 'nothing to rotate');
      // Switching to a shared secret issues one, shown once.
      const switched = await api.patch('/clients/jwt-app', { tokenEndpointAuthMethod: 'client_secret_basic', jwks: null });
      assert.equal(switched.status, 200, JSON.stringify(switched.body));
      assert.match(switched.body.clientSecret, /^[A-Za-z0-9_-]{43}$/);
      assert.equal((await credentials(broker.issuer, 'jwt-app', switched.body.clientSecret)).status, 200);
    });

    test('PATCH: ETag and If-Match (412 on a stale one, one winner of two concurrent writes), config clients 409, missing 404', async (t) => {
      if (!live(t)) return;
      const made = await create({ id: 'patched', redirectUris: [RP] });
      const etag = made.headers.get('etag')!;
      const changed = await api.patch('/clients/patched', { name: 'Renamed', redirectUris: [RP, 'https://app.example/cb'] }, { headers: { 'if-match': etag } });
      assert.equal(changed.status, 200, JSON.stringify(changed.body));
      assert.equal(changed.body.name, 'Renamed');
      assert.equal(changed.body.clientSecret, undefined, 'no new secret on an ordinary change');
      assert.notEqual(changed.headers.get('etag'), etag);
      const stale = await api.patch('/clients/patched', { name: 'Lost update' }, { headers: { 'if-match': etag } });
      assert.equal(stale.status, 412);
      assert.equal((await api.get('/clients/patched')).body.name, 'Renamed');
      const current = changed.headers.get('etag')!;
      const both = await Promise.all([
        api.patch('/clients/patched', { name: 'First' }, { headers: { 'if-match': current } }),
        api.patch('/clients/patched', { name: 'Second' }, { headers: { 'if-match': current } }),
      ]);
      assert.deepEqual(both.map((r) => r.status).sort(), [200, 412], 'exactly one of two concurrent writes wins');
      const winner = both.find((r) => r.status === 200)!;
      assert.equal((await api.get('/clients/patched')).body.name, winner.body.name);
      const updates = (await broker.store.audit.query({ type: 'admin.client.update', limit: 50 })).length;
      const same = await api.patch('/clients/patched', { name: winner.body.name, firstParty: false });
      assert.equal(same.status, 200);
      assert.equal(same.headers.get('etag'), winner.headers.get('etag'), 'asking for what is already there changes nothing');
      assert.equal((await broker.store.audit.query({ type: 'admin.client.update', limit: 50 })).length, updates, 'and records no change');
      const cleared = await api.patch('/clients/patched', { name: null });
      assert.equal(cleared.body.name, 'patched');
      const invalid = await api.patch('/clients/patched', { redirectUris: [] });
      assert.equal(invalid.status, 400, 'authorization_code still needs a redirect URI');
      assert.equal(invalid.body.errors[0].path, 'body.redirectUris');
      const cfg = await api.patch('/clients/cfg-app', { name: 'Mine now' });
      assert.equal(cfg.status, 409);
      assert.equal(cfg.body.code, 'read_only');
      const cfgRead = await api.get('/clients/cfg-app');
      assert.equal(cfgRead.status, 200);
      assert.ok(cfgRead.headers.get('etag'));
      assert.equal((await api.patch('/clients/missing-one', { name: 'x' })).status, 404);
      assert.equal((await api.get('/clients/patched%2F..%2Fcfg-app')).status, 404);
      assert.equal((await api.get(`/clients/${'x'.repeat(600)}`)).status, 400);
      const [event]: any[] = await broker.store.audit.query({ type: 'admin.client.update', limit: 1 });
      assert.ok(event.details.changes.name, 'the changed field is recorded with before and after');
      assert.equal(event.details.changes.redirectUris, undefined, 'unchanged fields are not');
    });

    test('a disabled client is refused at once on this instance, and works again when enabled', async (t) => {
      if (!live(t)) return;
      const made = await create({ id: 'toggled', grantTypes: ['client_credentials'] });
      const secret = made.body.clientSecret;
      assert.equal((await credentials(broker.issuer, 'toggled', secret)).status, 200);
      const token = (await credentials(broker.issuer, 'toggled', secret)).body.access_token;
      assert.equal((await api.patch('/clients/toggled', { enabled: false })).status, 200);
      assert.equal((await credentials(broker.issuer, 'toggled', secret)).status, 401);
      const introspected = await fetch(`${broker.issuer}/token/introspection`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from('ops:ops-secret-0123456789abcdef').toString('base64')}` },
        body: new URLSearchParams({ token }),
      });
      assert.equal(((await introspected.json()) as { active: boolean }).active, false, 'its tokens stop working too');
      const [event]: any[] = await broker.store.audit.query({ type: 'admin.client.update', limit: 1 });
      assert.equal(event.details.details.revokedArtifacts, 2);
      assert.deepEqual(event.details.changes.enabled, { before: true, after: false });
      assert.equal((await api.patch('/clients/toggled', { enabled: true })).status, 200);
      assert.equal((await credentials(broker.issuer, 'toggled', secret)).status, 200);
    });

    test('rotate-secret: the old secret works during the overlap and not after; overlap 0 ends it at once', async (t) => {
      if (!live(t)) return;
      const made = await create({ id: 'rotated', grantTypes: ['client_credentials'] });
      const old = made.body.clientSecret;
      const stale = await api.post('/clients/rotated/rotate-secret', { overlapSeconds: 2 }, { headers: { 'if-match': '"nope"' } });
      assert.equal(stale.status, 412);
      const rotated = await api.post('/clients/rotated/rotate-secret', { overlapSeconds: 2 }, { headers: { 'if-match': made.headers.get('etag')! } });
      assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
      const fresh = rotated.body.clientSecret;
      assert.notEqual(fresh, old);
      assert.ok(rotated.body.secretStatus.previousValidUntil);
      assert.equal((await credentials(broker.issuer, 'rotated', old)).status, 200, 'old secret during the overlap');
      assert.equal((await credentials(broker.issuer, 'rotated', fresh)).status, 200, 'new secret');
      await new Promise((r) => setTimeout(r, 2300));
      assert.equal((await credentials(broker.issuer, 'rotated', old)).status, 401, 'old secret after the overlap');
      assert.equal((await credentials(broker.issuer, 'rotated', fresh)).status, 200);
      const now = await api.post('/clients/rotated/rotate-secret', { overlapSeconds: 0 });
      assert.equal((await credentials(broker.issuer, 'rotated', fresh)).status, 401, 'overlap 0: the previous secret ends at once');
      assert.equal((await credentials(broker.issuer, 'rotated', now.body.clientSecret)).status, 200);
      const row = await broker.store.knex('clients').where({ id: 'rotated' }).first();
      for (const s of [old, fresh, now.body.clientSecret]) assert.equal(JSON.stringify(row).includes(s), false);
      const events: any[] = await broker.store.audit.query({ type: 'admin.client.rotate_secret', limit: 5 });
      assert.equal(events.length, 2);
      for (const e of events) for (const s of [old, fresh, now.body.clientSecret]) assert.equal(JSON.stringify(e).includes(s), false, 'no secret in the audit');
      assert.deepEqual(events.map((e) => e.details.details.overlapSeconds), [2, 0]);
      const tooLong = await api.post('/clients/rotated/rotate-secret', { overlapSeconds: 10 ** 8 });
      assert.equal(tooLong.status, 400);
      assert.equal(tooLong.body.errors[0].path, 'body.overlapSeconds');
      assert.equal((await api.post('/clients/cfg-app/rotate-secret', {})).status, 409);
      assert.equal((await api.post('/clients/nobody/rotate-secret', {})).status, 404);
    });

    test('DELETE revokes the client\'s tokens; a repeated delete is a 404, a config client a 409', async (t) => {
      if (!live(t)) return;
      const made = await create({ id: 'doomed', grantTypes: ['client_credentials'] });
      const token = (await credentials(broker.issuer, 'doomed', made.body.clientSecret)).body.access_token as string;
      assert.ok(await broker.store.knex('oidc_payloads').where({ id: token }).first());
      const stale = await api.delete('/clients/doomed', { headers: { 'if-match': '"old"' } });
      assert.equal(stale.status, 412);
      const gone = await api.delete('/clients/doomed', { headers: { 'if-match': made.headers.get('etag')! } });
      assert.equal(gone.status, 204);
      assert.equal(await broker.store.knex('oidc_payloads').where({ id: token }).first(), undefined, 'its token is deleted');
      assert.equal((await credentials(broker.issuer, 'doomed', made.body.clientSecret)).status, 401);
      const again = await api.delete('/clients/doomed');
      assert.equal(again.status, 404);
      assert.equal((await api.delete('/clients/cfg-app')).status, 409);
      const [event]: any[] = await broker.store.audit.query({ type: 'admin.client.delete', limit: 1 });
      assert.equal(event.clientId, 'doomed');
      assert.equal(event.details.details.revokedArtifacts, 1);
    });

    test('hostile input never yields a 500', async (t) => {
      if (!live(t)) return;
      const lookalike = await api.post('/clients', { id: 'ｃｆｇ-app', redirectUris: [RP] });
      assert.equal(lookalike.status, 400, 'full-width letters are not a client id');
      for (const path of ['/clients/%2F', '/clients/%252F', '/clients/..', '/clients/%E2%80%AE']) {
        const res = await api.get(path);
        assert.ok([400, 404].includes(res.status), `${path}: ${res.status}`);
        assert.equal((await api.get(path, { token: null })).status, 401);
      }
      const deep = await api.post('/clients', { id: 'deep', redirectUris: [RP], jwks: { keys: [{ kty: 'EC', x: { a: { b: { c: 1 } } } }] } });
      assert.equal(deep.status, 400);
      const huge = await api.post('/clients', { id: 'huge', redirectUris: Array.from({ length: 51 }, (_, i) => `https://app.example/${i}`) });
      assert.equal(huge.status, 400);
    });

    test('every operation answered as the OpenAPI document says', async (t) => {
      if (!live(t)) return;
      for (const op of ['GET /admin/api/v1/clients 200', 'GET /admin/api/v1/clients/{id} 200', 'POST /admin/api/v1/clients 201', 'PATCH /admin/api/v1/clients/{id} 200', 'PATCH /admin/api/v1/clients/{id} 412', 'POST /admin/api/v1/clients/{id}/rotate-secret 200', 'DELETE /admin/api/v1/clients/{id} 204', 'DELETE /admin/api/v1/clients/{id} 409']) {
        assert.ok(api.checked.has(op), `${op} was exercised and checked`);
      }
    });
  });
}

describe('admin API clients across two instances on PostgreSQL', () => {
  let a: TestBroker;
  let b: TestBroker;
  let drop: () => Promise<void> = async () => {};
  let skipped: string | undefined;

  before(async () => {
    const db = await freshPostgresDatabase();
    if ('skip' in db) {
      skipped = db.skip;
      return;
    }
    drop = db.drop;
    a = await startTestBroker({ databaseUrl: db.url, config: brokerConfig });
    b = await startTestBroker({ databaseUrl: db.url, config: brokerConfig });
  });

  after(async () => {
    await a?.close();
    await b?.close();
    await drop();
  });

  test('a client created on A is served by B within 2 s; disabled on A, B refuses it within 2 s', async (t) => {
    if (skipped) return skipLoudly(t, skipped);
    const api = new AdminApiClient(a.issuer, await clientToken(a.issuer, 'ops', 'admin:write'));
    // B has looked the id up before it existed: its "no such client" must not stick.
    assert.equal((await credentials(b.issuer, 'shared', 'whatever-0123456789')).status, 401);
    const made = await api.post('/clients', { id: 'shared', grantTypes: ['client_credentials'] });
    assert.equal(made.status, 201);
    const secret = made.body.clientSecret;
    const seen = await within(2000, 'B accepts the new client', async () => (await credentials(b.issuer, 'shared', secret)).status === 200);
    assert.ok(seen < 2000);
    assert.equal((await api.patch('/clients/shared', { enabled: false })).status, 200);
    await within(2000, 'B refuses the disabled client', async () => (await credentials(b.issuer, 'shared', secret)).status === 401);
    assert.equal((await api.patch('/clients/shared', { enabled: true })).status, 200);
    await within(2000, 'B accepts it again', async () => (await credentials(b.issuer, 'shared', secret)).status === 200);
    const rotated = await api.post('/clients/shared/rotate-secret', { overlapSeconds: 0 });
    await within(2000, 'B refuses the rotated-out secret', async () => (await credentials(b.issuer, 'shared', secret)).status === 401);
    assert.equal((await credentials(b.issuer, 'shared', rotated.body.clientSecret)).status, 200);
    assert.equal((await api.delete('/clients/shared')).status, 204);
    await within(2000, 'B refuses the deleted client', async () => (await credentials(b.issuer, 'shared', rotated.body.clientSecret)).status === 401);
  });

  test('a dropped notification connection is reopened, and changes made meanwhile still arrive within 2 s', async (t) => {
    if (skipped) return skipLoudly(t, skipped);
    const listeners = async () => Number((await a.store.knex.raw("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN keybridge_changes'")).rows[0].n);
    assert.equal(await listeners(), 2, 'one listening connection per instance');
    await a.store.knex.raw("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN keybridge_changes'");
    const api = new AdminApiClient(a.issuer, await clientToken(a.issuer, 'ops', 'admin:write'));
    assert.equal((await credentials(b.issuer, 'while-down', 'whatever-0123456789')).status, 401);
    const made = await api.post('/clients', { id: 'while-down', grantTypes: ['client_credentials'] });
    assert.equal(made.status, 201);
    await within(2000, 'B accepts a client created while it was not listening', async () => (await credentials(b.issuer, 'while-down', made.body.clientSecret)).status === 200);
    await within(5000, 'both instances listen again', async () => (await listeners()) === 2);
  });

  test('instances cache clients; a change whose notification was missed is still seen within 2 s (version poll)', async (t) => {
    if (skipped) return skipLoudly(t, skipped);
    const api = new AdminApiClient(a.issuer, await clientToken(a.issuer, 'ops', 'admin:write'));
    const made = await api.post('/clients', { id: 'quiet', grantTypes: ['client_credentials'] });
    const secret = made.body.clientSecret;
    await within(2000, 'B accepts it', async () => (await credentials(b.issuer, 'quiet', secret)).status === 200);
    // Past B's next version poll, which follows the creation's notification and clears B's cache once more.
    await new Promise((r) => setTimeout(r, 1300));
    assert.equal((await credentials(b.issuer, 'quiet', secret)).status, 200);
    // A write behind the feed's back: B answers from its cache, without a query per request...
    await a.store.knex('clients').where({ id: 'quiet' }).update({ enabled: false });
    const until = Date.now() + 1500;
    while (Date.now() < until) {
      assert.equal((await credentials(b.issuer, 'quiet', secret)).status, 200, 'B still serves its cached client');
      await new Promise((r) => setTimeout(r, 250));
    }
    // ...until the kind's version moves (as when a NOTIFY was lost while B reconnected).
    await a.store.knex.raw("UPDATE change_versions SET version = version + 1 WHERE kind = 'client'");
    await within(2000, 'B refuses it', async () => (await credentials(b.issuer, 'quiet', secret)).status === 401);
  });
});
