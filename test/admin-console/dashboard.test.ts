// The console's dashboard in Chromium, after real sign-in traffic: a uPlot chart per period with
// a table of the same numbers per connector, the top failure reasons, the connectors needing a
// look, the signing keys' age and the risky-settings hints (with a client whose redirect URI is
// plain http naming that client).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser as Chromium } from 'playwright-core';
import { chromiumMissing } from '../helpers/chromium.ts';
import { skipLoudly } from '../helpers/skip.ts';
import type { TestBroker } from '../helpers/test-broker.ts';
import { ADMIN, PLAIN_USER, assertOnlyApiAndSignIn, launchChromium, openConsolePage, screenshot, signInToConsole, startConsoleBroker } from '../helpers/admin-console.ts';
import { failedLogin, goodLogin, trafficClientConfig } from './console-support.ts';

const DAY = 86_400_000;

describe('admin console dashboard', () => {
  let broker: TestBroker;
  let chromium: Chromium;
  const missing = chromiumMissing();

  before(async () => {
    if (missing) return;
    broker = await startConsoleBroker({
      config: {
        limits: { enabled: false },
        clients: [trafficClientConfig(), { id: 'legacy-portal', redirectUris: ['http://example.test/callback'] }],
        connectors: [{ id: 'old-dir', type: 'local', name: 'Old directory', enabled: false }],
      },
    });
    // Real traffic: pat signs in twice, fails three times; the admin fails once.
    await goodLogin(broker.issuer, PLAIN_USER);
    await goodLogin(broker.issuer, PLAIN_USER);
    for (let i = 0; i < 3; i++) await failedLogin(broker.issuer, PLAIN_USER.username);
    await failedLogin(broker.issuer, ADMIN.username);
    // Two days ago (only in the 7-day chart): a success and a failure of another connector.
    const at = new Date(Date.now() - 2 * DAY);
    await broker.store.knex('audit_events').insert([
      { at, type: 'login.success', outcome: 'success', connector_id: 'corp-sso', details: '{}' },
      { at, type: 'login.failure', outcome: 'failure', connector_id: 'corp-sso', details: JSON.stringify({ reason: 'upstream_denied' }) },
    ]);
    // Eight days ago (outside every chart): old-dir's last sign-in succeeded and then it failed
    // (failing now); local failed once too, but has signed people in since (not failing now).
    const old = Date.now() - 8 * DAY;
    await broker.store.knex('audit_events').insert([
      { at: new Date(old), type: 'login.success', outcome: 'success', connector_id: 'old-dir', details: '{}' },
      { at: new Date(old + 60_000), type: 'login.error', outcome: 'failure', connector_id: 'old-dir', details: JSON.stringify({ stage: 'callback' }) },
      { at: new Date(old), type: 'login.error', outcome: 'failure', connector_id: 'local', details: JSON.stringify({ stage: 'login' }) },
    ]);
    // An active key created 100 days ago.
    const [key] = await broker.store.knex('signing_keys').where({ status: 'active' }).select('kid').orderBy('kid');
    await broker.store.knex('signing_keys').where({ kid: key.kid }).update({ created_at: new Date(Date.now() - 100 * DAY) });
    chromium = await launchChromium();
  });
  after(async () => {
    await chromium?.close();
    await broker?.close();
  });

  const totals = (page: import('playwright-core').Page, id: string) =>
    page.$$eval(`table[data-testid="${id}"] tbody tr`, (rows) => rows.map((r) => [...r.querySelectorAll('th, td')].map((c) => c.textContent!.trim()).join(' | ')));

  test('charts of the last 24 hours and 7 days with their numbers per connector, failure reasons, connectors, key age, hints', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const session = await openConsolePage(chromium);
    const { page } = session;
    await signInToConsole(session, broker.issuer);
    assert.equal(await page.textContent('h1'), 'Dashboard');
    await page.waitForSelector('table[data-testid="logins-24h"]');
    await page.waitForSelector('table[data-testid="logins-7d"]');
    // One uPlot canvas per chart, drawn (non-zero size).
    await page.waitForFunction(() => document.querySelectorAll('.login-chart .uplot canvas').length === 2);
    const sizes = await page.$$eval('.login-chart .uplot canvas', (cs) => cs.map((c) => (c as HTMLCanvasElement).width * (c as HTMLCanvasElement).height));
    assert.ok(sizes.every((s) => s > 0), 'the canvases are drawn');
    // The admin's own console sign-in is a local success too: 2 (pat) + 1 (ada).
    assert.deepEqual(await totals(page, 'logins-24h'), ['local | 3 | 4']);
    assert.deepEqual(await totals(page, 'logins-7d'), ['corp-sso | 1 | 1', 'local | 3 | 4']);
    assert.equal(await page.getAttribute('.login-chart >> nth=0', 'aria-describedby'), 'logins-24h');
    assert.equal(await page.getAttribute('.login-chart-canvas >> nth=0', 'aria-hidden'), 'true');

    const reasons = await page.$$eval('table[data-testid="failure-reasons"] tbody tr', (rows) => rows.map((r) => [...r.querySelectorAll('td')].slice(0, 2).map((c) => c.textContent!.trim()).join(' ')));
    assert.deepEqual(reasons, ['invalid_credentials 4', 'upstream_denied 1']);

    const problems = await page.textContent('[data-testid="connector-problems"]');
    assert.match(problems!, /Old directory \(old-dir\)\s*disabled\s*last error: the connector failed or its upstream did not answer \(callback\)/);
    const localProblem = await page.$$eval('[data-testid="connector-problems"] li', (items) => items.map((li) => li.textContent!).find((t) => t.includes('(local)')));
    assert.doesNotMatch(localProblem!, /last error/, 'an error older than the latest success is not a problem now');
    assert.match(problems!, /Username and password \(local\)\s*4 of 7 sign-ins failed in 24 h/, 'most recent sign-ins failed');

    const keyAges = await page.textContent('[data-testid="key-ages"]');
    assert.match(keyAges!, /100 days old\s*older than 90 days: rotate/);

    const portal = page.locator('[data-hint="client-http-redirect:legacy-portal"]');
    assert.match((await portal.textContent())!, /Client legacy-portal redirects over plain http.*http:\/\/example\.test\/callback/s);
    assert.equal(await portal.locator('a').getAttribute('href'), '/admin/clients/legacy-portal');
    assert.ok(await page.isVisible('[data-hint="admin-mfa"]'));
    assert.ok(await page.locator('[data-hint^="key-age:"]').count() === 1);
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 1280));
    await screenshot(page, "dashboard");
    assert.deepEqual(session.pageErrors, []);
    assertOnlyApiAndSignIn(session.requests, broker.issuer);
    await session.context.close();
  });

  test('on a 390 px phone the charts fit the screen', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const session = await openConsolePage(chromium, { width: 390, height: 844 });
    const { page } = session;
    await signInToConsole(session, broker.issuer);
    await page.waitForFunction(() => document.querySelectorAll('.login-chart .uplot canvas').length === 2);
    await page.waitForSelector('[data-testid="hints"]');
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 390), 'no horizontal scrolling');
    const widths = await page.$$eval('.login-chart .uplot', (els) => els.map((e) => e.getBoundingClientRect().right));
    assert.ok(widths.every((w) => w <= 390), `charts within the screen: ${widths}`);
    assert.deepEqual(session.pageErrors, []);
    assertOnlyApiAndSignIn(session.requests, broker.issuer);
    await session.context.close();
  });
});
