// Risk hints through the admin API (GET /stats/hints), on PGlite and PostgreSQL: each kind of
// risky setting found in the config and the store and named by where it lives, nothing found for
// a safe setting, no secret value in any hint, and the stats scope.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { AdminApiClient, adminClientConfig, clientToken, ADMIN_STORES as stores } from '../helpers/admin-api.ts';
import { parseConfig } from '../../src/config/load-config.ts';
import { riskHints, type HintDependencies } from '../../src/management/risk-hints.ts';

const DAY = 86_400_000;
const BIND_PASSWORD = 'ldap-bind-Pw-9f3c1e77b2';
const ALICE_PASSWORD = 'alice-password-1';

interface Hint {
  id: string;
  severity: 'info' | 'warning' | 'danger';
  title: string;
  detail: string;
  link?: string;
}

for (const store of stores) {
  describe(`admin API risk hints on ${store.name}`, () => {
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
          clients: [
            adminClientConfig('ops'),
            adminClientConfig('statsman', ['admin:stats:read']),
            adminClientConfig('auditor', ['admin:audit:read']),
            { id: 'legacy-portal', redirectUris: ['http://example.test/callback', 'https://example.test/ok'] },
            { id: 'local-dev', redirectUris: ['http://127.0.0.1:3000/callback', 'http://localhost:8080/cb'] },
          ],
          users: [{ username: 'alice', password: ALICE_PASSWORD }],
          connectors: [
            { id: 'local', type: 'local' },
            { id: 'plain-dir', type: 'ldap', config: { url: 'ldap://ldap.example.test:389', allowInsecure: true, bindDn: 'cn=svc,dc=example,dc=org', bindPassword: BIND_PASSWORD, users: { baseDn: 'ou=people,dc=example,dc=org' } } },
            { id: 'tls-dir', type: 'ldap', config: { url: 'ldap://ldap2.example.test:389', startTls: true, users: { baseDn: 'ou=people,dc=example,dc=org' } } },
            { id: 'ldaps-dir', type: 'ldap', config: { url: 'ldaps://ldap3.example.test', users: { baseDn: 'ou=people,dc=example,dc=org' } } },
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
    const hints = async (): Promise<Hint[]> => {
      const res = await api.get('/stats/hints');
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.items;
    };

    test('401 without a token, 403 with another resource\'s scope; the stats scope reads', async (t) => {
      if (!live(t)) return;
      assert.equal((await api.get('/stats/hints', { token: null })).status, 401);
      assert.equal((await api.get('/stats/hints', { token: await clientToken(broker.issuer, 'auditor', 'admin:audit:read') })).status, 403);
      assert.equal((await api.get('/stats/hints', { token: await clientToken(broker.issuer, 'statsman', 'admin:stats:read') })).status, 200);
    });

    test('config findings: http redirect URIs outside loopback, no admin group, no MFA, plain LDAP, production problems; none for safe settings', async (t) => {
      if (!live(t)) return;
      const items = await hints();
      const byId = new Map(items.map((h) => [h.id, h]));
      const portal = byId.get('client-http-redirect:legacy-portal');
      assert.ok(portal, JSON.stringify(items.map((h) => h.id)));
      assert.equal(portal.severity, 'warning');
      assert.match(portal.detail, /http:\/\/example\.test\/callback/);
      assert.doesNotMatch(portal.detail, /https:\/\/example\.test\/ok/, 'an https URI is not named');
      assert.equal(portal.link, '/admin/clients/legacy-portal');
      assert.ok(!byId.has('client-http-redirect:local-dev'), 'loopback http is fine');
      assert.equal(byId.get('no-admin-group')?.severity, 'warning');
      assert.match(byId.get('admin-mfa')!.detail, /no multi-factor authentication yet/);
      const ldap = byId.get('ldap-plain:plain-dir');
      assert.equal(ldap?.severity, 'danger');
      assert.equal(ldap?.link, '/admin/connectors/plain-dir');
      assert.ok(!byId.has('ldap-plain:tls-dir') && !byId.has('ldap-plain:ldaps-dir'), 'StartTLS and ldaps:// are fine');
      assert.ok(byId.has('production:users[0].password'), 'the plain-text config password, as in productionWarnings');
      assert.ok(!byId.has('production:clients[3].redirectUris[0]'), 'redirect URIs are not reported twice');
      assert.ok(!byId.has('issuer-http'), 'the test issuer is on loopback');
      const order = items.map((h) => ({ danger: 0, warning: 1, info: 2 })[h.severity]);
      assert.deepEqual(order, [...order].sort((a, b) => a - b), 'most severe first');
      const text = JSON.stringify(items);
      for (const secret of [BIND_PASSWORD, ALICE_PASSWORD, 'ops-secret-0123456789abcdef']) assert.ok(!text.includes(secret), 'no secret value in a hint');
    });

    test('store findings: a stored client with an http redirect URI, and an active signing key older than 90 days', async (t) => {
      if (!live(t)) return;
      assert.ok(!(await hints()).some((h) => h.id.startsWith('key-age:')), 'fresh keys: no hint');
      const created = await api.post('/clients', { id: 'stored-http', name: 'Stored', redirectUris: ['http://stored.example.test/cb'], tokenEndpointAuthMethod: 'none', grantTypes: ['authorization_code'] });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const active = await broker.store.knex('signing_keys').where({ status: 'active' }).select('kid');
      await broker.store.knex('signing_keys').where({ kid: active[0].kid }).update({ created_at: new Date(Date.now() - 120 * DAY) });
      const items = await hints();
      const stored = items.find((h) => h.id === 'client-http-redirect:stored-http');
      assert.ok(stored);
      assert.match(stored.detail, /http:\/\/stored\.example\.test\/cb/);
      const key = items.find((h) => h.id === `key-age:${active[0].kid}`);
      assert.ok(key, 'the old key has a hint');
      assert.match(key.title, /120 days old/);
      assert.equal(key.link, '/admin/keys');
      assert.equal(items.filter((h) => h.id.startsWith('key-age:')).length, 1, 'only the old key');
    });
  });
}

// What a test broker cannot be: served on plain http under a public name. The store and the
// services are stubs with nothing in them; only the config speaks.
test('risk hints: the issuer on plain http outside loopback is a danger; an https issuer is not', async () => {
  const empty = {
    store: { signingKeys: { listPublishable: async () => [] } },
    clients: { list: async () => ({ items: [], last: null }) },
    connectors: { list: async () => [] },
  } as unknown as Omit<HintDependencies, 'config'>;
  const plain = await riskHints({ ...empty, config: parseConfig('issuer: http://id.example.test\n', { env: {} }) });
  const issuer = plain.find((h) => h.id === 'issuer-http');
  assert.equal(issuer?.severity, 'danger');
  assert.match(issuer.detail, /http:\/\/id\.example\.test/);
  assert.equal(plain[0].id, 'issuer-http', 'most severe first');
  const tls = await riskHints({ ...empty, config: parseConfig('issuer: https://id.example.test\n', { env: {} }) });
  assert.ok(!tls.some((h) => h.id === 'issuer-http'));
  const loopback = await riskHints({ ...empty, config: parseConfig('issuer: http://127.0.0.1:5556\n', { env: {} }) });
  assert.ok(!loopback.some((h) => h.id === 'issuer-http'));
});
