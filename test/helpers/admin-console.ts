// The admin console in a real Chromium, as an operator meets it: a broker with an administrator
// and a plain user, a browser page that signs in through Keybridge's own login page, a record of
// every request the page made (so a suite can assert the console only ever reached the admin
// API and the sign-in endpoints), and screenshots at desktop and phone widths into an ignored
// folder (test/.work/console-screenshots).
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import assert from 'node:assert/strict';
import type { Browser as Chromium, BrowserContext, Page } from 'playwright-core';
import { launchChromium } from './chromium.ts';
import { startTestBroker, type TestBroker } from './test-broker.ts';

export const SCREENSHOT_DIR = path.resolve(import.meta.dirname, '../.work/console-screenshots');
export const ADMIN = { username: 'ada-admin', password: 'ada-admin-password-1' };
export const PLAIN_USER = { username: 'pat-user', password: 'pat-user-password-1' };
export const ADMIN_GROUP = 'keybridge-admins';

/** Config for a console suite: the admin group, an admin, a plain user and the local connector. */
export function consoleConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const { users = [], connectors = [], admin = {}, ...rest } = extra as { users?: unknown[]; connectors?: unknown[]; admin?: Record<string, unknown> };
  return {
    admin: { groups: [ADMIN_GROUP], ...admin },
    users: [
      { username: ADMIN.username, email: 'ada@example.org', name: 'Ada Admin', password: ADMIN.password, groups: [ADMIN_GROUP] },
      { username: PLAIN_USER.username, email: 'pat@example.org', name: 'Pat User', password: PLAIN_USER.password, groups: ['staff'] },
      ...users,
    ],
    connectors: [{ id: 'local', type: 'local', name: 'Username and password' }, ...connectors],
    ...rest,
  };
}

export interface ConsoleSession {
  page: Page;
  context: BrowserContext;
  /** Every request the page made: method and URL. */
  requests: { method: string; url: string }[];
  /** Console errors and uncaught exceptions in the page (CSP violations land here too). */
  pageErrors: string[];
}

/** A fresh browser context and page at 1280 px, recording its requests and errors. */
export async function openConsolePage(chromium: Chromium, options: { width?: number; height?: number } = {}): Promise<ConsoleSession> {
  const context = await chromium.newContext({ viewport: { width: options.width ?? 1280, height: options.height ?? 900 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write']).catch(() => {});
  const page = await context.newPage();
  const requests: { method: string; url: string }[] = [];
  const pageErrors: string[] = [];
  page.on('request', (r) => requests.push({ method: r.method(), url: r.url() }));
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(m.text());
  });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  return { page, context, requests, pageErrors };
}

/** Fills Keybridge's login form (the page must be on it). */
export async function submitLogin(page: Page, user: { username: string; password: string }): Promise<void> {
  await page.waitForSelector('#username');
  await page.fill('#username', user.username);
  await page.fill('#password', user.password);
  await page.click('button[type=submit].primary');
}

/** Opens the console, signs in, and waits until the console shows who is signed in. */
export async function signInToConsole(session: ConsoleSession, issuer: string, user = ADMIN, at = '/admin/'): Promise<void> {
  await session.page.goto(`${issuer}${at}`);
  await submitLogin(session.page, user);
  await session.page.waitForSelector('[data-testid="signed-in-as"]');
}

/** Saves the page at 1280 px and at 390 px (a phone) under SCREENSHOT_DIR. */
export async function screenshot(page: Page, name: string): Promise<void> {
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  const size = page.viewportSize() ?? { width: 1280, height: 900 };
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}-1280.png`), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}-390.png`), fullPage: true });
  await page.setViewportSize(size);
}

/**
 * What a console page may request: the console's own shell and assets, the stylesheet, the
 * admin API, and the OIDC endpoints of signing in and out (with the login pages they lead to).
 * Anything else would mean the console reached Keybridge some other way.
 */
export function assertOnlyApiAndSignIn(requests: { method: string; url: string }[], issuer: string): void {
  const stray = requests.filter(({ method, url }) => {
    if (url.startsWith('data:') || url === 'about:blank') return false;
    if (!url.startsWith(`${issuer}/`)) return true;
    const p = new URL(url).pathname;
    if (p.startsWith('/admin/api/v1/')) return false;
    if (method === 'GET' && (p === '/admin' || p.startsWith('/admin/'))) return false;
    if (method === 'GET' && p === '/assets/keybridge.css') return false;
    if (['/.well-known/openid-configuration', '/auth', '/token', '/session/end', '/session/end/confirm'].includes(p) || p.startsWith('/auth/') || p.startsWith('/interaction/') || p.startsWith('/session/end')) return false;
    return true;
  });
  assert.deepEqual(stray, [], 'the console made requests outside the admin API and sign-in');
}

/** At 390 px the page scrolls only vertically (wide tables scroll inside their frame). */
export async function assertFitsPhone(page: Page, what: string): Promise<void> {
  const size = page.viewportSize()!;
  await page.setViewportSize({ width: 390, height: 844 });
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 390), `${what} fits a 390 px screen`);
  await page.setViewportSize(size);
}

/** Console errors other than the failed API calls a test provoked on purpose (by status). */
export const unexpectedErrors = (errors: string[], statuses: number[]) => errors.filter((e) => !statuses.some((s) => e.includes(`status of ${s}`)));

/** Starts a broker for a console suite (PGlite unless databaseUrl is given). */
export async function startConsoleBroker(options: { config?: Record<string, unknown>; databaseUrl?: string; connectorPollMs?: number } = {}): Promise<TestBroker> {
  return startTestBroker({ databaseUrl: options.databaseUrl, connectorPollMs: options.connectorPollMs, config: consoleConfig(options.config) });
}

export { launchChromium };
