// The whole chain through a real SAML IdP: an openid-client RP -> Keybridge -> SimpleSAMLphp's
// login form -> signed assertion -> Keybridge's tokens for the local user, plus what the broker
// itself adds around the saml connector: IdP-initiated login through the client's
// initiate_login_uri, single logout both ways (with back-channel logout to the app), bounded
// refresh, the replay guard across two instances on one PostgreSQL, failure pages and audit.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import * as oidc from 'openid-client';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { freshPostgresDatabase } from '../helpers/postgres.ts';
import { freePort } from '../helpers/free-port.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { findForm } from '../helpers/browser.ts';
import { chromiumMissing, launchChromium } from '../helpers/chromium.ts';
import { SamlAgent, simpleSamlPhpMissing, startSimpleSamlPhp, type SimpleSamlPhp } from '../helpers/simplesamlphp.ts';
import { decodePostMessage } from '../../src/saml/xml-guard.ts';
import { deepMessage, wideMessage } from '../connectors/fixtures/saml/bombs.ts';

const RP_SECRET = 'rp-secret-for-the-saml-suite-0123';

/** An RSA key and self-signed certificate for the broker's SAML service provider side. */
function spKeyPair(dir: string) {
  const key = path.join(dir, 'sp.key');
  const cert = path.join(dir, 'sp.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '30', '-sha256', '-subj', '/CN=keybridge test sp', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { key, cert, certPem: readFileSync(cert, 'utf8') };
}

type Page = Awaited<ReturnType<SamlAgent['go']>>;
const text = (page: Page) => page.html.replace(/<[^>]+>/g, ' ').replace(/&#39;/g, "'").replace(/\s+/g, ' ');
const b64 = (xml: string) => Buffer.from(xml).toString('base64');
const unb64 = (value: string) => Buffer.from(value, 'base64').toString('utf8');

describe('SAML connector logins through Keybridge (SimpleSAMLphp upstream)', () => {
  let missing: string | null = null;
  let ssp: SimpleSamlPhp;
  let a: TestBroker;
  let b: TestBroker;
  let db: Awaited<ReturnType<typeof freshPostgresDatabase>>;
  let rpServer: http.Server;
  let rp: oidc.Configuration;
  let tmp: string;
  let RP: string;
  const logoutTokens: string[] = [];

  before(async () => {
    missing = simpleSamlPhpMissing();
    if (missing) return;
    db = await freshPostgresDatabase();
    if ('skip' in db) {
      missing = db.skip;
      return;
    }
    tmp = mkdtempSync(path.join(os.tmpdir(), 'kb-saml-'));
    const sp = spKeyPair(tmp);

    rpServer = http.createServer((req, res) => {
      if (req.url === '/backchannel' && req.method === 'POST') {
        let body = '';
        req.on('data', (c) => (body += c));
        req.on('end', () => {
          logoutTokens.push(new URLSearchParams(body).get('logout_token') ?? '');
          res.end();
        });
        return;
      }
      res.end('relying party');
    });
    await new Promise<void>((r) => rpServer.listen(0, '127.0.0.1', () => r()));
    RP = `http://127.0.0.1:${(rpServer.address() as AddressInfo).port}`;

    const port = await freePort();
    const issuer = `http://127.0.0.1:${port}`;
    const entry = (id: string) => ({
      entityId: `${issuer}/connectors/${id}/metadata`,
      acsUrl: `${issuer}/callback/${id}`,
      sloUrl: `${issuer}/callback/${id}/logout`,
      signingCertPem: sp.certPem,
    });
    ssp = await startSimpleSamlPhp({ serviceProviders: ['corp', 'corp-post', 'corp-init', 'corp-reauth'].map(entry) });

    const samlConfig = (extra: Record<string, unknown> = {}) => ({
      idp: { metadataUrl: ssp.metadataUrl },
      sp: { privateKeyFile: sp.key, certificateFile: sp.cert },
      ...extra,
    });
    const config = {
      issuer,
      clients: [{
        id: 'rp', secret: RP_SECRET, firstParty: true,
        redirectUris: [`${RP}/cb`], postLogoutRedirectUris: [`${RP}/signed-out`],
        backchannelLogoutUri: `${RP}/backchannel`, initiateLoginUri: `${RP}/initiate`,
      }],
      connectors: [
        {
          id: 'corp', type: 'saml', name: 'Corp SSO',
          mappers: { groups: { prefix: 'corp:' }, claims: [{ attribute: 'eduPersonAffiliation', claim: 'affiliation', scope: 'profile' }] },
          config: samlConfig(),
        },
        { id: 'corp-post', type: 'saml', name: 'Corp SSO (POST)', config: samlConfig({ authnRequestBinding: 'post' }) },
        { id: 'corp-init', type: 'saml', name: 'Corp portal', config: samlConfig({ idpInitiated: { enabled: true, client: 'rp' } }) },
        { id: 'corp-reauth', type: 'saml', name: 'Corp strict', config: samlConfig({ refresh: { mode: 'reauth' } }) },
      ],
    };
    // Two instances of one issuer on one database, as behind a load balancer: a listens on the
    // issuer's port, b elsewhere (tests talk to b directly).
    a = await startTestBroker({ port, databaseUrl: db.url, config });
    b = await startTestBroker({ databaseUrl: db.url, config: { ...config, http: { listen: `127.0.0.1:${await freePort()}` } } });
    rp = await oidc.discovery(new URL(issuer), 'rp', RP_SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
  });

  after(async () => {
    await a?.close();
    await b?.close();
    await ssp?.stop();
    rpServer?.close();
    if (db && !('skip' in db)) await db.drop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  const ready = (t: { skip: (m: string) => void }) => {
    if (missing) {
      skipLoudly(t as never, missing);
      return false;
    }
    return true;
  };

  /** Without offline_access, the grant (and its refresh token) ends with the browser session. */
  async function authorizationUrl(scope = 'openid profile email groups') {
    const verifier = oidc.randomPKCECodeVerifier();
    const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: `${RP}/cb`, scope, code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state: 'st' });
    return { url: url.href, verifier };
  }

  /** RP -> Keybridge login page -> the connector's button -> SimpleSAMLphp's login form. */
  async function toIdp(agent: SamlAgent, connectorId: string) {
    const { url, verifier } = await authorizationUrl();
    const login = await agent.go(url);
    assert.equal(login.status, 200, text(login).slice(0, 300));
    const button = findForm(login.html, `/connector/${connectorId}`);
    assert.ok(button, `a button for ${connectorId} on the login page`);
    let page = await agent.go(new URL(button.action, login.url).href, { form: button.hidden });
    if (page.url.startsWith(a.issuer)) {
      // HTTP-POST binding: Keybridge's self-submitting form carries the AuthnRequest.
      const post = SamlAgent.form(page.html, page.url);
      assert.ok(post && post.fields.SAMLRequest, `a POST-binding form: ${text(page).slice(0, 300)}`);
      page = await agent.go(post.action, { form: post.fields });
    }
    assert.ok(page.url.startsWith(ssp.baseUrl), `at the IdP: ${page.url}`);
    return { page, verifier };
  }

  /** Through SimpleSAMLphp's login form: returns the SAML POST it would make to Keybridge's ACS. */
  async function assertionFor(agent: SamlAgent, connectorId: string, user = 'alice', password = `${user}pass`) {
    const { page, verifier } = await toIdp(agent, connectorId);
    const answer = await agent.login(page, user, password);
    const post = SamlAgent.form(answer.html, answer.url);
    assert.ok(post?.fields.SAMLResponse, `SimpleSAMLphp answered with a SAMLResponse: ${text(answer).slice(0, 300)}`);
    assert.equal(post.action, `${a.issuer}/callback/${connectorId}`);
    return { post, verifier };
  }

  const toRp = (u: string) => u.startsWith(RP);

  async function tokensFrom(page: Page, verifier: string) {
    assert.ok(page.url.startsWith(`${RP}/cb`), `back at the app: ${page.status} ${page.url} ${text(page).slice(0, 300)}`);
    return oidc.authorizationCodeGrant(rp, new URL(page.url), { pkceCodeVerifier: verifier, expectedState: 'st' });
  }

  async function signIn(agent: SamlAgent, connectorId: string, user = 'alice') {
    const { post, verifier } = await assertionFor(agent, connectorId, user);
    return tokensFrom(await agent.go(post.action, { form: post.fields, stopAt: toRp }), verifier);
  }

  const lastAudit = async (type: string) => (await a.store.audit.list({ type, limit: 1 }))[0];

  test('SP metadata names the ACS, the SLO endpoint and the signing key', async (t) => {
    if (!ready(t)) return;
    const res = await fetch(`${a.issuer}/connectors/corp/metadata`);
    assert.equal(res.status, 200);
    const xml = await res.text();
    assert.match(xml, new RegExp(`entityID="${a.issuer}/connectors/corp/metadata"`));
    assert.match(xml, new RegExp(`Location="${a.issuer}/callback/corp"`));
    assert.match(xml, new RegExp(`Location="${a.issuer}/callback/corp/logout"`));
    assert.match(xml, /KeyDescriptor[^>]*use="signing"/);
    assert.equal((await fetch(`${a.issuer}/connectors/nope/metadata`)).status, 404);
  });

  test('Chromium: app -> Keybridge -> SimpleSAMLphp login form -> assertion -> tokens with mapped attributes and groups', async (t) => {
    if (!ready(t)) return;
    const why = chromiumMissing();
    if (why) return skipLoudly(t, why);
    const chromium = await launchChromium();
    try {
      const page = await chromium.newPage();
      const { url, verifier } = await authorizationUrl();
      await page.goto(url);
      await page.getByRole('button', { name: 'Continue with Corp SSO', exact: true }).click();
      await page.waitForURL(`${ssp.baseUrl}/**`);
      await page.fill('input[name=username]', 'alice');
      await page.fill('input[name=password]', 'alicepass');
      // SimpleSAMLphp's page posts the assertion to Keybridge by itself; Keybridge sends the browser on to the app.
      await Promise.all([page.waitForURL(`${RP}/cb?**`), page.click('button[type=submit], input[type=submit]')]);
      const tokens = await oidc.authorizationCodeGrant(rp, new URL(page.url()), { pkceCodeVerifier: verifier, expectedState: 'st' });
      const claims = tokens.claims()!;
      const users = await a.store.users.list({ limit: 50 });
      const alice = users.items.find((u) => u.email === 'alice@example.org');
      assert.ok(alice, 'a local user was created for the SAML identity');
      assert.equal(claims.sub, alice.id);
      assert.equal(claims.idp, 'corp');
      assert.ok((claims.amr as string[]).includes('fed'));
      assert.equal(claims.email, 'alice@example.org');
      assert.equal(claims.name, 'Alice Anderson');
      assert.deepEqual([...(claims.groups as string[])].sort(), ['corp:admins', 'corp:engineering']);
      assert.deepEqual(claims.affiliation, ['member', 'employee']);
      const userinfo = await oidc.fetchUserInfo(rp, tokens.access_token, claims.sub);
      assert.equal(userinfo.preferred_username, 'alice');
    } finally {
      await chromium.close();
    }
  });

  test('HTTP-POST binding for the AuthnRequest: Keybridge posts it through a self-submitting page', async (t) => {
    if (!ready(t)) return;
    const tokens = await signIn(new SamlAgent(), 'corp-post', 'bob');
    assert.equal(tokens.claims()!.idp, 'corp-post');
    assert.equal(tokens.claims()!.email, 'bob@example.org');
  });

  test('a tampered assertion: refused with a clear page and an audit event naming the signature', async (t) => {
    if (!ready(t)) return;
    const agent = new SamlAgent();
    const { post } = await assertionFor(agent, 'corp');
    const forged = b64(unb64(post.fields.SAMLResponse).replace('alice@example.org', 'admin@example.org'));
    const back = await agent.go(post.action, { form: { ...post.fields, SAMLResponse: forged }, stopAt: toRp });
    assert.equal(back.status, 401);
    assert.match(text(back), /Corp SSO returned an error/);
    assert.doesNotMatch(back.html, /signature|<\?xml|SAMLResponse|\bat [a-z]+ \(/i);
    const audit = await lastAudit('login.failure');
    assert.equal(audit.connectorId, 'corp');
    assert.match(String((audit.details as { detail?: string }).detail), /signature/i);
    assert.equal(await a.store.users.findByEmail('admin@example.org'), null);
  });

  test('a replayed response is refused, here and on the second instance', async (t) => {
    if (!ready(t)) return;
    const agent = new SamlAgent();
    const { post, verifier } = await assertionFor(agent, 'corp');
    await tokensFrom(await agent.go(post.action, { form: post.fields, stopAt: toRp }), verifier);
    const again = await agent.go(post.action, { form: post.fields, stopAt: toRp });
    assert.equal(again.status, 400);
    assert.match(text(again), /invalid, expired or was already used/);
    assert.equal((await lastAudit('login.rejected')).details.reason, 'replayed_or_mismatched_state');
    const elsewhere = await new SamlAgent().go(`${b.url}/callback/corp`, { form: post.fields, stopAt: toRp });
    assert.equal(elsewhere.status, 400);
  });

  test('an unsolicited response to a connector without IdP-initiated login is refused', async (t) => {
    if (!ready(t)) return;
    const agent = new SamlAgent();
    const page = await agent.go(ssp.idpInitiatedUrl(`${a.issuer}/connectors/corp/metadata`));
    const post = SamlAgent.form((await agent.login(page, 'alice', 'alicepass')).html, ssp.baseUrl);
    assert.ok(post?.fields.SAMLResponse);
    const back = await agent.go(post.action, { form: post.fields, stopAt: toRp });
    assert.equal(back.status, 400);
    assert.equal((await lastAudit('login.rejected')).details.reason, 'unknown_state');
  });

  test('XML with a DTD is refused before parsing', async (t) => {
    if (!ready(t)) return;
    const agent = new SamlAgent();
    const { post } = await assertionFor(agent, 'corp');
    const bomb = '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>';
    const xml = unb64(post.fields.SAMLResponse).replace(/^<\?xml[^>]*\?>/, '');
    const back = await agent.go(post.action, { form: { ...post.fields, SAMLResponse: b64(`${bomb}${xml.replace('alice@example.org', '&d;')}`) }, stopAt: toRp });
    assert.equal(back.status, 401);
    assert.match(String((await lastAudit('login.failure')).details.detail), /DTD|DOCTYPE/i);
  });

  /** A sign-in started at Keybridge up to its redirect to SimpleSAMLphp (not followed): the attempt's RelayState. */
  async function pendingAttempt(agent: SamlAgent, connectorId = 'corp') {
    const { url } = await authorizationUrl();
    const login = await agent.go(url);
    const button = findForm(login.html, `/connector/${connectorId}`);
    assert.ok(button, `a button for ${connectorId}`);
    const atIdp = await agent.go(new URL(button.action, login.url).href, { form: button.hidden, stopAt: (u) => u.startsWith(ssp.baseUrl) });
    const relayState = new URL(atIdp.url).searchParams.get('RelayState');
    assert.ok(relayState, `a RelayState in ${atIdp.url.slice(0, 200)}`);
    return relayState;
  }

  test('XML nested 25,000 deep (a fake Signature block) or 60,000 wide at the ACS: refused before any parser, audited with the limit; /healthz stays responsive', async (t) => {
    if (!ready(t)) return;
    const deep = b64(deepMessage(25_000, 'Response', ssp.entityId));
    // The guard, measured directly: the first thing the connector does with a SAMLResponse.
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      assert.equal((decodePostMessage(deep) as { reason?: string }).reason, 'too_deep');
      const ms = performance.now() - started;
      assert.ok(ms < 50, `refused in ${ms.toFixed(1)} ms`);
    }
    // Over HTTP, in a sign-in started here: the login page again with the generic error, and the audit names the limit.
    const refusedFor = async (samlResponse: string, detail: string) => {
      const agent = new SamlAgent();
      const relayState = await pendingAttempt(agent);
      const back = await agent.go(`${a.issuer}/callback/corp`, { form: { SAMLResponse: samlResponse, RelayState: relayState }, stopAt: toRp });
      assert.equal(back.status, 401);
      assert.match(text(back), /Corp SSO returned an error/);
      const audit = await lastAudit('login.failure');
      assert.equal(audit.connectorId, 'corp');
      assert.equal(audit.details.detail, detail);
    };
    await refusedFor(deep, 'too deep: elements nested more than 64 levels');
    await refusedFor(b64(wideMessage(60_000, 'Response', ssp.entityId)), 'too many elements: more than 5000');
    // IdP-initiated (no attempt of ours): refused the same way.
    const unsolicited = await new SamlAgent().go(`${a.issuer}/callback/corp-init`, { form: { SAMLResponse: deep }, stopAt: toRp });
    assert.equal(unsolicited.status, 401);
    const audit = await lastAudit('login.failure');
    assert.equal(audit.details.detail, 'too deep: elements nested more than 64 levels');
    assert.equal(audit.details.unsolicited, true);

    // Bombs in flight do not stall the process: /healthz answers among them (the issue saw 4.8 s).
    const bombs = Array.from({ length: 4 }, () => fetch(`${a.issuer}/callback/corp-init`, { method: 'POST', body: new URLSearchParams({ SAMLResponse: deep }), redirect: 'manual' }));
    const asked = performance.now();
    const health = await fetch(`${a.issuer}/healthz`);
    const waited = performance.now() - asked;
    assert.equal(health.status, 200);
    assert.ok(waited < 1000, `/healthz answered in ${waited.toFixed(0)} ms`);
    for (const res of await Promise.all(bombs)) assert.equal(res.status, 401);
  });

  test('NUL bytes, control characters and invalid UTF-8 in SAMLResponse or RelayState at the ACS: a clean 4xx, never a 500', async (t) => {
    if (!ready(t)) return;
    const xml = '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_n" Version="2.0"><saml:Issuer xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">x</saml:Issuer></samlp:Response>';
    const post = (relayState: string, body: Buffer | string) =>
      fetch(`${a.issuer}/callback/corp`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: typeof body === 'string' ? `${body}&RelayState=${relayState}` : new Uint8Array(Buffer.concat([body, Buffer.from(`&RelayState=${relayState}`)])) });
    const refusedAs = async (samlResponse: string | Buffer, detail: string) => {
      const agent = new SamlAgent();
      const relayState = await pendingAttempt(agent);
      const res = await post(encodeURIComponent(relayState), typeof samlResponse === 'string' ? `SAMLResponse=${samlResponse}` : Buffer.concat([Buffer.from('SAMLResponse='), samlResponse]));
      assert.equal(res.status, 303, 'the outcome waits for the browser at its interaction');
      const back = await agent.go(new URL(res.headers.get('location')!, a.issuer).href, { stopAt: toRp });
      assert.equal(back.status, 401);
      assert.equal((await lastAudit('login.failure')).details.detail, detail);
    };
    await refusedAs(encodeURIComponent(b64(xml.replace('>x<', '>x\u0000y<'))), 'malformed: NUL character');
    await refusedAs(encodeURIComponent(b64(xml.replace('>x<', '>x&#0;y<'))), 'malformed: a character reference to a character XML does not allow');
    await refusedAs(encodeURIComponent(Buffer.concat([Buffer.from(xml.slice(0, 150)), Buffer.from([0xc3, 0x28]), Buffer.from(xml.slice(150))]).toString('base64')), 'malformed: not UTF-8 text');
    await refusedAs('PHI%2B%1B', 'malformed: not base64');
    // A NUL or invalid UTF-8 in RelayState or in the SAMLResponse parameter itself: a clean 400
    // (the edge input guard may answer first). Other control characters or U+FFFD in RelayState
    // match no attempt: refused before the connector, audited.
    const valid = `SAMLResponse=${encodeURIComponent(b64(xml))}`;
    const notUtf8 = Buffer.concat([Buffer.from('SAMLResponse=PH'), Buffer.from([0xff, 0xfe])]);
    const hostile: [string, string | Buffer][] = [['a%00b', valid], ['%FF%FE', valid], ['%00', valid], ['x', 'SAMLResponse=PHI%2B%00'], ['x', notUtf8]];
    for (const [relayState, form] of hostile) {
      const res = await post(relayState, form);
      const page = await res.text();
      assert.equal(res.status, 400, `RelayState ${relayState}: ${page.slice(0, 200)}`);
      assert.doesNotMatch(page, /\bat [A-Za-z.<>]+ \(|server_error/);
    }
    for (const relayState of ['a%1Bb', '%EF%BF%BD']) {
      const res = await post(relayState, `SAMLResponse=${encodeURIComponent(b64(xml))}`);
      assert.equal(res.status, 400, `RelayState ${relayState}: ${(await res.text()).slice(0, 200)}`);
      assert.equal((await lastAudit('login.rejected')).details.reason, 'unknown_state');
    }
  });

  test('IdP-initiated login: the app is asked to start its sign-in, which completes without a login page', async (t) => {
    if (!ready(t)) return;
    const agent = new SamlAgent();
    const page = await agent.go(ssp.idpInitiatedUrl(`${a.issuer}/connectors/corp-init/metadata`, 'portal'));
    const post = SamlAgent.form((await agent.login(page, 'carol', 'carolpass')).html, ssp.baseUrl);
    assert.ok(post?.fields.SAMLResponse && post.action === `${a.issuer}/callback/corp-init`);
    const atApp = await agent.go(post.action, { form: post.fields, stopAt: toRp });
    const initiate = new URL(atApp.url);
    assert.equal(`${initiate.origin}${initiate.pathname}`, `${RP}/initiate`);
    assert.equal(initiate.searchParams.get('iss'), a.issuer);
    // The app starts an ordinary authorization request; the person is signed in already.
    const { url, verifier } = await authorizationUrl();
    const tokens = await tokensFrom(await agent.go(url, { stopAt: toRp }), verifier);
    assert.equal(tokens.claims()!.email, 'carol@example.org');
    assert.equal(tokens.claims()!.idp, 'corp-init');
    // The same unsolicited response again, on the other instance: the shared replay guard refuses it.
    const replay = await new SamlAgent().go(`${b.url}/callback/corp-init`, { form: post.fields, stopAt: toRp });
    assert.equal(replay.status, 401);
    const audit = (await b.store.audit.list({ type: 'login.failure', limit: 1 }))[0];
    assert.match(String(audit.details.detail), /replay/i);
  });

  test('refresh: bounded since the upstream login, or a new upstream login for reauth connectors', async (t) => {
    if (!ready(t)) return;
    const tokens = await signIn(new SamlAgent(), 'corp', 'bob');
    const again = await oidc.refreshTokenGrant(rp, tokens.refresh_token!);
    assert.ok(again.access_token);
    // Long after the upstream login: the bound (8 h by default) is over. Instance b reads the
    // login row fresh (a caches it for a minute).
    await a.store.knex('login_sessions').where({ connector_id: 'corp' }).update({ authenticated_at: new Date(Date.now() - 9 * 3600_000) });
    const late = await fetch(`${b.url}/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`rp:${RP_SECRET}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: again.refresh_token! }),
    });
    assert.equal(late.status, 400);
    assert.equal(((await late.json()) as { error: string }).error, 'invalid_grant');
    assert.equal((await lastAudit('token.refresh_denied')).details.reason, 'reauth_needed');

    const strict = await signIn(new SamlAgent(), 'corp-reauth', 'bob');
    await assert.rejects(oidc.refreshTokenGrant(rp, strict.refresh_token!), (err: { error?: string }) => err.error === 'invalid_grant');
  });

  test('logging out of Keybridge ends the SimpleSAMLphp session too (SP-initiated SLO), then returns to the app', async (t) => {
    if (!ready(t)) return;
    const agent = new SamlAgent();
    const tokens = await signIn(agent, 'corp');
    const end = new URL(`${a.issuer}/session/end`);
    end.searchParams.set('id_token_hint', tokens.id_token!);
    end.searchParams.set('post_logout_redirect_uri', `${RP}/signed-out`);
    const confirm = await agent.go(end.href);
    const form = SamlAgent.form(confirm.html, confirm.url);
    assert.ok(form, `a logout confirmation: ${text(confirm).slice(0, 200)}`);
    // "Yes, sign me out" -> SimpleSAMLphp's SLO (LogoutRequest) -> Keybridge (LogoutResponse) -> the app.
    const done = await agent.go(form.action, { form: { ...form.fields, logout: 'yes' }, stopAt: toRp });
    assert.equal(done.url, `${RP}/signed-out`);
    const audit = await lastAudit('logout.upstream');
    assert.equal(audit.outcome, 'success');
    assert.equal(audit.connectorId, 'corp');
    // SimpleSAMLphp forgot the person: a new login there asks for the password again.
    const { page } = await toIdp(agent, 'corp');
    assert.match(page.html, /name="password"/);
  });

  test('SimpleSAMLphp logging the person out ends the Keybridge session and tells the app by back-channel logout', async (t) => {
    if (!ready(t)) return;
    const agent = new SamlAgent();
    const tokens = await signIn(agent, 'corp');
    const sub = tokens.claims()!.sub;
    logoutTokens.length = 0;
    const done = await agent.go(ssp.idpLogoutUrl(`${RP}/idp-logged-out`), { stopAt: toRp });
    assert.equal(done.url, `${RP}/idp-logged-out`);
    assert.equal(logoutTokens.length, 1, 'the app got a logout token');
    const payload = JSON.parse(Buffer.from(logoutTokens[0].split('.')[1], 'base64url').toString());
    assert.equal(payload.sub, sub);
    assert.ok(payload.events['http://schemas.openid.net/event/backchannel-logout']);
    const audit = await lastAudit('logout.upstream_request');
    assert.equal(audit.details.sessions, 1);
    // The grant went with the session.
    await assert.rejects(oidc.refreshTokenGrant(rp, tokens.refresh_token!), (err: { error?: string }) => err.error === 'invalid_grant');
    // And the next authorization request needs a login again.
    const { url } = await authorizationUrl();
    assert.match((await agent.go(url, { stopAt: toRp })).html, /Continue with Corp SSO/);
  });

  test('a forged logout request from the IdP is refused and ends nothing', async (t) => {
    if (!ready(t)) return;
    const agent = new SamlAgent();
    const tokens = await signIn(agent, 'corp', 'bob');
    const request = `<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_forged" Version="2.0" IssueInstant="${new Date().toISOString()}" Destination="${a.issuer}/callback/corp/logout"><saml:Issuer>${ssp.entityId}</saml:Issuer><saml:NameID>bob@example.org</saml:NameID></samlp:LogoutRequest>`;
    const res = await agent.go(`${a.issuer}/callback/corp/logout`, { form: { SAMLRequest: b64(request) } });
    assert.equal(res.status, 400);
    assert.match(text(res), /logout message from Corp SSO is not valid/);
    assert.ok((await lastAudit('logout.rejected')).details.reason);
    assert.ok((await oidc.refreshTokenGrant(rp, tokens.refresh_token!)).access_token, 'the session and its grant survive');
  });
});
