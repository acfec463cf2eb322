// The console's audit log in Chromium: a user fails to sign in a few times and succeeds once; an
// administrator filters the log to that user's failed logins with the form's controls (the
// filters land in the URL), sees only those rows, sees a new failed login appear without a
// reload, and exports exactly those rows as CSV and JSON lines. Also: a linked filtered view with
// cursor pages, each event's details unfolded, hostile filter input refused at its field, and
// hostile text from the trail shown as text.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import type { Browser as Chromium, Page } from 'playwright-core';
import { chromiumMissing } from '../helpers/chromium.ts';
import { skipLoudly } from '../helpers/skip.ts';
import type { TestBroker } from '../helpers/test-broker.ts';
import { PLAIN_USER, assertOnlyApiAndSignIn, launchChromium, openConsolePage, screenshot, signInToConsole, startConsoleBroker } from '../helpers/admin-console.ts';
import { failedLogin, goodLogin, trafficClientConfig } from './console-support.ts';

const OTHER = { username: 'quinn-user', password: 'quinn-user-password-1' };

const rows = (page: Page) => page.$$eval('tbody.audit-event', (bodies) => bodies.map((b) => ({ id: b.getAttribute('data-id')!, text: b.querySelector('tr')!.textContent!, fresh: b.querySelector('tr')!.classList.contains('audit-new') })));

