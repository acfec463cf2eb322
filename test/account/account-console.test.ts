// The account console in a real Chromium, tried as a person would: sign in to /account through
// Keybridge's login page, see and edit the profile, link the upstream OpenID provider from the
// console (its real login page) and unlink it, sign in again before a sensitive change, revoke an
// app, download the data export, and the whole console in German with Accept-Language: de. The
// console reaches Keybridge only through the account API and the sign-in endpoints.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import * as oidc from 'openid-client';
import type { Browser as Chromium, Page } from 'playwright-core';
import { chromiumMissing, launchChromium } from '../helpers/chromium.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { Browser } from '../helpers/browser.ts';
import { screenshot, assertFitsPhone, unexpectedErrors } from '../helpers/admin-console.ts';
import { ageSignIn, createLocalUser, PASSWORD, rpLogin, startAccountWorld, upstreamUser, type AccountWorld } from './account-support.ts';

const invalidGrant = (err: oidc.ResponseBodyError) => err.error === 'invalid_grant';

/** Every request went to the console, its API, the stylesheet and scripts, or signing in (here or upstream). */
function assertOnlyAccountApiAndSignIn(requests: { method: string; url: string }[], issuer: string, upstream: string): void {
  const stray = requests.filter(({ method, url }) => {
    if (url.startsWith('data:') || url.startsWith('blob:') || url === 'about:blank' || url.startsWith(upstream)) return false;
    if (!url.startsWith(`${issuer}/`)) return true;
    const p = new URL(url).pathname;
    if (p.startsWith('/account/api/')) return false;
    if (method === 'GET' && (p === '/account' || p.startsWith('/account/'))) return false;
    if (method === 'GET' && p.startsWith('/assets/')) return false;
    if (['/auth', '/token', '/session/end', '/session/end/confirm'].includes(p) || p.startsWith('/auth/') || p.startsWith('/interaction/') || p.startsWith('/callback/')) return false;
    return true;
  });
  assert.deepEqual(stray, [], 'the console made requests outside the account API and sign-in');
}

