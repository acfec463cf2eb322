// Second factors from the account console in Chromium: a passkey registered with a virtual
// WebAuthn authenticator, an authenticator app enrolled from the QR page with a real code (and
// the recovery codes shown once), new recovery codes, and removing a factor. The issuer is
// localhost: WebAuthn refuses an IP address as the relying party id.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as OTPAuth from 'otpauth';
import type { Browser as Chromium } from 'playwright-core';
import { chromiumMissing, launchChromium } from '../helpers/chromium.ts';
import { addVirtualAuthenticator } from '../helpers/virtual-authenticator.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { freePort } from '../helpers/free-port.ts';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { createLocalUser, PASSWORD } from './account-support.ts';

describe('account console second factors (Chromium, virtual authenticator)', () => {
  let broker: TestBroker;
  let chromium: Chromium;
  let issuer = '';
  const missing = chromiumMissing();

  before(async () => {
    if (missing) return;
    const port = await freePort();
    issuer = `http://localhost:${port}`;
    broker = await startTestBroker({ port, config: { issuer, connectors: [{ id: 'local', type: 'local', name: 'Username and password' }] } });
    chromium = await launchChromium();
  });
  after(async () => {
    await chromium?.close();
    await broker?.close();
  });

  test('add a passkey and an authenticator app, see the recovery codes once, get new ones, remove a factor', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const id = await createLocalUser(broker, 'pax');
    const context = await chromium.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    const authenticator = await addVirtualAuthenticator(page);
    await page.goto(`${issuer}/account/sign-in`);
    await page.waitForSelector('#username');
    await page.fill('#username', 'pax');
    await page.fill('#password', PASSWORD);
    await page.click('button[type=submit].primary');
    await page.waitForSelector('[data-testid="passkey-add"]');

    await page.fill('#passkey-name', 'Laptop');
    await page.click('[data-testid="passkey-add"] button[type=submit]');
    await page.waitForSelector('[data-testid="recovery-codes"]');
    assert.match((await page.textContent('[data-testid="mfa-notice"]'))!, /passkey was added/);
    const firstCodes = await page.$$eval('[data-testid="recovery-codes"] code', (els) => els.map((e) => e.textContent));
    assert.equal(firstCodes.length, 10);
    assert.equal((await authenticator.credentials()).length, 1);
    const factors = await broker.store.mfa.list(id);
    assert.deepEqual(factors.map((f) => [f.type, f.name, f.confirmed]), [['webauthn', 'Laptop', true]]);

    await page.click('[data-testid="add-totp"]');
    await page.waitForSelector('[data-testid="totp-enrol"] img.qr');
    const secret = (await page.textContent('[data-testid="totp-secret"]'))!;
    const code = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), algorithm: 'SHA1', digits: 6, period: 30 }).generate();
    await page.fill('#totp-code', code);
    await page.click('[data-testid="totp-enrol"] button[type=submit]');
    await page.waitForSelector('[data-testid="factors"] li[data-type="totp"]');
    assert.match((await page.textContent('[data-testid="mfa-notice"]'))!, /authenticator app was added/);
    assert.equal(await page.$('[data-testid="recovery-codes"]'), null, 'codes are shown only with the first factor');

    await page.click('[data-testid="regenerate-codes"]');
    await page.waitForSelector('[data-testid="recovery-codes"]');
    const newCodes = await page.$$eval('[data-testid="recovery-codes"] code', (els) => els.map((e) => e.textContent));
    assert.equal(newCodes.length, 10);
    assert.notDeepEqual(newCodes, firstCodes);

    await page.click('[data-testid="factors"] li[data-type="webauthn"] [data-testid="remove-factor"]');
    await page.click('[data-testid="factors"] li[data-type="webauthn"] [data-testid="confirm"]');
    await page.waitForFunction(() => !document.querySelector('[data-testid="factors"] li[data-type="webauthn"]'));
    assert.deepEqual((await broker.store.mfa.list(id)).map((f) => f.type), ['totp']);
    const types = (await broker.store.audit.list({ userId: id, limit: 50 })).map((e) => e.type);
    for (const type of ['mfa.enrolled', 'mfa.recovery_codes_issued', 'mfa.factor_removed']) assert.ok(types.includes(type), type);
    assert.deepEqual(errors, []);
    await context.close();
  });
});
