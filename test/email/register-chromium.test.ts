// A new person in a real browser (Chromium): opens an app's sign-in, creates an account, the
// verification mail is caught by a real SMTP receiver, the link is followed and confirmed, the
// person signs in and the app gets tokens for the new account. Then "Forgot password?" in the
// same browser: the reset ends the session the browser held.
import { describe, test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as oidc from 'openid-client';
import { decodeJwt } from 'jose';
import type { Browser as Chromium, Page } from 'playwright-core';
import { chromiumMissing, launchChromium } from '../helpers/chromium.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { startRpCallback } from '../helpers/rp-callback.ts';
import { MailCatcher, linkIn } from './mail-catcher.ts';
import { RP_SECRET, startEmailBroker, type EmailBroker } from './email-broker.ts';

const PASSWORD = 'Marmalade-Skyline-Orbit-6';
const NEW_PASSWORD = 'Velvet-Compass-Thunder-3';

describe('registration and password reset in Chromium', () => {
  const missing = chromiumMissing();
  const smtp = new MailCatcher();
  let broker: EmailBroker;
  let chromium: Chromium;
  let rp: oidc.Configuration;
  let rpServer: Awaited<ReturnType<typeof startRpCallback>> | undefined;
  let RP = '';
  const pageErrors: string[] = [];

  before(async () => {
    if (missing) return;
    rpServer = await startRpCallback();
    RP = rpServer.url;
    await smtp.start();
    broker = await startEmailBroker(
      {
        email: { smtp: smtp.url, pollSeconds: 1 },
        registration: { enabled: true, fields: { username: 'required', name: 'optional' } },
        clients: [{ id: 'rp', secret: RP_SECRET, name: 'Relying Party', redirectUris: [RP], firstParty: true }],
      },
    );
    rp = await oidc.discovery(new URL(broker.issuer), 'rp', RP_SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
    chromium = await launchChromium();
  });
  after(async () => {
    await chromium?.close();
    await broker?.close();
    await smtp.stop();
    rpServer?.close();
  });

  async function authorize(page: Page) {
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: RP, scope: 'openid email profile', state, code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
    await page.goto(url.href);
    return async () => {
      await page.waitForURL((u) => u.href.startsWith(RP), { timeout: 15_000 });
      const tokens = await oidc.authorizationCodeGrant(rp, new URL(page.url()), { pkceCodeVerifier: verifier, expectedState: state });
      return { tokens, claims: decodeJwt(tokens.id_token!) };
    };
  }

  test('register -> verification mail -> confirm -> sign in -> tokens; then forgot (another browser) -> reset -> the first browser\'s session is gone', async (t: TestContext) => {
    if (missing) return skipLoudly(t, missing);
    const context = await chromium.newContext();
    const page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(String(err)));

    await authorize(page);
    await page.waitForSelector('#password');
    const uid = /\/interaction\/([^/?#]+)/.exec(page.url())![1];
    // The login page's "Create account" link leads to this login's registration form.
    await Promise.all([page.waitForNavigation(), page.click('#create-account')]);
    assert.equal(new URL(page.url()).pathname, `/interaction/${uid}/register`);
    await page.fill('#email', 'grace@example.org');
    await page.fill('#username', 'grace');
    await page.fill('#name', 'Grace Hopper');
    await page.fill('#password', PASSWORD);
    await page.fill('#confirm', PASSWORD);
    await page.click('button[type=submit].primary');
    await page.waitForSelector('text=Check your email');

    const mail = await smtp.waitFor('grace@example.org');
    assert.match(String(mail.html), /Confirm and create account/);
    await page.goto(linkIn(mail, '/email/verify/'));
    await page.click('button[type=submit].primary');
    await page.waitForSelector('text=Account created');
    // Back to the sign-in the registration started from.
    await page.click('button[type=submit].primary');
    await page.waitForSelector('#password');
    const finish = await authorize(page);
    await page.fill('#username', 'grace');
    await page.fill('#password', PASSWORD);
    await page.click('button[type=submit].primary');
    const { claims } = await finish();
    const grace = await broker.store.users.findByUsername('grace');
    assert.equal(claims.sub, grace!.id);
    assert.equal(claims.email, 'grace@example.org');
    assert.equal(claims.email_verified, true);
    assert.equal(claims.name, 'Grace Hopper');

    // The session signs in silently now.
    const silent = await authorize(page);
    await silent();

    // Forgot password, from another browser (a phone, say); the first one keeps its session cookie.
    const phone = await chromium.newContext();
    const other = await phone.newPage();
    await authorize(other);
    await other.waitForSelector('#password');
    const uid2 = /\/interaction\/([^/?#]+)/.exec(other.url())![1];
    await Promise.all([other.waitForNavigation(), other.click('#forgot-password')]);
    assert.equal(new URL(other.url()).pathname, `/interaction/${uid2}/forgot`);
    await other.fill('#email', 'grace@example.org');
    await other.click('button[type=submit].primary');
    await other.waitForSelector('text=Check your email');
    const resetMail = await smtp.waitFor('grace@example.org', (m) => /\/password\/reset\//.test(m.text ?? ''));
    await other.goto(linkIn(resetMail, '/password/reset/'));
    await other.fill('#new-password', NEW_PASSWORD);
    await other.fill('#confirm-password', NEW_PASSWORD);
    await other.click('button[type=submit].primary');
    await other.waitForSelector('text=Password changed');
    assert.deepEqual(await broker.store.userSessions.sessionUidsOf(grace!.id), [], 'no session of grace is left');

    // The first browser's session cookie no longer signs in: the login form is back.
    const again = await authorize(page);
    await page.waitForSelector('#password');
    assert.match(page.url(), /\/interaction\//);
    await page.fill('#username', 'grace');
    await page.fill('#password', NEW_PASSWORD);
    await page.click('button[type=submit].primary');
    assert.equal((await again()).claims.sub, grace!.id);
    assert.deepEqual(pageErrors, []);
    await phone.close();
    await context.close();
  });
});
