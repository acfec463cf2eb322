// The admin console's frame in Chromium: signing in through Keybridge's own login page as the
// console's auto-registered public client (code + PKCE), the "not an administrator" page, the
// layout on a desktop and a phone, keyboard use, signing out, and the rule that the console's
// server side serves only the shell, its assets and the sign-in callback: everything else the
// console does goes through the admin API.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import http from 'node:http';
import type { Browser as Chromium } from 'playwright-core';
import { chromiumMissing } from '../helpers/chromium.ts';
import { skipLoudly } from '../helpers/skip.ts';
import type { TestBroker } from '../helpers/test-broker.ts';
import { ADMIN, PLAIN_USER, assertOnlyApiAndSignIn, launchChromium, openConsolePage, screenshot, signInToConsole, startConsoleBroker, submitLogin } from '../helpers/admin-console.ts';
import { CONSOLE_DIR } from '../../src/admin-console/admin-console.ts';
import { COMMON_CONSOLE_DIR } from '../../src/http/console-shell.ts';
import { parse } from 'yaml';
import { startTestBroker } from '../helpers/test-broker.ts';

/** The status of a GET whose request target is sent exactly as written. */
function rawGet(origin: string, target: string): Promise<number> {
  const { hostname, port } = new URL(origin);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, path: target, method: 'GET' }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('admin console frame', () => {
  let broker: TestBroker;
  let chromium: Chromium;
  const missing = chromiumMissing();

  before(async () => {
    if (missing) return;
    broker = await startConsoleBroker();
    chromium = await launchChromium();
  });
  after(async () => {
    await chromium?.close();
    await broker?.close();
  });

  test('an administrator signs in through the login page and gets the console, which talks only to the API', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const session = await openConsolePage(chromium);
    await session.page.goto(`${broker.issuer}/admin/keys`);
    // Not signed in: Keybridge's own login page, for the console's client.
    await session.page.waitForSelector('#username');
    assert.match(session.page.url(), /\/interaction\//);
    await submitLogin(session.page, ADMIN);
    await session.page.waitForSelector('[data-testid="signed-in-as"]');
    assert.equal(await session.page.textContent('[data-testid="signed-in-as"]'), ADMIN.username);
    // Back where the administrator wanted to go, with the callback's code gone from the URL.
    assert.equal(new URL(session.page.url()).pathname, '/admin/keys');
    await session.page.waitForSelector('table.data tbody tr');
    assert.equal(await session.page.textContent('h1'), 'Signing keys');
    assert.equal(await session.page.$('.console-boot'), null, 'the shell\'s loading line is gone');
    assert.equal(await session.page.getAttribute('nav a[aria-current=page]', 'href'), '/admin/keys');
    const tokenRequest = session.requests.find((r) => r.method === 'POST' && r.url === `${broker.issuer}/token`);
    assert.ok(tokenRequest, 'the console exchanged its code at the token endpoint');
    // The console's client was registered by Keybridge itself: public, PKCE, listed read-only.
    const token = await session.page.evaluate(() => JSON.parse(sessionStorage.getItem('keybridge-console-token')!).accessToken as string);
    const client = await (await fetch(`${broker.issuer}/admin/api/v1/clients/keybridge-admin-console`, { headers: { authorization: `Bearer ${token}` } })).json();
    assert.equal(client.source, 'internal');
    assert.deepEqual(client.redirectUris, [`${broker.issuer}/admin/callback`]);
    assert.equal(client.secretStatus.set, false);
    assert.equal(client.tokenEndpointAuthMethod, 'none');
    assert.equal(client.readOnly, true);
    await screenshot(session.page, 'keys');
    assert.deepEqual(session.pageErrors, []);
    assertOnlyApiAndSignIn(session.requests, broker.issuer);
    await session.context.close();
  });

  test('a signed-in user who is not an administrator gets a clear "not an administrator" page and no data', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const session = await openConsolePage(chromium);
    await session.page.goto(`${broker.issuer}/admin/users`);
    await submitLogin(session.page, PLAIN_USER);
    await session.page.waitForSelector('.not-admin h1');
    assert.equal(await session.page.textContent('.not-admin h1'), 'You are not an administrator');
    assert.match((await session.page.textContent('.not-admin'))!, /You are not an administrator\./);
    assert.equal(await session.page.$('[data-testid="signed-in-as"]'), null);
    const apiCalls = session.requests.filter((r) => r.url.includes('/admin/api/v1/')).map((r) => new URL(r.url).pathname);
    assert.deepEqual(apiCalls, ['/admin/api/v1/me'], 'only the "who am I" call, which was refused');
    await screenshot(session.page, 'not-an-administrator');
    // The refused API call shows as a console error (403); nothing else may.
    assert.deepEqual(session.pageErrors.filter((e) => !/403/.test(e)), []);
    await session.context.close();
  });

  test('keyboard: the skip link and the navigation work without a mouse; the keys rotate after a confirmation', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const session = await openConsolePage(chromium);
    const { page } = session;
    await signInToConsole(session, broker.issuer, ADMIN, '/admin/clients');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Skip to content');
    // Tab to the Keys link and follow it with Enter: no reload, the heading takes focus.
    let reached = false;
    for (let i = 0; i < 20 && !reached; i++) {
      await page.keyboard.press('Tab');
      reached = (await page.evaluate(() => document.activeElement?.getAttribute('href'))) === '/admin/keys';
    }
    assert.ok(reached, 'the Keys link is reachable with Tab');
    await page.keyboard.press('Enter');
    await page.waitForSelector('table.data tbody tr');
    await page.waitForFunction(() => document.activeElement?.id === 'page-title');
    const before = await page.$$eval('table.data tbody tr', (rows) => rows.length);
    const activeBefore = await page.$$eval('table.data tbody tr', (rows) => rows.filter((r) => r.textContent!.includes('active')).map((r) => r.querySelector('code')!.textContent));

    await page.click('button:has-text("Rotate keys")');
    await page.waitForSelector('dialog[open]');
    // The dialog is named by its heading (screen readers announce it).
    assert.equal(await page.evaluate(() => document.getElementById(document.querySelector('dialog[open]')!.getAttribute('aria-labelledby')!)?.textContent), 'Rotate the signing keys?');
    // Escape cancels: nothing rotated.
    await page.keyboard.press('Escape');
    await page.waitForSelector('dialog[open]', { state: 'detached' }).catch(() => {});
    assert.equal(await page.$('dialog[open]'), null);
    assert.equal(await page.$$eval('table.data tbody tr', (rows) => rows.length), before);

    await page.click('button:has-text("Rotate keys")');
    await page.click('dialog[open] button:has-text("Rotate")');
    await page.waitForSelector('.notice:has-text("Rotated")');
    const rows = await page.$$eval('table.data tbody tr', (trs) => trs.map((r) => r.textContent!));
    assert.equal(rows.length, before + activeBefore.length, 'one new key per algorithm, the old ones still published');
    for (const kid of activeBefore) assert.ok(rows.some((r) => r.includes(kid!) && r.includes('retired')), `${kid} is retired, still listed`);
    assert.deepEqual(session.pageErrors, []);
    assertOnlyApiAndSignIn(session.requests, broker.issuer);
    await session.context.close();
  });

  test('on a 390 px phone the page fits the screen and the menu opens', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const session = await openConsolePage(chromium, { width: 390, height: 844 });
    const { page } = session;
    await signInToConsole(session, broker.issuer, ADMIN, '/admin/keys');
    await page.waitForSelector('table.data tbody tr');
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 390), 'no horizontal scrolling');
    assert.equal(await page.isVisible('#console-nav'), false, 'the navigation is folded away');
    await page.click('button.menu-toggle');
    assert.equal(await page.isVisible('#console-nav a[href="/admin/users"]'), true);
    await page.click('#console-nav a[href="/admin/users"]');
    await page.waitForFunction(() => location.pathname === '/admin/users');
    // The menu folds in an effect that runs after the new page renders, not with the URL change.
    const folded = await page.waitForSelector('#console-nav', { state: 'hidden', timeout: 5000 }).then(() => true, () => false);
    assert.equal(folded, true, 'the menu folds again after a choice');
    await session.context.close();
  });

  test('signing out ends the Keybridge session: the next visit asks for the password again', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const session = await openConsolePage(chromium);
    const { page } = session;
    await signInToConsole(session, broker.issuer, ADMIN, '/admin/keys');
    await page.click('button:has-text("Sign out")');
    // oidc-provider asks to confirm the sign-out.
    await page.waitForURL(/\/session\/end/);
    await page.click('button[name=logout][value=yes]');
    await page.waitForSelector('#username');
    assert.match(page.url(), /\/interaction\//);
    await session.context.close();
  });

  test('an unknown console page says so inside the console', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const session = await openConsolePage(chromium);
    await signInToConsole(session, broker.issuer, ADMIN, '/admin/no-such-section');
    assert.equal(await session.page.textContent('h1'), 'Page not found');
    await session.context.close();
  });

  test("the demo config's demo user administers the console (development only: production refuses its plain password)", async (t) => {
    if (missing) return skipLoudly(t, missing);
    const dev = parse(await readFile(path.resolve(import.meta.dirname, '../../config/dev.yaml'), 'utf8'));
    const demoBroker = await startTestBroker({ config: { users: dev.users, admin: dev.admin, connectors: dev.connectors, clients: dev.clients, resources: dev.resources } });
    try {
      const session = await openConsolePage(chromium);
      const demo = dev.users[0];
      await signInToConsole(session, demoBroker.issuer, { username: demo.username, password: demo.password });
      assert.equal(await session.page.textContent('[data-testid="signed-in-as"]'), 'demo');
      await session.context.close();
    } finally {
      await demoBroker.close();
    }
  });

  test('the console server answers only the shell, its assets and the callback, never data', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const shell = await fetch(`${broker.issuer}/admin/`);
    assert.equal(shell.status, 200);
    const body = await shell.text();
    const csp = shell.headers.get('content-security-policy')!;
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /style-src 'self'(;|$)/);
    assert.match(csp, /connect-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /unsafe/);
    assert.doesNotMatch(body, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
    assert.doesNotMatch(body, /\sstyle=/, 'no inline style');
    assert.match(body, /<meta name="keybridge-console-client" content="keybridge-admin-console">/);
    // The endpoints the shell names are the ones discovery publishes.
    const discovery = await (await fetch(`${broker.issuer}/.well-known/openid-configuration`)).json();
    const named = /<meta name="keybridge-endpoints" data-authorization="([^"]+)" data-token="([^"]+)" data-end-session="([^"]+)">/.exec(body);
    assert.deepEqual(named?.slice(1), [discovery.authorization_endpoint, discovery.token_endpoint, discovery.end_session_endpoint]);
    // Every console path, the callback included, is the same static shell: no user data in it.
    for (const p of ['/admin', '/admin/users/some-id', '/admin/callback?code=x&state=y', '/admin/audit?actor=ada']) {
      const res = await fetch(`${broker.issuer}${p}`);
      assert.equal(res.status, 200, p);
      assert.equal(await res.text(), body, p);
    }
    // Sent as raw request targets: fetch() would resolve the dot segments itself.
    for (const p of ['/admin/assets/../../package.json', '/admin/assets/%2e%2e/package.json', '/admin/assets/..%2fapp.js', '/admin/assets/vendor/preact.mjs', '/admin/assets/vendor/../app.js', '/admin/assets/index.html', '/admin/assets/pages/../app.js', '/admin/assets/pages/x/y.js', '/admin/x%00y', '/admin/%ff', '/admin/a/../../etc/passwd']) {
      const status = await rawGet(broker.issuer, p);
      assert.ok([400, 404].includes(status), `${p}: ${status}`);
    }
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const res = await fetch(`${broker.issuer}/admin/users`, { method, body: method === 'DELETE' ? undefined : '{}' });
      assert.equal(res.status, 405, method);
    }
    const app = await fetch(`${broker.issuer}/admin/assets/app.js`);
    assert.match(app.headers.get('content-type')!, /^text\/javascript/);
    const hooks = await (await fetch(`${broker.issuer}/admin/assets/vendor/preact-hooks.js`)).text();
    assert.doesNotMatch(hooks, /from\s*"preact"/, 'bare specifiers are rewritten for the browser');
    // /admin/api stays the API's: the console middleware never answers it.
    const apiAnswer = await fetch(`${broker.issuer}/admin/api/v1/me`);
    assert.equal(apiAnswer.status, 401);
    assert.match(apiAnswer.headers.get('content-type')!, /problem\+json/);

    // The server side imports nothing that reaches data.
    const server = await readFile(path.resolve(import.meta.dirname, '../../src/admin-console/admin-console.ts'), 'utf8');
    const imports = [...server.matchAll(/^import .* from '([^']+)';$/gm)].map((m) => m[1]);
    assert.ok(imports.every((i) => i.startsWith('node:') || ['koa', '../config/schema.ts', '../http/console-shell.ts'].includes(i)), `imports: ${imports.join(', ')}`);
    const shared = await readFile(path.resolve(import.meta.dirname, '../../src/http/console-shell.ts'), 'utf8');
    const sharedImports = [...shared.matchAll(/^import .* from '([^']+)';$/gm)].map((m) => m[1]);
    assert.ok(sharedImports.every((i) => i.startsWith('node:') || ['koa', './security-headers.ts', './static-assets.ts', './escape-html.ts'].includes(i)), `imports: ${sharedImports.join(', ')}`);
    // In the browser code, only the API call and sign-in (shared with the account console) and
    // the discovery fallback in auth.js call fetch.
    const fetching = [];
    for (const dir of [CONSOLE_DIR, COMMON_CONSOLE_DIR]) {
      const files = (await readdir(dir, { recursive: true })).filter((f) => f.endsWith('.js'));
      for (const f of files) if (/\bfetch\s*\(/.test(await readFile(path.join(dir, f), 'utf8'))) fetching.push(path.relative(path.dirname(CONSOLE_DIR), path.join(dir, f)));
    }
    assert.deepEqual(fetching.sort(), ['admin-console/auth.js', 'console-common/api-call.js', 'console-common/pkce-sign-in.js']);
    // The shared modules are served under the console's assets.
    const common = await fetch(`${broker.issuer}/admin/assets/common/pkce-sign-in.js`);
    assert.equal(common.status, 200);
    assert.match(await common.text(), /export function pkceSignIn/);
    const outside = await fetch(`${broker.issuer}/admin/assets/common/..%2fapp.js`);
    await outside.text();
    assert.equal(outside.status, 404);
    // Every module the shell preloads exists.
    const shellHtml = await (await fetch(`${broker.issuer}/admin/`)).text();
    const preloads = [...shellHtml.matchAll(/<link rel="modulepreload" href="([^"]+)">/g)].map((m) => m[1]!);
    assert.ok(preloads.includes('/admin/assets/common/pkce-sign-in.js'), preloads.join(', '));
    for (const href of preloads) {
      const res = await fetch(`${broker.issuer}${href}`);
      await res.arrayBuffer();
      assert.equal(res.status, 200, href);
    }
  });
});

describe('admin console turned off (admin.console.enabled: false)', () => {
  test('no /admin pages and no console client; the admin API stays', async () => {
    const broker = await startConsoleBroker({ config: { admin: { console: { enabled: false } } } });
    try {
      const page = await fetch(`${broker.issuer}/admin/`);
      await page.text();
      assert.equal(page.status, 404);
      assert.equal((await fetch(`${broker.issuer}/admin/assets/app.js`)).status, 404);
      assert.equal(await broker.provider().Client.find('keybridge-admin-console'), undefined, 'no client to sign in with');
      const api = await fetch(`${broker.issuer}/admin/api/v1/me`);
      assert.equal(api.status, 401, 'the API still answers');
    } finally {
      await broker.close();
    }
  });
});
