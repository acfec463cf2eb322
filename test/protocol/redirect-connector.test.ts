// The redirect half of the connector contract, end to end: a fixture connector sends the
// browser to a fake upstream on loopback, which sends it back to /callback/:connector.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import * as oidc from 'openid-client';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { Browser } from '../helpers/browser.ts';
import type { ConnectorPlugin } from '../../src/connectors/contract.ts';

const RP = 'http://127.0.0.1:9/cb';

/** What the fake upstream directory says now: removed users and each user's current groups. */
const directory = { removed: new Set<string>(), groups: new Map<string, string[]>(), down: false };

/** Upstream users: the fake upstream approves `?user=NAME` and refuses `?user=deny`. */
function fixturePlugin(upstream: () => string): ConnectorPlugin<{ tenant: string }> {
  return {
    type: 'fixture-redirect',
    configSchema: z.strictObject({ tenant: z.string() }),
    create: ({ config }) => ({
      kind: 'redirect',
      async start({ callbackUrl, state }) {
        const nonce = `n-${state.slice(0, 6)}`;
        return { location: `${upstream()}/authorize?${new URLSearchParams({ state, redirect_uri: callbackUrl, nonce })}`, context: { nonce, tenant: config.tenant } };
      },
      async callback({ params, context }) {
        if (params.error) return { ok: false, reason: params.error === 'access_denied' ? 'access_denied' : 'upstream_error' };
        if (params.nonce !== context.nonce) return { ok: false, reason: 'upstream_error', detail: 'nonce mismatch' };
        const user = params.code.replace(/^code-/, '');
        return { ok: true, identity: { connectorId: 'ignored', subject: `${context.tenant}:${user}`, username: user, email: `${user}@upstream.example`, emailVerified: true, groups: directory.groups.get(user) ?? ['upstream-staff'], amr: ['fed'] } };
      },
      async refresh(identity) {
        if (directory.down) throw new Error('upstream unreachable');
        const user = identity.subject.split(':')[1];
        if (directory.removed.has(user)) return { ok: false, reason: 'user_gone' };
        return { ok: true, identity: { ...identity, groups: directory.groups.get(user) ?? ['upstream-staff'] } };
      },
    }),
  };
}

