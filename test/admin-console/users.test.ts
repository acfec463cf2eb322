// The console's Users section in Chromium, against a real broker: a plain user signs in to a
// demo client through the login pages (a session and a grant), and the administrator finds them
// by search, sees the session, disables them (the sessions end), enables them again; a password
// reset shown once that works for a login while the old password does not; unlinking an identity
// and revoking a grant; removing a second factor and resetting two-step verification; two administrators editing at once (412 keeps the other's change);
// hostile profile input refused at its field with nothing stored; config users read-only.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as oidc from 'openid-client';
import type { Browser as Chromium, Page } from 'playwright-core';
import { chromiumMissing } from '../helpers/chromium.ts';
import { skipLoudly } from '../helpers/skip.ts';
import type { TestBroker } from '../helpers/test-broker.ts';
import { Browser } from '../helpers/browser.ts';
import { signIn } from '../helpers/login-flow.ts';
import { AdminApiClient, adminClientConfig, clientToken } from '../helpers/admin-api.ts';
import { TOTP, Secret } from 'otpauth';
import { TotpService } from '../../src/mfa/totp.ts';
import { mfaCipher } from '../../src/mfa/mfa-cipher.ts';
import { issueRecoveryCodes } from '../../src/mfa/recovery-codes.ts';
import { ADMIN, PLAIN_USER, assertOnlyApiAndSignIn, launchChromium, openConsolePage, screenshot, signInToConsole, startConsoleBroker, type ConsoleSession, unexpectedErrors } from '../helpers/admin-console.ts';

const RP = 'http://127.0.0.1:9/cb';
const RP_SECRET = 'demo-secret-0123456789abcdef';
const PASSWORD = 'correct horse battery staple';

/** Console errors a test expects: the browser logs each refused API call (e.g. "status of 412"). */

