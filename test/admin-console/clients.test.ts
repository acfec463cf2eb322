// The console's Clients section in Chromium: a confidential client created in the console signs a
// real person in (authorization code at a local relying party, the secret read from the page
// where it is shown once); redirect URI errors shown at their line with nothing stored; config and
// Keybridge's own clients read-only; editing with If-Match, a new secret (the old one stops at
// /token, the new one works) and deleting with a confirmation that names the client.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as oidc from 'openid-client';
import type { Browser as Chromium, Page } from 'playwright-core';
import { chromiumMissing } from '../helpers/chromium.ts';
import { skipLoudly } from '../helpers/skip.ts';
import type { TestBroker } from '../helpers/test-broker.ts';
import { ADMIN, PLAIN_USER, assertFitsPhone, assertOnlyApiAndSignIn, launchChromium, openConsolePage, screenshot, signInToConsole, startConsoleBroker, submitLogin, unexpectedErrors, type ConsoleSession } from '../helpers/admin-console.ts';
import { AdminApiClient, adminClientConfig, clientToken } from '../helpers/admin-api.ts';

/** A token request with client_secret_basic: its HTTP status. */
async function tokenStatus(issuer: string, id: string, secret: string): Promise<number> {
  const res = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}` },
    body: new URLSearchParams({ grant_type: 'client_credentials' }),
  });
  await res.arrayBuffer();
  return res.status;
}

describe('admin console: clients', () => {
  let broker: TestBroker;
  let chromium: Chromium;
  let rpServer: Server;
  let rp: string;
  let api: AdminApiClient;
  const missing = chromiumMissing();

  before(async () => {
    if (missing) return;
    rpServer = createServer((_req, res) => {
      res.setHeader('content-type', 'text/plain');
      res.end('relying party callback');
    });
    await new Promise<void>((resolve) => rpServer.listen(0, '127.0.0.1', resolve));
    rp = `http://127.0.0.1:${(rpServer.address() as AddressInfo).port}`;
    broker = await startConsoleBroker({ config: { clients: [adminClientConfig('ops')] } });
    api = new AdminApiClient(broker.issuer, await clientToken(broker.issuer, 'ops', 'admin:read admin:write'));
    chromium = await launchChromium();
  });
  after(async () => {
    await chromium?.close();
    await broker?.close();
    await new Promise((resolve) => rpServer?.close(resolve));
  });

  /** Fills the new-client form and submits it; answers the page after the answer came. */
  async function createInConsole(page: Page, fields: { id: string; name?: string; redirectUris: string; clientCredentials?: boolean }): Promise<void> {
    await page.click('a:has-text("New client")');
    await page.waitForSelector('h1:has-text("New client")');
    await page.fill('input[name=id]', fields.id);
    if (fields.name) await page.fill('input[name=name]', fields.name);
    await page.fill('#uris-redirectUris', fields.redirectUris);
    if (fields.clientCredentials) await page.check('input[name=grantTypes][value=client_credentials]');
    await page.click('button:has-text("Create client")');
  }

  async function openList(session: ConsoleSession): Promise<void> {
    await signInToConsole(session, broker.issuer, ADMIN, '/admin/clients');
    await session.page.waitForSelector('table.data tbody tr');
  }

  test('a confidential client created in the console signs a person in: secret read from the page, code exchanged with openid-client', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const session = await openConsolePage(chromium);
    const { page } = session;
    await openList(session);
    await screenshot(page, 'clients');
    await assertFitsPhone(page, 'the list');
    await page.click('a:has-text("New client")');
    await page.waitForSelector('h1:has-text("New client")');
    await screenshot(page, 'client-new');
    await assertFitsPhone(page, 'the new-client form');
    await page.click('a:has-text("Cancel")');
    await page.waitForSelector('table.data tbody tr');

    await createInConsole(page, { id: 'shop-web', name: 'Shop', redirectUris: `${rp}/cb` });
    await page.waitForSelector('[data-testid=client-secret]');
    const secret = (await page.textContent('[data-testid=client-secret]'))!;
    assert.match(secret, /^[A-Za-z0-9_-]{40,}$/);
    assert.match((await page.textContent('.secret-panel'))!, /it will not be shown again/);
    await page.click('button:has-text("Copy secret")');
    await page.waitForSelector('button:has-text("Copied")');
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret, 'the copy button copies the secret');
    // Stored with its hash only: the page is the one place the secret was shown.
    const stored = (await broker.store.clients.find('shop-web'))!;
    assert.ok(stored);
    assert.doesNotMatch(JSON.stringify(stored), new RegExp(secret));

    // A real sign-in with that client, in a separate browser (no admin session).
    const rpConfig = await oidc.discovery(new URL(broker.issuer), 'shop-web', undefined, oidc.ClientSecretBasic(secret), { execute: [oidc.allowInsecureRequests] });
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const url = oidc.buildAuthorizationUrl(rpConfig, { redirect_uri: `${rp}/cb`, scope: 'openid profile', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state });
    const person = await chromium.newContext();
    const login = await person.newPage();
    await login.goto(url.href);
    await submitLogin(login, PLAIN_USER);
    await Promise.race([login.waitForURL(`${rp}/**`), login.waitForSelector('button.primary:has-text("Allow")')]);
    if (!login.url().startsWith(rp)) {
      await login.click('button.primary:has-text("Allow")');
      await login.waitForURL(`${rp}/**`);
    }
    const callback = new URL(login.url());
    assert.equal(callback.pathname, '/cb');
    assert.ok(callback.searchParams.get('code'), 'the relying party got a code');
    await person.close();
    const tokens = await oidc.authorizationCodeGrant(rpConfig, callback, { pkceCodeVerifier: verifier, expectedState: state });
    const claims = tokens.claims()!;
    assert.equal(claims.iss, broker.issuer);
    assert.equal(claims.aud, 'shop-web');
    const user = (await broker.store.users.findByUsername(PLAIN_USER.username))!;
    assert.equal(claims.sub, user.id, 'an ID token for the user who signed in');
    const info = await oidc.fetchUserInfo(rpConfig, tokens.access_token, claims.sub);
    assert.equal(info.preferred_username, PLAIN_USER.username);

    assert.deepEqual(session.pageErrors, []);
    assertOnlyApiAndSignIn(session.requests, broker.issuer);
    await session.context.close();
  });

  test('bad redirect URIs are shown at their line and hostile names at the name field; nothing is stored', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const session = await openConsolePage(chromium);
    const { page } = session;
    await openList(session);
    await createInConsole(page, { id: 'bad-uris', redirectUris: 'https://ok.example/cb\n\njavascript:alert(1)\nhttp://app.example/cb#frag' });
    await page.waitForSelector('.uri-errors li');
    const errors = await page.$$eval('[data-path="body.redirectUris"] .uri-errors li', (lis) => lis.map((li) => [li.getAttribute('data-line'), li.textContent]));
    assert.equal(errors.length, 2, JSON.stringify(errors));
    assert.equal(errors[0][0], '3', 'the blank line counts: the error is at the line the administrator sees');
    assert.match(errors[0][1]!, /^Line 3 \(javascript:alert\(1\)\): must not use the javascript: scheme/);
    assert.equal(errors[1][0], '4');
    assert.match(errors[1][1]!, /fragment/);
    assert.equal(await page.getAttribute('#uris-redirectUris', 'aria-invalid'), 'true');
    assert.equal(await broker.store.clients.find('bad-uris'), null, 'nothing stored');
    // The form keeps what was typed, so the line can be fixed.
    assert.match(await page.inputValue('#uris-redirectUris'), /javascript:alert\(1\)/);

    // A 3,000-character name: refused at the name field.
    await page.fill('#uris-redirectUris', 'https://ok.example/cb');
    await page.fill('input[name=name]', 'n'.repeat(3000));
    await page.click('button:has-text("Create client")');
    await page.waitForSelector('[data-path="body.name"] .field-error');
    assert.match((await page.textContent('[data-path="body.name"] .field-error'))!, /200/);
    assert.equal(await page.$('.uri-errors'), null, 'the fixed line no longer shows an error');
    assert.equal(await broker.store.clients.find('bad-uris'), null);

    // An id with a NUL byte and markup: refused, and shown as text (no element made from it).
    await page.fill('input[name=name]', '<img src=x onerror=alert(1)>\u202Eevil');
    await page.fill('input[name=id]', 'bad\u0000id');
    await page.click('button:has-text("Create client")');
    await page.waitForSelector('[data-path="body.id"] .field-error');
    assert.match((await page.textContent('[data-path="body.id"] .field-error'))!, /NUL/);
    assert.equal(await page.$('img[src=x]'), null);
    await page.fill('input[name=id]', 'bad-nul');
    await page.fill('#uris-redirectUris', 'https://ok.example/cb\nhttps://ok.example/\u0000x');
    await page.click('button:has-text("Create client")');
    await page.waitForSelector('.uri-errors li[data-line="2"]');
    assert.match((await page.textContent('.uri-errors li[data-line="2"]'))!, /NUL/);
    assert.equal((await api.get('/clients?limit=200')).body.items.some((c: { id: string }) => c.id.startsWith('bad')), false, 'nothing stored');

    assert.deepEqual(unexpectedErrors(session.pageErrors, [400]), []);
    assertOnlyApiAndSignIn(session.requests, broker.issuer);
    await session.context.close();
  });

  test('keyboard only: a public client is created with Tab, typing, arrow keys and Enter; it gets no secret', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const session = await openConsolePage(chromium);
    const { page } = session;
    await signInToConsole(session, broker.issuer, ADMIN, '/admin/clients/new');
    await page.waitForSelector('form.client-form');
    const focused = () => page.evaluate(() => { const e = document.activeElement as HTMLInputElement | null; return e ? `${e.tagName.toLowerCase()}:${e.name || e.id || e.textContent}` : ''; });
    const tabTo = async (target: string) => {
      for (let i = 0; i < 30; i++) {
        if ((await focused()) === target) return;
        await page.keyboard.press('Tab');
      }
      assert.fail(`${target} is not reachable with Tab (stuck at ${await focused()})`);
    };
    await tabTo('input:id');
    await page.keyboard.type('kbd-spa');
    await page.keyboard.press('Tab');
    assert.equal(await focused(), 'input:name', 'the name follows the id');
    await page.keyboard.type('Keyboard SPA');
    await page.keyboard.press('Tab');
    assert.equal(await focused(), 'select:tokenEndpointAuthMethod');
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('ArrowDown');
    assert.equal(await page.inputValue('select[name=tokenEndpointAuthMethod]'), 'none');
    await tabTo('input:grantTypes');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Space');
    assert.equal(await page.isChecked('input[name=grantTypes][value=refresh_token]'), false, 'Space unticks the refresh token grant');
    await tabTo('textarea:uris-redirectUris');
    await page.keyboard.type(`${rp}/spa`);
    await tabTo('button:Create client');
    await page.keyboard.press('Enter');
    await page.waitForSelector('[data-testid=client-id]');
    assert.equal(await page.$('[data-testid=client-secret]'), null, 'a public client has no secret to show');
    const made = await api.get('/clients/kbd-spa');
    assert.equal(made.body.tokenEndpointAuthMethod, 'none');
    assert.deepEqual(made.body.grantTypes, ['authorization_code']);
    assert.deepEqual(made.body.redirectUris, [`${rp}/spa`]);
    assert.deepEqual(session.pageErrors, []);
    assertOnlyApiAndSignIn(session.requests, broker.issuer);
    await session.context.close();
  });

  test('config and Keybridge-managed clients are read-only: a badge, their settings, no edit controls', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const session = await openConsolePage(chromium);
    const { page } = session;
    await openList(session);
    const row = (id: string) => page.locator('table.data tbody tr', { has: page.locator(`code:text-is("${id}")`) });
    assert.match((await row('ops').textContent())!, /managed by config/);
    assert.match((await row('ops').textContent())!, /confidential/);
    assert.match((await row('keybridge-admin-console').textContent())!, /managed by Keybridge/);
    assert.match((await row('keybridge-admin-console').textContent())!, /public/);
    await row('ops').locator('a').click();
    await page.waitForSelector('dl.kv');
    assert.equal(await page.textContent('h1'), 'ops');
    assert.match((await page.textContent('.page-head'))!, /managed by config/);
    assert.match((await page.textContent('.console-page'))!, /declared in the config file/);
    for (const selector of ['form', 'input', 'textarea', 'button:has-text("Save changes")', 'button:has-text("Delete client")', 'button:has-text("New secret")']) {
      assert.equal(await page.$(`.console-page ${selector}`), null, `no ${selector} on a config client`);
    }
    assert.deepEqual(session.pageErrors, []);
    assertOnlyApiAndSignIn(session.requests, broker.issuer);
    await session.context.close();
  });

  test('edit with If-Match (a stale page is told, nothing lost), new secret (old one refused at /token, new one works), delete after a confirmation naming the client', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const session = await openConsolePage(chromium);
    const { page } = session;
    await openList(session);
    await createInConsole(page, { id: 'rotate-me', name: 'Rotating App', redirectUris: `${rp}/cb`, clientCredentials: true });
    await page.waitForSelector('[data-testid=client-secret]');
    const first = (await page.textContent('[data-testid=client-secret]'))!;
    assert.equal(await tokenStatus(broker.issuer, 'rotate-me', first), 200);
    await page.click('a:has-text("Go to the client")');
    await page.waitForSelector('form.client-form');
    assert.equal(await page.$('[data-testid=client-secret]'), null, 'the secret is not shown again');
    await screenshot(page, 'client');
    await assertFitsPhone(page, 'a client');

    // Edit: a new name and a second redirect URI.
    await page.fill('input[name=name]', 'Renamed App');
    await page.fill('#uris-redirectUris', `${rp}/cb\n${rp}/cb2`);
    await page.click('button:has-text("Save changes")');
    await page.waitForSelector('.notice:has-text("Saved")');
    assert.equal(await page.textContent('h1'), 'Renamed App');
    let got = await api.get('/clients/rotate-me');
    assert.equal(got.body.name, 'Renamed App');
    assert.deepEqual(got.body.redirectUris, [`${rp}/cb`, `${rp}/cb2`]);

    // Someone else changes the client: this page's save is refused (412) and its form stays.
    assert.equal((await api.patch('/clients/rotate-me', { name: 'Changed Elsewhere' })).status, 200);
    await page.fill('input[name=name]', 'Stale Edit');
    await page.click('button:has-text("Save changes")');
    await page.waitForSelector('.client-form .alert');
    assert.match((await page.textContent('.client-form .alert'))!, /changed since it was read/);
    assert.equal(await page.inputValue('input[name=name]'), 'Stale Edit', 'what was typed is kept');
    got = await api.get('/clients/rotate-me');
    assert.equal(got.body.name, 'Changed Elsewhere', 'the stale save changed nothing');
    await page.reload();
    await page.waitForSelector('form.client-form');
    assert.equal(await page.inputValue('input[name=name]'), 'Changed Elsewhere');

    // New secret, the current one ending now.
    await page.selectOption('#rotate-overlap', '0');
    await page.click('button:has-text("New secret")');
    await page.waitForSelector('dialog[open]');
    assert.match((await page.textContent('dialog[open]'))!, /stops working now/);
    await page.click('dialog[open] button:has-text("Generate new secret")');
    await page.waitForSelector('[data-testid=client-secret]');
    const second = (await page.textContent('[data-testid=client-secret]'))!;
    assert.notEqual(second, first);
    assert.equal(await tokenStatus(broker.issuer, 'rotate-me', first), 401, 'the old secret is refused');
    assert.equal(await tokenStatus(broker.issuer, 'rotate-me', second), 200, 'the new secret works');

    // Delete: the dialog names the client and the revocation; Cancel keeps it.
    await page.click('button:has-text("Delete client")');
    await page.waitForSelector('dialog[open]');
    const text = (await page.textContent('dialog[open]'))!;
    assert.match(text, /Changed Elsewhere/);
    assert.match(text, /rotate-me/);
    assert.match(text, /revoked/);
    await page.click('dialog[open] button:has-text("Cancel")');
    assert.equal((await api.get('/clients/rotate-me')).status, 200, 'cancel deletes nothing');
    await page.click('button:has-text("Delete client")');
    await page.click('dialog[open] button:has-text("Delete")');
    await page.waitForFunction(() => location.pathname === '/admin/clients');
    await page.waitForSelector('table.data tbody tr');
    assert.equal(await page.$('table.data code:text-is("rotate-me")'), null, 'gone from the list');
    assert.equal((await api.get('/clients/rotate-me')).status, 404, 'gone from the API');
    assert.equal(await tokenStatus(broker.issuer, 'rotate-me', second), 401);

    assert.deepEqual(unexpectedErrors(session.pageErrors, [412]), []);
    assertOnlyApiAndSignIn(session.requests, broker.issuer);
    await session.context.close();
  });
});
