// Passkeys and security keys through the real login pages in Chromium, with a virtual WebAuthn
// authenticator (Chrome DevTools Protocol): enrol one during a login, sign in passwordless with
// a discoverable passkey, use a security key as the second factor, and remove them.
import { describe, test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as oidc from 'openid-client';
import { decodeJwt } from 'jose';
import type { Browser as Chromium, BrowserContext, Page } from 'playwright-core';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { freePort } from '../helpers/free-port.ts';
import { chromiumMissing, launchChromium } from '../helpers/chromium.ts';
import { addVirtualAuthenticator, type VirtualAuthenticator } from '../helpers/virtual-authenticator.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { userMfaService } from '../../src/management/user-mfa.ts';

const SECRET = 'rp-secret-0123456789abcdef';

describe('passkeys and security keys in the login (Chromium, virtual authenticator)', () => {
  const missing = chromiumMissing();
  let broker: TestBroker;
  let rp: oidc.Configuration;
  let chromium: Chromium;
  // The relying party's callback: a page that only has to load.
  let rpServer: Server;
  let RP = '';
  const pageErrors: string[] = [];

  before(async () => {
    if (missing) return;
    rpServer = createServer((_req, res) => res.end('relying party'));
    await new Promise<void>((resolve) => rpServer.listen(0, '127.0.0.1', resolve));
    RP = `http://127.0.0.1:${(rpServer.address() as AddressInfo).port}/cb`;
    // WebAuthn refuses an IP address as the relying party id: the issuer is localhost.
    const port = await freePort();
    broker = await startTestBroker({
      port,
      config: {
        issuer: `http://localhost:${port}`,
        clients: [{ id: 'rp', secret: SECRET, name: 'Relying Party', redirectUris: [RP], firstParty: true }],
        users: [
          { username: 'erin', password: 'erin-password-1', groups: ['admins'] },
          { username: 'frank', password: 'frank-password-1' },
        ],
        mfa: { groups: { admins: 'required' } },
      },
    });
    rp = await oidc.discovery(new URL(`http://localhost:${port}`), 'rp', SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
    chromium = await launchChromium();
  });

  after(async () => {
    await chromium?.close();
    await broker?.close();
    rpServer?.close();
  });

  const userId = async (name: string) => (await broker.store.users.findByUsername(name))!.id;

  /** A fresh browser profile. */
  async function openPage(): Promise<{ context: BrowserContext; page: Page }> {
    const context = await chromium.newContext();
    const page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(String(err)));
    page.on('console', (msg) => { if (msg.type() === 'error') pageErrors.push(msg.text()); });
    return { context, page };
  }

  /** Opens the authorization URL; `finish` waits for the relying party and returns the ID token's claims. */
  async function authorize(page: Page) {
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: RP, scope: 'openid', state, code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
    await page.goto(url.href);
    return async () => {
      await page.waitForURL((u) => u.href.startsWith(RP), { timeout: 15_000 });
      const tokens = await oidc.authorizationCodeGrant(rp, new URL(page.url()), { pkceCodeVerifier: verifier, expectedState: state });
      return decodeJwt(tokens.id_token!);
    };
  }

  async function typePassword(page: Page, username: string) {
    await page.fill('#username', username);
    await page.fill('#password', `${username}-password-1`);
    await page.click('button[type=submit].primary');
  }

  let erinKey: VirtualAuthenticator;
  let erinPage: Page;
  let erinContext: BrowserContext;

  test('a required policy has the user add a passkey during the login; it is stored with its name', async (t: TestContext) => {
    if (missing) return skipLoudly(t, missing);
    ({ page: erinPage, context: erinContext } = await openPage());
    erinKey = await addVirtualAuthenticator(erinPage);
    const finish = await authorize(erinPage);
    await typePassword(erinPage, 'erin');
    await erinPage.waitForSelector('text=Set up two-step verification');
    await erinPage.fill('#passkey-name', '  Work laptop  ');
    await erinPage.click('#add-passkey');
    await erinPage.waitForSelector('#recovery-codes');
    assert.equal(await erinPage.locator('#recovery-codes li').count(), 10);
    await erinPage.click('button[type=submit].primary');
    const claims = await finish();
    assert.equal(claims.acr, 'urn:keybridge:mfa');
    const amr = claims.amr as string[];
    assert.ok(amr.includes('pwd') && amr.includes('mfa') && (amr.includes('hwk') || amr.includes('swk')), `amr ${amr}`);
    const factors = await broker.store.mfa.webauthnFactors(await userId('erin'));
    assert.deepEqual(factors.map((f) => f.name), ['Work laptop']);
    assert.deepEqual((await broker.store.mfa.list(await userId('erin'))).map((f) => f.type), ['webauthn'], 'the TOTP secret offered beside it is not kept');
    const held = await erinKey.credentials();
    assert.equal(held.length, 1);
    assert.ok(held[0].isResidentCredential, 'a discoverable passkey');
  });

  test('passwordless: the login page signs in with the passkey, no username or password typed', async (t: TestContext) => {
    if (missing) return skipLoudly(t, missing);
    await erinContext.clearCookies();
    const finish = await authorize(erinPage);
    // The username field offers the passkey (conditional UI); the virtual authenticator picks it.
    // Where a browser does not, the button does the same.
    const button = erinPage.locator('#passkey-sign-in');
    await erinPage.waitForURL((u) => u.href.startsWith(RP), { timeout: 10_000 }).catch(() => button.click({ timeout: 2_000 }));
    const claims = await finish();
    assert.equal(claims.sub, await userId('erin'));
    assert.equal(claims.acr, 'urn:keybridge:mfa');
    const amr = claims.amr as string[];
    assert.ok(!amr.includes('pwd') && amr.includes('mfa'), `amr ${amr}`);
    const events = await broker.store.audit.list({ userId: await userId('erin'), limit: 5 });
    assert.ok(events.some((e: { type: string; connectorId?: string | null }) => e.type === 'login.success' && e.connectorId === 'passkey'));
  });

  test('a security key (not a passkey) as the second factor after the password', async (t: TestContext) => {
    if (missing) return skipLoudly(t, missing);
    const frank = await userId('frank');
    // An administrator asks Frank to set up two-step verification at his next login.
    await broker.store.mfa.addRequiredAction(frank, 'configure_mfa');
    const { page } = await openPage();
    const key = await addVirtualAuthenticator(page, { protocol: 'ctap2', transport: 'usb', hasResidentKey: false, hasUserVerification: false, isUserVerified: false });
    let finish = await authorize(page);
    await typePassword(page, 'frank');
    await page.waitForSelector('text=Set up two-step verification');
    await page.fill('#passkey-name', 'YubiKey');
    await page.click('#add-passkey');
    await page.waitForSelector('#recovery-codes');
    await page.click('button[type=submit].primary');
    await finish();
    assert.deepEqual(await broker.store.mfa.requiredActions(frank), []);

    await page.context().clearCookies();
    finish = await authorize(page);
    await typePassword(page, 'frank');
    await page.waitForSelector('text=Two-step verification');
    await page.click('#use-passkey');
    const claims = await finish();
    const amr = claims.amr as string[];
    assert.ok(amr.includes('pwd') && amr.includes('hwk') && amr.includes('mfa'), `amr ${amr}`);
    assert.equal(claims.acr, 'urn:keybridge:mfa');
    assert.equal((await key.credentials()).length, 1);
  });

  test('a removed passkey signs in no more; without factors the login asks only the password again', async (t: TestContext) => {
    if (missing) return skipLoudly(t, missing);
    const frank = await userId('frank');
    const service = userMfaService(broker.store);
    const audit = async () => {};
    for (const f of await broker.store.mfa.webauthnFactors(frank)) await service.removeFactor(frank, f.id, audit);
    const { page } = await openPage();
    const finish = await authorize(page);
    await typePassword(page, 'frank');
    const claims = await finish();
    assert.deepEqual(claims.amr, ['pwd']);

    // Erin's passkey removed: the passkey she still holds is refused with a clear message.
    const erin = await userId('erin');
    for (const f of await broker.store.mfa.webauthnFactors(erin)) await service.removeFactor(erin, f.id, audit);
    await erinContext.clearCookies();
    await authorize(erinPage);
    // The autofill offers the passkey once; refused, the page offers the button only (no retry loop).
    await erinPage.waitForSelector('text=This passkey is not registered here', { timeout: 15_000 });
    assert.equal(await erinPage.getAttribute('form.passkey', 'data-webauthn'), 'authenticate');
    const refusals = async () => (await broker.store.audit.list({ type: 'login.failure', limit: 1000 })).length;
    const before = await refusals();
    await erinPage.click('#passkey-sign-in');
    // The refusal is recorded when the server answers the button's attempt (the message from the
    // first refusal is on the page already, so the page alone cannot tell when that happened).
    let after = before;
    for (let i = 0; i < 150 && after === before; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await refusals();
    }
    await erinPage.waitForSelector('text=This passkey is not registered here');
    await erinPage.waitForLoadState('load');
    assert.equal(await refusals(), before + 1, 'the button tried once more, and only once');
    assert.ok(!erinPage.url().startsWith(RP));
  });

  test('no page of the flow broke its CSP or threw', (t: TestContext) => {
    if (missing) return skipLoudly(t, missing);
    // Refusals are pages with a 4xx status, which Chromium logs as failed loads: not page errors.
    const ours = pageErrors.filter((e) => !/^Failed to load resource: the server responded with a status of 4\d\d/.test(e));
    assert.deepEqual(ours, []);
  });
});
