// Upstream MFA honoured through the whole broker: a connector trusted to report a second factor
// (trustUpstreamMfa) spares the local one when the upstream proves it — a real oidc-provider
// upstream returning amr ["pwd","otp"], SimpleSAMLphp returning a configured
// AuthnContextClassRef — and the local factor is asked when it does not, or when the connector
// is not trusted.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import * as oidc from 'openid-client';
import { decodeJwt } from 'jose';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { Browser, findForm } from '../helpers/browser.ts';
import { freePort } from '../helpers/free-port.ts';
import { startUpstreamOp, type UpstreamOp, type UpstreamUser } from '../helpers/upstream-op.ts';
import { SamlAgent, simpleSamlPhpMissing, startSimpleSamlPhp, type SimpleSamlPhp } from '../helpers/simplesamlphp.ts';
import { skipLoudly } from '../helpers/skip.ts';

const RP_SECRET = 'rp-secret-for-the-upstream-mfa-suite';
const UPSTREAM_SECRET = 'keybridge-at-upstream-0123456789';
const REFEDS_MFA = 'https://refeds.org/profile/mfa';

const upstreamUser = (id: string, amr: string[]): UpstreamUser => ({ id: `op-${id}`, username: id, password: `${id}#Upstream1`, claims: { preferred_username: id, email: `${id}@example.org`, email_verified: true }, authentication: { amr } });

