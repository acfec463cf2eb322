// Two broker instances on one PostgreSQL database behave as one issuer: a session made on one
// is honoured by the other, both publish the same JWKS, and a key rotation reaches both.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as oidc from 'openid-client';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { freshPostgresDatabase } from '../helpers/postgres.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { Browser, findForm } from '../helpers/browser.ts';
import { signIn } from '../helpers/login-flow.ts';
import { freePort } from '../helpers/free-port.ts';
import { rotateSigningKeys } from '../../src/oidc/signing-keys.ts';

const RP = 'http://127.0.0.1:9/cb';

describe('two instances on one PostgreSQL database', () => {
  let a: TestBroker;
  let b: TestBroker;
  let db: Awaited<ReturnType<typeof freshPostgresDatabase>>;

  before(async () => {
    db = await freshPostgresDatabase();
    if ('skip' in db) return;
    // Both instances serve the same public issuer, as behind a load balancer; each listens on
    // its own port and the test talks to each directly.
    const issuerPort = await freePort();
    const config = {
      issuer: `http://127.0.0.1:${issuerPort}`,
      clients: [
        { id: 'rp', secret: 'rp-secret-0123456789abcdef', redirectUris: [RP], firstParty: true },
        // No refresh tokens: a code exchange saves only its access token.
        { id: 'rp-codes', secret: 'rp-secret-0123456789abcdef', redirectUris: [RP], firstParty: true, grantTypes: ['authorization_code'] },
      ],
      users: [{ username: 'alice', password: 'alice-password-1', email: 'alice@example.org' }],
    };
    // Started together: they race on migrations, key creation and user seeding.
    [a, b] = await Promise.all([
      startTestBroker({ databaseUrl: db.url, config: { ...config, http: { listen: `127.0.0.1:${await freePort()}` } } }),
      startTestBroker({ databaseUrl: db.url, config: { ...config, http: { listen: `127.0.0.1:${await freePort()}` } } }),
    ]);
  });

  after(async () => {
    await Promise.all([a?.close(), b?.close()]);
    if (db && !('skip' in db)) await db.drop();
  });

  /** Sends a request meant for the public issuer to one specific instance. */
  function via(instance: TestBroker): oidc.CustomFetch {
    return (input, init) => {
      const url = new URL(input);
      url.host = new URL(instance.url).host;
      return fetch(url, init as RequestInit);
    };
  }

  test('same JWKS, same keys in the database', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const [ja, jb] = await Promise.all([fetch(`${a.url}/jwks`).then((r) => r.json()), fetch(`${b.url}/jwks`).then((r) => r.json())]);
    assert.deepEqual(ja, jb);
    const algs = (ja.keys as { alg: string }[]).map((k) => k.alg).sort();
    assert.deepEqual(algs, ['ES256', 'RS256'], 'exactly one key per algorithm despite the concurrent start');
    assert.equal((await a.store.users.list({})).total, 1, 'the static user was seeded once');
  });

  test('a session made on one instance is valid on the other', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const issuer = a.config.issuer;
    const rpA = await oidc.discovery(new URL(issuer), 'rp', 'rp-secret-0123456789abcdef', undefined, { execute: [oidc.allowInsecureRequests], [oidc.customFetch]: via(a) });
    const rpB = await oidc.discovery(new URL(issuer), 'rp', 'rp-secret-0123456789abcdef', undefined, { execute: [oidc.allowInsecureRequests], [oidc.customFetch]: via(b) });
    rpA[oidc.customFetch] = via(a);
    rpB[oidc.customFetch] = via(b);

    // Log in on A (the browser talks to A's port; cookies are host-scoped, not port-scoped).
    const browserA = new Browser(a.url, { publicOrigin: a.config.issuer });
    const verifier1 = oidc.randomPKCECodeVerifier();
    const url1 = oidc.buildAuthorizationUrl(rpA, { redirect_uri: RP, scope: 'openid', code_challenge: await oidc.calculatePKCECodeChallenge(verifier1), code_challenge_method: 'S256', state: 's1' });
    url1.host = new URL(a.url).host;
    const cb1 = await signIn(browserA, url1.href, { username: 'alice', password: 'alice-password-1' });
    const t1 = await oidc.authorizationCodeGrant(rpA, new URL(cb1), { pkceCodeVerifier: verifier1, expectedState: 's1' });

    // Same cookies, instance B, prompt=none: B finds the session A created.
    const browserB = new Browser(b.url, { publicOrigin: b.config.issuer });
    for (const [k, v] of browserA.cookies) browserB.cookies.set(k, v);
    const verifier2 = oidc.randomPKCECodeVerifier();
    const url2 = oidc.buildAuthorizationUrl(rpB, { redirect_uri: RP, scope: 'openid', prompt: 'none', code_challenge: await oidc.calculatePKCECodeChallenge(verifier2), code_challenge_method: 'S256', state: 's2' });
    url2.host = new URL(b.url).host;
    const silent = await browserB.go(url2.href);
    assert.equal(new URL(silent.url).searchParams.get('error'), null, `silent auth on B failed: ${silent.url}`);
    const t2 = await oidc.authorizationCodeGrant(rpB, new URL(silent.url), { pkceCodeVerifier: verifier2, expectedState: 's2' });
    assert.equal(t2.claims()!.sub, t1.claims()!.sub);
    assert.equal(t2.claims()!.sid, t1.claims()!.sid, 'the same session');

    // A token issued by A is introspected as active by B.
    assert.equal((await oidc.tokenIntrospection(rpB, t1.access_token)).active, true);
  });

  test('one authorization code sent to both instances at once: exactly one gets tokens, the other invalid_grant', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const browser = new Browser(a.url, { publicOrigin: a.config.issuer });
    // Several codes, each redeemed twice at the same moment (once per instance, and once more
    // on one instance): a race the lookup before the consumption would let both win. Codes of a
    // client with refresh tokens, then of one without (its exchange saves only an access token).
    for (let i = 0; i < 10; i++) {
      const clientId = i < 5 ? 'rp' : 'rp-codes';
      const rp = await oidc.discovery(new URL(a.config.issuer), clientId, 'rp-secret-0123456789abcdef', undefined, { execute: [oidc.allowInsecureRequests], [oidc.customFetch]: via(a) });
      const redeem = (instance: TestBroker, code: string, verifier: string) =>
        fetch(`${instance.url}/token`, {
          method: 'POST',
          headers: { authorization: `Basic ${Buffer.from(`${clientId}:rp-secret-0123456789abcdef`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: RP, code_verifier: verifier }),
        }).then(async (res) => ({ status: res.status, body: (await res.json()) as { access_token?: string; refresh_token?: string; error?: string } }));
      const verifier = oidc.randomPKCECodeVerifier();
      const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: RP, scope: 'openid', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state: `race${i}` });
      url.host = new URL(a.url).host;
      const callback = i === 0 ? await signIn(browser, url.href, { username: 'alice', password: 'alice-password-1' }) : (await browser.go(url.href)).url;
      const code = new URL(callback).searchParams.get('code');
      assert.ok(code, `a code: ${callback}`);
      const answers = await Promise.all(i % 2 ? [redeem(a, code, verifier), redeem(a, code, verifier)] : [redeem(a, code, verifier), redeem(b, code, verifier)]);
      const won = answers.filter((x) => x.status === 200);
      assert.equal(won.length, 1, `exactly one redemption of code ${i} succeeds: ${JSON.stringify(answers)}`);
      const lost = answers.find((x) => x.status !== 200)!;
      assert.equal(lost.status, 400);
      assert.equal(lost.body.error, 'invalid_grant');
      assert.equal(typeof won[0]!.body.refresh_token, clientId === 'rp' ? 'string' : 'undefined');
      if (i !== 4 && i !== 9) continue;
      // The code used once more, after the race: a replay, which also revokes what it gave.
      const introspect = () => fetch(`${b.url}/token/introspection`, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from(`${clientId}:rp-secret-0123456789abcdef`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token: won[0]!.body.access_token! }),
      }).then(async (res) => ((await res.json()) as { active: boolean }).active);
      assert.equal(await introspect(), true, 'the winner\'s access token is active');
      const replay = await redeem(b, code, verifier);
      assert.equal(replay.body.error, 'invalid_grant');
      assert.equal(await introspect(), false, 'the replay revoked the grant the code gave');
    }
  });

  test('one finished login resumed twice at once (on both instances, or twice on one): one code, the other resume refused', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const rp = await oidc.discovery(new URL(a.config.issuer), 'rp', 'rp-secret-0123456789abcdef', undefined, { execute: [oidc.allowInsecureRequests], [oidc.customFetch]: via(a) });
    for (let i = 0; i < 6; i++) {
      // A new browser each time: a login that ends with a redirect to its resume, not yet followed.
      const browser = new Browser(a.url, { publicOrigin: a.config.issuer });
      const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: RP, scope: 'openid', code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()), code_challenge_method: 'S256', state: `resume${i}` });
      url.host = new URL(a.url).host;
      const page = await browser.go(url.href);
      const form = findForm(page.html, '/login');
      assert.ok(form, `a login form at ${page.url}`);
      const posted = await browser.request(new URL(form.action, page.url).href, { form: { ...form.hidden, username: 'alice', password: 'alice-password-1' } });
      const resume = new URL(posted.headers.get('location') ?? '', a.config.issuer);
      assert.match(resume.pathname, /^\/auth\/[^/]+$/, `the login redirects to its resume: ${posted.status} ${resume.href}`);
      const cookie = [...browser.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
      const send = (instance: TestBroker) => via(instance)(resume.href, { method: 'GET', body: undefined, headers: { cookie, accept: 'text/html' }, redirect: 'manual' })
        .then(async (res) => ({ status: res.status, location: res.headers.get('location') ?? '', cookies: res.headers.getSetCookie(), body: await res.text() }));
      const answers = await Promise.all(i % 2 ? [send(a), send(a)] : [send(a), send(b)]);
      const coded = answers.filter((x) => x.location.startsWith(RP) && new URL(x.location).searchParams.has('code'));
      assert.equal(coded.length, 1, `exactly one resume issues a code: ${JSON.stringify(answers.map((x) => [x.status, x.location]))}`);
      const refused = answers.find((x) => x !== coded[0])!;
      assert.equal(refused.status, 400, `the other resume is refused: ${refused.status} ${refused.location}`);
      assert.match(refused.body, /<html/i, 'as an error page');
      assert.deepEqual(refused.cookies, [], 'the refused resume changes no cookie (the browser keeps the session the other one set)');
    }
  });

  test('a key rotation reaches both instances; old tokens still verify', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const before = (await fetch(`${a.url}/jwks`).then((r) => r.json())).keys as { kid: string }[];
    await rotateSigningKeys(a.store, ['ES256', 'RS256'], 3600);
    assert.equal(await a.reloadKeys(), true);
    assert.equal(await b.reloadKeys(), true);
    const [ja, jb] = await Promise.all([fetch(`${a.url}/jwks`).then((r) => r.json()), fetch(`${b.url}/jwks`).then((r) => r.json())]);
    assert.deepEqual(ja, jb);
    const kids = (ja.keys as { kid: string }[]).map((k) => k.kid);
    assert.equal(kids.length, 4, 'two new keys plus the two retired ones');
    for (const k of before) assert.ok(kids.includes(k.kid), 'retired keys stay published');

    const issuer = b.config.issuer;
    const rp = await oidc.discovery(new URL(issuer), 'rp', 'rp-secret-0123456789abcdef', undefined, { execute: [oidc.allowInsecureRequests], [oidc.customFetch]: via(b) });
    rp[oidc.customFetch] = via(b);
    const verifier = oidc.randomPKCECodeVerifier();
    const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: RP, scope: 'openid', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state: 's3' });
    url.host = new URL(b.url).host;
    const cb = await signIn(new Browser(b.url, { publicOrigin: b.config.issuer }), url.href, { username: 'alice', password: 'alice-password-1' });
    const tokens = await oidc.authorizationCodeGrant(rp, new URL(cb), { pkceCodeVerifier: verifier, expectedState: 's3' });
    const kid = decodeProtectedHeader(tokens.id_token!).kid!;
    assert.ok(!before.some((k) => k.kid === kid), 'new tokens are signed with a new key');
    const jwks = createRemoteJWKSet(new URL(`${a.url}/jwks`));
    await jwtVerify(tokens.id_token!, jwks, { issuer });
  });
});
