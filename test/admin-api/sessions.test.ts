// A user's browser sessions and grants through the admin API, with real sign-ins (code flow
// through the login pages, refresh tokens, a back-channel logout receiver), on PGlite and
// PostgreSQL: listing, ending one or all sessions, revoking grants, and disabling or deleting a
// user ending everything at once (refresh refused, userinfo 401, introspection inactive). On
// PostgreSQL also across two instances: a disable on one is refused at once on the other.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as oidc from 'openid-client';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { freshPostgresDatabase } from '../helpers/postgres.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { AdminApiClient, adminClientConfig, clientToken, ADMIN_STORES as stores } from '../helpers/admin-api.ts';
import { startLogoutReceiver, type LogoutReceiver } from '../helpers/logout-receiver.ts';
import { Browser } from '../helpers/browser.ts';
import { signIn } from '../helpers/login-flow.ts';
import { freePort } from '../helpers/free-port.ts';

const RP = 'http://127.0.0.1:9/cb';
const SECRET = 'rp-secret-0123456789abcdef';
const PASSWORD = 'correct horse battery staple';


function rpClient(receiver: LogoutReceiver): Record<string, unknown> {
  return { id: 'rp', secret: SECRET, redirectUris: [RP], grantTypes: ['authorization_code', 'refresh_token'], backchannelLogoutUri: receiver.url };
}

/** Signs `username` in to the rp client through the real pages; tokens include a refresh token. */
async function codeFlow(rp: oidc.Configuration, browser: Browser, username: string) {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const url = oidc.buildAuthorizationUrl(rp, {
    redirect_uri: RP,
    scope: 'openid profile offline_access',
    prompt: 'consent',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
  });
  const callback = await signIn(browser, url.href, { username, password: PASSWORD });
  return oidc.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier, expectedState: state });
}

const invalidGrant = (err: oidc.ResponseBodyError) => err.error === 'invalid_grant';

