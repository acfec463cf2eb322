// Issue 13's two-instance check, end to end on one PostgreSQL: a client, a user and a connector
// created through instance A's admin API; instance B serves a full code flow with them within
// 2 s (its login page offers the connector, it authenticates the client by its hashed secret);
// then the user is disabled through B, and A refuses that user's refresh token at once.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as oidc from 'openid-client';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { freshPostgresDatabase } from '../helpers/postgres.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { Browser } from '../helpers/browser.ts';
import { signIn } from '../helpers/login-flow.ts';
import { AdminApiClient, adminClientConfig, clientToken } from '../helpers/admin-api.ts';
import { offeredConnectors, within, RP_CLIENT } from '../helpers/login-page-connectors.ts';

const APP_REDIRECT = 'http://127.0.0.1:9/app/cb';

describe('admin API across two instances on one PostgreSQL', () => {
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
    const config = { clients: [adminClientConfig('ops'), RP_CLIENT], connectors: [{ id: 'local', type: 'local', name: 'Local account' }] };
    a = await startTestBroker({ databaseUrl: db.url, config });
    b = await startTestBroker({ databaseUrl: db.url, config });
  });

  after(async () => {
    await a?.close();
    await b?.close();
    await drop();
  });

  test('made on A, used on B within 2 s; disabled on B, refused on A at once', async (t) => {
    if (skipped) return skipLoudly(t, skipped);
    const onA = new AdminApiClient(a.issuer, await clientToken(a.issuer, 'ops', 'admin:read admin:write'));
    const onB = new AdminApiClient(b.issuer, await clientToken(b.issuer, 'ops', 'admin:read admin:write'));

    const made = await onA.post('/clients', { id: 'shared-app', name: 'Shared app', redirectUris: [APP_REDIRECT], grantTypes: ['authorization_code', 'refresh_token'], firstParty: true });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const secret = made.body.clientSecret as string;
    const user = await onA.post('/users', { username: 'carol', email: 'carol@example.org', password: 'tangerine-orbit-lantern-7' });
    assert.equal(user.status, 201, JSON.stringify(user.body));
    const connector = await onA.post('/connectors', { id: 'staff', type: 'local', name: 'Staff sign-in' });
    assert.equal(connector.status, 201, JSON.stringify(connector.body));

    const seen = await within(2000, async () => (await offeredConnectors(b.issuer)).includes('staff'), 'B offers the connector created on A');
    t.diagnostic(`B offered the connector after ${seen} ms`);

    // A full code flow on B with the client created on A, through the new connector.
    const rp = await oidc.discovery(new URL(b.issuer), 'shared-app', secret, undefined, { execute: [oidc.allowInsecureRequests] });
    const verifier = oidc.randomPKCECodeVerifier();
    const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: APP_REDIRECT, scope: 'openid email offline_access', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state: 'st', prompt: 'consent' });
    const callback = await signIn(new Browser(b.issuer), url.href, { username: 'carol', password: 'tangerine-orbit-lantern-7', connector: 'staff' });
    const tokens = await oidc.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier, expectedState: 'st' });
    assert.equal(tokens.claims()?.email, 'carol@example.org');
    assert.equal(tokens.claims()?.idp, 'staff', 'signed in through the connector made on A');
    assert.ok(tokens.refresh_token);

    // The refresh works on A, the other instance...
    const rpOnA = await oidc.discovery(new URL(a.issuer), 'shared-app', secret, undefined, { execute: [oidc.allowInsecureRequests] });
    const refreshed = await oidc.refreshTokenGrant(rpOnA, tokens.refresh_token!);
    assert.ok(refreshed.refresh_token);
    // ... until the user is disabled through B: then A refuses the next one at once.
    assert.equal((await onB.post(`/users/${user.body.id}/disable`)).status, 200);
    await assert.rejects(oidc.refreshTokenGrant(rpOnA, refreshed.refresh_token!), (err: { error?: string }) => err.error === 'invalid_grant');
    const me = await fetch(`${a.issuer}/me`, { headers: { authorization: `Bearer ${refreshed.access_token}` } });
    assert.equal(me.status, 401, "the user's access token is refused on A too");
  });
});