describe('admin console audit log', () => {
  let broker: TestBroker;
  let chromium: Chromium;
  const missing = chromiumMissing();

  before(async () => {
    if (missing) return;
    broker = await startConsoleBroker({
      config: {
        limits: { enabled: false },
        clients: [trafficClientConfig()],
        users: [{ username: OTHER.username, password: OTHER.password, email: 'quinn@example.org' }],
      },
    });
    for (let i = 0; i < 3; i++) await failedLogin(broker.issuer, PLAIN_USER.username);
    await goodLogin(broker.issuer, PLAIN_USER);
    await failedLogin(broker.issuer, OTHER.username);
    await failedLogin(broker.issuer, OTHER.username);
    await goodLogin(broker.issuer, OTHER);
    chromium = await launchChromium();
  });
  after(async () => {
    await chromium?.close();
    await broker?.close();
  });

  test("filtered by the form to one user's failed logins: only those rows, a new one arrives live, CSV and JSON lines exports hold exactly them", async (t) => {
    if (missing) return skipLoudly(t, missing);
    const session = await openConsolePage(chromium, { width: 1280, height: 1000 });
    const { page } = session;
    await signInToConsole(session, broker.issuer, undefined, '/admin/audit');
    assert.equal(await page.textContent('h1'), 'Audit log');
    await page.waitForSelector('tbody.audit-event');
    const unfiltered = await rows(page);
    assert.ok(unfiltered.some((r) => r.text.includes(OTHER.username)), 'everything at first, the other user too');

    await page.getByLabel('Event type').fill('login.failure');
    await page.getByLabel('Outcome').selectOption('failure');
    await page.getByLabel('Username').fill(PLAIN_USER.username);
    await page.evaluate(() => ((window as unknown as { notReloaded: boolean }).notReloaded = true));
    await page.click('button:has-text("Apply filters")');
    await page.waitForFunction(() => location.search.includes('username='));
    const url = new URL(page.url());
    assert.equal(url.pathname, '/admin/audit');
    assert.deepEqual(Object.fromEntries(url.searchParams), { type: 'login.failure', outcome: 'failure', username: PLAIN_USER.username }, 'the filter is in the URL');
    await page.waitForFunction(() => document.querySelectorAll('tbody.audit-event').length === 3);
    const filtered = await rows(page);
    assert.equal(filtered.length, 3);
    for (const r of filtered) {
      assert.match(r.text, /login\.failure/);
      assert.match(r.text, /pat-user/);
      assert.doesNotMatch(r.text, /quinn/);
    }
    await page.waitForSelector('[data-testid="live-status"]:has-text("Live: new events appear")');

    // Live: another user's failure (not shown) and one of pat's (shown, highlighted), no reload.
    await failedLogin(broker.issuer, OTHER.username);
    await failedLogin(broker.issuer, PLAIN_USER.username);
    await page.waitForFunction(() => document.querySelectorAll('tbody.audit-event').length === 4, null, { timeout: 15_000 });
    const live = await rows(page);
    assert.ok(live[0].fresh, 'the new row is highlighted');
    assert.ok(!live.slice(1).some((r) => r.fresh));
    assert.deepEqual(live.slice(1).map((r) => r.id), filtered.map((r) => r.id), 'prepended above the rows already shown');
    assert.ok(live.every((r) => /pat-user/.test(r.text) && !/quinn/.test(r.text)));
    assert.equal(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded), true, 'the page was not reloaded');
    const shownIds = live.map((r) => r.id);

    // The details of an event, unfolded from the keyboard.
    const first = page.locator('tbody.audit-event').first();
    await first.locator('button:has-text("Details")').focus();
    await page.keyboard.press('Enter');
    await first.locator('pre.audit-json').waitFor();
    assert.equal(await first.locator('button[aria-expanded]').getAttribute('aria-expanded'), 'true');
    const details = JSON.parse((await first.locator('pre.audit-json').textContent())!);
    assert.deepEqual(details, { id: shownIds[0], username: PLAIN_USER.username, reason: 'invalid_credentials' });

    const [csvDownload] = await Promise.all([page.waitForEvent('download'), page.click('button:has-text("Export CSV")')]);
    assert.match(csvDownload.suggestedFilename(), /^keybridge-audit-\d{8}T\d{6}Z\.csv$/);
    const csv = (await readFile((await csvDownload.path())!, 'utf8')).trimEnd().split('\r\n');
    assert.equal(csv[0], 'id,at,type,outcome,userId,clientId,connectorId,ip,details');
    assert.equal(csv.length, 5, 'the header and exactly the four filtered rows');
    assert.deepEqual(csv.slice(1).map((l) => l.split(',')[0]), shownIds);
    for (const line of csv.slice(1)) assert.match(line, /^\d+,[^,]+,login\.failure,failure,.*pat-user/);

    const [jsonDownload] = await Promise.all([page.waitForEvent('download'), page.click('button:has-text("Export JSON lines")')]);
    assert.match(jsonDownload.suggestedFilename(), /\.jsonl$/);
    const events = (await readFile((await jsonDownload.path())!, 'utf8')).trimEnd().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(events.map((e) => e.id), shownIds);
    assert.ok(events.every((e) => e.type === 'login.failure' && e.outcome === 'failure' && e.details.username === PLAIN_USER.username));

    await first.locator('button:has-text("Hide")').click();
    await screenshot(page, 'audit');
    assert.deepEqual(session.pageErrors, []);
    assertOnlyApiAndSignIn(session.requests, broker.issuer);
    await session.context.close();
  });

  test('a linked filtered view: cursor pages, live only on the first page, paused while Live is off or the tab is hidden', async (t) => {
    if (missing) return skipLoudly(t, missing);
    await broker.store.knex('audit_events').insert(Array.from({ length: 60 }, (_, i) => ({ at: new Date(Date.now() - 3_600_000 + i * 1000), type: 'seed.page', details: JSON.stringify({ n: i }) })));
    const session = await openConsolePage(chromium);
    const { page } = session;
    await signInToConsole(session, broker.issuer, undefined, '/admin/audit?type=seed.page');
    await page.waitForFunction(() => document.querySelectorAll('tbody.audit-event').length === 50);
    assert.equal(await page.inputValue('input[name=type]'), 'seed.page', 'the form shows the linked filter');
    const firstPage = await rows(page);
    await page.click('button:has-text("Next page")');
    await page.waitForFunction(() => document.querySelectorAll('tbody.audit-event').length === 10);
    const secondPage = await rows(page);
    assert.equal(new Set([...firstPage, ...secondPage].map((r) => r.id)).size, 60, 'no event twice, none left out');
    assert.match((await page.textContent('[data-testid="live-status"]'))!, /only on the first page/);
    await page.click('button:has-text("Previous page")');
    await page.waitForFunction(() => document.querySelectorAll('tbody.audit-event').length === 50);
    await page.getByLabel('Live').uncheck();
    assert.match((await page.textContent('[data-testid="live-status"]'))!, /Live updates off/);
    await broker.store.knex('audit_events').insert({ at: new Date(), type: 'seed.page', details: '{}' });
    await page.waitForTimeout(4500);
    assert.equal((await rows(page)).length, 50, 'nothing added while Live is off');
    // Live again, but the tab is hidden: paused until it is visible.
    await page.evaluate(() => {
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await page.getByLabel('Live').check();
    assert.match((await page.textContent('[data-testid="live-status"]'))!, /paused \(tab hidden\)/);
    await page.waitForTimeout(4500);
    assert.equal((await rows(page)).length, 50, 'nothing polled while the tab is hidden');
    await page.evaluate(() => {
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => false });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await page.waitForFunction(() => document.querySelectorAll('tbody.audit-event').length === 51, null, { timeout: 10_000 });
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 1280));
    assert.deepEqual(session.pageErrors, []);
    assertOnlyApiAndSignIn(session.requests, broker.issuer);
    await session.context.close();
  });

  test('hostile filter input is refused at its field; hostile text from the trail is shown as text', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const hostile = '<img src=x onerror="window.pwned=1">\u202Eresu';
    await failedLogin(broker.issuer, hostile);
    const session = await openConsolePage(chromium, { width: 390, height: 844 });
    const { page } = session;
    await signInToConsole(session, broker.issuer, undefined, '/admin/audit');
    await page.waitForSelector('tbody.audit-event');
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 390), 'no horizontal scrolling on a phone');

    // The hostile username, filtered for through the form, shows as text; no element is injected.
    await page.getByLabel('Username').fill(hostile);
    await page.click('button:has-text("Apply filters")');
    await page.waitForFunction(() => document.querySelectorAll('tbody.audit-event').length === 1);
    assert.ok((await page.textContent('tbody.audit-event'))!.includes(hostile));
    assert.equal(await page.$('tbody.audit-event img'), null);
    assert.equal(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned), undefined);

    // 3,000 characters: the API's 400 names query.username, shown at that field.
    await page.getByLabel('Username').fill('u'.repeat(3000));
    await page.click('button:has-text("Apply filters")');
    await page.waitForSelector('.field[data-path="query.username"] .field-error');
    assert.match((await page.textContent('.field[data-path="query.username"] .field-error'))!, /256/);
    assert.equal(await page.$('tbody.audit-event'), null, 'no rows for a refused filter');

    // Not an event type (a javascript: URL): refused at the type field.
    await page.getByLabel('Username').fill('');
    await page.getByLabel('Event type').fill('javascript:alert(1)');
    await page.click('button:has-text("Apply filters")');
    await page.waitForSelector('.field[data-path="query.type"] .field-error');
    assert.match((await page.textContent('.field[data-path="query.type"] .field-error'))!, /event type/);

    // A NUL byte: the form says which field, without a request (the server refuses NUL in any query string).
    await page.getByLabel('Event type').fill('login.failure');
    const before = page.url();
    const apiCalls = session.requests.length;
    await page.getByLabel('IP address').fill('10.0.0.1\u0000');
    await page.click('button:has-text("Apply filters")');
    await page.waitForSelector('.field[data-path="query.ip"] .field-error');
    assert.match((await page.textContent('.field[data-path="query.ip"] .field-error'))!, /NUL/);
    assert.equal(page.url(), before, 'the URL is unchanged');
    assert.equal(session.requests.slice(apiCalls).filter((r) => r.url.includes('/admin/api/v1/audit?')).length, 0, 'nothing sent');
    // The refused filters' 400s show as console errors (failed resource loads); nothing else may.
    assert.deepEqual(session.pageErrors.filter((e) => !/status of 400/.test(e)), []);
    assertOnlyApiAndSignIn(session.requests, broker.issuer);
    await session.context.close();
  });
});
