// Connectors through the admin API, on PGlite and PostgreSQL: config connectors read-only (409),
// stored ones created, changed (If-Match / 412), enabled, disabled and deleted, validated by the
// type's own schema (400 with body.config paths), secrets write-only (never returned, sealed in
// the row, masked in the audit log), the login page following every change within 2 s, the
// test action against a real HTTP upstream, and sync refusals.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { freePort } from '../helpers/free-port.ts';
import { AdminApiClient, adminClientConfig, clientToken, ADMIN_STORES as stores } from '../helpers/admin-api.ts';
import { TokenCipher, connectorSecretsBinding } from '../../src/accounts/token-cipher.ts';
import { storedConnectorEntry } from '../../src/server/connector-entries.ts';
import { offeredConnectors, RP_CLIENT, within } from '../helpers/login-page-connectors.ts';

const TOKEN_KEY = 'connector-test-token-key-0123456789abcdef';
const SECRET = 'upstream-client-secret-DO-NOT-LEAK-4242';
const CONFIG_SECRET = 'config-declared-secret-DO-NOT-LEAK-7777';


/** A generic OAuth 2.0 config whose endpoints are on `base`. */
const oauth2Config = (base: string, extra: Record<string, unknown> = {}) => ({
  clientId: 'kb-client',
  clientSecret: SECRET,
  authorizationUrl: `${base}/authorize`,
  tokenUrl: `${base}/token`,
  userinfoUrl: `${base}/userinfo`,
  ...extra,
});

interface JsonSchema {
  description?: string;
  type?: string;
  properties?: Record<string, JsonSchema>;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
}

/**
 * Every property of a config JSON Schema as [dotted path, schema], down `depth` levels of nested
 * objects; an object that is one variant of a union (saml `refresh`) counts with each variant.
 */
function fieldsOf(schema: JsonSchema, depth: number, prefix = ''): [string, JsonSchema][] {
  const found: [string, JsonSchema][] = [];
  for (const [name, field] of Object.entries(schema.properties ?? {})) {
    found.push([prefix + name, field]);
    if (depth === 0) continue;
    for (const variant of [field, ...(field.anyOf ?? []), ...(field.oneOf ?? [])]) {
      if (variant.properties) found.push(...fieldsOf(variant, depth - 1, `${prefix}${name}.`));
    }
  }
  return found;
}