for (const store of stores) {
  describe(`admin API sessions and grants on ${store.name}`, () => {
    let broker: TestBroker;
    let drop: () => Promise<void> = async () => {};
    let api: AdminApiClient;
    let rp: oidc.Configuration;
    let receiver: LogoutReceiver;
    let skipped: string | undefined;

    before(async () => {
      const db = await store.url();
      if ('skip' in db) {
        skipped = db.skip;
        return;
      }
      drop = db.drop;
      receiver = await startLogoutReceiver('/bcl');
      broker = await startTestBroker({
        databaseUrl: db.url,
        config: {
          clients: [adminClientConfig('ops'), adminClientConfig('session-admin', ['admin:sessions:write']), rpClient(receiver)],
        },
      });
      api = new AdminApiClient(broker.issuer, await clientToken(broker.issuer, 'ops', 'admin:read admin:write'));
      rp = await oidc.discovery(new URL(broker.issuer), 'rp', SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
    });

    after(async () => {
      await broker?.close();
      receiver?.close();
      await drop();
    });

    const live = (t: { skip(msg: string): void }) => {
      if (skipped) skipLoudly(t as never, skipped);
      return !skipped;
    };

    const newUser = async (username: string): Promise<string> => {
      const res = await api.post('/users', { username, password: PASSWORD });
      assert.equal(res.status, 201);
      return res.body.id;
    };

    const waitForLogoutTokens = async (n: number) => {
      for (let i = 0; i < 100 && receiver.tokens.length < n; i++) await new Promise((r) => setTimeout(r, 50));
    };

    test('sessions and grants are listed with client, connector, address and times; a session-only scope cannot manage users', async (t) => {
      if (!live(t)) return;
      const id = await newUser('lister');
      await codeFlow(rp, new Browser(broker.issuer), 'lister');
      const sessions = await api.get(`/users/${id}/sessions`);
      assert.equal(sessions.status, 200);
      assert.equal(sessions.body.items.length, 1);
      const [s] = sessions.body.items;
      assert.deepEqual(s.clients, ['rp']);
      assert.equal(s.connectorId, 'local');
      assert.equal(s.ip, '127.0.0.1');
      assert.deepEqual(s.amr, ['pwd']);
      assert.ok(s.authenticatedAt && s.createdAt && s.expiresAt && s.lastUsedAt);
      const grants = await api.get(`/users/${id}/grants`);
      assert.equal(grants.body.items.length, 1);
      assert.equal(grants.body.items[0].clientId, 'rp');
      assert.deepEqual(grants.body.items[0].scopes.sort(), ['offline_access', 'openid', 'profile']);
      assert.doesNotMatch(sessions.text + grants.text, /access_token|refresh_token/);

      const sessionAdmin = await clientToken(broker.issuer, 'session-admin', 'admin:sessions:write');
      assert.equal((await api.get(`/users/${id}/grants`, { token: sessionAdmin })).status, 200);
      assert.equal((await api.get(`/users/${id}`, { token: sessionAdmin })).status, 403);
      assert.equal((await api.get(`/users/${id}/sessions`, { token: null })).status, 401);
      assert.equal((await api.get('/users/00000000-0000-0000-0000-000000000000/sessions')).status, 404);
      assert.equal((await api.get('/users/00000000-0000-0000-0000-000000000000/grants')).status, 404);
    });

    test('disable ends the session at once: back-channel logout sent, refresh refused, userinfo 401, introspection inactive; enable lets them back in', async (t) => {
      if (!live(t)) return;
      const id = await newUser('disabled-dave');
      const browser = new Browser(broker.issuer);
      const tokens = await codeFlow(rp, browser, 'disabled-dave');
      const sid = tokens.claims()!.sid as string;
      // Warm every cache the token paths keep (account lookup, login session).
      const refreshed = await oidc.refreshTokenGrant(rp, tokens.refresh_token!);
      assert.equal((await oidc.tokenIntrospection(rp, refreshed.access_token)).active, true);
      await oidc.fetchUserInfo(rp, refreshed.access_token, id);
      receiver.tokens.length = 0;

      const res = await api.post(`/users/${id}/disable`);
      assert.equal(res.status, 200);
      assert.equal(res.body.user.enabled, false);
      assert.equal(res.body.ended.sessions.length, 1);
      assert.deepEqual(res.body.ended.sessions[0].notified, ['rp']);
      assert.ok(res.body.ended.grantsRevoked >= 1);

      await assert.rejects(oidc.refreshTokenGrant(rp, refreshed.refresh_token!), invalidGrant);
      await assert.rejects(oidc.fetchUserInfo(rp, refreshed.access_token, id), (err: oidc.WWWAuthenticateChallengeError) => err.status === 401);
      assert.equal((await oidc.tokenIntrospection(rp, refreshed.access_token)).active, false);
      assert.equal((await oidc.tokenIntrospection(rp, refreshed.refresh_token!)).active, false);

      await waitForLogoutTokens(1);
      assert.equal(receiver.tokens.length, 1, 'one back-channel logout token');
      const { payload } = await jwtVerify(receiver.tokens[0], createRemoteJWKSet(new URL(`${broker.issuer}/jwks`)), { issuer: broker.issuer, audience: 'rp' });
      assert.equal(payload.sub, id);
      assert.equal(payload.sid, sid);

      assert.deepEqual((await api.get(`/users/${id}/sessions`)).body.items, []);
      assert.deepEqual((await api.get(`/users/${id}/grants`)).body.items, []);
      const [event]: any[] = await broker.store.audit.query({ type: 'admin.user.disable', userId: id, limit: 1 });
      assert.equal(event.details.details.sessionsEnded, 1);

      // The browser's session is gone: a new authorization needs a login, which is refused while disabled.
      const silent = oidc.buildAuthorizationUrl(rp, { redirect_uri: RP, scope: 'openid', prompt: 'none', code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()), code_challenge_method: 'S256', state: 's' });
      assert.equal(new URL((await browser.go(silent.href)).url).searchParams.get('error'), 'login_required');
      await assert.rejects(codeFlow(rp, new Browser(broker.issuer), 'disabled-dave'));

      assert.equal((await api.post(`/users/${id}/enable`)).status, 200);
      const again = await codeFlow(rp, new Browser(broker.issuer), 'disabled-dave');
      assert.ok(again.access_token);
    });

    test('end one session, then all: back-channel logout per session, the other session untouched until the second call', async (t) => {
      if (!live(t)) return;
      const id = await newUser('two-sessions');
      const first = await codeFlow(rp, new Browser(broker.issuer), 'two-sessions');
      const second = await codeFlow(rp, new Browser(broker.issuer), 'two-sessions');
      const listed = (await api.get(`/users/${id}/sessions`)).body.items as Array<{ uid: string }>;
      assert.equal(listed.length, 2);
      receiver.tokens.length = 0;
      const target = listed[0].uid;
      const ended = await api.delete(`/users/${id}/sessions/${target}`);
      assert.equal(ended.status, 200);
      assert.equal(ended.body.sessionUid, target);
      assert.deepEqual(ended.body.notified, ['rp']);
      await waitForLogoutTokens(1);
      assert.equal(receiver.tokens.length, 1);
      assert.deepEqual(((await api.get(`/users/${id}/sessions`)).body.items as Array<{ uid: string }>).map((s) => s.uid), [listed[1].uid]);
      assert.equal((await api.delete(`/users/${id}/sessions/${target}`)).status, 404, 'a repeated end is a 404');
      assert.equal((await api.delete(`/users/${id}/sessions/no-such-session`)).status, 404);
      // Another user's session cannot be ended through this user.
      const otherId = await newUser('bystander');
      assert.equal((await api.delete(`/users/${otherId}/sessions/${listed[1].uid}`)).status, 404);

      const all = await api.delete(`/users/${id}/sessions`);
      assert.equal(all.status, 200);
      assert.equal(all.body.items.length, 1);
      assert.deepEqual((await api.get(`/users/${id}/sessions`)).body.items, []);
      assert.deepEqual((await api.delete(`/users/${id}/sessions`)).body.items, [], 'repeating it is harmless');
      const events = await broker.store.audit.query({ type: 'admin.session.*', userId: id, limit: 10 });
      assert.deepEqual(events.map((e) => e.type).sort(), ['admin.session.revoke', 'admin.session.revoke_all']);
      // offline_access grants survive a logout (as oidc-provider's own logout leaves them) until revoked.
      assert.ok((await oidc.refreshTokenGrant(rp, first.refresh_token!)).access_token);
      void second;
    });

    test('revoke one grant, then all: its tokens stop working at once; repeats answer 404 / an empty list', async (t) => {
      if (!live(t)) return;
      const id = await newUser('granted');
      const a = await codeFlow(rp, new Browser(broker.issuer), 'granted');
      const b = await codeFlow(rp, new Browser(broker.issuer), 'granted');
      const grants = (await api.get(`/users/${id}/grants`)).body.items as Array<{ id: string }>;
      assert.equal(grants.length, 2);
      const intro = async (token: string) => (await oidc.tokenIntrospection(rp, token)).active;
      assert.equal(await intro(a.access_token), true);
      // Which grant a token belongs to: revoke the first listed and see which pair dies.
      const revoked = await api.delete(`/users/${id}/grants/${grants[0].id}`);
      assert.equal(revoked.status, 200);
      assert.equal(revoked.body.id, grants[0].id);
      const states = [await intro(a.access_token), await intro(b.access_token)];
      assert.deepEqual(states.sort(), [false, true], 'exactly one pair of tokens died');
      assert.equal((await api.delete(`/users/${id}/grants/${grants[0].id}`)).status, 404);
      const [event]: any[] = await broker.store.audit.query({ type: 'admin.grant.revoke', userId: id, limit: 1 });
      assert.equal(event.details.details.grantId, grants[0].id);

      const all = await api.delete(`/users/${id}/grants`);
      assert.equal(all.status, 200);
      assert.equal(all.body.items.length, 1);
      assert.equal(await intro(a.access_token), false);
      assert.equal(await intro(b.access_token), false);
      await assert.rejects(oidc.refreshTokenGrant(rp, a.refresh_token!), invalidGrant);
      await assert.rejects(oidc.refreshTokenGrant(rp, b.refresh_token!), invalidGrant);
      assert.deepEqual((await api.delete(`/users/${id}/grants`)).body.items, []);
    });

    test('delete ends everything too: back-channel logout, refresh refused; the user is gone', async (t) => {
      if (!live(t)) return;
      const id = await newUser('deleted-dora');
      const tokens = await codeFlow(rp, new Browser(broker.issuer), 'deleted-dora');
      receiver.tokens.length = 0;
      const res = await api.delete(`/users/${id}`);
      assert.equal(res.status, 200);
      assert.equal(res.body.ended.sessions.length, 1);
      await waitForLogoutTokens(1);
      assert.equal(receiver.tokens.length, 1);
      await assert.rejects(oidc.refreshTokenGrant(rp, tokens.refresh_token!), invalidGrant);
      assert.equal((await oidc.tokenIntrospection(rp, tokens.access_token)).active, false);
      assert.equal((await broker.store.knex('oidc_payloads').whereRaw("payload->>'accountId' = ?", [id])).length, 0, 'no record of the user is left');
      assert.equal((await api.delete(`/users/${id}`)).status, 404);
    });
  });
}

