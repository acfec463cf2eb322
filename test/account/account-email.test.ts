// Changing the email address from the account API hands the request to the email service the
// broker was started with (the registration/verification work provides it): the person's id, the
// new address, the language they read and their address; a recent sign-in and an own profile are
// required, and the answer is the same whatever the address.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load-config.ts';
import { startBroker } from '../../src/server/start-broker.ts';
import type { AccountEmails } from '../../src/account-api/account-routes.ts';
import { freePort } from '../helpers/free-port.ts';
import type { TestBroker } from '../helpers/test-broker.ts';
import { ageSignIn, call, consoleLogin, createLocalUser } from './account-support.ts';

test('email change goes to the email service, in the person\'s language, only for their own profile and after a recent sign-in', async () => {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const requests: Parameters<AccountEmails['requestEmailChange']>[0][] = [];
  let failNext = false;
  const accountEmails: AccountEmails = {
    async requestEmailChange(input) {
      if (failNext) {
        failNext = false;
        throw new Error('smtp down');
      }
      requests.push(input);
    },
  };
  const config = parseConfig(stringify({ issuer, http: { listen: `127.0.0.1:${port}` }, database: { dataDir: ':memory:' }, log: { level: 'silent' }, connectors: [{ id: 'local', type: 'local', name: 'Local' }], users: [{ username: 'cfg-mail', email: 'cfg@example.org', password: 'Config-user-password-1' }] }), { env: {} });
  const broker = Object.assign(await startBroker(config, { accountEmails }), { issuer }) as TestBroker;
  try {
    const id = await createLocalUser(broker, 'mia');
    const { accessToken } = await consoleLogin(issuer, { username: 'mia' });
    assert.equal((await call(issuer, accessToken, 'GET', '/me')).body.features.emailChange, true);
    const sent = await call(issuer, accessToken, 'POST', '/me/email', { body: { email: 'mia.new@example.org' }, headers: { 'accept-language': 'de-CH, en;q=0.5' } });
    assert.equal(sent.status, 202, sent.text);
    assert.deepEqual(sent.body, { status: 'verification_sent' });
    assert.equal(requests.length, 1);
    assert.deepEqual({ ...requests[0], ip: undefined }, { userId: id, newEmail: 'mia.new@example.org', locale: 'de', ip: undefined });
    assert.equal(requests[0]!.ip, '127.0.0.1');
    assert.equal((await broker.store.users.findById(id))!.email, 'mia@example.org', 'unchanged until the link is followed');
    // An address someone else uses gets the same answer (the service decides, nobody learns who has it).
    assert.equal((await call(issuer, accessToken, 'POST', '/me/email', { body: { email: 'cfg@example.org' } })).status, 202);
    for (const email of ['not-an-address', '', 'a@b', `${'x'.repeat(250)}@example.org`, 'nul\u0000@example.org']) {
      assert.equal((await call(issuer, accessToken, 'POST', '/me/email', { body: { email } })).status, 400, email.slice(0, 20));
    }
    assert.equal(requests.length, 2);
    // The service failing is a server error for this one request, logged, with nothing changed.
    failNext = true;
    const failed = await call(issuer, accessToken, 'POST', '/me/email', { body: { email: 'mia.other@example.org' } });
    assert.equal(failed.status, 500);
    assert.doesNotMatch(failed.text, /smtp down/);
    await ageSignIn(broker, id, 3600);
    assert.equal((await call(issuer, accessToken, 'POST', '/me/email', { body: { email: 'mia.late@example.org' } })).body.code, 'reauthentication_required');
    const cfg = await consoleLogin(issuer, { username: 'cfg-mail', password: 'Config-user-password-1' });
    assert.equal((await call(issuer, cfg.accessToken, 'POST', '/me/email', { body: { email: 'x@example.org' } })).body.code, 'read_only');
    assert.equal(requests.length, 2);
    assert.equal((await broker.store.audit.list({ userId: id, type: 'account.email_change_requested' })).length, 2);
  } finally {
    await broker.close();
  }
});