describe('redirect connectors', () => {
  let broker: TestBroker;
  let upstream: http.Server;
  let upstreamUrl = '';
  let rp: oidc.Configuration;

  before(async () => {
    upstream = http.createServer((req, res) => {
      const url = new URL(req.url!, 'http://x');
      const back = new URL(url.searchParams.get('redirect_uri')!);
      const user = url.searchParams.get('user') ?? 'alice';
      back.searchParams.set('state', url.searchParams.get('state')!);
      if (user === 'deny') back.searchParams.set('error', 'access_denied');
      else {
        back.searchParams.set('code', `code-${user}`);
        back.searchParams.set('nonce', url.searchParams.get('nonce')!);
      }
      res.writeHead(302, { location: back.href }).end();
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
    upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    broker = await startTestBroker({
      plugins: new Map([['fixture-redirect', fixturePlugin(() => upstreamUrl) as ConnectorPlugin]]),
      config: {
        clients: [{ id: 'rp', secret: 'rp-secret-0123456789abcdef', redirectUris: [RP], firstParty: true }],
        connectors: [{ id: 'acme', type: 'fixture-redirect', name: 'Acme SSO', config: { tenant: 'acme' } }],
      },
    });
    rp = await oidc.discovery(new URL(broker.issuer), 'rp', 'rp-secret-0123456789abcdef', undefined, { execute: [oidc.allowInsecureRequests] });
  });
  after(async () => {
    await broker?.close();
    upstream?.close();
  });

  /** Starts a login, clicks the connector, returns the URL the upstream sends the browser back to. */
  async function toUpstream(browser: Browser, user = 'alice') {
    const verifier = oidc.randomPKCECodeVerifier();
    const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: RP, scope: 'openid profile email groups', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state: 'st' });
    const login = await browser.go(url.href);
    assert.match(login.html, /Continue with Acme SSO/);
    const away = await browser.submit(login, '/connector/acme');
    assert.ok(away.url.startsWith(`${upstreamUrl}/authorize`), `went upstream: ${away.url}`);
    const upstreamPage = new URL(away.url);
    upstreamPage.searchParams.set('user', user);
    const res = await fetch(upstreamPage, { redirect: 'manual' });
    return { callback: res.headers.get('location')!, verifier };
  }

  test('an upstream login creates and links a local user; the sub is stable across logins', async () => {
    const browser = new Browser(broker.issuer);
    const { callback, verifier } = await toUpstream(browser);
    assert.ok(callback.startsWith(`${broker.issuer}/callback/acme?`));
    const done = await browser.go(callback);
    assert.ok(done.url.startsWith(RP), `back at the app: ${done.url} ${done.html.slice(0, 300)}`);
    const tokens = await oidc.authorizationCodeGrant(rp, new URL(done.url), { pkceCodeVerifier: verifier, expectedState: 'st' });
    const claims = tokens.claims()!;
    assert.equal(claims.idp, 'acme');
    assert.deepEqual(claims.amr, ['fed']);
    assert.deepEqual(claims.groups, ['upstream-staff']);
    assert.equal(claims.preferred_username, 'alice');
    const fed = await broker.store.identities.find('acme', 'acme:alice');
    assert.equal(fed?.userId, claims.sub);

    const again = new Browser(broker.issuer);
    const second = await toUpstream(again);
    const back = await again.go(second.callback);
    const t2 = await oidc.authorizationCodeGrant(rp, new URL(back.url), { pkceCodeVerifier: second.verifier, expectedState: 'st' });
    assert.equal(t2.claims()!.sub, claims.sub, 'same upstream subject, same local sub');
  });

  test('refresh asks the connector: changed groups flow in, a removed user loses the whole grant', async () => {
    const browser = new Browser(broker.issuer);
    const { callback, verifier } = await toUpstream(browser, 'rita');
    const done = await browser.go(callback);
    const tokens = await oidc.authorizationCodeGrant(rp, new URL(done.url), { pkceCodeVerifier: verifier, expectedState: 'st' });
    assert.deepEqual(tokens.claims()!.groups, ['upstream-staff']);

    directory.groups.set('rita', ['upstream-admins']);
    const refreshed = await oidc.refreshTokenGrant(rp, tokens.refresh_token!);
    assert.deepEqual(refreshed.claims()!.groups, ['upstream-admins'], 'new groups in the new ID token');

    directory.down = true;
    // 503 (not an OAuth error body to openid-client, which reads only 4xx bodies as errors).
    await assert.rejects(oidc.refreshTokenGrant(rp, refreshed.refresh_token!), (err: Error & { cause?: unknown }) => err.cause instanceof Response && err.cause.status === 503);
    directory.down = false;
    assert.equal((await oidc.tokenIntrospection(rp, refreshed.access_token)).active, true, 'an outage revokes nothing');

    directory.removed.add('rita');
    await assert.rejects(oidc.refreshTokenGrant(rp, refreshed.refresh_token!), (err: oidc.ResponseBodyError) => err.error === 'invalid_grant');
    assert.equal((await oidc.tokenIntrospection(rp, refreshed.access_token)).active, false, 'the grant was revoked');
    const denied = await broker.store.audit.list({ type: 'token.refresh_denied' });
    assert.equal(denied[0].details.reason, 'user_gone');
    directory.removed.delete('rita');
  });

  test('a replayed callback is rejected and links nothing', async () => {
    const browser = new Browser(broker.issuer);
    const { callback } = await toUpstream(browser, 'replay-user');
    await browser.go(callback);
    const replay = await browser.go(callback);
    assert.equal(replay.status, 400);
    assert.match(replay.html, /invalid, expired or was already used/);
    const events = await broker.store.audit.list({ type: 'login.rejected' });
    assert.ok(events.some((e) => e.details.reason === 'replayed_or_mismatched_state'));
  });

  test('concurrent replays of one callback: exactly one is accepted', async () => {
    const browser = new Browser(broker.issuer);
    const { callback } = await toUpstream(browser, 'racer');
    const results = await Promise.all(Array.from({ length: 5 }, () => browser.request(callback)));
    assert.deepEqual(results.map((r) => r.status).sort(), [303, 400, 400, 400, 400]);
  });

  test('an unknown or forged state is rejected and nothing is linked', async () => {
    const res = await new Browser(broker.issuer).go(`${broker.issuer}/callback/acme?state=forged&code=code-mallory&nonce=x`);
    assert.equal(res.status, 400);
    assert.equal(await broker.store.identities.find('acme', 'acme:mallory'), null);
    assert.equal(await broker.store.users.findByUsername('mallory'), null);
  });

  test("a callback finished in another browser (no interaction cookie) does not log that browser in", async () => {
    const { callback } = await toUpstream(new Browser(broker.issuer), 'victim');
    const other = new Browser(broker.issuer);
    const res = await other.go(callback);
    assert.equal(res.status, 400);
    assert.ok(!res.url.startsWith(RP));
  });

  test('a callback sent to another connector path is rejected', async () => {
    const { callback } = await toUpstream(new Browser(broker.issuer), 'wrongpath');
    const res = await new Browser(broker.issuer).go(callback.replace('/callback/acme', '/callback/local'));
    assert.equal(res.status, 400);
  });

  test('cancelling at the upstream shows the login page again with a message', async () => {
    const browser = new Browser(broker.issuer);
    const { callback } = await toUpstream(browser, 'deny');
    const page = await browser.go(callback);
    assert.equal(page.status, 401);
    assert.match(page.html, /Sign-in was cancelled/);
    assert.match(page.html, /Continue with Acme SSO/);
  });

  test('a carried callback creates nothing; the browser that started the login still cannot be signed in by it', async () => {
    const usersBefore = (await broker.store.users.list({ limit: 1 })).total;
    const linkedBefore = (await broker.store.audit.list({ type: 'identity.linked', limit: 1000 })).length;
    const started = new Browser(broker.issuer);
    const { callback } = await toUpstream(started, 'carried');
    const other = await new Browser(broker.issuer).go(callback);
    assert.equal(other.status, 400);
    assert.equal(await broker.store.identities.find('acme', 'acme:carried'), null, 'no federated identity');
    assert.equal(await broker.store.users.findByUsername('carried'), null, 'no user');
    assert.equal((await broker.store.users.list({ limit: 1 })).total, usersBefore);
    assert.equal((await broker.store.audit.list({ type: 'identity.linked', limit: 1000 })).length, linkedBefore, 'no identity.linked event');
    // The attempt was single use: the starting browser must begin again.
    assert.equal((await started.go(callback)).status, 400);
    assert.equal(await broker.store.users.findByUsername('carried'), null);
  });

  test('a refresh the connector cannot answer (upstream down) is 503 with Retry-After, not 400', async () => {
    const browser = new Browser(broker.issuer);
    const { callback, verifier } = await toUpstream(browser, 'outage');
    const done = await browser.go(callback);
    const tokens = await oidc.authorizationCodeGrant(rp, new URL(done.url), { pkceCodeVerifier: verifier, expectedState: 'st' });
    const refresh = () => fetch(`${broker.issuer}/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from('rp:rp-secret-0123456789abcdef').toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token! }),
    });
    directory.down = true;
    let res: Response;
    try {
      res = await refresh();
    } finally {
      directory.down = false;
    }
    assert.equal(res.status, 503);
    assert.ok(Number(res.headers.get('retry-after')) > 0);
    assert.equal(((await res.json()) as { error: string }).error, 'temporarily_unavailable');
    assert.equal((await refresh()).status, 200, 'the refresh token survived the outage');
  });
});