describe('admin API: a disable on one instance is refused at once on the other (PostgreSQL)', () => {
  let a: TestBroker;
  let b: TestBroker;
  let receiver: LogoutReceiver;
  let db: Awaited<ReturnType<typeof freshPostgresDatabase>>;

  before(async () => {
    db = await freshPostgresDatabase();
    if ('skip' in db) return;
    receiver = await startLogoutReceiver('/bcl');
    const issuerPort = await freePort();
    const config = { issuer: `http://127.0.0.1:${issuerPort}`, clients: [adminClientConfig('ops'), rpClient(receiver)] };
    a = await startTestBroker({ databaseUrl: db.url, config: { ...config, http: { listen: `127.0.0.1:${await freePort()}` } } });
    b = await startTestBroker({ databaseUrl: db.url, config: { ...config, http: { listen: `127.0.0.1:${await freePort()}` } } });
  });

  after(async () => {
    await Promise.all([a?.close(), b?.close()]);
    receiver?.close();
    if (db && !('skip' in db)) await db.drop();
  });

  function via(instance: TestBroker): oidc.CustomFetch {
    return (input, init) => {
      const url = new URL(input);
      url.host = new URL(instance.url).host;
      return fetch(url, init as RequestInit);
    };
  }

  test('sign in on A, warm B, disable through A: B refuses the refresh and the access token immediately', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const issuer = a.config.issuer;
    const token = async (instance: TestBroker) => {
      const res = await fetch(`${instance.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from('ops:ops-secret-0123456789abcdef').toString('base64')}` },
        body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'admin:read admin:write' }),
      });
      return ((await res.json()) as { access_token: string }).access_token;
    };
    const apiA = new AdminApiClient(a.url, await token(a));
    const created = await apiA.post('/users', { username: 'roaming', password: PASSWORD });
    assert.equal(created.status, 201);
    const id = created.body.id;

    const rpA = await oidc.discovery(new URL(issuer), 'rp', SECRET, undefined, { execute: [oidc.allowInsecureRequests], [oidc.customFetch]: via(a) });
    rpA[oidc.customFetch] = via(a);
    const rpB = await oidc.discovery(new URL(issuer), 'rp', SECRET, undefined, { execute: [oidc.allowInsecureRequests], [oidc.customFetch]: via(b) });
    rpB[oidc.customFetch] = via(b);
    const tokens = await codeFlow(rpA, new Browser(a.url, { publicOrigin: issuer }), 'roaming');
    // B serves the user now, so its account cache holds them as enabled.
    const onB = await oidc.refreshTokenGrant(rpB, tokens.refresh_token!);
    await oidc.fetchUserInfo(rpB, onB.access_token, id);

    assert.equal((await apiA.post(`/users/${id}/disable`)).status, 200);
    await assert.rejects(oidc.refreshTokenGrant(rpB, onB.refresh_token!), invalidGrant);
    await assert.rejects(oidc.fetchUserInfo(rpB, onB.access_token, id), (err: oidc.WWWAuthenticateChallengeError) => err.status === 401);
    assert.equal((await oidc.tokenIntrospection(rpB, onB.access_token)).active, false);
  });
});
