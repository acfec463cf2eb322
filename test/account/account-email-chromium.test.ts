// Changing the email address in the account console, in a real Chromium with a real SMTP
// receiver: the person asks for the new address in the console, the confirmation mail arrives at
// that address (the old one gets a notice), the link opens a page whose button confirms, and the
// console then shows the new address as verified.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser as Chromium } from 'playwright-core';
import { chromiumMissing, launchChromium } from '../helpers/chromium.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { MailCatcher, linkIn } from '../email/mail-catcher.ts';
import { createLocalUser, PASSWORD, startAccountWorld, type AccountWorld } from './account-support.ts';

describe('email change in the account console (Chromium, real SMTP)', () => {
  let world: AccountWorld;
  let chromium: Chromium;
  const smtp = new MailCatcher();
  const missing = chromiumMissing();

  before(async () => {
    if (missing) return;
    await smtp.start();
    world = await startAccountWorld({ upstreamUsers: [], config: { email: { smtp: smtp.url, pollSeconds: 1 } } });
    chromium = await launchChromium();
  });
  after(async () => {
    await chromium?.close();
    await world?.close();
    await smtp.stop();
  });

  test('ask in the console, follow the mailed link, confirm: the console shows the new, verified address', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const issuer = world.broker.issuer;
    const id = await createLocalUser(world.broker, 'olga', { emailVerified: true });
    const context = await chromium.newContext({ viewport: { width: 390, height: 844 }, locale: 'en-US' });
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await page.goto(`${issuer}/account/`);
    await page.waitForSelector('#username');
    await page.fill('#username', 'olga');
    await page.fill('#password', PASSWORD);
    await page.click('button[type=submit].primary');
    await page.waitForSelector('[data-testid="email"]');
    assert.equal((await page.textContent('[data-testid="email"]'))?.trim(), 'olga@example.org');

    await page.fill('#new-email', 'olga.new@example.org');
    await page.click('[data-testid="email-form"] button[type=submit]');
    await page.waitForSelector('[data-testid="email-sent"]');
    assert.equal((await world.broker.store.users.findById(id))!.email, 'olga@example.org', 'nothing changes before the link');

    const verify = await smtp.waitFor('olga.new@example.org');
    const notice = await smtp.waitFor('olga@example.org');
    assert.doesNotMatch(notice.text ?? '', /\/email\/verify\//, 'the old address is told, not sent a link');
    await page.goto(linkIn(verify, '/email/verify/'));
    assert.equal((await world.broker.store.users.findById(id))!.email, 'olga@example.org', 'opening the link alone changes nothing (mail scanners open links)');
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit].primary')]);
    assert.equal((await world.broker.store.users.findById(id))!.email, 'olga.new@example.org');

    await page.goto(`${issuer}/account/`);
    await page.waitForSelector('[data-testid="email"]');
    assert.equal((await page.textContent('[data-testid="email"]'))?.trim(), 'olga.new@example.org');
    const user = await world.broker.store.users.findById(id);
    assert.equal(user!.emailVerified, true);
    assert.deepEqual(pageErrors, []);
    await context.close();
  });
});
