// The console's Two-step verification page in Chromium, against a real broker: the levels from the
// config file are listed (read-only ones say so); a group is set to required through the form,
// shown as set here (the API agrees), a config group is refused with the API's words, and the
// group's mode is cleared again.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser as Chromium } from 'playwright-core';
import { chromiumMissing } from '../helpers/chromium.ts';
import { skipLoudly } from '../helpers/skip.ts';
import type { TestBroker } from '../helpers/test-broker.ts';
import { AdminApiClient, adminClientConfig, clientToken } from '../helpers/admin-api.ts';
import { ADMIN, assertFitsPhone, assertOnlyApiAndSignIn, launchChromium, openConsolePage, screenshot, signInToConsole, startConsoleBroker, unexpectedErrors } from '../helpers/admin-console.ts';

describe('admin console: two-step verification', () => {
  let broker: TestBroker;
  let chromium: Chromium;
  let api: AdminApiClient;
  const missing = chromiumMissing();

  before(async () => {
    if (missing) return;
    // The config's levels name nobody who signs in here: the admin's own sign-in stays one step.
    broker = await startConsoleBroker({ config: { clients: [adminClientConfig('ops')], mfa: { groups: { auditors: 'required' } } } });
    api = new AdminApiClient(broker.issuer, await clientToken(broker.issuer, 'ops', 'admin:read admin:write'));
    chromium = await launchChromium();
  });
  after(async () => {
    await chromium?.close();
    await broker?.close();
  });

  test('set a group to required, see it listed, a config group refused, clear it', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const session = await openConsolePage(chromium);
    const { page } = session;
    await signInToConsole(session, broker.issuer, ADMIN, '/admin/mfa');
    await page.waitForSelector('h1:has-text("Two-step verification")');
    assert.equal(await page.getAttribute('#console-nav a[href="/admin/mfa"]', 'aria-current'), 'page');
    const rows = async () => page.$$eval('table.data tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => (td as HTMLElement).innerText.trim())));
    await page.waitForSelector('table.data tbody tr');
    assert.deepEqual(await rows(), [
      ['Everyone', 'every sign-in', 'optional', 'config default', '—'],
      ['Group', 'auditors', 'required', 'managed by config', '—'],
    ]);

    await page.selectOption('form[aria-labelledby=mfa-set-title] select[name=kind]', 'group');
    await page.fill('form[aria-labelledby=mfa-set-title] input[name=target]', 'staff');
    await page.selectOption('form[aria-labelledby=mfa-set-title] select[name=mode]', 'required');
    await page.click('form[aria-labelledby=mfa-set-title] button[type=submit]');
    await page.waitForSelector('table.data tbody tr:has(code:text-is("staff"))');
    assert.deepEqual((await rows())[2], ['Group', 'staff', 'required', 'set here', 'Clear']);
    assert.match((await page.textContent('form[aria-labelledby=mfa-set-title] .notice'))!, /group staff is now required/);
    const stored = (await api.get('/mfa-policies')).body.items.filter((p: { source: string }) => p.source === 'stored');
    assert.deepEqual(stored.map((p: { kind: string; target: string; mode: string }) => [p.kind, p.target, p.mode]), [['group', 'staff', 'required']]);
    await screenshot(page, 'mfa');
    await assertFitsPhone(page, 'the two-step verification page');

    // A level the config file declares: the API's 409 is shown, nothing changes.
    await page.fill('form[aria-labelledby=mfa-set-title] input[name=target]', 'auditors');
    await page.selectOption('form[aria-labelledby=mfa-set-title] select[name=mode]', 'off');
    await page.click('form[aria-labelledby=mfa-set-title] button[type=submit]');
    await page.waitForSelector('form[aria-labelledby=mfa-set-title] .alert');
    assert.match((await page.textContent('form[aria-labelledby=mfa-set-title] .alert'))!, /configuration file/);
    assert.equal((await rows())[1][2], 'required');

    await page.click('table.data tbody tr:has(code:text-is("staff")) button:has-text("Clear")');
    await page.click('dialog[open] button:has-text("Clear")');
    await page.waitForSelector('table.data tbody tr:has(code:text-is("staff"))', { state: 'detached' });
    assert.equal((await rows()).length, 2);
    assert.equal(await broker.store.mfaPolicies.find('group', 'staff'), null);

    assert.deepEqual(unexpectedErrors(session.pageErrors, [409]), []);
    assertOnlyApiAndSignIn(session.requests, broker.issuer);
    await session.context.close();
  });
});
