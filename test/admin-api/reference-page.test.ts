// The admin API's reference page in a real browser: Swagger UI served by Keybridge itself renders
// every operation of the OpenAPI document under the strict page CSP (no CDN, no inline script),
// and the browser reports no CSP violation or script error.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser as Chromium } from 'playwright-core';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { chromiumMissing, launchChromium } from '../helpers/chromium.ts';

describe('admin API reference page in Chromium', () => {
  let broker: TestBroker;
  let chromium: Chromium | undefined;
  const missing = chromiumMissing();

  before(async () => {
    if (missing) return;
    broker = await startTestBroker();
    chromium = await launchChromium();
  });

  after(async () => {
    await chromium?.close();
    await broker?.close();
  });

  test('renders every operation of the document, loading nothing from elsewhere', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const page = await chromium!.newPage();
    const problems: string[] = [];
    const foreign: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(String(e)));
    const failed: string[] = [];
    page.on('response', (r) => {
      if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) failed.push(`${r.status()} ${r.url()}`);
    });
    page.on('request', (r) => {
      if (!r.url().startsWith(broker.issuer) && !r.url().startsWith('data:')) foreign.push(r.url());
    });
    await page.goto(`${broker.issuer}/admin/api/docs`);
    const document = (await (await fetch(`${broker.issuer}/admin/api/v1/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    const operations = Object.values(document.paths).reduce((n, p) => n + Object.keys(p).length, 0);
    await page.waitForSelector('.opblock', { timeout: 15_000 });
    const rendered = await page.locator('.opblock').count();
    assert.equal(rendered, operations, 'one block per operation');
    assert.ok(await page.getByText('Keybridge admin API').first().isVisible());
    assert.deepEqual(foreign, [], 'nothing loaded from another origin');
    assert.deepEqual(failed, [], 'every asset the page asks for is served');
    // The browser's own line for a missing favicon names no URL; failed responses are checked above.
    assert.deepEqual(problems.filter((p) => !/^Failed to load resource/.test(p)), [], 'no CSP violation or script error');
    await page.close();
  });
});
