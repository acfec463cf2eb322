// The broker as a broker, end to end: an openid-client relying party -> Keybridge -> a real
// upstream OpenID provider (oidc-provider on loopback, its own users and login page) or a fake
// GitHub speaking GitHub's API -> back -> Keybridge tokens whose `sub` is the local user.
// Covers the first-login policies (create, link-verified-email, confirm), unlinking, upstream
// tokens kept encrypted and re-checked on refresh (revocation, one owner under concurrency), the
// failure pages, and the protocol negatives (state, replay, iss, nonce), where nothing is linked.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as oidc from 'openid-client';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { Browser, type Page } from '../helpers/browser.ts';
import { freePort } from '../helpers/free-port.ts';
import { startUpstreamOp, type UpstreamOp, type UpstreamUser } from '../helpers/upstream-op.ts';
import { startFakeGitHub, type FakeGitHub } from '../helpers/fake-oauth-providers.ts';
import { chromiumMissing, launchChromium } from '../helpers/chromium.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { unlinkIdentity } from '../../src/accounts/link-identity.ts';
import { hashPassword } from '../../src/accounts/passwords.ts';
import { DatabaseUnavailable } from '../../src/storage/database-unavailable.ts';
import { errorLines, type LogLine } from '../faults/fault-broker.ts';
import { pino } from 'pino';

const RP_SECRET = 'rp-secret-0123456789abcdef';
const UPSTREAM_SECRET = 'keybridge-at-upstream-0123456789';
const GITHUB_ID = 'gh-client';
const GITHUB_SECRET = 'gh-secret-0123456789';

const user = (id: string, claims: Record<string, unknown>): UpstreamUser => ({ id: `op-${id}`, username: id, password: `${id}#Upstream1`, claims: { preferred_username: id, ...claims } });

