// "Never the last way in" with passkeys in the count: where passkeys can sign in (the issuer is a
// host name), a person without a password keeps either a linked account or a passkey; the API
// refuses to remove whichever would be the last one, in either order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort } from '../helpers/free-port.ts';
import { startTestBroker } from '../helpers/test-broker.ts';
import { call, consoleLogin, createLocalUser } from './account-support.ts';

test('unlink and passkey removal keep at least one way to sign in', async () => {
  const port = await freePort();
  const issuer = `http://localhost:${port}`;
  const broker = await startTestBroker({ port, config: { issuer, connectors: [{ id: 'local', type: 'local', name: 'Local' }] } });
  try {
    const id = await createLocalUser(broker, 'kim');
    const { accessToken } = await consoleLogin(issuer, { username: 'kim' });
    // From here on kim has no password: one linked account and one passkey.
    await broker.store.credentials.remove(id, 'password');
    const fed = await broker.store.identities.create({ userId: id, connectorId: 'acme', subject: 'kim-upstream' });
    const passkey = await broker.store.mfa.addWebauthn(id, { name: 'Phone', credentialId: 'Y3JlZC1raW0', publicKey: 'cHVibGljLWtleQ', signCount: 0, data: {} });
    assert.equal((await call(issuer, accessToken, 'GET', '/me')).body.hasPassword, false);

    // The passkey still signs kim in: the linked account may go.
    assert.equal((await call(issuer, accessToken, 'DELETE', `/identities/${fed.id}`)).status, 204);
    // Now the passkey is the last way in.
    const refused = await call(issuer, accessToken, 'DELETE', `/mfa/factors/${passkey}`);
    assert.equal(refused.status, 409);
    assert.equal(refused.body.code, 'last_sign_in_method');
    assert.equal((await broker.store.mfa.webauthnFactors(id)).length, 1);

    // With a linked account again, the passkey may go, and then the linked account may not.
    const again = await broker.store.identities.create({ userId: id, connectorId: 'acme', subject: 'kim-upstream-2' });
    assert.equal((await call(issuer, accessToken, 'DELETE', `/mfa/factors/${passkey}`)).status, 204);
    const last = await call(issuer, accessToken, 'DELETE', `/identities/${again.id}`);
    assert.equal(last.status, 409);
    assert.equal(last.body.code, 'last_sign_in_method');
    assert.ok(await broker.store.identities.findById(again.id));
  } finally {
    await broker.close();
  }
});
