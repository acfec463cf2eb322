// Second-factor policies through the admin API, on PGlite and PostgreSQL: the list merges config
// and stored levels with their source; set and clear at every level (the global one falls back to
// the config's mode); config entries read-only (409); unknown clients and connectors 404; scopes;
// one audit entry per change; hostile kinds, targets and bodies are 400/404, never 500. Every
// response is checked against the OpenAPI document by the helper. Then two instances on one
// PostgreSQL: a change made on A decides B's next resolution within 2 s.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { freshPostgresDatabase } from '../helpers/postgres.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { within } from '../helpers/login-page-connectors.ts';
import { AdminApiClient, adminClientConfig, clientToken, ADMIN_STORES as stores } from '../helpers/admin-api.ts';
import { createMfaPolicy } from '../../src/mfa/mfa-policy.ts';

const DEMO_APP = { id: 'demo-app', redirectUris: ['http://127.0.0.1:9/demo/cb'], firstParty: true };
const MFA = { mode: 'optional', groups: { admins: 'required' }, clients: { 'demo-app': 'required' }, connectors: { 'corp-ldap': 'required' } };

for (const store of stores) {
  describe(`admin API MFA policies on ${store.name}`, () => {
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
          mfa: MFA,
          clients: [adminClientConfig('ops'), adminClientConfig('reader', ['admin:read']), adminClientConfig('mfa-admin', ['admin:mfa-policies:write']), adminClientConfig('plain', ['profile']), DEMO_APP],
          connectors: [
            { id: 'local', type: 'local' },
            { id: 'corp-ldap', type: 'local', name: 'Corporate' },
          ],
          users: [{ username: 'alice', password: 'alice-password-1', groups: ['staff'] }],
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
    const list = async () => {
      const res = await api.get('/mfa-policies');
      assert.equal(res.status, 200);
      return res.body.items as Array<{ kind: string; target: string; mode: string; source: string; readOnly: boolean; updatedAt: string | null }>;
    };
    const changes = async (id: string) =>
      (await broker.store.audit.query({ type: 'admin.mfa.policy_changed', limit: 100 })).filter((e) => (e.details.target as { id: string }).id === id).map((e) => e.details.changes);
    const resolve = async (clientId = 'app', connectorId: string | null = 'local') =>
      createMfaPolicy({ config: broker.config, store: broker.store }).resolve({ userId: (await broker.store.users.findByUsername('alice'))!.id, clientId, connectorId });

    test('the list holds every config level, read-only except the global default', async (t) => {
      if (!live(t)) return;
      assert.deepEqual(
        (await list()).map(({ updatedAt: _, ...p }) => p),
        [
          { kind: 'global', target: '', mode: 'optional', source: 'config', readOnly: false },
          { kind: 'client', target: 'demo-app', mode: 'required', source: 'config', readOnly: true },
          { kind: 'connector', target: 'corp-ldap', mode: 'required', source: 'config', readOnly: true },
          { kind: 'group', target: 'admins', mode: 'required', source: 'config', readOnly: true },
        ],
      );
      const doc = await api.document();
      for (const path of ['/mfa-policies', '/mfa-policies/global', '/mfa-policies/{kind}/{target}']) assert.ok(doc.paths[`/admin/api/v1${path}`], path);
      assert.deepEqual(doc.paths['/admin/api/v1/mfa-policies/{kind}/{target}'].put['x-keybridge-scope'], { resource: 'mfa-policies', access: 'write' });
    });

    test('401 without a token, 403 without the scope; admin:mfa-policies:write opens these only', async (t) => {
      if (!live(t)) return;
      assert.equal((await api.get('/mfa-policies', { token: null })).status, 401);
      assert.equal((await api.put('/mfa-policies/global', { mode: 'off' }, { token: null })).status, 401);
      assert.equal((await api.get('/mfa-policies', { token: await clientToken(broker.issuer, 'plain', 'profile') })).status, 403);
      const reader = await clientToken(broker.issuer, 'reader', 'admin:read');
      assert.equal((await api.get('/mfa-policies', { token: reader })).status, 200);
      assert.equal((await api.put('/mfa-policies/group/staff', { mode: 'required' }, { token: reader })).status, 403);
      assert.equal((await api.delete('/mfa-policies/global', { token: reader })).status, 403);
      assert.equal(await broker.store.mfaPolicies.find('group', 'staff'), null, 'a refused write changes nothing');
      const mfaAdmin = await clientToken(broker.issuer, 'mfa-admin', 'admin:mfa-policies:write');
      assert.equal((await api.put('/mfa-policies/group/contractors', { mode: 'required' }, { token: mfaAdmin })).status, 200);
      assert.equal((await api.delete('/mfa-policies/group/contractors', { token: mfaAdmin })).status, 204);
      assert.equal((await api.post('/groups', { name: 'x' }, { token: mfaAdmin })).status, 403, 'the MFA scope does not open groups');
    });

    test('the global mode: stored replaces the config default, cleared falls back; each change audited once', async (t) => {
      if (!live(t)) return;
      assert.deepEqual(await resolve(), { mode: 'optional', because: ['global'] });
      const set = await api.put('/mfa-policies/global', { mode: 'off' }, { headers: { 'x-request-id': 'req-global-off' } });
      assert.equal(set.status, 200);
      assert.equal(set.body.kind, 'global');
      assert.equal(set.body.target, '');
      assert.equal(set.body.mode, 'off');
      assert.equal(set.body.source, 'stored');
      assert.ok(set.body.updatedAt);
      assert.deepEqual((await list())[0], set.body);
      assert.deepEqual(await resolve(), { mode: 'off', because: ['global'] });
      assert.equal((await api.put('/mfa-policies/global', { mode: 'off' })).status, 200, 'setting the same mode again is fine');
      assert.equal((await api.delete('/mfa-policies/global')).status, 204);
      assert.equal((await api.delete('/mfa-policies/global')).status, 404, 'nothing stored any more');
      assert.equal((await list())[0].source, 'config');
      assert.deepEqual(await resolve(), { mode: 'optional', because: ['global'] });

      assert.deepEqual(await changes('global'), [{ mode: { before: null, after: 'off' } }, { mode: { before: 'off', after: null } }], 'the repeated PUT left no entry');
      const [entry] = (await broker.store.audit.query({ type: 'admin.mfa.policy_changed', limit: 100 })).filter((e) => e.details.requestId === 'req-global-off');
      assert.equal((entry.details.actor as { clientId: string }).clientId, 'ops');
    });

    test('groups, clients and connectors: set, listed as stored, applied, cleared', async (t) => {
      if (!live(t)) return;
      const staff = await api.put('/mfa-policies/group/%20staff%20', { mode: 'required' });
      assert.equal(staff.status, 200, JSON.stringify(staff.body));
      assert.equal(staff.body.target, 'staff', 'group names are trimmed as the groups claim is');
      assert.deepEqual(await resolve(), { mode: 'required', because: ['group:staff'] });
      assert.equal((await api.put('/mfa-policies/group/not-yet-a-group', { mode: 'optional' })).status, 200, 'a group an upstream brings later');

      const made = await api.post('/clients', { id: 'stored-app', redirectUris: ['http://127.0.0.1:9/s/cb'] });
      assert.equal(made.status, 201, JSON.stringify(made.body));
      assert.equal((await api.put('/mfa-policies/client/stored-app', { mode: 'required' })).status, 200);
      assert.equal((await api.put('/mfa-policies/client/ops', { mode: 'optional' })).status, 200, 'a config client not declared under mfa.clients');
      assert.equal((await api.put('/mfa-policies/connector/local', { mode: 'off' })).status, 200);
      assert.equal((await api.put('/mfa-policies/client/no-such-app', { mode: 'required' })).status, 404);
      assert.equal((await api.put('/mfa-policies/connector/no-such-connector', { mode: 'required' })).status, 404);

      const stored = (await list()).filter((p) => p.source === 'stored').map((p) => `${p.kind}:${p.target}=${p.mode}`);
      assert.deepEqual(stored, ['client:ops=optional', 'client:stored-app=required', 'connector:local=off', 'group:not-yet-a-group=optional', 'group:staff=required']);
      assert.deepEqual(await resolve('stored-app'), { mode: 'required', because: ['client:stored-app', 'group:staff'] });

      for (const path of ['group/staff', 'group/not-yet-a-group', 'client/stored-app', 'client/ops', 'connector/local']) assert.equal((await api.delete(`/mfa-policies/${path}`)).status, 204, path);
      assert.equal((await api.delete('/mfa-policies/group/staff')).status, 404);
      assert.equal((await list()).filter((p) => p.source === 'stored').length, 0);
      assert.deepEqual(await resolve(), { mode: 'optional', because: ['global'] });
      assert.deepEqual(await changes('group:staff'), [{ mode: { before: null, after: 'required' } }, { mode: { before: 'required', after: null } }]);
      assert.deepEqual(await changes('client:stored-app'), [{ mode: { before: null, after: 'required' } }, { mode: { before: 'required', after: null } }]);
    });

    test('config entries are read-only: 409, nothing stored, nothing audited', async (t) => {
      if (!live(t)) return;
      for (const path of ['client/demo-app', 'connector/corp-ldap', 'group/admins', 'group/%20admins']) {
        const put = await api.put(`/mfa-policies/${path}`, { mode: 'off' });
        assert.equal(put.status, 409, path);
        assert.equal(put.body.code, 'read_only');
        assert.match(put.body.detail, /configuration file/);
        assert.equal((await api.delete(`/mfa-policies/${path}`)).status, 409, path);
      }
      assert.deepEqual(await broker.store.mfaPolicies.list(), []);
      assert.deepEqual(await changes('client:demo-app'), []);
    });

    test('hostile kinds, targets and bodies: 400 or 404 naming the field, never a 500', async (t) => {
      if (!live(t)) return;
      const field = async (res: Promise<{ status: number; body: { errors?: Array<{ path: string }> } }>, path: string) => {
        const r = await res;
        assert.equal(r.status, 400, `${path}: ${JSON.stringify(r.body)}`);
        assert.ok(r.body.errors?.some((e) => e.path === path), `${path}: ${JSON.stringify(r.body)}`);
      };
      await field(api.put('/mfa-policies/bogus/x', { mode: 'required' }), 'params.kind');
      await field(api.put('/mfa-policies/global/x', { mode: 'required' }), 'params.kind');
      await field(api.delete('/mfa-policies/__proto__/x'), 'params.kind');
      assert.equal((await api.put('/mfa-policies/group/ad%00mins', { mode: 'required' })).status, 400, 'NUL in the address');
      await field(api.put('/mfa-policies/group/ad%E2%80%8Bmins', { mode: 'required' }), 'params.target');
      await field(api.put('/mfa-policies/group/%20%20', { mode: 'required' }), 'params.target');
      await field(api.put(`/mfa-policies/group/${'x'.repeat(201)}`, { mode: 'required' }), 'params.target');
      await field(api.put('/mfa-policies/group/staff', { mode: 'sometimes' }), 'body.mode');
      await field(api.put('/mfa-policies/group/staff', { mode: 7 }), 'body.mode');
      await field(api.put('/mfa-policies/group/staff', { mode: 'required', extra: true }), 'body');
      await field(api.put('/mfa-policies/global', {}), 'body.mode');
      await field(api.put('/mfa-policies/global', ['required']), 'body');
      const badUtf8 = await api.put('/mfa-policies/group/%FF%FE', { mode: 'required' });
      assert.equal(badUtf8.status, 400);
      const notJson = await api.request('PUT', '/mfa-policies/global', { rawBody: '{"mode": "off"', headers: { 'content-type': 'application/json' } });
      assert.equal(notJson.status, 400);
      await field(api.put(`/mfa-policies/group/${'x'.repeat(8_000)}`, { mode: 'required' }), 'params.target');
      assert.equal((await api.put('/mfa-policies/connector/UPPER', { mode: 'off' })).status, 404);
      assert.equal((await api.put('/mfa-policies/client/constructor', { mode: 'off' })).status, 404, 'no client is named like an Object method');
      assert.equal((await api.get('/mfa-policies/group/staff')).status, 405);
      assert.deepEqual(await broker.store.mfaPolicies.list(), [], 'nothing hostile was stored');
    });
  });
}