describe('admin console: users', () => {
  let broker: TestBroker;
  let chromium: Chromium;
  let api: AdminApiClient;
  let rp: oidc.Configuration;
  const missing = chromiumMissing();

  before(async () => {
    if (missing) return;
    broker = await startConsoleBroker({
      config: { clients: [adminClientConfig('ops'), { id: 'demo', secret: RP_SECRET, redirectUris: [RP], grantTypes: ['authorization_code', 'refresh_token'] }] },
    });
    api = new AdminApiClient(broker.issuer, await clientToken(broker.issuer, 'ops', 'admin:read admin:write'));
    rp = await oidc.discovery(new URL(broker.issuer), 'demo', RP_SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
    chromium = await launchChromium();
  });
  after(async () => {
    await chromium?.close();
    await broker?.close();
  });

  const newUser = async (username: string, extra: Record<string, unknown> = {}): Promise<string> => {
    const res = await api.post('/users', { username, password: PASSWORD, ...extra });
    assert.equal(res.status, 201, res.text);
    return res.body.id;
  };

  /** A login to the demo client through the real login pages; true when it reached the client. */
  /** `mustChange`: the password was right and the login now asks for a new one (update_password). */
  const login = async (username: string, password: string): Promise<{ ok: boolean; mustChange?: boolean; tokens?: oidc.TokenEndpointResponse }> => {
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: RP, scope: 'openid profile offline_access', prompt: 'consent', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state });
    const browser = new Browser(broker.issuer);
    let page = await browser.go(url.href);
    assert.match(page.html, /name="password"/);
    page = await browser.submit(page, '/login', { username, password });
    if (page.html && /\/confirm"/.test(page.html)) page = await browser.submit(page, '/confirm');
    if (/Choose a new password/.test(page.html)) return { ok: false, mustChange: true };
    if (page.html || !page.url.startsWith(RP)) return { ok: false };
    return { ok: true, tokens: await oidc.authorizationCodeGrant(rp, new URL(page.url), { pkceCodeVerifier: verifier, expectedState: state }) };
  };

  const confirmIn = async (page: Page, button: string, confirm: string, within = 'body') => {
    await page.click(`${within} button:has-text("${button}")`);
    await page.click(`dialog[open] button:has-text("${confirm}")`);
    await page.waitForSelector('dialog[open]', { state: 'detached' });
  };

  const open = () => openConsolePage(chromium);

  const done = (session: ConsoleSession, ...statuses: number[]) => {
    assert.deepEqual(unexpectedErrors(session.pageErrors, statuses), []);
    assertOnlyApiAndSignIn(session.requests, broker.issuer);
  };

  test('the admin finds a signed-in user by search, sees the session, disables them (the session ends) and enables them again', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const id = await newUser('sam-signed-in', { name: 'Sam Session', email: 'sam@example.org' });
    await newUser('samuel-other', { name: 'Another Sam' });
    await newUser('zoe-unrelated');
    const first = await login('sam-signed-in', PASSWORD);
    assert.ok(first.ok && first.tokens?.refresh_token, 'the demo client got tokens');

    const session = await open();
    const { page } = session;
    await signInToConsole(session, broker.issuer, ADMIN, '/admin/users');
    await page.waitForSelector('table.data tbody tr');
    await page.fill('input[name=q]', 'sam-s');
    await page.click('form[role=search] button[type=submit]');
    await page.waitForFunction(() => new URLSearchParams(location.search).get('q') === 'sam-s');
    await page.waitForFunction(() => document.querySelectorAll('table.data tbody tr').length === 1);
    const row = (await page.textContent('table.data tbody tr'))!;
    assert.match(row, /sam-signed-in/);
    assert.match(row, /Sam Session/);
    assert.match(row, /enabled/);
    await screenshot(page, 'users');
    // The prefix search also finds by name: "sam" matches both Sams, not Zoe.
    await page.fill('input[name=q]', 'sam');
    await page.click('form[role=search] button[type=submit]');
    await page.waitForFunction(() => document.querySelectorAll('table.data tbody tr').length === 2);
    assert.doesNotMatch((await page.textContent('table.data tbody'))!, /zoe/);

    await page.click('table.data a:has-text("sam-signed-in")');
    await page.waitForFunction((p) => location.pathname === p, `/admin/users/${id}`);
    await page.waitForSelector('[data-testid=sessions] table.data tbody tr');
    const sessionRow = (await page.textContent('[data-testid=sessions] table.data tbody tr'))!;
    assert.match(sessionRow, /demo/);
    assert.match(sessionRow, /127\.0\.0\.1/);
    assert.match((await page.textContent('[data-testid=grants] table.data tbody'))!, /demo/);
    assert.equal(await page.textContent('h1'), 'sam-signed-in');
    await page.waitForSelector('section[aria-labelledby=audit-title] table.data');
    assert.equal(await page.getAttribute('a:has-text("Full audit log")', 'href'), `/admin/audit?userId=${id}`);
    await screenshot(page, 'user');
    await page.setViewportSize({ width: 390, height: 844 });
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 390), 'no horizontal scrolling at 390 px');
    await page.setViewportSize({ width: 1280, height: 900 });

    // Escape cancels: still enabled.
    await page.click('.page-actions button:has-text("Disable")');
    await page.keyboard.press('Escape');
    assert.equal((await api.get(`/users/${id}`)).body.enabled, true);

    await confirmIn(page, 'Disable', 'Disable', '.page-actions');
    await page.waitForSelector('[data-testid=sessions] :text("No live sessions.")');
    await page.waitForSelector('[data-testid=grants] :text("No grants.")');
    assert.match((await page.textContent('.user-badges'))!, /disabled/);
    assert.equal((await api.get(`/users/${id}`)).body.enabled, false);
    assert.deepEqual((await api.get(`/users/${id}/sessions`)).body.items, []);
    await assert.rejects(oidc.refreshTokenGrant(rp, first.tokens!.refresh_token!), 'the refresh token died with the grant');
    assert.equal((await login('sam-signed-in', PASSWORD)).ok, false, 'a disabled user cannot sign in');
    // The recent events show the disable.
    await page.waitForSelector('section[aria-labelledby=audit-title] code:has-text("admin.user.disable")');

    await confirmIn(page, 'Enable', 'Enable', '.page-actions');
    await page.waitForSelector('.user-badges .badge-ok:has-text("enabled")');
    assert.equal((await api.get(`/users/${id}`)).body.enabled, true);
    assert.equal((await login('sam-signed-in', PASSWORD)).ok, true, 'enabled again, the user signs in');
    done(session);
    await session.context.close();
  });

  test('reset password: the new password is shown once with a copy button; it signs in and the person must choose their own, the old one does not; a chosen password is checked at its field', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const id = await newUser('rita-reset');
    assert.equal((await login('rita-reset', PASSWORD)).ok, true);
    const session = await open();
    const { page } = session;
    await signInToConsole(session, broker.issuer, ADMIN, `/admin/users/${id}`);
    await page.waitForSelector('[data-testid=sessions] table.data tbody tr');
    await confirmIn(page, 'Reset password', 'Reset password');
    const generated = (await page.textContent('[data-testid=generated-password] code'))!.trim();
    assert.equal(generated.length, 24);
    await page.click('[data-testid=generated-password] button:has-text("Copy password")');
    await page.waitForSelector('[data-testid=generated-password] button:has-text("Copied")');
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), generated);
    // The reset ended the session.
    await page.waitForSelector('[data-testid=sessions] :text("No live sessions.")');
    assert.deepEqual(await login('rita-reset', PASSWORD), { ok: false }, 'the old password no longer works');
    assert.equal((await login('rita-reset', generated)).mustChange, true, 'the new one does, and the person must choose their own');
    // Shown once: after a reload of the page it is gone, and the API cannot tell it.
    await page.reload();
    await page.waitForSelector('h1:has-text("rita-reset")');
    await page.waitForSelector('#password-title');
    assert.equal(await page.$('[data-testid=generated-password]'), null);
    assert.ok(!(await api.get(`/users/${id}`)).text.includes(generated));

    // Set a chosen password: a weak one is refused at the field, a good one works.
    const field = page.locator('.set-password input[type=password]');
    await field.fill('short');
    await page.click('.set-password button[type=submit]');
    await page.waitForSelector('.set-password .field-error');
    assert.equal(await field.getAttribute('aria-invalid'), 'true');
    assert.equal((await login('rita-reset', generated)).mustChange, true, 'the refused password changed nothing');
    await field.fill('a different long passphrase');
    await page.click('.set-password button[type=submit]');
    await page.waitForSelector('.set-password .notice:has-text("Password set")');
    // The reset's "choose your own password" still stands for the person.
    assert.equal((await login('rita-reset', 'a different long passphrase')).mustChange, true);
    assert.deepEqual(await login('rita-reset', generated), { ok: false });
    done(session, 400);
    await session.context.close();
  });

  test('unlink a linked identity behind a confirmation, revoke one grant, end one session and then all', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const id = await newUser('uma-linked');
    await broker.store.identities.create({ userId: id, connectorId: 'github', subject: 'gh-4242', username: 'uma-octo' });
    const signedIn = await login('uma-linked', PASSWORD);
    assert.ok(signedIn.ok);
    const session = await open();
    const { page } = session;
    await signInToConsole(session, broker.issuer, ADMIN, `/admin/users/${id}`);
    await page.waitForSelector('section[aria-labelledby=identities-title] table.data tbody tr');
    assert.match((await page.textContent('section[aria-labelledby=identities-title] tbody'))!, /gh-4242.*uma-octo/s);
    await confirmIn(page, 'Unlink', 'Unlink', 'section[aria-labelledby=identities-title]');
    await page.waitForSelector('section[aria-labelledby=identities-title] :text("No linked identities.")');
    await page.waitForSelector('section[aria-labelledby=identities-title] .notice:has-text("Unlinked github identity gh-4242")');
    assert.deepEqual((await api.get(`/users/${id}/identities`)).body.items, []);
    assert.equal(await broker.store.identities.find('github', 'gh-4242'), null);

    await page.waitForSelector('[data-testid=grants] table.data tbody tr');
    await confirmIn(page, 'Revoke', 'Revoke grant', '[data-testid=grants] tbody');
    await page.waitForSelector('[data-testid=grants] :text("No grants.")');
    assert.deepEqual((await api.get(`/users/${id}/grants`)).body.items, []);
    await assert.rejects(oidc.refreshTokenGrant(rp, signedIn.tokens!.refresh_token!), 'the revoked grant took its refresh token');

    // Sessions: end one, then all.
    assert.ok((await login('uma-linked', PASSWORD)).ok);
    assert.ok((await login('uma-linked', PASSWORD)).ok);
    await page.reload();
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=sessions] table.data tbody tr').length === 3);
    await confirmIn(page, 'End', 'End session', '[data-testid=sessions] tbody tr:first-child');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=sessions] table.data tbody tr').length === 2);
    assert.equal((await api.get(`/users/${id}/sessions`)).body.items.length, 2);
    await confirmIn(page, 'End all sessions', 'End all', '[data-testid=sessions]');
    await page.waitForSelector('[data-testid=sessions] :text("No live sessions.")');
    assert.deepEqual((await api.get(`/users/${id}/sessions`)).body.items, []);
    done(session);
    await session.context.close();
  });

  test('two-step verification: factors listed without secrets, one removed behind a confirmation, then everything reset', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const id = await newUser('uma-mfa');
    const totp = new TotpService({ store: broker.store, cipher: await mfaCipher(broker.config, broker.store), issuerName: 'Keybridge' });
    const enrolment = await totp.startEnrolment({ id, username: 'uma-mfa' });
    assert.equal(await totp.confirmEnrolment(id, enrolment.factorId, TOTP.generate({ secret: Secret.fromBase32(enrolment.secret) })), 'confirmed');
    await broker.store.mfa.addWebauthn(id, { name: 'Work laptop', credentialId: 'cred-uma', publicKey: 'pk-uma', signCount: 0, data: {} });
    await issueRecoveryCodes(broker.store, id);

    const session = await open();
    const { page } = session;
    await signInToConsole(session, broker.issuer, ADMIN, `/admin/users/${id}`);
    const panel = '[data-testid=mfa]';
    await page.waitForFunction((sel) => document.querySelectorAll(`${sel} table.data tbody tr`).length === 2, panel);
    const text = (await page.textContent(panel))!;
    assert.match(text, /Authenticator app.*Work laptop/s);
    assert.match(text, /Recovery codes left: 10/);
    assert.equal((await page.content()).includes(enrolment.secret), false, 'the secret is never shown');

    await confirmIn(page, 'Remove', 'Remove', `${panel} tbody tr:first-child`);
    await page.waitForSelector(`${panel} .notice:has-text("Removed Authenticator app")`);
    await page.waitForFunction((sel) => document.querySelectorAll(`${sel} table.data tbody tr`).length === 1, panel);
    assert.deepEqual((await api.get(`/users/${id}/mfa`)).body.factors.map((f: { name: string }) => f.name), ['Work laptop']);

    await confirmIn(page, 'Reset two-step verification', 'Reset', panel);
    await page.waitForSelector(`${panel} :text("No second factors.")`);
    await page.waitForSelector(`${panel} :text("Recovery codes left: 0")`);
    assert.deepEqual((await api.get(`/users/${id}/mfa`)).body, { factors: [], recoveryCodesLeft: 0 });
    assert.equal(await page.isVisible(`${panel} button:has-text("Reset two-step verification")`), false, 'nothing left to reset');
    const events = await broker.store.audit.query({ type: 'admin.mfa.*', userId: id, limit: 10 });
    assert.deepEqual(events.map((e) => e.type).sort(), ['admin.mfa.factor_removed', 'admin.mfa.reset']);
    done(session);
    await session.context.close();
  });

  test("two administrators: a save with a stale ETag shows 'changed meanwhile' and keeps the other's change; after a reload the save works", async (t) => {
    if (missing) return skipLoudly(t, missing);
    const id = await newUser('tess-twice', { name: 'Tess Original' });
    const first = await open();
    const second = await open();
    await signInToConsole(first, broker.issuer, ADMIN, `/admin/users/${id}`);
    await signInToConsole(second, broker.issuer, ADMIN, `/admin/users/${id}`);
    for (const s of [first, second]) await s.page.waitForSelector('[data-testid=profile-form] input[name=name]');

    await second.page.fill('input[name=name]', 'Tess From Second');
    await second.page.click('[data-testid=profile-form] button[type=submit]');
    await second.page.waitForSelector('[data-testid=profile-form] .notice:has-text("Saved")');
    assert.equal((await api.get(`/users/${id}`)).body.name, 'Tess From Second');

    await first.page.fill('input[name=name]', 'Tess From First');
    await first.page.fill('input[name=familyName]', 'Firstly');
    await first.page.click('[data-testid=profile-form] button[type=submit]');
    await first.page.waitForSelector('[data-testid=stale]');
    assert.match((await first.page.textContent('[data-testid=stale]'))!, /changed meanwhile/);
    const kept = (await api.get(`/users/${id}`)).body;
    assert.equal(kept.name, 'Tess From Second', "the other administrator's change stays");
    assert.equal(kept.familyName, null);

    await first.page.click('[data-testid=stale] button:has-text("Reload")');
    await first.page.waitForFunction(() => (document.querySelector('input[name=name]') as HTMLInputElement).value === 'Tess From Second');
    await first.page.fill('input[name=familyName]', 'Firstly');
    await first.page.click('[data-testid=profile-form] button[type=submit]');
    await first.page.waitForSelector('[data-testid=profile-form] .notice:has-text("Saved")');
    const after = (await api.get(`/users/${id}`)).body;
    assert.equal(after.name, 'Tess From Second');
    assert.equal(after.familyName, 'Firstly');
    done(first, 412);
    done(second);
    await first.context.close();
    await second.context.close();
  });

  test('hostile profile input (NUL, 3,000 characters, an RTL override, a javascript: URL) is refused at its field and nothing is stored; API text renders as text', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const id = await newUser('hana-hostile', { name: '<img src=x onerror="window.pwned=1">Hana' });
    const session = await open();
    const { page } = session;
    await signInToConsole(session, broker.issuer, ADMIN, `/admin/users/${id}`);
    await page.waitForSelector('[data-testid=profile-form] input[name=name]');
    assert.equal(await page.inputValue('input[name=name]'), '<img src=x onerror="window.pwned=1">Hana');
    assert.equal(await page.$('img'), null, 'no element made from API text');

    const fieldError = (path: string) => page.textContent(`.field[data-path="${path}"] .field-error`);
    const save = async (path: string) => {
      await page.click('[data-testid=profile-form] button[type=submit]');
      await page.waitForSelector(`.field[data-path="${path}"] .field-error`);
    };
    await page.fill('input[name=name]', 'Hana\u0000Null');
    await save('body.name');
    assert.match((await fieldError('body.name'))!, /NUL/);
    await page.fill('input[name=name]', 'Hana');
    await page.fill('input[name=givenName]', 'g'.repeat(3000));
    await save('body.givenName');
    assert.match((await fieldError('body.givenName'))!, /200/);
    assert.equal(await page.$('.field[data-path="body.name"] .field-error'), null, 'the fixed field no longer shows an error');
    await page.fill('input[name=givenName]', '');
    await page.fill('input[name=username]', 'hana\u202Eevil');
    await save('body.username');
    assert.ok(await fieldError('body.username'));
    await page.fill('input[name=username]', 'hana-hostile');
    await page.fill('input[name=email]', 'javascript:alert(1)');
    await save('body.email');
    assert.ok(await fieldError('body.email'));

    const stored = (await api.get(`/users/${id}`)).body;
    assert.equal(stored.name, '<img src=x onerror="window.pwned=1">Hana');
    assert.equal(stored.username, 'hana-hostile');
    assert.equal(stored.givenName, null);
    assert.equal(stored.email, null);
    assert.deepEqual(await broker.store.audit.query({ type: 'admin.user.update', userId: id, limit: 5 }), [], 'no update was recorded');
    assert.equal(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned), undefined);
    done(session, 400);
    await session.context.close();
  });

  test('a user declared in config is shown read-only with a "managed by config" badge and no changes offered', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const plain = (await api.get(`/users?q=${PLAIN_USER.username}`)).body.items[0];
    assert.equal(plain.source, 'config');
    const session = await open();
    const { page } = session;
    await signInToConsole(session, broker.issuer, ADMIN, '/admin/users');
    await page.waitForSelector(`table.data a:has-text("${PLAIN_USER.username}")`);
    assert.match((await page.textContent(`table.data tr:has(a:has-text("${PLAIN_USER.username}"))`))!, /managed by config/);
    await page.click(`table.data a:has-text("${PLAIN_USER.username}")`);
    await page.waitForSelector('#profile-title');
    assert.match((await page.textContent('.user-badges'))!, /managed by config/);
    assert.match((await page.textContent('.console-page'))!, /declared in the config file/);
    assert.equal(await page.$('[data-testid=profile-form]'), null, 'no profile form');
    assert.equal(await page.$('.page-actions button'), null, 'no disable or delete');
    assert.equal(await page.$('#password-title'), null, 'no password changes');
    assert.match((await page.textContent('dl.kv'))!, /Pat User/);
    // Its groups are listed with the config source.
    await page.waitForSelector('.user-groups li:has-text("staff")');
    done(session);
    await session.context.close();
  });

  test('a user whose profile an upstream owns shows the connector, offers no profile or password edit, and can still be disabled', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const managed = await broker.store.users.create({ username: 'ldap-dora', managedBy: 'corp-ldap', email: 'dora@corp.example' });
    const session = await open();
    const { page } = session;
    await signInToConsole(session, broker.issuer, ADMIN, `/admin/users/${managed.id}`);
    await page.waitForSelector('#profile-title');
    assert.match((await page.textContent('.user-badges'))!, /managed by corp-ldap/);
    assert.equal(await page.$('[data-testid=profile-form]'), null, 'no profile form');
    assert.equal(await page.$('#password-title'), null, 'no password changes');
    assert.match((await page.textContent('dl.kv'))!, /dora@corp\.example/);
    await confirmIn(page, 'Disable', 'Disable', '.page-actions');
    await page.waitForSelector('.user-badges .badge-danger:has-text("disabled")');
    assert.equal((await api.get(`/users/${managed.id}`)).body.enabled, false);
    done(session);
    await session.context.close();
  });

  test('a new local user is created from the list; a taken username (compared case- and width-insensitively) is refused with the API\'s message', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const session = await open();
    const { page } = session;
    await signInToConsole(session, broker.issuer, ADMIN, '/admin/users');
    await page.click('button:has-text("New user")');
    await page.fill('form[aria-labelledby=new-user-title] input[type=text] >> nth=0', 'ＰＡＴ-user');
    await page.click('button:has-text("Create user")');
    await page.waitForSelector('form[aria-labelledby=new-user-title] .alert');
    assert.match((await page.textContent('form[aria-labelledby=new-user-title] .alert'))!, /already exists/);
    assert.match((await page.textContent('form[aria-labelledby=new-user-title] [data-path="body.username"] .field-error'))!, /already exists/, 'shown at the username field');
    assert.deepEqual((await api.get('/users?q=pat')).body.items.map((u: { username: string }) => u.username), [PLAIN_USER.username], 'nothing stored');
    await page.fill('form[aria-labelledby=new-user-title] input[type=text] >> nth=0', 'nina-new');
    await page.fill('form[aria-labelledby=new-user-title] input[type=email]', 'nina@example.org');
    await page.click('button:has-text("Create user")');
    await page.waitForSelector('h1:has-text("nina-new")');
    const id = decodeURIComponent(new URL(page.url()).pathname.split('/').pop()!);
    const created = (await api.get(`/users/${id}`)).body;
    assert.equal(created.email, 'nina@example.org');
    assert.equal(created.source, 'local');
    done(session, 409);
    await session.context.close();
  });
});
