// Keybridge as a SAML IdP for the two most deployed web-server SAML SPs on Debian, from apt and
// run as private instances with their stock configuration (issue 17): mod_auth_mellon 0.18 with
// the metadata its own mellon_create_metadata writes, and Shibboleth SP 3 (shibd + mod_shib)
// loading our metadata by URL with validate="true". Driven by Chromium: sign-in with attributes,
// SP-initiated single logout from each app, and one sign-on across an OIDC app and both SAML apps
// ended by one logout.
import { describe, test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { decodeJwt } from 'jose';
import * as oidc from 'openid-client';
import type { Browser as Chromium, BrowserContext, Page } from 'playwright-core';
import { chromiumMissing, launchChromium } from '../helpers/chromium.ts';
import { freePort } from '../helpers/free-port.ts';
import { startLogoutReceiver, type LogoutReceiver } from '../helpers/logout-receiver.ts';
import { mellonMissing, prepareMellonSp, type MellonSp } from '../helpers/mellon-sp.ts';
import { parseEnv } from '../helpers/private-apache.ts';
import { prepareShibbolethSp, shibbolethMissing, type ShibbolethSp } from '../helpers/shibboleth-sp.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';

const ALICE = { username: 'alice', password: 'alice-password-1', email: 'alice@example.org', name: 'Zoë Ünïcödé-Åström', groups: ['R&D', 'Ünïcödé & <Co>'] };
const RP_SECRET = 'rp-secret-for-the-sp-interop-suite';
// Shibboleth's stock attribute-map.xml knows attributes by their SAML 2 (urn:oid) names only.
const OID = { mail: 'urn:oid:0.9.2342.19200300.100.1.3', displayName: 'urn:oid:2.16.840.1.113730.3.1.241', isMemberOf: 'urn:oid:1.3.6.1.4.1.5923.1.5.1.1' };

/** Shibboleth joins multiple values with ';' and escapes a ';' inside a value as '\;'. */
const shibValues = (v: string | undefined) => (v ?? '').split(/(?<!\\);/).map((s) => s.replace(/\\;/g, ';'));

describe('Keybridge as a SAML IdP for real mod_auth_mellon and Shibboleth SP', () => {
  let unavailable: string | null = null;
  let broker: TestBroker;
  let mellon: MellonSp;
  let shib: ShibbolethSp;
  let chromium: Chromium;
  let receiver: LogoutReceiver;
  let rp: oidc.Configuration;
  let rpRedirect: string;
  let rpSignedOut: string;
  let idpMetadataUrl: string;

  before(async () => {
    unavailable = chromiumMissing() ?? mellonMissing() ?? shibbolethMissing();
    if (unavailable) return;
    [mellon, shib, receiver] = await Promise.all([prepareMellonSp(), prepareShibbolethSp(), startLogoutReceiver('/backchannel')]);
    rpRedirect = new URL('/cb', receiver.url).href; // answers 200; the browser only needs to land there
    rpSignedOut = new URL('/signed-out', receiver.url).href;
    const port = await freePort();
    idpMetadataUrl = `http://127.0.0.1:${port}/saml/idp/metadata`;
    broker = await startTestBroker({
      port,
      config: {
        limits: { ip: { callback: { points: 100_000 } } }, // every request comes from one address
        users: [{ username: ALICE.username, password: ALICE.password, email: ALICE.email, name: ALICE.name, groups: ALICE.groups }],
        clients: [{ id: 'rp', secret: RP_SECRET, name: 'OIDC app', redirectUris: [rpRedirect], postLogoutRedirectUris: [rpSignedOut], firstParty: true, backchannelLogoutUri: receiver.url }],
        samlIdp: {
          enabled: true,
          serviceProviders: [
            // The recipes of the README: each SP's own metadata, nothing else but attribute names.
            { entityId: mellon.entityId, name: 'Mellon app', metadataFile: mellon.metadataFile },
            {
              entityId: shib.entityId,
              name: 'Shibboleth app',
              metadataFile: shib.metadataFile,
              attributes: [
                { name: OID.mail, from: 'email', nameFormat: 'uri' },
                { name: OID.displayName, from: 'name', nameFormat: 'uri' },
                { name: OID.isMemberOf, from: 'groups', nameFormat: 'uri' },
              ],
            },
          ],
        },
      },
    });
    await Promise.all([mellon.start(idpMetadataUrl), shib.start({ entityId: idpMetadataUrl, metadataUrl: idpMetadataUrl })]);
    rp = await oidc.discovery(new URL(broker.issuer), 'rp', RP_SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
    chromium = await launchChromium();
  });

  after(async () => {
    await chromium?.close();
    await Promise.all([mellon?.stop(), shib?.stop()]);
    receiver?.close();
    await broker?.close();
  });

  const ready = (t: TestContext) => {
    if (unavailable) skipLoudly(t, unavailable);
    return !unavailable;
  };
  const browserContext = () => chromium.newContext({ ignoreHTTPSErrors: true }); // the SPs' certificates are self-signed
  const onLoginPage = (page: Page) => page.url().startsWith(`${broker.issuer}/interaction/`);
  const diagnostics = async (page: Page) => `at ${page.url()}: ${(await page.locator('body').innerText().catch(() => '')).slice(0, 800)}\n${await mellon.logs()}\n${await shib.logs()}`;

  /** Opens an app's protected page; signs in at Keybridge when `signIn`, else expects single sign-on. Returns what the page prints. */
  async function openApp(page: Page, url: string, signIn: boolean): Promise<Record<string, string>> {
    await page.goto(url);
    if (signIn) {
      assert.ok(onLoginPage(page), `expected Keybridge's login page, ${await diagnostics(page)}`);
      await page.fill('input[name=username]', ALICE.username);
      await page.fill('input[name=password]', ALICE.password);
      await page.click('button[type=submit]');
      await page.waitForURL(url).catch(() => undefined);
    }
    assert.equal(page.url(), url, `expected the app's page, ${await diagnostics(page)}`);
    return parseEnv(await page.locator('body').innerText());
  }

  /** The OIDC app's code flow, signing in at Keybridge's login page. */
  async function signInAtOidcApp(page: Page) {
    const verifier = oidc.randomPKCECodeVerifier();
    const authUrl = oidc.buildAuthorizationUrl(rp, { redirect_uri: rpRedirect, scope: 'openid profile email', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state: 'st' });
    await page.goto(authUrl.href);
    assert.ok(onLoginPage(page), await diagnostics(page));
    await page.fill('input[name=username]', ALICE.username);
    await page.fill('input[name=password]', ALICE.password);
    await Promise.all([page.waitForURL(`${rpRedirect}?**`), page.click('button[type=submit]')]);
    const tokens = await oidc.authorizationCodeGrant(rp, new URL(page.url()), { pkceCodeVerifier: verifier, expectedState: 'st' });
    const idToken = tokens.claims()!;
    assert.ok(idToken.sid, 'the ID token carries the session id');
    return { idToken, rawIdToken: tokens.id_token! };
  }

  /** Waits for the back-channel logout token and checks it names this session. */
  async function assertBackChannelLogout(idToken: { sub: string; sid?: unknown }): Promise<void> {
    for (let i = 0; i < 100 && receiver.tokens.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(receiver.tokens.length, 1, 'the OIDC app got one back-channel logout token');
    const logout = decodeJwt(receiver.tokens[0]);
    assert.equal(logout.sub, idToken.sub);
    assert.equal(logout.sid, idToken.sid);
    assert.ok((logout.events as Record<string, unknown>)['http://schemas.openid.net/event/backchannel-logout']);
  }

  /** The OIDC app cannot get a code without the person signing in again. */
  async function assertNoSilentSignIn(page: Page): Promise<void> {
    const verifier = oidc.randomPKCECodeVerifier();
    const silent = oidc.buildAuthorizationUrl(rp, { redirect_uri: rpRedirect, scope: 'openid', prompt: 'none', state: 'st2', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
    await page.goto(silent.href);
    assert.equal(new URL(page.url()).searchParams.get('error'), 'login_required', page.url());
  }

  /** The app's protected page sends the browser to Keybridge, which asks for a password again. */
  async function assertSignedOut(page: Page, url: string, app: string): Promise<void> {
    await page.goto(url);
    assert.ok(onLoginPage(page), `${app}: expected Keybridge's login page (sessions ended), ${await diagnostics(page)}`);
    assert.equal(await page.locator('input[name=password]').count(), 1);
  }

  test('mod_auth_mellon: the app sends the person to Keybridge and gets mail, displayName and multi-valued groups', async (t) => {
    if (!ready(t)) return;
    const context = await browserContext();
    try {
      const page = await context.newPage();
      const env = await openApp(page, mellon.protectedUrl, true);
      assert.equal(env.AUTH_TYPE, 'Mellon');
      assert.equal(env.MELLON_mail, ALICE.email);
      assert.equal(env.MELLON_displayName, ALICE.name);
      // mellon (through lasso) hands values to the app XML-escaped, whatever the IdP: "R&amp;D"
      // is what it prints for the value R&D (a double escape by us would show "R&amp;amp;D").
      assert.deepEqual([env.MELLON_groups_0, env.MELLON_groups_1], ['R&amp;D', 'Ünïcödé &amp; &lt;Co&gt;']);
      assert.equal(env.MELLON_groups_2, undefined);
      // mellon's generated metadata names no NameID format and its requests ask for none we cannot make.
      assert.ok(env.REMOTE_USER && env.REMOTE_USER === env.MELLON_NAME_ID, `REMOTE_USER is the NameID: ${JSON.stringify(env)}`);
    } finally {
      await context.close();
    }
  });

  test('Shibboleth SP: our metadata passes its schema validation; the app gets mail, displayName and multi-valued groups', async (t) => {
    if (!ready(t)) return;
    const context = await browserContext();
    try {
      const page = await context.newPage();
      const env = await openApp(page, shib.protectedUrl, true);
      assert.equal(env.AUTH_TYPE, 'shibboleth');
      assert.equal(env.Shib_Identity_Provider, idpMetadataUrl);
      assert.equal(env.mail, ALICE.email);
      assert.equal(env.displayName, ALICE.name);
      assert.deepEqual(shibValues(env.member).sort(), [...ALICE.groups].sort());
      // The stock REMOTE_USER falls back to persistent-id: our persistent NameID, qualified by both entity IDs.
      assert.equal(env.REMOTE_USER, env.persistent_id);
      assert.match(env.REMOTE_USER ?? '', new RegExp(`^${idpMetadataUrl.replace(/[.:/]/g, '\\$&')}!${shib.entityId.replace(/[.:/]/g, '\\$&')}![A-Za-z0-9_-]{20,}$`));
      const shibdLog = await shib.logs();
      assert.doesNotMatch(shibdLog, /not allowed for content model|error initializing MetadataProvider/);
    } finally {
      await context.close();
    }
  });

  test('mod_auth_mellon: /mellon/logout (SP-initiated SLO) ends the Keybridge session and comes back to ReturnTo', async (t) => {
    if (!ready(t)) return;
    const context = await browserContext();
    try {
      const page = await context.newPage();
      await openApp(page, mellon.protectedUrl, true);
      await page.goto(mellon.logoutUrl(mellon.publicUrl));
      assert.equal(page.url(), mellon.publicUrl, `expected mellon's ReturnTo, ${await diagnostics(page)}`);
      await assertSignedOut(page, mellon.protectedUrl, 'mellon');
    } finally {
      await context.close();
    }
  });

  test('Shibboleth SP: /Shibboleth.sso/Logout (SP-initiated SLO) ends the Keybridge session and comes back to return', async (t) => {
    if (!ready(t)) return;
    const context = await browserContext();
    try {
      const page = await context.newPage();
      await openApp(page, shib.protectedUrl, true);
      await page.goto(shib.logoutUrl(shib.publicUrl));
      assert.equal(page.url(), shib.publicUrl, `expected Shibboleth's return URL, ${await diagnostics(page)}`);
      await assertSignedOut(page, shib.protectedUrl, 'Shibboleth');
    } finally {
      await context.close();
    }
  });

  test('one sign-in for an OIDC app and both SAML apps; one logout at mellon ends all three', async (t) => {
    if (!ready(t)) return;
    const context = await browserContext();
    receiver.tokens.length = 0;
    try {
      const page = await context.newPage();
      // The OIDC app first: the only password entry.
      const { idToken } = await signInAtOidcApp(page);

      // Both SAML apps sign in without a password prompt.
      const atMellon = await openApp(page, mellon.protectedUrl, false);
      assert.equal(atMellon.MELLON_mail, ALICE.email);
      const atShib = await openApp(page, shib.protectedUrl, false);
      assert.equal(atShib.mail, ALICE.email);

      // One logout, at mellon: Keybridge ends its session, tells the OIDC app over the back channel
      // and Shibboleth through the browser, then answers mellon, which goes on to ReturnTo.
      await page.goto(mellon.logoutUrl(mellon.publicUrl));
      assert.equal(page.url(), mellon.publicUrl, `expected mellon's ReturnTo after the logout chain, ${await diagnostics(page)}`);
      await assertBackChannelLogout(idToken);

      await assertSignedOut(page, shib.protectedUrl, 'Shibboleth');
      await assertSignedOut(page, mellon.protectedUrl, 'mellon');
      // And the OIDC app cannot get a new code silently.
      await assertNoSilentSignIn(page);
    } finally {
      await context.close();
    }
  });

  test("one sign-in for the three apps; the OIDC app's sign-out at Keybridge ends both SAML apps' sessions too", async (t) => {
    if (!ready(t)) return;
    const context = await browserContext();
    receiver.tokens.length = 0;
    try {
      const page = await context.newPage();
      const { idToken, rawIdToken } = await signInAtOidcApp(page);
      await openApp(page, shib.protectedUrl, false);
      await openApp(page, mellon.protectedUrl, false);

      // RP-initiated logout: Keybridge's confirmation page, then a LogoutRequest to each SAML app
      // through the browser (each answers with its LogoutResponse), then back to the OIDC app.
      const end = oidc.buildEndSessionUrl(rp, { id_token_hint: rawIdToken, post_logout_redirect_uri: rpSignedOut, state: 'bye' });
      await page.goto(end.href);
      await Promise.all([page.waitForURL(`${rpSignedOut}?**`).catch(() => undefined), page.getByRole('button', { name: 'Yes, sign me out' }).click()]);
      assert.ok(page.url().startsWith(`${rpSignedOut}?`), `expected the OIDC app's post-logout page, ${await diagnostics(page)}`);
      assert.equal(new URL(page.url()).searchParams.get('state'), 'bye');
      await assertBackChannelLogout(idToken);

      await assertSignedOut(page, mellon.protectedUrl, 'mellon');
      await assertSignedOut(page, shib.protectedUrl, 'Shibboleth');
    } finally {
      await context.close();
    }
  });
});
