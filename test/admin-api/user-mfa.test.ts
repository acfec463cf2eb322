// The admin API's view of a user's second factors and required actions, on PGlite and
// PostgreSQL: factors listed without secrets, one removed (404 for another user's), reset of
// everything, each audited with the API principal; required actions set and read; a password
// reset requires a new password at the next login. Every response is checked against the
// OpenAPI document by the client.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { AdminApiClient, adminClientConfig, clientToken, ADMIN_STORES as stores } from '../helpers/admin-api.ts';
import { TotpService } from '../../src/mfa/totp.ts';
import { mfaCipher } from '../../src/mfa/mfa-cipher.ts';
import { issueRecoveryCodes } from '../../src/mfa/recovery-codes.ts';

const NO_USER = '00000000-0000-0000-0000-000000000000';

for (const store of stores) {
  describe(`admin API user MFA on ${store.name}`, () => {
    let broker: TestBroker;
    let drop: () => Promise<void> = async () => {};
    let api: AdminApiClient;
    let reader: AdminApiClient;
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
          clients: [adminClientConfig('ops'), adminClientConfig('reader', ['admin:read'])],
          users: [{ username: 'from-config', password: 'from-config-password-1' }],
        },
      });
      api = new AdminApiClient(broker.issuer, await clientToken(broker.issuer, 'ops', 'admin:read admin:write'));
      reader = new AdminApiClient(broker.issuer, await clientToken(broker.issuer, 'reader', 'admin:read'));
    });

    after(async () => {
      await broker?.close();
      await drop();
    });

    const live = (t: { skip(msg: string): void }) => {
      if (skipped) skipLoudly(t as never, skipped);
      return !skipped;
    };

    const create = async (username: string, extra: Record<string, unknown> = {}) => {
      const res = await api.post('/users', { username, ...extra });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      return res.body as { id: string; username: string };
    };

    /** A confirmed TOTP factor and a passkey, and recovery codes, as the login pages would leave them. */
    async function enrol(user: { id: string; username: string }) {
      const totp = new TotpService({ store: broker.store, cipher: await mfaCipher(broker.config, broker.store), issuerName: 'Keybridge' });
      const enrolment = await totp.startEnrolment(user);
      await broker.store.mfa.confirm(user.id, enrolment.factorId);
      const passkey = await broker.store.mfa.addWebauthn(user.id, { name: 'Laptop', credentialId: `cred-${user.id}`, publicKey: 'public-key-bytes', signCount: 3, data: {} });
      await issueRecoveryCodes(broker.store, user.id);
      return { totpId: enrolment.factorId, secret: enrolment.secret, passkeyId: passkey };
    }

    test('list: factors without secrets and the recovery codes left; 404 for an unknown user', async (t) => {
      if (!live(t)) return;
      const u = await create('mfa-list');
      assert.deepEqual((await api.get(`/users/${u.id}/mfa`)).body, { factors: [], recoveryCodesLeft: 0 });
      const { totpId, secret, passkeyId } = await enrol(u);
      const res = await reader.get(`/users/${u.id}/mfa`);
      assert.equal(res.status, 200);
      assert.deepEqual(res.body.factors.map((f: any) => [f.id, f.type, f.name, f.confirmed]), [[totpId, 'totp', 'Authenticator app', true], [passkeyId, 'webauthn', 'Laptop', true]]);
      assert.equal(res.body.recoveryCodesLeft, 10);
      const [sealed] = await broker.store.knex('mfa_factors').where({ id: totpId }).pluck('secret');
      for (const leak of [secret, sealed, 'public-key-bytes', `cred-${u.id}`]) assert.equal(res.text.includes(leak), false);
      assert.equal((await api.get(`/users/${NO_USER}/mfa`)).status, 404);
    });

    test('remove one factor: 200 once, then 404; another user\'s factor id is 404; audited; read scope is not enough', async (t) => {
      if (!live(t)) return;
      const u = await create('mfa-remove');
      const other = await create('mfa-other');
      const mine = await enrol(u);
      const theirs = await enrol(other);
      assert.equal((await reader.delete(`/users/${u.id}/mfa/${mine.totpId}`)).status, 403);
      assert.equal((await api.delete(`/users/${u.id}/mfa/${theirs.totpId}`)).status, 404);
      assert.equal((await api.get(`/users/${other.id}/mfa`)).body.factors.length, 2, "the other user's factor is untouched");
      const removed = await api.delete(`/users/${u.id}/mfa/${mine.totpId}`);
      assert.equal(removed.status, 200);
      assert.deepEqual([removed.body.id, removed.body.type], [mine.totpId, 'totp']);
      assert.equal((await api.delete(`/users/${u.id}/mfa/${mine.totpId}`)).status, 404, 'a repeated remove');
      assert.deepEqual((await api.get(`/users/${u.id}/mfa`)).body.factors.map((f: any) => f.id), [mine.passkeyId]);
      assert.equal((await api.delete(`/users/${NO_USER}/mfa/${mine.passkeyId}`)).status, 404);

      const [event]: any[] = await broker.store.audit.query({ type: 'admin.mfa.factor_removed', userId: u.id, limit: 5 });
      assert.deepEqual(event.details.details, { factorId: mine.totpId, type: 'totp', name: 'Authenticator app' });
      assert.equal(event.details.actor.clientId, 'ops');
    });

    test('reset removes every factor and recovery code of that user only, audited with the principal', async (t) => {
      if (!live(t)) return;
      const u = await create('mfa-reset');
      const other = await create('mfa-bystander');
      const mine = await enrol(u);
      await enrol(other);
      assert.equal((await reader.post(`/users/${u.id}/mfa/reset`)).status, 403);
      const reset = await api.post(`/users/${u.id}/mfa/reset`);
      assert.equal(reset.status, 200);
      assert.deepEqual(reset.body.factors.map((f: any) => f.id), [mine.totpId, mine.passkeyId]);
      assert.equal(reset.body.recoveryCodes, 10);
      assert.deepEqual((await api.get(`/users/${u.id}/mfa`)).body, { factors: [], recoveryCodesLeft: 0 });
      const bystander = (await api.get(`/users/${other.id}/mfa`)).body;
      assert.equal(bystander.factors.length, 2);
      assert.equal(bystander.recoveryCodesLeft, 10);
      assert.equal(await broker.store.mfa.findWebauthnByCredentialId(`cred-${u.id}`), null, 'the passkey is gone');

      const again = await api.post(`/users/${u.id}/mfa/reset`);
      assert.deepEqual(again.body, { factors: [], recoveryCodes: 0 });
      const events: any[] = await broker.store.audit.query({ type: 'admin.mfa.reset', userId: u.id, limit: 5 });
      assert.equal(events.length, 2);
      const first = events.find((e) => e.details.details.factorsRemoved === 2);
      assert.equal(first.details.actor.clientId, 'ops');
      assert.equal(first.details.details.recoveryCodesRemoved, 10);
      assert.equal(JSON.stringify(events).includes(mine.secret), false);
      assert.equal((await api.post(`/users/${NO_USER}/mfa/reset`)).status, 404);
    });

    test('hostile ids answer 400 or 404, never a 500', async (t) => {
      if (!live(t)) return;
      const u = await create('mfa-hostile');
      await enrol(u);
      for (const bad of ['%00', 'a%00b', '%FF%FE', '%C0%AF', 'x'.repeat(129), '%F0%9F%98%80'.repeat(40), '..%2F..%2Fetc', "'%20OR%201=1--"]) {
        for (const [method, path] of [['DELETE', `/users/${u.id}/mfa/${bad}`], ['GET', `/users/${bad}/mfa`], ['POST', `/users/${bad}/mfa/reset`], ['PUT', `/users/${bad}/required-actions`]] as const) {
          const res = await api.request(method, path, method === 'PUT' ? { body: { actions: [] } } : {});
          assert.ok([400, 404].includes(res.status), `${method} ${path}: ${res.status} ${res.text.slice(0, 200)}`);
          assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
        }
      }
      assert.equal((await api.get(`/users/${u.id}/mfa`)).body.factors.length, 2, 'nothing removed');
    });

    test('required actions: set, read, replaced; bad values named; update_password refused for config users', async (t) => {
      if (!live(t)) return;
      const u = await create('actions');
      assert.deepEqual((await reader.get(`/users/${u.id}/required-actions`)).body, { actions: [] });
      const set = await api.put(`/users/${u.id}/required-actions`, { actions: ['configure_mfa', 'update_password', 'configure_mfa'] });
      assert.equal(set.status, 200);
      assert.deepEqual([...set.body.actions].sort(), ['configure_mfa', 'update_password']);
      assert.deepEqual([...(await api.get(`/users/${u.id}/required-actions`)).body.actions].sort(), ['configure_mfa', 'update_password']);
      assert.deepEqual((await api.put(`/users/${u.id}/required-actions`, { actions: ['update_password'] })).body, { actions: ['update_password'] });
      assert.deepEqual((await api.put(`/users/${u.id}/required-actions`, { actions: [] })).body, { actions: [] });
      const events: any[] = await broker.store.audit.query({ type: 'admin.user.required_actions', userId: u.id, limit: 10 });
      assert.equal(events.length, 3);

      for (const body of [{ actions: ['accept_terms'] }, { actions: 'update_password' }, { actions: ['update_password\u0000'] }, {}, { actions: [], extra: 1 }, { actions: Array(11).fill('configure_mfa') }]) {
        const bad = await api.put(`/users/${u.id}/required-actions`, body);
        assert.equal(bad.status, 400, JSON.stringify(body));
        assert.ok(bad.body.errors.some((e: { path: string }) => e.path.startsWith('body')), JSON.stringify(bad.body));
      }
      assert.equal((await reader.put(`/users/${u.id}/required-actions`, { actions: [] })).status, 403);
      assert.equal((await api.put(`/users/${NO_USER}/required-actions`, { actions: [] })).status, 404);

      const configUser = (await api.get('/users?q=from-config')).body.items[0];
      assert.equal((await api.put(`/users/${configUser.id}/required-actions`, { actions: ['update_password'] })).status, 409);
      assert.deepEqual((await api.put(`/users/${configUser.id}/required-actions`, { actions: ['configure_mfa'] })).body, { actions: ['configure_mfa'] });
    });

    test('a password reset sets update_password (the user chooses a new one at the next login); setting one does not', async (t) => {
      if (!live(t)) return;
      const u = await create('reset-me', { password: 'correct horse battery staple' });
      await api.put(`/users/${u.id}/password`, { password: 'another horse battery staple' });
      assert.deepEqual((await api.get(`/users/${u.id}/required-actions`)).body, { actions: [] });
      assert.equal((await api.post(`/users/${u.id}/password/reset`)).status, 200);
      assert.deepEqual((await api.get(`/users/${u.id}/required-actions`)).body, { actions: ['update_password'] });
      assert.equal((await api.post(`/users/${u.id}/password/reset`)).status, 200, 'twice: still one action');
      assert.deepEqual(await broker.store.mfa.requiredActions(u.id), ['update_password']);
    });
  });
}
