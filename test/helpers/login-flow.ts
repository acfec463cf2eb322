// Drives the broker's real pages the way a person would: authorization URL -> login form ->
// (consent) -> back at the relying party's redirect URI.
import assert from 'node:assert/strict';
import { Browser, type Page } from './browser.ts';

export interface LoginOptions {
  username: string;
  password: string;
  connector?: string;
  /** Approve the consent page if one is shown (default true). */
  consent?: boolean;
}

/** Returns the off-broker URL the browser was finally sent to (the RP callback). */
export async function signIn(browser: Browser, authorizationUrl: string, options: LoginOptions): Promise<string> {
  let page: Page = await browser.go(authorizationUrl);
  assert.match(page.html, /name="password"/, `expected a login form at ${page.url}, got status ${page.status}`);
  page = await browser.submit(page, '/login', {
    username: options.username,
    password: options.password,
    ...(options.connector ? { connector: options.connector } : {}),
  });
  if (page.html && /\/confirm"/.test(page.html)) {
    page = await browser.submit(page, options.consent === false ? '/abort' : '/confirm');
  }
  assert.ok(!page.html, `expected a redirect to the relying party, got ${page.status} at ${page.url}: ${page.html.slice(0, 500)}`);
  return page.url;
}
