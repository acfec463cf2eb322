// The broker as an OpenID Provider, driven by a real relying party (openid-client) through the
// real login and consent pages: code flow with PKCE, refresh rotation and reuse detection,
// userinfo, introspection, revocation, RP-initiated and back-channel logout, PAR, device flow,
// client_credentials with RFC 9068 JWT access tokens, and the refusals around them.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as oidc from 'openid-client';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { startLogoutReceiver, type LogoutReceiver } from '../helpers/logout-receiver.ts';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { Browser } from '../helpers/browser.ts';
import { signIn } from '../helpers/login-flow.ts';

const RP = 'http://127.0.0.1:9/cb'; // never contacted: the browser stops at the RP's origin
const SECRET = 'rp-secret-0123456789abcdef';

describe('authorization code flow through the real login form', () => {
  let broker: TestBroker;
  let rp: oidc.Configuration;
  let spa: oidc.Configuration;
  let logoutReceiver: LogoutReceiver;
  let logoutTokens: string[] = [];
  let aliceId: string;

  before(async () => {
    logoutReceiver = await startLogoutReceiver('/bcl');
    logoutTokens = logoutReceiver.tokens;

    broker = await startTestBroker({
      config: {
        clients: [
          {
            id: 'rp', secret: SECRET, name: 'Relying Party',
            redirectUris: [RP], postLogoutRedirectUris: ['http://127.0.0.1:9/bye'],
            grantTypes: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
            backchannelLogoutUri: logoutReceiver.url,
          },
          { id: 'spa', name: 'Single Page App', redirectUris: [RP], firstParty: true },
          { id: 'svc', secret: 'svc-secret-0123456789abcdef', grantTypes: ['client_credentials'], resources: ['https://api.example.test'] },
        ],
        resources: [{ id: 'https://api.example.test', scopes: ['read', 'write'] }],
        users: [
          { username: 'alice', password: 'alice-password-1', email: 'alice@example.org', name: 'Alice Liddell', groups: ['admins', 'staff'] },
          { username: 'bob', password: 'bob-password-1', email: 'bob@example.org', groups: [] },
        ],
      },
    });
    aliceId = (await broker.store.users.findByUsername('alice'))!.id;
    rp = await oidc.discovery(new URL(broker.issuer), 'rp', SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
    spa = await oidc.discovery(new URL(broker.issuer), 'spa', undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
  });

  after(async () => {
    await broker?.close();
    logoutReceiver?.close();
  });

  async function codeFlow(config: oidc.Configuration, extra: Record<string, string> = {}, user = { username: 'alice', password: 'alice-password-1' }) {
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: RP,
      scope: 'openid profile email groups offline_access',
      prompt: 'consent',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      ...extra,
    });
    // prompt '' leaves the parameter out.
    if (extra.prompt === '') url.searchParams.delete('prompt');
    const browser = new Browser(broker.issuer);
    const callback = await signIn(browser, url.href, user);
    const tokens = await oidc.authorizationCodeGrant(config, new URL(callback), { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
    return { tokens, browser, callback };
  }

  test('discovery advertises the endpoints and RFC 9207 iss', () => {
    const meta = rp.serverMetadata();
    assert.equal(meta.issuer, broker.issuer);
    assert.equal(meta.authorization_response_iss_parameter_supported, true);
    for (const key of ['token_endpoint', 'userinfo_endpoint', 'introspection_endpoint', 'revocation_endpoint', 'end_session_endpoint', 'pushed_authorization_request_endpoint', 'device_authorization_endpoint', 'jwks_uri'] as const) {
      assert.ok(meta[key], `${key} missing`);
    }
    assert.deepEqual(meta.code_challenge_methods_supported, ['S256']);
    assert.equal(meta.backchannel_logout_supported, true);
  });

  test('code flow issues tokens for the local user with the expected claims', async () => {
    const { tokens, callback } = await codeFlow(rp);
    assert.equal(new URL(callback).searchParams.get('iss'), broker.issuer);
    const claims = tokens.claims()!;
    assert.equal(claims.sub, aliceId);
    assert.equal(claims.email, 'alice@example.org');
    assert.equal(claims.email_verified, true);
    assert.equal(claims.name, 'Alice Liddell');
    assert.equal(claims.preferred_username, 'alice');
    assert.deepEqual(claims.groups, ['admins', 'staff']);
    assert.deepEqual(claims.amr, ['pwd']);
    assert.equal(claims.idp, 'local');
    assert.equal(decodeProtectedHeader(tokens.id_token!).alg, 'RS256');
    assert.ok(tokens.refresh_token);

    const info = await oidc.fetchUserInfo(rp, tokens.access_token, aliceId);
    assert.equal(info.email, 'alice@example.org');
    assert.deepEqual(info.groups, ['admins', 'staff']);
    assert.equal(info.idp, 'local');
  });

  test('a wrong password is refused on the page and nothing is issued', async () => {
    const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: RP, scope: 'openid', code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()), code_challenge_method: 'S256', state: 's' });
    const browser = new Browser(broker.issuer);
    const login = await browser.go(url.href);
    const after = await browser.submit(login, '/login', { username: 'alice', password: 'nope' });
    assert.equal(after.status, 401);
    assert.match(after.html, /Invalid username or password/);
    const unknown = await browser.submit(after, '/login', { username: 'nobody', password: 'nope' });
    assert.equal(unknown.status, 401);
    assert.match(unknown.html, /Invalid username or password/);
    const events = await broker.store.audit.list({ type: 'login.failure' });
    assert.ok(events.length >= 2);
  });

  test('a login form without the CSRF token is refused', async () => {
    const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: RP, scope: 'openid', code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()), code_challenge_method: 'S256', state: 's' });
    const browser = new Browser(broker.issuer);
    const login = await browser.go(url.href);
    const res = await browser.submit(login, '/login', { username: 'alice', password: 'alice-password-1', csrf: 'forged' });
    assert.equal(res.status, 400);
    assert.doesNotMatch(res.html, /at .*\.ts:\d+/, 'no stack traces on pages');
  });

  test('refresh rotates the token; reusing an old one revokes the whole family', async () => {
    const { tokens } = await codeFlow(rp);
    const first = tokens.refresh_token!;
    const refreshed = await oidc.refreshTokenGrant(rp, first);
    assert.ok(refreshed.refresh_token);
    assert.notEqual(refreshed.refresh_token, first);
    assert.equal(refreshed.claims()!.sub, aliceId);

    // The client moved on with the successor; presenting the first token again is reuse (the
    // reuse grace covers only a successor that was never used: a lost response).
    const third = await oidc.refreshTokenGrant(rp, refreshed.refresh_token!);
    await assert.rejects(oidc.refreshTokenGrant(rp, first), (err: oidc.ResponseBodyError) => err.error === 'invalid_grant');
    // The reuse revoked the grant: the newest refresh token and its access token are dead too.
    await assert.rejects(oidc.refreshTokenGrant(rp, third.refresh_token!), (err: oidc.ResponseBodyError) => err.error === 'invalid_grant');
    const intro = await oidc.tokenIntrospection(rp, third.access_token);
    assert.equal(intro.active, false);
  });

  test('introspection and revocation', async () => {
    const { tokens } = await codeFlow(rp);
    const active = await oidc.tokenIntrospection(rp, tokens.access_token);
    assert.equal(active.active, true);
    assert.equal(active.sub, aliceId);
    assert.equal(active.client_id, 'rp');
    await oidc.tokenRevocation(rp, tokens.access_token);
    assert.equal((await oidc.tokenIntrospection(rp, tokens.access_token)).active, false);
    await assert.rejects(oidc.fetchUserInfo(rp, tokens.access_token, aliceId));
  });

  test('a disabled user can no longer refresh', async () => {
    const { tokens } = await codeFlow(rp, {}, { username: 'bob', password: 'bob-password-1' });
    const bob = (await broker.store.users.findByUsername('bob'))!;
    await broker.store.users.update(bob.id, { enabled: false });
    try {
      await assert.rejects(oidc.refreshTokenGrant(rp, tokens.refresh_token!), (err: oidc.ResponseBodyError) => err.error === 'invalid_grant');
    } finally {
      await broker.store.users.update(bob.id, { enabled: true });
    }
  });

  test('RP-initiated logout ends the session and notifies back-channel logout', async () => {
    const { tokens, browser } = await codeFlow(rp);
    const sid = tokens.claims()!.sid as string;
    assert.ok(sid);
    logoutTokens.length = 0;
    const endUrl = oidc.buildEndSessionUrl(rp, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: 'http://127.0.0.1:9/bye', state: 'x' });
    const confirm = await browser.go(endUrl.href);
    assert.equal(confirm.status, 200);
    assert.match(confirm.html, /op\.logoutForm/);
    const done = await browser.submit(confirm, '/session/end/confirm', { logout: 'yes' });
    assert.equal(new URL(done.url).origin + new URL(done.url).pathname, 'http://127.0.0.1:9/bye');

    for (let i = 0; i < 50 && logoutTokens.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(logoutTokens.length, 1, 'one back-channel logout token delivered');
    const jwks = createRemoteJWKSet(new URL(rp.serverMetadata().jwks_uri!));
    const { payload } = await jwtVerify(logoutTokens[0], jwks, { issuer: broker.issuer, audience: 'rp' });
    assert.equal(payload.sub, aliceId);
    assert.equal(payload.sid, sid);
    assert.ok((payload.events as Record<string, unknown>)['http://schemas.openid.net/event/backchannel-logout']);

    // The browser session is gone: a silent request now needs a login.
    const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: RP, scope: 'openid', prompt: 'none', code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()), code_challenge_method: 'S256', state: 's' });
    const silent = await browser.go(url.href);
    assert.equal(new URL(silent.url).searchParams.get('error'), 'login_required');
  });

  test('a public client without PKCE is refused', async () => {
    const url = oidc.buildAuthorizationUrl(spa, { redirect_uri: RP, scope: 'openid', state: 's' });
    const res = await new Browser(broker.issuer).go(url.href);
    const back = new URL(res.url);
    assert.equal(back.origin + back.pathname, RP);
    assert.equal(back.searchParams.get('error'), 'invalid_request');
    assert.match(back.searchParams.get('error_description') ?? '', /PKCE/);
  });

  test('a public first-party client signs in with PKCE and no consent page', async () => {
    const verifier = oidc.randomPKCECodeVerifier();
    const url = oidc.buildAuthorizationUrl(spa, { redirect_uri: RP, scope: 'openid email', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state: 'st' });
    const browser = new Browser(broker.issuer);
    const login = await browser.go(url.href);
    const after = await browser.submit(login, '/login', { username: 'alice', password: 'alice-password-1' });
    assert.ok(after.url.startsWith(RP), 'went straight back to the app');
    const tokens = await oidc.authorizationCodeGrant(spa, new URL(after.url), { pkceCodeVerifier: verifier, expectedState: 'st' });
    assert.equal(tokens.claims()!.sub, aliceId);
  });

  test('a redirect_uri not registered exactly is refused without redirecting', async () => {
    for (const bad of [`${RP}/`, `${RP}?x=1`, 'http://127.0.0.1:9/cb2', 'http://evil.example/cb', 'HTTP://127.0.0.1:9/CB']) {
      const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: bad, scope: 'openid', code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()), code_challenge_method: 'S256', state: 's' });
      const res = await new Browser(broker.issuer).request(url.href);
      assert.equal(res.status, 400, bad);
      assert.equal(res.headers.get('location'), null, `no redirect for ${bad}`);
      assert.match(await res.text(), /redirect_uri/);
    }
  });

  test('pushed authorization requests (PAR) work end to end', async () => {
    const verifier = oidc.randomPKCECodeVerifier();
    const url = await oidc.buildAuthorizationUrlWithPAR(rp, { redirect_uri: RP, scope: 'openid', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state: 'par' });
    assert.ok(url.searchParams.get('request_uri')?.startsWith('urn:ietf:params:oauth:request_uri:'));
    const callback = await signIn(new Browser(broker.issuer), url.href, { username: 'alice', password: 'alice-password-1' });
    const tokens = await oidc.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier, expectedState: 'par' });
    assert.equal(tokens.claims()!.sub, aliceId);
  });

  test('device authorization grant', async () => {
    const device = await oidc.initiateDeviceAuthorization(rp, { scope: 'openid email' });
    const browser = new Browser(broker.issuer);
    let page = await browser.go(device.verification_uri_complete!);
    // oidc-provider posts the code from the link with a self-submitting form (ours: localized, strict CSP).
    assert.match(page.html, /<form method="post" action="[^"]*\/device" data-auto-submit/);
    page = await browser.submit(page, '/device');
    assert.match(page.html, /op\.deviceConfirmForm/);
    page = await browser.submit(page, '/device');
    assert.match(page.html, /name="password"/);
    page = await browser.submit(page, '/login', { username: 'alice', password: 'alice-password-1' });
    if (/\/confirm"/.test(page.html)) page = await browser.submit(page, '/confirm');
    assert.match(page.html, /signed in/i);
    const tokens = await oidc.pollDeviceAuthorizationGrant(rp, device);
    assert.equal(tokens.claims()!.sub, aliceId);
    assert.equal(tokens.claims()!.email, 'alice@example.org');
  });

  test('client_credentials with a resource gets an RFC 9068 JWT access token', async () => {
    const svc = await oidc.discovery(new URL(broker.issuer), 'svc', 'svc-secret-0123456789abcdef', undefined, { execute: [oidc.allowInsecureRequests] });
    const tokens = await oidc.clientCredentialsGrant(svc, { scope: 'read', resource: 'https://api.example.test' });
    const header = decodeProtectedHeader(tokens.access_token);
    assert.equal(header.typ, 'at+jwt');
    const jwks = createRemoteJWKSet(new URL(svc.serverMetadata().jwks_uri!));
    const { payload } = await jwtVerify(tokens.access_token, jwks, { issuer: broker.issuer, audience: 'https://api.example.test', typ: 'at+jwt' });
    assert.equal(payload.client_id, 'svc');
    assert.equal(payload.scope, 'read');
    await assert.rejects(oidc.clientCredentialsGrant(svc, { scope: 'read', resource: 'https://other.example.test' }), (err: oidc.ResponseBodyError) => err.error === 'invalid_target');
    await assert.rejects(
      oidc.clientCredentialsGrant(await oidc.discovery(new URL(broker.issuer), 'svc', 'wrong-secret-0123456789', undefined, { execute: [oidc.allowInsecureRequests] }), { resource: 'https://api.example.test' }),
      (err: oidc.ResponseBodyError) => err.error === 'invalid_client',
    );
  });

  test('an authorization code for a user resource carries groups and idp in the JWT access token', async () => {
    const { tokens } = await codeFlow(rp, { resource: 'https://api.example.test', scope: 'openid read' });
    const at = decodeJwt(tokens.access_token);
    assert.equal(at.aud, 'https://api.example.test');
    assert.equal(at.sub, aliceId);
    assert.deepEqual(at.groups, ['admins', 'staff']);
    assert.equal(at.idp, 'local');
  });

  test('a first-party client is granted what it asks for as the login resumes: OIDC scopes, claims and resource scopes, no consent page', async () => {
    const { tokens } = await codeFlow(spa, { resource: 'https://api.example.test', scope: 'openid email read', prompt: '', claims: JSON.stringify({ id_token: { name: null } }) });
    const at = decodeJwt(tokens.access_token);
    assert.equal(at.aud, 'https://api.example.test');
    assert.equal(at.scope, 'read', 'the resource scope was granted without a consent page');
    assert.equal(tokens.claims()!.name, 'Alice Liddell', 'the requested claim was granted');
  });

  test('a refresh whose new access token is a resource JWT (never stored) still saves the rotation', async () => {
    const { tokens } = await codeFlow(rp, { resource: 'https://api.example.test', scope: 'openid offline_access read' });
    const first = tokens.refresh_token!;
    const refreshed = await oidc.refreshTokenGrant(rp, first, { resource: 'https://api.example.test' });
    assert.equal(decodeJwt(refreshed.access_token).aud, 'https://api.example.test', 'a JWT access token: nothing stored for it');
    assert.notEqual(refreshed.refresh_token, first);
    // The successor was stored and the first token consumed, as after any rotation.
    const third = await oidc.refreshTokenGrant(rp, refreshed.refresh_token!, { resource: 'https://api.example.test' });
    assert.ok(third.refresh_token);
    await assert.rejects(oidc.refreshTokenGrant(rp, first), (err: oidc.ResponseBodyError) => err.error === 'invalid_grant');
  });

  test('a client managed in the database signs users in like a config client', async () => {
    await broker.store.clients.create({
      id: 'db-app',
      metadata: { client_secret: 'db-app-secret-0123456789', redirect_uris: [RP], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic' },
      firstParty: true,
    });
    const db = await oidc.discovery(new URL(broker.issuer), 'db-app', 'db-app-secret-0123456789', undefined, { execute: [oidc.allowInsecureRequests] });
    const verifier = oidc.randomPKCECodeVerifier();
    const url = oidc.buildAuthorizationUrl(db, { redirect_uri: RP, scope: 'openid', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state: 'db' });
    const callback = await signIn(new Browser(broker.issuer), url.href, { username: 'alice', password: 'alice-password-1' });
    const tokens = await oidc.authorizationCodeGrant(db, new URL(callback), { pkceCodeVerifier: verifier, expectedState: 'db' });
    assert.equal(tokens.claims()!.aud, 'db-app');
    await broker.store.clients.update('db-app', { enabled: false });
    await assert.rejects(oidc.refreshTokenGrant(db, tokens.refresh_token!), (err: oidc.ResponseBodyError) => err.error === 'invalid_client');
  });

  test('session cookies are HttpOnly and SameSite=Lax', async () => {
    const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: RP, scope: 'openid', code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()), code_challenge_method: 'S256', state: 's' });
    const res = await new Browser(broker.issuer).request(url.href);
    const cookies = res.headers.getSetCookie();
    assert.ok(cookies.some((c) => c.startsWith('kb_interaction=')));
    for (const c of cookies) {
      assert.match(c, /httponly/i, c);
      assert.match(c, /samesite=lax/i, c);
    }
  });

  test('pages carry security headers', async () => {
    const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: RP, scope: 'openid', code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()), code_challenge_method: 'S256', state: 's' });
    const page = await new Browser(broker.issuer).go(url.href);
    const csp = page.headers.get('content-security-policy') ?? '';
    assert.match(csp, /frame-ancestors 'none'/);
    assert.match(csp, /default-src 'none'/);
    assert.equal(page.headers.get('x-frame-options'), 'DENY');
    assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
    assert.match(page.headers.get('cache-control') ?? '', /no-store/);
  });

  test('resource JWT access tokens live 5 minutes by default and introspect from their own verification', async () => {
    const svc = await oidc.discovery(new URL(broker.issuer), 'svc', 'svc-secret-0123456789abcdef', undefined, { execute: [oidc.allowInsecureRequests] });
    const { access_token: jwt } = await oidc.clientCredentialsGrant(svc, { scope: 'read', resource: 'https://api.example.test' });
    const claims = decodeJwt(jwt);
    assert.equal(claims.exp! - claims.iat!, 300, 'tokens.resourceAccessToken');

    // The token's own client, and any other confidential client (oidc-provider's rule for its own tokens).
    for (const caller of [svc, rp]) {
      const intro = await oidc.tokenIntrospection(caller, jwt);
      assert.equal(intro.active, true);
      assert.equal(intro.client_id, 'svc');
      assert.equal(intro.scope, 'read');
      assert.equal(intro.aud, 'https://api.example.test');
      assert.equal(intro.token_type, 'Bearer');
      assert.equal(intro.exp, claims.exp);
      assert.equal(intro.iat, claims.iat);
      assert.equal(intro.sub, claims.sub);
    }
    // A public client learns nothing about another client's token.
    assert.equal((await oidc.tokenIntrospection(spa, jwt)).active, false);
    // A forged or altered JWT is inactive, not an error.
    const [h, p, sig] = jwt.split('.');
    const forgedPayload = Buffer.from(JSON.stringify({ ...claims, scope: 'read write' })).toString('base64url');
    assert.equal((await oidc.tokenIntrospection(svc, `${h}.${forgedPayload}.${sig}`)).active, false);
    assert.equal((await oidc.tokenIntrospection(svc, `${h}.${p}.${sig.slice(0, -4)}AAAA`)).active, false);
    // Without client authentication there is no answer at all.
    const anonymous = await fetch(`${broker.issuer}/token/introspection`, { method: 'POST', body: new URLSearchParams({ token: jwt }) });
    assert.ok([400, 401].includes(anonymous.status), String(anonymous.status));
    assert.ok(((await anonymous.json()) as { error?: string }).error, 'an error, not an introspection answer');

    // A user's JWT for a resource carries the user as sub.
    const { tokens } = await codeFlow(rp, { resource: 'https://api.example.test', scope: 'openid read' });
    const user = await oidc.tokenIntrospection(rp, tokens.access_token);
    assert.equal(user.active, true);
    assert.equal(user.sub, aliceId);
    assert.equal(user.client_id, 'rp');
    assert.equal(decodeJwt(tokens.access_token).exp! - decodeJwt(tokens.access_token).iat!, 300);
  });
});