for (const store of stores) {
  describe(`admin API connectors on ${store.name}`, () => {
    let broker: TestBroker;
    let drop: () => Promise<void> = async () => {};
    let api: AdminApiClient;
    let skipped: string | undefined;
    let upstream: http.Server;
    let upstreamBase: string;
    const cipher = new TokenCipher([TOKEN_KEY]);

    before(async () => {
      const db = await store.url();
      if ('skip' in db) {
        skipped = db.skip;
        return;
      }
      drop = db.drop;
      // An OAuth 2.0 upstream that answers every endpoint (the test action only checks reachability).
      upstream = http.createServer((req, res) => {
        res.writeHead(req.url?.startsWith('/token') ? 400 : 200, { 'content-type': 'application/json' }).end('{}');
      });
      await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
      upstreamBase = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
      broker = await startTestBroker({
        databaseUrl: db.url,
        config: {
          secrets: { tokenKeys: [TOKEN_KEY] },
          clients: [adminClientConfig('ops'), adminClientConfig('reader', ['admin:read']), adminClientConfig('plain', ['profile']), RP_CLIENT],
          connectors: [
            { id: 'local', type: 'local', name: 'Local account' },
            { id: 'gh', type: 'oauth2', name: 'GitHub', config: { preset: 'github', clientId: 'gh-client', clientSecret: CONFIG_SECRET } },
          ],
        },
      });
      api = new AdminApiClient(broker.issuer, await clientToken(broker.issuer, 'ops', 'admin:read admin:write'));
    });

    after(async () => {
      await broker?.close();
      upstream?.close();
      await drop();
    });

    const live = (t: { skip(msg: string): void }) => {
      if (skipped) skipLoudly(t as never, skipped);
      return !skipped;
    };

    const row = async (id: string) => broker.store.knex('connectors').where({ id }).first();

    test('401 without a token, 403 without a connectors scope, a reader cannot write', async (t) => {
      if (!live(t)) return;
      assert.equal((await api.get('/connectors', { token: null })).status, 401);
      assert.equal((await api.post('/connectors/x/test', undefined, { token: null })).status, 401);
      const plain = await clientToken(broker.issuer, 'plain', 'profile');
      assert.equal((await api.get('/connectors', { token: plain })).status, 403);
      const reader = await clientToken(broker.issuer, 'reader', 'admin:read');
      assert.equal((await api.get('/connectors', { token: reader })).status, 200);
      const write = await api.post('/connectors', { id: 'by-reader', type: 'oauth2', config: oauth2Config(upstreamBase) }, { token: reader });
      assert.equal(write.status, 403);
      assert.equal(await row('by-reader'), undefined);
    });

    test('config connectors are listed read-only without their secrets, and refuse every change (409)', async (t) => {
      if (!live(t)) return;
      const list = await api.get('/connectors?source=config');
      assert.equal(list.status, 200);
      assert.deepEqual(list.body.items.map((c: { id: string }) => c.id), ['gh', 'local']);
      const gh = list.body.items[0];
      assert.equal(gh.source, 'config');
      assert.equal(gh.readOnly, true);
      assert.equal(gh.config.clientSecret, undefined);
      assert.deepEqual(gh.secretsSet, ['clientSecret']);
      assert.ok(!list.text.includes(CONFIG_SECRET), 'a config secret leaked');
      const one = await api.get('/connectors/gh');
      assert.ok(!one.text.includes(CONFIG_SECRET));
      for (const res of [await api.patch('/connectors/gh', { name: 'Other' }), await api.delete('/connectors/gh'), await api.post('/connectors/gh/disable'), await api.post('/connectors', { id: 'gh', type: 'oauth2', config: oauth2Config(upstreamBase) })]) {
        assert.equal(res.status, 409);
        assert.equal(res.body.code, 'read_only');
      }
      assert.ok((await offeredConnectors(broker.issuer)).includes('gh'), 'still offered');
    });

    test('create: validated by the type schema (paths), secrets sealed in the row, never returned, masked in the audit log', async (t) => {
      if (!live(t)) return;
      const unknownType = await api.post('/connectors', { id: 'u1', type: 'no-such-type', config: {} });
      assert.equal(unknownType.status, 400);
      assert.equal(unknownType.body.errors[0].path, 'body.type');
      const badConfig = await api.post('/connectors', { id: 'u1', type: 'oauth2', config: { clientId: 'x', clientSecret: 's', authorizationUrl: 'http://evil.example/authorize', tokenUrl: `${upstreamBase}/token`, extra: 1 } });
      assert.equal(badConfig.status, 400);
      const paths = badConfig.body.errors.map((e: { path: string }) => e.path);
      assert.ok(paths.includes('body.config.authorizationUrl'), paths.join());
      assert.ok(paths.includes('body.config.userinfoUrl'), paths.join());
      assert.ok(!badConfig.text.includes('"s"'), 'no value echoed');
      const badId = await api.post('/connectors', { id: 'Bad/Id', type: 'oauth2', config: oauth2Config(upstreamBase) });
      assert.equal(badId.status, 400);
      assert.equal(badId.body.errors[0].path, 'body.id');
      const reserved = await api.post('/connectors', { id: 'passkey', type: 'oauth2', config: oauth2Config(upstreamBase) });
      assert.equal(reserved.status, 400);
      assert.equal(reserved.body.errors[0].path, 'body.id');
      assert.match(reserved.body.errors[0].message, /reserved/);
      const longName = await api.post('/connectors', { id: 'u1', type: 'oauth2', name: 'n'.repeat(101), config: oauth2Config(upstreamBase) });
      assert.equal(longName.status, 400);
      assert.equal(longName.body.errors[0].path, 'body.name');
      const badPolicy = await api.post('/connectors', { id: 'u1', type: 'oauth2', config: oauth2Config(upstreamBase), policy: { linking: { firstLogin: 'link-verified-email' } } });
      assert.equal(badPolicy.status, 400);
      assert.equal(badPolicy.body.errors[0].path, 'body.policy.linking.trustEmail');
      const cannotStart = await api.post('/connectors', { id: 'u1', type: 'ldap', config: { url: 'ldaps://127.0.0.1:9', tls: { caFile: '/nonexistent/ca.pem' }, users: { baseDn: 'ou=people,dc=example,dc=org' } } });
      assert.equal(cannotStart.status, 400, 'a connector that cannot start is refused before it reaches any instance');
      assert.equal(cannotStart.body.errors[0].path, 'body.config');
      assert.match(cannotStart.body.errors[0].message, /caFile/);
      assert.equal(await row('u1'), undefined, 'nothing stored by a refused create');

      const created = await api.post('/connectors', { id: 'acme', type: 'oauth2', name: 'Acme', config: oauth2Config(upstreamBase) });
      assert.equal(created.status, 201);
      assert.ok(created.headers.get('etag'));
      assert.equal(created.body.source, 'database');
      assert.equal(created.body.config.clientSecret, undefined);
      assert.deepEqual(created.body.secretsSet, ['clientSecret']);
      assert.deepEqual(created.body.secretFields, ['clientSecret']);
      assert.ok(!created.text.includes(SECRET));
      // At rest: the config column has no secret, the secrets column is ciphertext bound to the id.
      const stored = await row('acme');
      assert.ok(!JSON.stringify(stored).includes(SECRET), 'the secret is stored in clear');
      assert.match(stored.secrets, /^v1\./);
      assert.deepEqual(cipher.open(stored.secrets, connectorSecretsBinding('acme')), { clientSecret: SECRET });
      assert.equal(cipher.open(stored.secrets, connectorSecretsBinding('other')), null, 'bound to its connector');
      const [event]: any[] = await broker.store.audit.query({ type: 'admin.connector.create', limit: 1 });
      assert.ok(event, 'audited');
      assert.equal(event.details.requestId, created.headers.get('x-request-id'));
      assert.ok(!JSON.stringify(event).includes(SECRET), 'the audit log holds the secret');
      const duplicate = await api.post('/connectors', { id: 'acme', type: 'oauth2', config: oauth2Config(upstreamBase) });
      assert.equal(duplicate.status, 409);
      // Offered on the login page at once here (other instances poll).
      await within(2000, async () => (await offeredConnectors(broker.issuer)).includes('acme'), 'the login page offers the new connector');
    });

    test('update: ETag and If-Match (412 on a stale one), omitted secrets kept, a new secret sealed, invalid config refused with the row untouched', async (t) => {
      if (!live(t)) return;
      await api.post('/connectors', { id: 'upd', type: 'oauth2', config: oauth2Config(upstreamBase) });
      const read = await api.get('/connectors/upd');
      const etag = read.headers.get('etag')!;
      assert.ok(etag);
      const renamed = await api.patch('/connectors/upd', { name: 'Renamed', config: oauth2Config(upstreamBase, { clientSecret: undefined, scopes: ['openid', 'email'] }) }, { headers: { 'if-match': etag } });
      assert.equal(renamed.status, 200, JSON.stringify(renamed.body));
      assert.equal(renamed.body.name, 'Renamed');
      assert.deepEqual(renamed.body.config.scopes, ['openid', 'email']);
      assert.deepEqual(renamed.body.secretsSet, ['clientSecret']);
      assert.deepEqual(cipher.open((await row('upd')).secrets, connectorSecretsBinding('upd')), { clientSecret: SECRET }, 'an omitted secret is kept');
      const before = await row('upd');
      const stale = await api.patch('/connectors/upd', { name: 'Stale' }, { headers: { 'if-match': etag } });
      assert.equal(stale.status, 412);
      assert.deepEqual(await row('upd'), before, 'a stale write changes nothing');
      const invalid = await api.patch('/connectors/upd', { config: oauth2Config(upstreamBase, { tokenUrl: 'ftp://x' }) });
      assert.equal(invalid.status, 400);
      assert.equal(invalid.body.errors[0].path, 'body.config.tokenUrl');
      assert.deepEqual(await row('upd'), before, 'a refused write changes nothing');
      const rotated = await api.patch('/connectors/upd', { config: oauth2Config(upstreamBase, { clientSecret: 'a-new-secret-9999' }) }, { headers: { 'if-match': renamed.headers.get('etag')! } });
      assert.equal(rotated.status, 200);
      assert.ok(!rotated.text.includes('a-new-secret-9999'));
      assert.deepEqual(cipher.open((await row('upd')).secrets, connectorSecretsBinding('upd')), { clientSecret: 'a-new-secret-9999' });
      const events: any[] = await broker.store.audit.query({ type: 'admin.connector.update', limit: 5 });
      assert.equal(events.length, 2, 'one event per change, none for refused ones');
      // Oldest first: the rename (secret kept), then the new secret.
      assert.deepEqual(events[0].details.details.secretsChanged, []);
      assert.deepEqual(events[1].details.details.secretsChanged, ['clientSecret']);
      assert.equal(events[1].connectorId, 'upd');
      assert.ok(!JSON.stringify(events).includes('a-new-secret-9999') && !JSON.stringify(events).includes(SECRET));
      assert.deepEqual(events[0].details.changes.name, { before: 'upd', after: 'Renamed' }, 'the changed field is in the audit entry');
    });

    test('policy: trustUpstreamMfa and upstreamMfa as in the config file, stored and run; wrong types named by path', async (t) => {
      if (!live(t)) return;
      const ENTRA_MFA = 'http://schemas.microsoft.com/claims/multipleauthn';
      const bad = await api.post('/connectors', { id: 'mfa1', type: 'oauth2', config: oauth2Config(upstreamBase), policy: { trustUpstreamMfa: 'yes', upstreamMfa: { amr: 'mfa', acr: [7, 'x'.repeat(257)], extra: true } } });
      assert.equal(bad.status, 400);
      const paths = bad.body.errors.map((e: { path: string }) => e.path).sort();
      assert.deepEqual([...new Set(paths)], ['body.policy.trustUpstreamMfa', 'body.policy.upstreamMfa', 'body.policy.upstreamMfa.acr.0', 'body.policy.upstreamMfa.acr.1', 'body.policy.upstreamMfa.amr']);
      const nul = await api.post('/connectors', { id: 'mfa1', type: 'oauth2', config: oauth2Config(upstreamBase), policy: { upstreamMfa: { acr: ['urn:a\u0000'] } } });
      assert.equal(nul.status, 400);
      assert.deepEqual(nul.body.errors.map((e: { path: string }) => e.path), ['body.policy.upstreamMfa.acr.0']);
      const nothing = await api.post('/connectors', { id: 'mfa1', type: 'oauth2', config: oauth2Config(upstreamBase), policy: { trustUpstreamMfa: true, upstreamMfa: { amr: [] } } });
      assert.equal(nothing.status, 400);
      assert.deepEqual(nothing.body.errors.map((e: { path: string }) => e.path), ['body.policy.upstreamMfa']);
      assert.match(nothing.body.errors[0].message, /accepts no amr and no acr value/);
      assert.equal(await row('mfa1'), undefined);

      const created = await api.post('/connectors', { id: 'mfa1', type: 'oauth2', config: oauth2Config(upstreamBase), policy: { trustUpstreamMfa: true, upstreamMfa: { acr: [ENTRA_MFA] } } });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal(created.body.policy.trustUpstreamMfa, true);
      assert.deepEqual(created.body.policy.upstreamMfa.acr, [ENTRA_MFA]);
      assert.ok(created.body.policy.upstreamMfa.amr.includes('hwk'), 'the default amr list');
      const entry = storedConnectorEntry((await broker.store.connectors.find('mfa1'))!, cipher);
      assert.equal(entry.policy?.trustUpstreamMfa, true, 'what the registry runs');
      assert.deepEqual(entry.policy?.upstreamMfa.acr, [ENTRA_MFA]);
      const patched = await api.patch('/connectors/mfa1', { policy: { upstreamMfa: { amr: ['hwk'] } } });
      assert.equal(patched.status, 200, JSON.stringify(patched.body));
      assert.equal(patched.body.policy.trustUpstreamMfa, false, 'a policy replaces the whole policy');
      assert.deepEqual(patched.body.policy.upstreamMfa, { amr: ['hwk'], acr: [] });
      assert.equal((await api.delete('/connectors/mfa1')).status, 204);
    });

    test('two concurrent updates with the same If-Match: one wins, the other gets 412', async (t) => {
      if (!live(t)) return;
      await api.post('/connectors', { id: 'race', type: 'oauth2', config: oauth2Config(upstreamBase) });
      const etag = (await api.get('/connectors/race')).headers.get('etag')!;
      const results = await Promise.all(['A', 'B'].map((n) => api.patch('/connectors/race', { name: `by ${n}` }, { headers: { 'if-match': etag } })));
      assert.deepEqual(results.map((r) => r.status).sort(), [200, 412]);
      const winner = results.find((r) => r.status === 200)!;
      assert.equal((await api.get('/connectors/race')).body.name, winner.body.name);
      const creates = await Promise.all([1, 2, 3].map(() => api.post('/connectors', { id: 'race-create', type: 'oauth2', config: oauth2Config(upstreamBase) })));
      assert.deepEqual(creates.map((r) => r.status).sort(), [201, 409, 409]);
      const deletes = await Promise.all([1, 2].map(() => api.delete('/connectors/race-create')));
      assert.deepEqual(deletes.map((r) => r.status).sort(), [204, 404], 'a repeated delete is a 404, never a 500');
    });

    test('disable and enable: the login page follows; delete is idempotent (404 again), ids that do not exist are 404', async (t) => {
      if (!live(t)) return;
      await api.post('/connectors', { id: 'toggle', type: 'oauth2', name: 'Toggle', config: oauth2Config(upstreamBase) });
      await within(2000, async () => (await offeredConnectors(broker.issuer)).includes('toggle'), 'offered after create');
      const disabled = await api.post('/connectors/toggle/disable');
      assert.equal(disabled.status, 200);
      assert.equal(disabled.body.enabled, false);
      await within(2000, async () => !(await offeredConnectors(broker.issuer)).includes('toggle'), 'gone after disable');
      assert.equal((await api.post('/connectors/toggle/enable')).status, 200);
      await within(2000, async () => (await offeredConnectors(broker.issuer)).includes('toggle'), 'back after enable');
      const types = (await broker.store.audit.query({ limit: 50 })).map((e: { type: string }) => e.type);
      assert.ok(types.includes('admin.connector.disable') && types.includes('admin.connector.enable'));
      const staleDelete = await api.delete('/connectors/toggle', { headers: { 'if-match': '"nope"' } });
      assert.equal(staleDelete.status, 412);
      assert.equal((await api.delete('/connectors/toggle')).status, 204);
      assert.equal((await api.delete('/connectors/toggle')).status, 404);
      assert.equal((await api.get('/connectors/toggle')).status, 404);
      assert.equal(await row('toggle'), undefined);
      await within(2000, async () => !(await offeredConnectors(broker.issuer)).includes('toggle'), 'gone after delete');
      assert.equal((await api.get('/connectors/a%2Fb')).status, 404);
      assert.equal((await api.patch('/connectors/missing', { name: 'x' })).status, 404);
      assert.equal((await api.post('/connectors/missing/test')).status, 404);
      assert.equal((await api.post('/connectors/missing/disable')).status, 404);
      const [deleted]: any[] = await broker.store.audit.query({ type: 'admin.connector.delete', limit: 1 });
      assert.equal(deleted.connectorId, 'toggle');
      assert.equal(deleted.details.changes.enabled.before, true);
    });

    test('a change written by another instance (straight to the table) reaches this one through the poll within 2 s', async (t) => {
      if (!live(t)) return;
      assert.equal((await api.post('/connectors', { id: 'elsewhere', type: 'oauth2', name: 'Elsewhere', config: oauth2Config(upstreamBase) })).status, 201);
      await within(2000, async () => (await offeredConnectors(broker.issuer)).includes('elsewhere'), 'offered');
      // No API call, so no immediate reload here: only the poll can see it.
      await broker.store.connectors.update('elsewhere', { enabled: false });
      const gone = await within(2000, async () => !(await offeredConnectors(broker.issuer)).includes('elsewhere'), 'the poll sees a disable written elsewhere');
      t.diagnostic(`seen after ${gone} ms`);
      await broker.store.connectors.delete('elsewhere');
      await broker.store.connectors.insert({ id: 'elsewhere-2', type: 'oauth2', name: 'Elsewhere 2', enabled: true, config: { ...oauth2Config(upstreamBase), clientSecret: undefined }, secrets: cipher.seal({ clientSecret: SECRET }, connectorSecretsBinding('elsewhere-2')), policy: null, position: 0 });
      await within(2000, async () => (await offeredConnectors(broker.issuer)).includes('elsewhere-2'), 'the poll sees a connector inserted elsewhere');
    });

    test('pagination: cursor and limit (max 200)', async (t) => {
      if (!live(t)) return;
      for (const id of ['page-a', 'page-b', 'page-c']) await api.post('/connectors', { id, type: 'oauth2', enabled: false, config: oauth2Config(upstreamBase) });
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const res: any = await api.get(`/connectors?source=database&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
        assert.equal(res.status, 200);
        assert.ok(res.body.items.length <= 2);
        seen.push(...res.body.items.map((c: { id: string }) => c.id));
        cursor = res.body.nextCursor;
        pages += 1;
      } while (cursor && pages < 20);
      assert.deepEqual(seen, [...seen].sort());
      assert.equal(new Set(seen).size, seen.length);
      for (const id of ['page-a', 'page-b', 'page-c']) assert.ok(seen.includes(id));
      assert.equal((await api.get('/connectors?limit=201')).body.errors[0].path, 'query.limit');
      assert.equal((await api.get('/connectors?cursor=garbage')).status, 400);
      const disabledOnly = await api.get('/connectors?enabled=false');
      assert.ok(disabledOnly.body.items.every((c: { enabled: boolean }) => !c.enabled));
    });

    test('test action: a reachable upstream is ok with what it found; an unreachable one names the failing step and field', async (t) => {
      if (!live(t)) return;
      await api.post('/connectors', { id: 'probe-ok', type: 'oauth2', enabled: false, config: oauth2Config(upstreamBase) });
      const ok = await api.post('/connectors/probe-ok/test');
      assert.equal(ok.status, 200);
      assert.equal(ok.body.ok, true, JSON.stringify(ok.body));
      assert.deepEqual(ok.body.steps.map((s: { name: string }) => s.name), ['authorization', 'token', 'userinfo']);
      assert.deepEqual(ok.body.found.endpoints, { authorization: 200, token: 400, userinfo: 200 });
      const dead = `http://127.0.0.1:${await freePort()}`;
      await api.post('/connectors', { id: 'probe-dead', type: 'oauth2', enabled: false, config: oauth2Config(dead, { timeoutMs: 1000 }) });
      const failed = await api.post('/connectors/probe-dead/test');
      assert.equal(failed.status, 200);
      assert.equal(failed.body.ok, false);
      assert.equal(failed.body.steps.length, 1, 'stops at the first failure');
      assert.equal(failed.body.steps[0].name, 'authorization');
      assert.equal(failed.body.steps[0].field, 'config.authorizationUrl');
      assert.ok(!failed.text.includes(SECRET));
      // A connector type without a test says so.
      const local = await api.post('/connectors/local/test');
      assert.equal(local.status, 200);
      assert.equal(local.body.supported, false);
    });

    test('hostile input: no 500 for anonymous callers, odd ids, over-long values, wrong JSON shapes', async (t) => {
      if (!live(t)) return;
      const paths = ['/connectors', '/connectors/acme', '/connectors/acme/test', '/connectors/acme/sync', '/connectors/acme/disable', '/connectors/a%2Fb'];
      for (const path of paths) {
        for (const method of ['GET', 'POST', 'PATCH', 'DELETE']) {
          const res = await api.request(method, path, { token: null, body: method === 'GET' || method === 'DELETE' ? undefined : { id: 'x' } });
          assert.equal(res.status, 401, `${method} ${path} anonymous`);
        }
      }
      assert.equal((await api.get(`/connectors/${'x'.repeat(5000)}`)).status, 400, 'an over-long id is refused at params.id');
      assert.equal((await api.delete('/connectors/..%2F..%2Fkeys')).status, 404);
      assert.equal((await api.post('/connectors/%2E%2E/disable')).status, 404);
      const huge = await api.post('/connectors', { id: 'huge', type: 'oauth2', config: oauth2Config(upstreamBase, { clientId: 'c'.repeat(512 * 1024) }) });
      assert.equal(huge.status, 413, 'over admin.bodyLimit');
      const array = await api.post('/connectors', [{ id: 'arr' }]);
      assert.equal(array.status, 400);
      const configArray = await api.post('/connectors', { id: 'arr', type: 'oauth2', config: ['not', 'an', 'object'] });
      assert.equal(configArray.status, 400);
      assert.equal(configArray.body.errors[0].path, 'body.config');
      const deep = await api.post('/connectors', { id: 'deep', type: 'ldap', config: { url: 'ldap://127.0.0.1:9', users: { baseDn: 'x'.repeat(100_000) } } });
      assert.equal(deep.status, 400);
      assert.ok(deep.body.errors.some((e: { path: string }) => e.path.startsWith('body.config.users')), JSON.stringify(deep.body.errors));
      assert.equal(await row('huge'), undefined);
      assert.equal(await row('deep'), undefined);
    });

    test('sync: refused for connectors that cannot list users or are disabled; no import yet is 404', async (t) => {
      if (!live(t)) return;
      const notDirectory = await api.post('/connectors/gh/sync');
      assert.equal(notDirectory.status, 409);
      assert.equal(notDirectory.body.code, 'sync_not_supported');
      const disabled = await api.post('/connectors/page-a/sync');
      assert.equal(disabled.status, 409);
      assert.equal(disabled.body.code, 'connector_not_running');
      assert.equal((await api.get('/connectors/gh/sync')).status, 404);
    });

    test('a NUL written as a JSON escape is refused at the field that holds it (body.config.clientId), and nothing is stored', async (t) => {
      if (!live(t)) return;
      const res = await api.request('POST', '/connectors', { rawBody: JSON.stringify({ id: 'nul', type: 'oauth2', config: oauth2Config(upstreamBase, { clientId: 'a\u0000b' }) }), headers: { 'content-type': 'application/json' } });
      assert.equal(res.status, 400);
      assert.deepEqual(res.body.errors.map((e: { path: string }) => e.path), ['body.config.clientId']);
      assert.equal(await row('nul'), undefined);
    });

    test('connector types: every built-in type with its config JSON Schema, secret fields, capabilities and presets; readers may list them', async (t) => {
      if (!live(t)) return;
      const reader = await clientToken(broker.issuer, 'reader', 'admin:read');
      const res = await api.get('/connector-types', { token: reader });
      assert.equal(res.status, 200);
      const byType = new Map(res.body.items.map((i: { type: string }) => [i.type, i]));
      for (const type of ['activedirectory', 'ldap', 'local', 'oauth2', 'oidc', 'passport', 'saml']) assert.ok(byType.has(type), `${type} is listed`);
      const ldap = byType.get('ldap') as any;
      assert.equal(ldap.label, 'LDAP');
      assert.deepEqual([ldap.test, ldap.sync], [true, true]);
      assert.deepEqual(ldap.secretFields, ['bindPassword']);
      // The JSON Schema is the validating schema's: unknown keys refused, nested objects, required fields.
      assert.equal(ldap.configSchema.additionalProperties, false);
      assert.equal(ldap.configSchema.properties.bindDn.type, 'string');
      assert.match(ldap.configSchema.properties.bindDn.description, /Service account/, 'descriptions reach the JSON Schema');
      assert.ok(ldap.configSchema.properties.users.required.includes('baseDn'), JSON.stringify(ldap.configSchema.properties.users));
      const oidc = byType.get('oidc') as any;
      assert.deepEqual([oidc.test, oidc.sync], [true, false]);
      assert.deepEqual(oidc.configSchema.properties.preset.enum, oidc.presets.filter((p: { name: string }) => p.name !== 'generic').map((p: { name: string }) => p.name));
      assert.deepEqual(oidc.presets.find((p: { name: string }) => p.name === 'google').config, { preset: 'google' });
      assert.ok(oidc.presets.some((p: { label: string }) => p.label === 'Microsoft Entra ID'));
      const hideOf = (name: string) => oidc.presets.find((p: { name: string }) => p.name === name).hide as string[];
      assert.ok(hideOf('google').includes('tenant') && hideOf('google').includes('issuer'), JSON.stringify(hideOf('google')));
      assert.ok(!hideOf('entra').includes('tenant') && hideOf('entra').includes('realm'));
      assert.ok(!hideOf('generic').includes('issuer'));
      const oauth2 = byType.get('oauth2') as any;
      assert.deepEqual(oauth2.presets.find((p: { name: string }) => p.name === 'github').config, { preset: 'github' });
      assert.equal((byType.get('passport') as any).test, false);
      assert.equal((await api.get('/connector-types', { token: await clientToken(broker.issuer, 'plain', 'profile') })).status, 403);
    });

    test("connector types: every field of the built-in types' config forms has a description (the form's hint), nested objects included", async (t) => {
      if (!live(t)) return;
      const res = await api.get('/connector-types');
      assert.equal(res.status, 200);
      const byType = new Map<string, { configSchema: JsonSchema }>(res.body.items.map((i: { type: string }) => [i.type, i]));
      // No exceptions: every field an operator can fill in says what it is. A field that truly
      // needs no words would be listed here as 'type:path', with the reason beside it.
      const exceptions = new Set<string>([]);
      const missing: string[] = [];
      const tooLong: string[] = [];
      for (const type of ['activedirectory', 'ldap', 'local', 'oauth2', 'oidc', 'passport', 'saml']) {
        const schema = byType.get(type)?.configSchema;
        assert.ok(schema?.properties && Object.keys(schema.properties).length > 0, `${type} has a config schema with properties`);
        for (const [path, field] of fieldsOf(schema, 1)) {
          const description = typeof field.description === 'string' ? field.description.trim() : '';
          if (!description && !exceptions.has(`${type}:${path}`)) missing.push(`${type}:${path}`);
          // A hint is a sentence under a field, not a manual page.
          if (description.length > 240) tooLong.push(`${type}:${path} (${description.length})`);
        }
      }
      assert.deepEqual(missing, [], 'fields without a description');
      assert.deepEqual(tooLong, [], 'descriptions longer than a hint');
      // Spot checks that the words reach the form where they belong.
      const oidc = byType.get('oidc')!.configSchema;
      assert.match(oidc.properties!.claims.properties!.subject.description!, /stable upstream id/);
      const saml = byType.get('saml')!.configSchema;
      assert.match(saml.properties!.idp.properties!.metadataUrl.description!, /metadata/);
      assert.match(saml.properties!.refresh.oneOf![1].properties!.mode.description!, /^reauth:/);
    });

    test('status: the latest login success and error from the audit trail, outside the ETag, without secrets', async (t) => {
      if (!live(t)) return;
      const before = await api.get('/connectors/gh');
      assert.deepEqual(before.body.status, { lastSuccessAt: null, lastError: null });
      await broker.store.audit.record({ type: 'login.success', userId: null, connectorId: 'gh' });
      await broker.store.audit.record({ type: 'login.failure', outcome: 'failure', connectorId: 'gh', details: { reason: 'invalid_credentials' } });
      await broker.store.audit.record({ type: 'login.failure', outcome: 'failure', connectorId: 'gh', details: { reason: 'upstream_error', detail: 'the token endpoint answered 500' } });
      await broker.store.audit.record({ type: 'login.success', userId: null, connectorId: 'local' });
      const after = await api.get('/connectors/gh');
      assert.ok(after.body.status.lastSuccessAt, JSON.stringify(after.body.status));
      assert.equal(after.body.status.lastError.message, "the upstream's answer was refused: the token endpoint answered 500");
      assert.equal(after.headers.get('etag'), before.headers.get('etag'), 'a login does not change the ETag');
      await broker.store.audit.record({ type: 'login.error', outcome: 'failure', connectorId: 'gh', details: { stage: 'callback' } });
      const listed = (await api.get('/connectors?source=config')).body.items.find((c: { id: string }) => c.id === 'gh');
      assert.equal(listed.status.lastError.message, 'the connector failed or its upstream did not answer (callback)');
      assert.ok(Date.parse(listed.status.lastError.at) >= Date.parse(after.body.status.lastError.at));
      assert.ok(!JSON.stringify(listed).includes(CONFIG_SECRET));
    });
  });
}

describe('admin API connectors without secrets.tokenKeys', () => {
  let broker: TestBroker;
  let api: AdminApiClient;
  before(async () => {
    broker = await startTestBroker({ config: { clients: [adminClientConfig('ops'), RP_CLIENT] } });
    api = new AdminApiClient(broker.issuer, await clientToken(broker.issuer, 'ops', 'admin:read admin:write'));
  });
  after(() => broker?.close());

  test('a connector with a secret is refused (409 naming secrets.tokenKeys), one without secrets is stored', async () => {
    const refused = await api.post('/connectors', { id: 'needs-key', type: 'oauth2', config: oauth2Config('http://127.0.0.1:9') });
    assert.equal(refused.status, 409);
    assert.equal(refused.body.code, 'secrets_unavailable');
    assert.match(refused.body.detail, /secrets\.tokenKeys/);
    assert.match(refused.body.detail, /config\.clientSecret/);
    assert.equal(await broker.store.knex('connectors').where({ id: 'needs-key' }).first(), undefined);
    const saml = await api.post('/connectors', { id: 'no-secret', type: 'ldap', enabled: false, config: { url: 'ldap://127.0.0.1:9', users: { baseDn: 'ou=people,dc=example,dc=org' } } });
    assert.equal(saml.status, 201, JSON.stringify(saml.body));
  });
});