describe('MFA policies across two instances on one PostgreSQL', () => {
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
    const config = { clients: [adminClientConfig('ops')], users: [{ username: 'carol', password: 'carol-password-1', groups: ['finance'] }] };
    a = await startTestBroker({ databaseUrl: db.url, config });
    b = await startTestBroker({ databaseUrl: db.url, config });
  });

  after(async () => {
    await a?.close();
    await b?.close();
    await drop();
  });

  test("a change on A decides B's resolution within 2 s", async (t) => {
    if (skipped) return skipLoudly(t, skipped);
    const onA = new AdminApiClient(a.issuer, await clientToken(a.issuer, 'ops', 'admin:read admin:write'));
    const policyOnB = createMfaPolicy({ config: b.config, store: b.store });
    const login = { userId: (await b.store.users.findByUsername('carol'))!.id, clientId: 'ops', connectorId: 'local' };
    assert.equal((await policyOnB.resolve(login)).mode, 'optional');

    assert.equal((await onA.put('/mfa-policies/group/finance', { mode: 'required' })).status, 200);
    const seen = await within(2000, async () => (await policyOnB.resolve(login)).mode === 'required', 'B requires a second factor of finance');
    t.diagnostic(`B applied the group policy after ${seen} ms`);
    assert.deepEqual(await policyOnB.resolve(login), { mode: 'required', because: ['group:finance'] });

    assert.equal((await onA.put('/mfa-policies/global', { mode: 'off' })).status, 200);
    assert.equal((await onA.delete('/mfa-policies/group/finance')).status, 204);
    await within(2000, async () => (await policyOnB.resolve(login)).mode === 'off', 'B follows the cleared group and the stored global mode');
  });
});