describe('upstream MFA honoured by the login pipeline', () => {
  let broker: TestBroker;
  let op: UpstreamOp;
  let ssp: SimpleSamlPhp | undefined;
  let sspMissing: string | null = null;
  let rp: oidc.Configuration;
  let rpServer: http.Server;
  let tmp: string;
  let RP = '';
  const mia = upstreamUser('mia', ['pwd', 'otp']);
  const ned = upstreamUser('ned', ['pwd']);

  before(async () => {
    rpServer = http.createServer((_req, res) => res.end('relying party'));
    await new Promise<void>((r) => rpServer.listen(0, '127.0.0.1', () => r()));
    RP = `http://127.0.0.1:${(rpServer.address() as AddressInfo).port}/cb`;
    const port = await freePort();
    const issuer = `http://127.0.0.1:${port}`;
    const callback = (id: string) => `${issuer}/callback/${id}`;
    op = await startUpstreamOp({
      users: [mia, ned],
      clients: [{ client_id: 'keybridge', client_secret: UPSTREAM_SECRET, redirect_uris: [callback('acme'), callback('acme-untrusted'), callback('acme-open')], grant_types: ['authorization_code'], response_types: ['code'] }],
    });
    const acme = { issuer: op.issuer, clientId: 'keybridge', clientSecret: UPSTREAM_SECRET, scopes: ['openid', 'email'], timeoutMs: 1500 };

    sspMissing = simpleSamlPhpMissing();
    const connectors: Record<string, unknown>[] = [
      { id: 'acme', type: 'oidc', name: 'Acme ID', trustUpstreamMfa: true, config: acme },
      { id: 'acme-untrusted', type: 'oidc', name: 'Acme ID (untrusted)', config: acme },
      { id: 'acme-open', type: 'oidc', name: 'Acme ID (no MFA policy)', config: acme },
    ];
    if (!sspMissing) {
      tmp = mkdtempSync(path.join(os.tmpdir(), 'kb-upstream-mfa-'));
      const key = path.join(tmp, 'sp.key');
      const cert = path.join(tmp, 'sp.crt');
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-sha256', '-subj', '/CN=keybridge test sp', '-keyout', key, '-out', cert], { stdio: 'ignore' });
      const entry = (id: string, extra: object = {}) => ({ entityId: `${issuer}/connectors/${id}/metadata`, acsUrl: `${issuer}/callback/${id}`, signingCertPem: readFileSync(cert, 'utf8'), ...extra });
      ssp = await startSimpleSamlPhp({ serviceProviders: [entry('corp-mfa', { authnContextClassRef: REFEDS_MFA }), entry('corp-plain')] });
      const saml = { idp: { metadataUrl: ssp.metadataUrl }, sp: { privateKeyFile: key, certificateFile: cert } };
      connectors.push(
        { id: 'corp-mfa', type: 'saml', name: 'Corp MFA', trustUpstreamMfa: true, upstreamMfa: { acr: [REFEDS_MFA] }, config: saml },
        { id: 'corp-plain', type: 'saml', name: 'Corp', trustUpstreamMfa: true, upstreamMfa: { acr: [REFEDS_MFA] }, config: saml },
      );
    }
    broker = await startTestBroker({
      port,
      config: {
        clients: [{ id: 'rp', secret: RP_SECRET, redirectUris: [RP], firstParty: true }],
        // Every login through these connectors needs a second factor.
        mfa: { connectors: Object.fromEntries(connectors.filter((c) => c.id !== 'acme-open').map((c) => [c.id, 'required'])) },
        connectors,
      },
    });
    rp = await oidc.discovery(new URL(issuer), 'rp', RP_SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
  });

  after(async () => {
    await broker?.close();
    await op?.close();
    await ssp?.stop();
    rpServer?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  async function authorize() {
    const verifier = oidc.randomPKCECodeVerifier();
    const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: RP, scope: 'openid', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state: 'st' });
    return { url: url.href, claimsAt: async (location: string) => decodeJwt((await oidc.authorizationCodeGrant(rp, new URL(location), { pkceCodeVerifier: verifier, expectedState: 'st' })).id_token!) };
  }

  /** RP -> Keybridge -> the upstream OP's login -> back: the page Keybridge shows next (or the RP). */
  async function viaOidc(connectorId: string, who: UpstreamUser) {
    const browser = new Browser(broker.issuer);
    const { url, claimsAt } = await authorize();
    const login = await browser.go(url);
    const away = await browser.submit(login, `/connector/${connectorId}`);
    const back = await op.authorize(away.url, { username: who.username, password: who.password });
    return { page: await browser.go(back.url), claimsAt };
  }

  test('OIDC: the upstream proved a second factor (amr otp) and the connector is trusted: no local factor', async () => {
    const { page, claimsAt } = await viaOidc('acme', mia);
    assert.equal(page.html, '', `straight back to the app, got ${page.status}: ${page.html.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').slice(0, 300)}`);
    const claims = await claimsAt(page.url);
    assert.equal(claims.acr, 'urn:keybridge:mfa');
    assert.deepEqual([...(claims.amr as string[])].sort(), ['fed', 'mfa', 'otp', 'pwd']);
  });

  test('OIDC: the upstream used only a password: the local factor is asked (enrolment, as none exists)', async () => {
    const { page } = await viaOidc('acme', ned);
    assert.equal(page.status, 200);
    assert.match(page.html, /Set up two-step verification/);
  });

  test('OIDC: the same proof from a connector not trusted with it counts for nothing', async () => {
    const { page } = await viaOidc('acme-untrusted', mia);
    assert.match(page.html, /Set up two-step verification/);
  });

  test('OIDC: an untrusted upstream\'s otp never reaches the tokens as a factor (amr fed, pwd; acr sfa)', async () => {
    const { page, claimsAt } = await viaOidc('acme-open', mia);
    assert.equal(page.html, '', 'no factor asked: no policy requires one');
    const claims = await claimsAt(page.url);
    assert.deepEqual([...(claims.amr as string[])].sort(), ['fed', 'pwd']);
    assert.equal(claims.acr, 'urn:keybridge:sfa');
  });

  /** RP -> Keybridge -> SimpleSAMLphp's login -> its assertion posted back: the page Keybridge shows next. */
  async function viaSaml(connectorId: string) {
    const agent = new SamlAgent();
    const { url, claimsAt } = await authorize();
    const login = await agent.go(url);
    const button = findForm(login.html, `/connector/${connectorId}`)!;
    const idp = await agent.go(new URL(button.action, login.url).href, { form: button.hidden });
    const answer = await agent.login(idp, 'alice', 'alicepass');
    const post = SamlAgent.form(answer.html, answer.url)!;
    assert.ok(post?.fields.SAMLResponse, 'SimpleSAMLphp answered with an assertion');
    const page = await agent.go(post.action, { form: post.fields, stopAt: (u) => u.startsWith(RP) });
    return { page, claimsAt };
  }

  test('SAML: SimpleSAMLphp returns the configured AuthnContextClassRef: accepted as the second factor', async (t) => {
    if (!ssp) return skipLoudly(t, sspMissing!);
    const { page, claimsAt } = await viaSaml('corp-mfa');
    assert.ok(page.url.startsWith(RP), `back at the app, got ${page.status}: ${page.html.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').slice(0, 300)}`);
    const claims = await claimsAt(page.url);
    assert.equal(claims.acr, 'urn:keybridge:mfa');
    assert.ok((claims.amr as string[]).includes('mfa'));
  });

  test('SAML: a Password AuthnContextClassRef is not a second factor: the local one is asked', async (t) => {
    if (!ssp) return skipLoudly(t, sspMissing!);
    const { page } = await viaSaml('corp-plain');
    assert.match(page.html, /Set up two-step verification/);
  });
});