describe('federated login through Keybridge', () => {
  let broker: TestBroker;
  let op: UpstreamOp;
  let github: FakeGitHub;
  let rp: oidc.Configuration;
  let rpServer: http.Server;
  let RP = '';
  /** The broker's log lines at warn and above. */
  const logs: LogLine[] = [];

  const users = {
    ann: user('ann', { email: 'ann@example.org', email_verified: true, name: 'Ann Upstream', groups: ['eng', 'ops'], department: 'R&D' }),
    dave: user('dave', { email: 'dave@example.org', email_verified: true }),
    eve: user('eve', { email: 'eve@example.org', email_verified: false }),
    frank: user('frank', { email: 'frank@example.org', email_verified: true }),
    gina: user('gina', { email: 'gina@example.org', email_verified: true }),
    hal: user('hal', { email: 'hal@example.org', email_verified: true }),
    ivy: user('ivy', { email: 'ivy@example.org', email_verified: true }),
    /** A second upstream account with ann's email, at the confirm-policy connector. */
    annAlt: user('ann-alt', { email: 'ann@example.org', email_verified: true }),
  };

  before(async () => {
    rpServer = http.createServer((_req, res) => res.end('relying party'));
    await new Promise<void>((r) => rpServer.listen(0, '127.0.0.1', () => r()));
    RP = `http://127.0.0.1:${(rpServer.address() as AddressInfo).port}/cb`;

    const port = await freePort();
    const callback = (id: string) => `http://127.0.0.1:${port}/callback/${id}`;
    op = await startUpstreamOp({
      users: Object.values(users),
      clients: [{ client_id: 'keybridge', client_secret: UPSTREAM_SECRET, redirect_uris: [callback('acme'), callback('acme-confirm')], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'] }],
      scopeClaims: { profile: ['name', 'given_name', 'family_name', 'preferred_username', 'department'] },
    });
    github = await startFakeGitHub({
      clientId: GITHUB_ID,
      clientSecret: GITHUB_SECRET,
      users: [{ id: 4242, login: 'ann-gh', name: 'Ann on GitHub', email: null, emails: [{ email: 'ann@example.org', primary: true, verified: true }] }],
    });
    const upstreamConfig = { issuer: op.issuer, clientId: 'keybridge', clientSecret: UPSTREAM_SECRET, scopes: ['openid', 'profile', 'email', 'offline_access'], timeoutMs: 1500 };
    broker = await startTestBroker({
      port,
      logger: pino({ level: 'warn' }, { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) }),
      config: {
        secrets: { tokenKeys: ['token-key-for-the-federation-suite-0001'] },
        // No backoff here, so the link page's own limit is what a run of wrong passwords meets;
        // the account lockout (5) coincides with it.
        limits: { account: { freeFailures: 10, lockoutFailures: 5 } },
        clients: [{ id: 'rp', secret: RP_SECRET, redirectUris: [RP], firstParty: true }],
        users: [
          { username: 'dave', email: 'dave@example.org', password: 'Dave#Local-harbor1' },
          { username: 'eve', email: 'eve@example.org', password: 'Eve#Local-harbor1' },
        ],
        connectors: [
          {
            id: 'acme', type: 'oidc', name: 'Acme ID',
            storeTokens: true,
            linking: { firstLogin: 'link-verified-email', trustEmail: true },
            mappers: { groups: { prefix: 'acme:', map: { eng: 'engineering' } }, claims: [{ attribute: 'department', claim: 'department', scope: 'profile' }] },
            config: upstreamConfig,
          },
          { id: 'acme-confirm', type: 'oidc', name: 'Acme Partners', linking: { firstLogin: 'confirm' }, config: upstreamConfig },
          {
            id: 'github', type: 'oauth2', name: 'GitHub',
            storeTokens: true,
            linking: { firstLogin: 'link-verified-email', trustEmail: true },
            config: { preset: 'github', clientId: GITHUB_ID, clientSecret: GITHUB_SECRET, baseUrl: github.url, apiUrl: github.apiUrl, timeoutMs: 1500 },
          },
          { id: 'gone', type: 'oidc', name: 'Gone IdP', config: { issuer: `http://127.0.0.1:${await freePort()}`, clientId: 'x', clientSecret: UPSTREAM_SECRET, timeoutMs: 1000 } },
        ],
      },
    });
    rp = await oidc.discovery(new URL(broker.issuer), 'rp', RP_SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
  });
  after(async () => {
    await broker?.close();
    await op?.close();
    await github?.close();
    rpServer?.close();
  });

  /** The RP's authorization request, the broker's login page, the connector's button: returns the upstream URL. */
  async function toUpstream(browser: Browser, connectorId: string) {
    const verifier = oidc.randomPKCECodeVerifier();
    const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: RP, scope: 'openid profile email groups', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state: 'st' });
    const login = await browser.go(url.href);
    assert.equal(login.status, 200, login.html.slice(0, 300));
    const away = await browser.submit(login, `/connector/${connectorId}`);
    return { away, verifier };
  }

  /** Through the upstream OP's own login page and back to the broker's callback (not followed). */
  async function viaUpstream(browser: Browser, connectorId: string, who: UpstreamUser) {
    const { away, verifier } = await toUpstream(browser, connectorId);
    assert.ok(away.url.startsWith(op.origin), `sent upstream: ${away.url} ${away.html.slice(0, 300)}`);
    const back = await op.authorize(away.url, { username: who.username, password: who.password });
    assert.equal(back.method, 'GET');
    return { callback: back.url, verifier };
  }

  async function signInUpstream(browser: Browser, connectorId: string, who: UpstreamUser): Promise<{ page: Page; verifier: string }> {
    const { callback, verifier } = await viaUpstream(browser, connectorId, who);
    return { page: await browser.go(callback), verifier };
  }

  async function signInGitHub(browser: Browser, login: string) {
    const { away, verifier } = await toUpstream(browser, 'github');
    assert.ok(away.url.startsWith(github.url), `sent to GitHub: ${away.url}`);
    github.signInAs(login);
    const res = await fetch(away.url, { redirect: 'manual' });
    return { page: await browser.go(res.headers.get('location')!), verifier };
  }

  async function tokensAt(page: Page, verifier: string) {
    assert.ok(page.url.startsWith(RP), `expected to be back at the app, got ${page.status} ${page.url}: ${page.html.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').slice(0, 400)}`);
    return oidc.authorizationCodeGrant(rp, new URL(page.url), { pkceCodeVerifier: verifier, expectedState: 'st' });
  }

  const userCount = async () => (await broker.store.users.list({ limit: 1 })).total;
  const lastAudit = async (type: string) => (await broker.store.audit.list({ type, limit: 1 }))[0];
  const text = (page: Page) => page.html.replace(/<[^>]+>/g, ' ').replace(/&#39;/g, "'").replace(/\s+/g, ' ');

  test('Chromium: app -> Keybridge -> upstream login page -> back -> tokens for the local user', async (t) => {
    const missing = chromiumMissing();
    if (missing) return skipLoudly(t, missing);
    const chromium = await launchChromium();
    try {
      const page = await chromium.newPage();
      const verifier = oidc.randomPKCECodeVerifier();
      const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: RP, scope: 'openid profile email groups', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state: 'st' });
      await page.goto(url.href);
      await page.getByRole('button', { name: 'Continue with Acme ID' }).click();
      await page.waitForURL(`${op.origin}/**`);
      await page.fill('input[name=username]', users.ann.username);
      await page.fill('input[name=password]', users.ann.password);
      await Promise.all([page.waitForURL(`${RP}?**`), page.click('button[type=submit]')]);
      const tokens = await oidc.authorizationCodeGrant(rp, new URL(page.url()), { pkceCodeVerifier: verifier, expectedState: 'st' });
      const claims = tokens.claims()!;
      const fed = await broker.store.identities.find('acme', users.ann.id);
      assert.ok(fed, 'the upstream identity is linked');
      assert.equal(claims.sub, fed.userId, 'sub is the local user');
      assert.notEqual(claims.sub, users.ann.id, 'not the upstream subject');
      assert.equal(claims.idp, 'acme');
      assert.deepEqual(claims.amr, ['fed', 'pwd'], 'federated, and the upstream said it checked a password');
      assert.deepEqual([...(claims.groups as string[])].sort(), ['acme:ops', 'engineering'], 'groups through the mappers');
      assert.equal(claims.department, 'R&D', 'a mapped extra claim');
      assert.equal(claims.email, 'ann@example.org');
      // Upstream tokens are kept, and only as ciphertext.
      assert.ok(fed.tokens?.startsWith('v1.'), 'tokens stored encrypted');
      const raw = await broker.store.knex('federated_identities').where({ id: fed.id }).first();
      assert.doesNotMatch(JSON.stringify(raw), /"accessToken"|"refreshToken"/);
      const userinfo = await oidc.fetchUserInfo(rp, tokens.access_token, claims.sub);
      assert.equal(userinfo.department, 'R&D');
      // Access tokens carry the mapped claim too (the token was granted its scope, profile).
      const introspected = await oidc.tokenIntrospection(rp, tokens.access_token);
      assert.equal(introspected.department, 'R&D');
      assert.equal(introspected.idp, 'acme');
    } finally {
      await chromium.close();
    }
  });

  test('the same upstream user again: same local sub, nothing new created', async () => {
    const before = await userCount();
    const { page, verifier } = await signInUpstream(new Browser(broker.issuer), 'acme', users.ann);
    const tokens = await tokensAt(page, verifier);
    assert.equal(tokens.claims()!.sub, (await broker.store.identities.find('acme', users.ann.id))!.userId);
    assert.equal(await userCount(), before);
  });

  test('another connector with a trusted verified email links to the same user (link-verified-email)', async () => {
    const annId = (await broker.store.identities.find('acme', users.ann.id))!.userId;
    const before = await userCount();
    const { page, verifier } = await signInGitHub(new Browser(broker.issuer), 'ann-gh');
    const claims = (await tokensAt(page, verifier)).claims()!;
    assert.equal(claims.sub, annId, 'linked, not a second account');
    assert.equal(claims.idp, 'github');
    assert.equal(await userCount(), before);
    const linked = await lastAudit('identity.linked');
    assert.deepEqual({ user: linked.userId, connector: linked.connectorId, via: linked.details.via, created: linked.details.created }, { user: annId, connector: 'github', via: 'verified-email', created: false });
  });

  test('an unverified upstream email never links: the person is asked, and may make a separate account', async () => {
    const localEve = (await broker.store.users.findByUsername('eve'))!;
    const browser = new Browser(broker.issuer);
    const { page } = await signInUpstream(browser, 'acme', users.eve);
    assert.equal(page.status, 200);
    assert.match(text(page), /Link your Acme ID sign-in/);
    assert.match(text(page), /e\*\*\*@example\.org/, 'the email is shown masked');
    assert.doesNotMatch(page.html, /eve@example\.org/);
    assert.equal(await broker.store.identities.find('acme', users.eve.id), null, 'nothing linked yet');

    const created = await browser.submit(page, '/link/new');
    assert.ok(created.url.startsWith(RP), `separate account: ${created.url}`);
    const fed = (await broker.store.identities.find('acme', users.eve.id))!;
    assert.notEqual(fed.userId, localEve.id, 'not linked to the local eve');
    const separate = (await broker.store.users.findById(fed.userId))!;
    assert.equal(separate.email, null, 'the email stays with its owner');
    assert.deepEqual((await broker.store.identities.listForUser(localEve.id)).length, 0);
  });

  test('confirm: a weak local password that proves the account asks for a new one before the login finishes (password policy)', async () => {
    const local = await broker.store.users.create({ username: 'gina-local', email: 'gina@example.org', emailVerified: true });
    await broker.store.credentials.setPassword(local.id, await hashPassword('qwertyuiop12'));
    const browser = new Browser(broker.issuer);
    const { page: linkPage, verifier } = await signInUpstream(browser, 'acme-confirm', users.gina);
    assert.match(linkPage.html, /name="password"/);
    const asked = await browser.submit(linkPage, '/link/password', { password: 'qwertyuiop12' });
    assert.equal(asked.status, 200);
    assert.match(asked.html, /data-reason="policy"/);
    const done = await browser.submit(asked, '/password', { password: 'saffron-tundra-beacon-2', confirm: 'saffron-tundra-beacon-2' });
    assert.equal((await tokensAt(done, verifier)).claims()!.sub, local.id);
    assert.deepEqual(await broker.store.mfa.requiredActions(local.id), []);
    assert.equal((await broker.store.identities.find('acme-confirm', users.gina.id))!.userId, local.id);
  });

  test('confirm: the person proves the existing account with its password before the link is made', async () => {
    const localDave = (await broker.store.users.findByUsername('dave'))!;
    const browser = new Browser(broker.issuer);
    const { page: linkPage, verifier } = await signInUpstream(browser, 'acme-confirm', users.dave);
    assert.match(text(linkPage), /Link your Acme Partners sign-in/);
    assert.match(linkPage.html, /name="password"/);

    const wrong = await browser.submit(linkPage, '/link/password', { password: 'not-it' });
    assert.equal(wrong.status, 401);
    assert.match(text(wrong), /Invalid username or password/);
    assert.equal(await broker.store.identities.find('acme-confirm', users.dave.id), null, 'a wrong password links nothing');
    assert.equal((await lastAudit('identity.link_refused')).userId, localDave.id);

    const done = await browser.submit(wrong, '/link/password', { password: 'Dave#Local-harbor1' });
    const claims = (await tokensAt(done, verifier)).claims()!;
    assert.equal(claims.sub, localDave.id, 'the existing account, proven');
    assert.deepEqual([...(claims.amr as string[])].sort(), ['fed', 'pwd']);
    assert.equal((await broker.store.identities.find('acme-confirm', users.dave.id))!.userId, localDave.id);
    const linked = await lastAudit('identity.linked');
    assert.equal(linked.details.via, 'confirmed');

    // From now on that upstream signs dave in directly.
    const again = await signInUpstream(new Browser(broker.issuer), 'acme-confirm', users.dave);
    assert.equal((await tokensAt(again.page, again.verifier)).claims()!.sub, localDave.id);
  });

  test('confirm: the database gone while the password proves the account: the 503 page, no error log, nothing linked, and the same proof links once it is back', async () => {
    const local = await broker.store.users.create({ username: 'ivy-local', email: 'ivy@example.org', emailVerified: true });
    await broker.store.credentials.setPassword(local.id, await hashPassword('Ivy#Local-harbor1'));
    const browser = new Browser(broker.issuer);
    const { page: linkPage, verifier } = await signInUpstream(browser, 'acme-confirm', users.ivy);
    assert.match(linkPage.html, /name="password"/);
    const repository = broker.store.users;
    const findLoginAccount = repository.findLoginAccount;
    // The local account's lookup fails as the pool fails it when the server is gone.
    repository.findLoginAccount = () => Promise.reject(new DatabaseUnavailable(new Error('connect ECONNREFUSED')));
    const from = logs.length;
    let away: Awaited<ReturnType<Browser['submit']>>;
    try {
      away = await browser.submit(linkPage, '/link/password', { password: 'Ivy#Local-harbor1' });
    } finally {
      repository.findLoginAccount = findLoginAccount;
    }
    assert.equal(away.status, 503, away.html.slice(0, 300));
    assert.match(text(away), /temporarily unavailable/i);
    assert.match(away.headers.get('retry-after') ?? '', /^\d+$/);
    assert.deepEqual(errorLines(logs, from), [], 'no error line and no stack for our own database being away');
    assert.equal(await broker.store.identities.find('acme-confirm', users.ivy.id), null, 'nothing linked');
    // The attempt that never reached a verdict did not drop the pending link.
    const done = await browser.submit(linkPage, '/link/password', { password: 'Ivy#Local-harbor1' });
    assert.equal((await tokensAt(done, verifier)).claims()!.sub, local.id);
    assert.equal((await broker.store.identities.find('acme-confirm', users.ivy.id))!.userId, local.id);
  });

  test('confirm: too many wrong passwords drop the pending link', async () => {
    const browser = new Browser(broker.issuer);
    users.hal.claims.email = 'eve@example.org';
    try {
      let { page } = await signInUpstream(browser, 'acme-confirm', users.hal);
      for (let i = 0; i < 4; i++) page = await browser.submit(page, '/link/password', { password: `wrong-${i}` });
      const last = await browser.submit(page, '/link/password', { password: 'wrong-last' });
      assert.equal(last.status, 429);
      assert.match(text(last), /Too many failed attempts/);
      assert.equal(await broker.store.identities.find('acme-confirm', users.hal.id), null);
      // The link page's passwords count against the local account like the login form's: locked.
      const locked = await broker.store.knex('audit_events').where({ type: 'account.locked', connector_id: 'local' }).first('details');
      assert.equal(locked?.details.username, 'eve');
      const again = new Browser(broker.issuer);
      const retry = await signInUpstream(again, 'acme-confirm', users.hal);
      const refused = await again.submit(retry.page, '/link/password', { password: 'Eve#Local-harbor1' });
      assert.equal(refused.status, 429, 'even the right password waits out the lockout');
      assert.match(text(refused), /Too many failed sign-in attempts for this account/);
    } finally {
      users.hal.claims.email = 'hal@example.org';
    }
  });

  test('unlinking keeps the local user; tokens issued through that identity stop refreshing', async () => {
    const annId = (await broker.store.identities.find('acme', users.ann.id))!.userId;
    const { page, verifier } = await signInGitHub(new Browser(broker.issuer), 'ann-gh');
    const viaGitHub = await tokensAt(page, verifier);
    const fed = (await broker.store.identities.find('github', '4242'))!;
    assert.equal(await unlinkIdentity(broker.store, fed.id, { by: 'test' }), true);
    assert.ok(await broker.store.users.findById(annId), 'the user stays');
    assert.equal((await lastAudit('identity.unlinked')).connectorId, 'github');
    await assert.rejects(oidc.refreshTokenGrant(rp, viaGitHub.refresh_token!), (err: Error & { error?: string }) => err.error === 'invalid_grant');
    const again = await signInUpstream(new Browser(broker.issuer), 'acme', users.ann);
    assert.equal((await tokensAt(again.page, again.verifier)).claims()!.sub, annId, 'the other link still signs the same user in');
  });

  test('confirm through another upstream the account is linked to; a sign-in of someone else is refused', async () => {
    const annId = (await broker.store.identities.find('acme', users.ann.id))!.userId;
    const browser = new Browser(broker.issuer);
    const { page: linkPage, verifier } = await signInUpstream(browser, 'acme-confirm', users.annAlt);
    assert.match(text(linkPage), /Confirm with Acme ID/);
    assert.doesNotMatch(linkPage.html, /name="password"/, 'an upstream-created account has no password to offer');

    // Proving with someone else's account is refused and links nothing.
    const wrongAway = await browser.submit(linkPage, '/link/connector/acme');
    const wrongBack = await op.authorize(wrongAway.url, { username: users.frank.username, password: users.frank.password });
    const refused = await browser.go(wrongBack.url);
    assert.equal(refused.status, 401);
    assert.match(text(refused), /belongs to a different account/);
    assert.equal(await broker.store.identities.find('acme-confirm', users.annAlt.id), null);

    const away = await browser.submit(refused, '/link/connector/acme');
    const back = await op.authorize(away.url, { username: users.ann.username, password: users.ann.password });
    const done = await browser.go(back.url);
    assert.equal((await tokensAt(done, verifier)).claims()!.sub, annId);
    assert.equal((await broker.store.identities.find('acme-confirm', users.annAlt.id))!.userId, annId);
  });

  test('refresh re-checks the upstream with the stored tokens; a revoked upstream grant ends ours (invalid_grant, not a 500)', async () => {
    const { page, verifier } = await signInUpstream(new Browser(broker.issuer), 'acme', users.frank);
    const tokens = await tokensAt(page, verifier);
    const fed = (await broker.store.identities.find('acme', users.frank.id))!;
    const refreshed = await oidc.refreshTokenGrant(rp, tokens.refresh_token!);
    assert.ok(refreshed.access_token);
    const after = (await broker.store.identities.find('acme', users.frank.id))!;
    assert.notEqual(after.tokens, fed.tokens, 'the upstream rotated its refresh token and the new one was stored');

    assert.ok((await op.revokeGrants(users.frank.id)) >= 1);
    await assert.rejects(oidc.refreshTokenGrant(rp, refreshed.refresh_token!), (err: Error & { error?: string; status?: number }) => err.error === 'invalid_grant');
    const denied = await lastAudit('token.refresh_denied');
    assert.deepEqual({ user: denied.userId, reason: denied.details.reason }, { user: fed.userId, reason: 'reauth_needed' });
  });

  test('concurrent refreshes of one identity take turns: the rotating upstream refresh token is never presented twice', async () => {
    // Two apps sessions of the same person share one upstream grant.
    const sessions = [];
    for (let i = 0; i < 2; i++) {
      const { page, verifier } = await signInUpstream(new Browser(broker.issuer), 'acme', users.gina);
      sessions.push(await tokensAt(page, verifier));
    }
    let refreshTokens = sessions.map((s) => s.refresh_token!);
    for (let round = 0; round < 3; round++) {
      const results = await Promise.all(refreshTokens.map((rt) => oidc.refreshTokenGrant(rp, rt)));
      refreshTokens = results.map((r) => r.refresh_token!);
    }
    // Had two refreshes raced with the same upstream token, the upstream would have revoked the grant.
    const after = await oidc.refreshTokenGrant(rp, refreshTokens[0]);
    assert.ok(after.access_token);
    assert.equal((await broker.store.audit.list({ type: 'token.refresh_denied', userId: (await broker.store.identities.find('acme', users.gina.id))!.userId })).length, 0);
  });

  test('negatives: forged state, replayed callback, wrong iss, nonce mismatch: rejected, audited, nothing linked', async () => {
    const before = await userCount();
    const forged = await new Browser(broker.issuer).go(`${broker.issuer}/callback/acme?state=forged&code=x&iss=${encodeURIComponent(op.issuer)}`);
    assert.equal(forged.status, 400);
    assert.match(text(forged), /invalid, expired or was already used/);
    assert.equal((await lastAudit('login.rejected')).details.reason, 'unknown_state');

    // Replay: a callback that already completed cannot be used again, even in its own browser.
    const browser = new Browser(broker.issuer);
    const { callback, verifier } = await viaUpstream(browser, 'acme', users.ann);
    await tokensAt(await browser.go(callback), verifier);
    const replay = await browser.go(callback);
    assert.equal(replay.status, 400);
    assert.equal((await lastAudit('login.rejected')).details.reason, 'replayed_or_mismatched_state');

    // Mix-up defence (RFC 9207): a response claiming another issuer.
    const mixup = new Browser(broker.issuer);
    const wrongIss = await viaUpstream(mixup, 'acme', users.frank);
    const edited = new URL(wrongIss.callback);
    edited.searchParams.set('iss', 'https://evil.example');
    const refused = await mixup.go(edited.href);
    assert.equal(refused.status, 401);
    assert.match(text(refused), /Acme ID returned an error/);
    const failure = await lastAudit('login.failure');
    assert.equal(failure.details.reason, 'upstream_error');
    assert.match(String(failure.details.detail), /iss/i);

    // A validly signed ID token for another login (nonce mismatch).
    op.tamper = { nonce: 'someone-elses-nonce' };
    try {
      const nonce = new Browser(broker.issuer);
      const { page } = await signInUpstream(nonce, 'acme', users.frank);
      assert.equal(page.status, 401);
      assert.match(text(page), /Acme ID returned an error/);
      assert.match(String((await lastAudit('login.failure')).details.detail), /nonce/i);
    } finally {
      op.tamper = undefined;
    }
    assert.equal(await userCount(), before, 'no user created by any of them');
  });

  test('failure pages: cancelled, upstream down or too slow at callback, unreachable at start; other connectors keep working', async () => {
    const cancel = new Browser(broker.issuer);
    const { away } = await toUpstream(cancel, 'acme');
    const cancelled = await cancel.go((await op.authorize(away.url, { cancel: true })).url);
    assert.equal(cancelled.status, 401);
    assert.match(text(cancelled), /Sign-in was cancelled/);

    const down = new Browser(broker.issuer);
    const { callback } = await viaUpstream(down, 'acme', users.frank);
    await op.setDown(true);
    try {
      const page = await down.go(callback);
      assert.equal(page.status, 503);
      assert.match(text(page), /Acme ID is unavailable right now\. Try again later or choose another way to sign in\./);
      assert.doesNotMatch(page.html, /ECONNREFUSED|fetch failed|at \//);
    } finally {
      await op.setDown(false);
    }

    const slow = new Browser(broker.issuer);
    const late = await viaUpstream(slow, 'acme', users.frank);
    op.delayMs = 4000;
    try {
      const page = await slow.go(late.callback);
      assert.equal(page.status, 503);
      assert.match(text(page), /Acme ID is unavailable right now/);
    } finally {
      op.delayMs = 0;
    }

    const gone = new Browser(broker.issuer);
    const { away: stayed } = await toUpstream(gone, 'gone');
    assert.equal(stayed.status, 503);
    assert.match(text(stayed), /Gone IdP is unavailable right now/);
    // The same login page still offers the working connectors.
    assert.match(text(stayed), /Continue with Acme ID/);
    const ok = await signInUpstream(gone, 'acme', users.frank);
    assert.ok(ok.page.url.startsWith(RP));
  });

  test('a refresh while the upstream is down answers 503 with Retry-After; the same refresh token works once it is back', async () => {
    const { page, verifier } = await signInUpstream(new Browser(broker.issuer), 'acme', users.ann);
    const tokens = await tokensAt(page, verifier);
    const refresh = () => fetch(`${broker.issuer}/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`rp:${RP_SECRET}`).toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token! }),
    });
    await op.setDown(true);
    let res: Response;
    try {
      res = await refresh();
    } finally {
      await op.setDown(false);
    }
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), '30');
    assert.equal(((await res.json()) as { error: string }).error, 'temporarily_unavailable');
    // Nothing was spent or revoked by the outage: the same refresh token works now.
    const back = await refresh();
    assert.equal(back.status, 200);
    assert.ok(((await back.json()) as { access_token?: string }).access_token);
  });

  test('a callback carried to another browser links nothing: no user, no federated identity, no identity.linked', async () => {
    const before = await userCount();
    const linked = async () => (await broker.store.audit.list({ type: 'identity.linked', limit: 1000 })).length;
    const linkedBefore = await linked();
    // hal has never signed in through acme, so completing this callback would create a user.
    const who = users.hal;
    const { callback } = await viaUpstream(new Browser(broker.issuer), 'acme', who);
    const elsewhere = await new Browser(broker.issuer).go(callback);
    assert.equal(elsewhere.status, 400);
    assert.ok(!elsewhere.url.startsWith(RP));
    assert.equal(await broker.store.identities.find('acme', who.id), null, 'no federated identity');
    assert.equal(await userCount(), before, 'no user');
    assert.equal(await linked(), linkedBefore, 'no identity.linked event');
  });
});