describe('account console in Chromium', () => {
  let world: AccountWorld;
  let chromium: Chromium;
  const missing = chromiumMissing();
  const zoe = upstreamUser('zoe');

  before(async () => {
    if (missing) return;
    world = await startAccountWorld({ upstreamUsers: [zoe] });
    chromium = await launchChromium();
  });
  after(async () => {
    await chromium?.close();
    await world?.close();
  });

  async function open(locale = 'en-US') {
    const context = await chromium.newContext({ viewport: { width: 1280, height: 900 }, locale, acceptDownloads: true });
    const page = await context.newPage();
    const requests: { method: string; url: string }[] = [];
    const errors: string[] = [];
    page.on('request', (r) => requests.push({ method: r.method(), url: r.url() }));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(String(e)));
    const failed: string[] = [];
    page.on('response', (r) => {
      if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`);
    });
    return { context, page, requests, errors, failed };
  }

  async function signIn(page: Page, username: string, at = '/account/') {
    await page.goto(`${world.broker.issuer}${at}`);
    await page.waitForSelector('#username');
    await page.fill('#username', username);
    await page.fill('#password', PASSWORD);
    await page.click('button[type=submit].primary');
    await page.waitForSelector('[data-testid="signed-in-as"]');
  }

  test('sign in, see and edit the profile; link the upstream and unlink it; revoke an app; export the data', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const issuer = world.broker.issuer;
    const id = await createLocalUser(world.broker, 'nora', { name: 'Nora Local' });
    const appTokens = await rpLogin(world, new Browser(issuer), 'nora');
    const { context, page, requests, errors, failed } = await open();

    await signIn(page, 'nora');
    assert.equal(new URL(page.url()).pathname, '/account/profile');
    assert.equal(await page.textContent('[data-testid="signed-in-as"]'), 'Nora Local');
    assert.equal(await page.inputValue('#username'), 'nora');
    assert.equal(await page.textContent('[data-testid="email"]'), 'nora@example.org');
    assert.equal(await page.evaluate(() => document.documentElement.lang), 'en');
    await page.fill('#given-name', 'Nora');
    await page.click('form button[type=submit].primary');
    await page.waitForSelector('[data-testid="saved"]');
    assert.equal((await world.broker.store.users.findById(id))!.givenName, 'Nora');
    await screenshot(page, 'account-profile');
    await assertFitsPhone(page, 'the profile page');

    // Link the upstream: its own login page, then back to the console with the result.
    await page.click('nav a[href="/account/sign-in"]');
    await page.click('[data-testid="link-acme"]');
    await page.waitForURL(`${world.op.origin}/**`);
    await page.fill('input[name=username]', zoe.username);
    await page.fill('input[name=password]', zoe.password);
    await page.click('button[type=submit]');
    await page.waitForSelector('[data-testid="link-result"]');
    assert.equal(await page.getAttribute('[data-testid="link-result"]', 'data-result'), 'linked');
    assert.match((await page.textContent('[data-testid="link-result"]'))!, /Acme ID is now linked/);
    await page.waitForSelector('[data-testid="identities"] li[data-connector="acme"]');
    assert.equal((await world.broker.store.identities.find('acme', zoe.id))?.userId, id);
    await screenshot(page, 'account-sign-in');
    await assertFitsPhone(page, 'the sign-in methods page');
    await page.click('[data-testid="unlink-acme"]');
    await page.click('[data-testid="confirm"]');
    await page.waitForSelector('[data-testid="identities-notice"]');
    await page.waitForSelector('[data-testid="no-identities"]');
    assert.equal(await world.broker.store.identities.find('acme', zoe.id), null);

    // Revoke the app: listed with its access, then gone, and its refresh token fails.
    await page.click('nav a[href="/account/sessions"]');
    await page.waitForSelector('[data-testid="apps"] li[data-client="rp"]');
    await page.waitForSelector('[data-testid="sessions"] li[data-current="true"]');
    assert.match((await page.textContent('[data-testid="sessions"] li[data-current="true"] [data-testid="device"]'))!, /Chrome on Linux/);
    await screenshot(page, 'account-sessions');
    await assertFitsPhone(page, 'the sessions page');
    await page.click('[data-testid="revoke-rp"]');
    await page.click('[data-testid="confirm"]');
    await page.waitForSelector('[data-testid="apps-notice"]');
    assert.equal(await page.$('[data-testid="apps"] li[data-client="rp"]'), null);
    await assert.rejects(oidc.refreshTokenGrant(world.rp, appTokens.refresh_token!), invalidGrant);
    // The app's browser session is still there: sign it out from here.
    await page.waitForSelector('[data-testid="sessions"] li[data-current="false"]');
    await page.click('[data-testid="end-others"]');
    await page.click('[data-testid="confirm"]');
    await page.waitForSelector('[data-testid="sessions-notice"]');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="sessions"] li').length === 1);
    assert.equal((await world.broker.store.userSessions.sessionsOf(id)).length, 1);

    // The security log shows what happened.
    await page.click('nav a[href="/account/log"]');
    await page.waitForSelector('[data-testid="security-log"] tr[data-type="identity.unlinked"]');
    assert.ok(await page.$('[data-testid="security-log"] tr[data-type="identity.linked"]'));
    assert.ok(await page.$('[data-testid="security-log"] tr[data-type="grant.revoked"]'));

    // Export: a real download of a JSON file about nora.
    await page.click('nav a[href="/account/data"]');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid="export"]')]);
    assert.match(download.suggestedFilename(), /^keybridge-account-\d{4}-\d{2}-\d{2}\.json$/);
    const exported = JSON.parse(await readFile((await download.path())!, 'utf8'));
    assert.equal(exported.profile.id, id);
    assert.equal(exported.profile.givenName, 'Nora');
    assert.ok(exported.securityLog.some((e: { type: string }) => e.type === 'identity.linked'));
    assert.ok(await page.$('[data-testid="delete-disabled"]'), 'self-deletion is off by default');

    // Signing out here ends this session too: the console starts over at the login page.
    await page.click('nav a[href="/account/sessions"]');
    await page.click('[data-testid="sessions"] li[data-current="true"] button');
    await page.waitForSelector('#username');
    assert.equal((await world.broker.store.userSessions.sessionsOf(id)).length, 0);

    // The upstream's login page has no icon: the browser's own /favicon.ico request there is a 404.
    assert.deepEqual(failed, []);
    assert.deepEqual(unexpectedErrors(errors, [404]), []);
    assertOnlyAccountApiAndSignIn(requests, issuer, world.op.origin);
    await context.close();
  });

  test('a stale sign-in: the console asks to sign in again (prompt=login) and comes back to the same page', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const id = await createLocalUser(world.broker, 'otto');
    const { context, page, errors } = await open();
    await signIn(page, 'otto', '/account/sign-in');
    assert.ok(await page.$('[data-testid="password-form"]'));
    await ageSignIn(world.broker, id, 3600);
    await page.reload();
    await page.waitForSelector('[data-testid="reauth"]');
    assert.equal(await page.$('[data-testid="password-form"]'), null);
    await page.click('[data-testid="reauth"]');
    // The login page again although the browser has a session.
    await page.waitForSelector('#password');
    await page.fill('#password', PASSWORD);
    if (await page.$('#username')) await page.fill('#username', 'otto');
    await page.click('button[type=submit].primary');
    await page.waitForSelector('[data-testid="password-form"]');
    assert.equal(new URL(page.url()).pathname, '/account/sign-in');
    await page.fill('#current-password', PASSWORD);
    await page.fill('#new-password', 'a fresh passphrase for you 1');
    await page.fill('#confirm-password', 'a fresh passphrase for you 1');
    await page.click('[data-testid="password-form"] button[type=submit]');
    await page.waitForSelector('[data-testid="password-changed"]');
    assert.deepEqual(unexpectedErrors(errors, []), []);
    await context.close();
  });

  test('German with Accept-Language: de: the shell, the navigation and the pages, and html lang="de"', async (t) => {
    if (missing) return skipLoudly(t, missing);
    await createLocalUser(world.broker, 'greta');
    const { context, page, errors, failed } = await open('de-DE');
    await signIn(page, 'greta');
    assert.equal(await page.evaluate(() => document.documentElement.lang), 'de');
    assert.equal(await page.textContent('h1'), 'Profil');
    assert.equal(await page.textContent('nav a[href="/account/sign-in"]'), 'Anmeldemethoden');
    assert.match(await page.title(), /Ihr Konto/);
    await page.click('nav a[href="/account/sign-in"]');
    await page.waitForSelector('[data-testid="password-form"]');
    assert.match((await page.textContent('main'))!, /Verknüpfte Konten/);
    // A refusal from the API in German too (the wrong current password).
    await page.fill('#current-password', 'not the password at all');
    await page.fill('#new-password', 'a fresh passphrase for her 1');
    await page.fill('#confirm-password', 'a fresh passphrase for her 1');
    await page.click('[data-testid="password-form"] button[type=submit]');
    await page.waitForSelector('#current-password-help.field-error');
    assert.equal(await page.textContent('#current-password-help'), 'Das aktuelle Passwort ist nicht richtig.');
    assert.equal(await page.getAttribute('#current-password', 'aria-invalid'), 'true');
    // A field the API refuses: the message in German at the field, the notice points there.
    await page.click('nav a[href="/account/profile"]');
    await page.waitForSelector('#name');
    await page.fill('#name', 'x'.repeat(201));
    await page.click('form button[type=submit].primary');
    await page.waitForSelector('#name-help.field-error');
    assert.equal(await page.textContent('#name-help'), 'Höchstens 200 Zeichen.');
    assert.match((await page.textContent('[data-testid="error"]'))!, /^Prüfen Sie die markierten Felder\. \(Referenz [0-9a-f-]{36}\)$/);
    await page.click('nav a[href="/account/sign-in"]');
    await page.waitForSelector('#current-password');
    await screenshot(page, 'account-sign-in-de');
    assert.deepEqual(failed.map((f) => f.replace(/ .*\/account\/api/, ' /account/api')), ['400 /account/api/me/password', '400 /account/api/me']);
    assert.deepEqual(unexpectedErrors(errors, [400]), []);
    await context.close();
  });
});
