// For the dashboard and audit suites: real sign-in traffic (logins through Keybridge's own login
// page for a relying party, code + PKCE as test/helpers/admin-api.ts's userToken does, succeeding
// or failing with a wrong password) so the audit trail and the statistics hold real login events;
// and the page errors of a session apart from Chromium's favicon request.
import assert from 'node:assert/strict';
import type { ConsoleSession } from '../helpers/admin-console.ts';
import * as oidc from 'openid-client';
import { Browser } from '../helpers/browser.ts';
import { CONSOLE_REDIRECT, consoleClientConfig, userToken } from '../helpers/admin-api.ts';

/** The relying party the traffic signs in to (a config client). */
export const TRAFFIC_CLIENT = 'traffic-app';
export const trafficClientConfig = () => consoleClientConfig(TRAFFIC_CLIENT);

/** A successful login (through to the token). */
export async function goodLogin(issuer: string, user: { username: string; password: string }): Promise<void> {
  await userToken(issuer, TRAFFIC_CLIENT, user.username, user.password);
}

/** A login with a wrong password: the login page answers 401. */
export async function failedLogin(issuer: string, username: string): Promise<void> {
  const rp = await oidc.discovery(new URL(issuer), TRAFFIC_CLIENT, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
  const verifier = oidc.randomPKCECodeVerifier();
  const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: CONSOLE_REDIRECT, scope: 'openid', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state: 'st' });
  const browser = new Browser(issuer);
  const page = await browser.go(url.href);
  assert.match(page.html, /name="password"/);
  const after = await browser.submit(page, '/login', { username, password: 'not-the-password-0' });
  assert.equal(after.status, 401, `a wrong password is refused (got ${after.status})`);
}

/**
 * Chromium asks for /favicon.ico, which Keybridge does not serve (404), and reports that as a
 * console error (the frame's own console-shell suite fails on it too, here). Start this right
 * after openConsolePage; `unexpected()` is session.pageErrors without those messages, and only
 * those: every other 404 still counts.
 */
export function pageErrorsBesidesFavicon(session: ConsoleSession): { unexpected: () => string[] } {
  const favicon: string[] = [];
  session.page.on('console', (m) => {
    if (m.type() === 'error' && URL.canParse(m.location().url) && new URL(m.location().url).pathname === '/favicon.ico') favicon.push(m.text());
  });
  return {
    unexpected: () => {
      const rest = [...session.pageErrors];
      for (const text of favicon) {
        const i = rest.indexOf(text);
        if (i >= 0) rest.splice(i, 1);
      }
      return rest;
    },
  };
}
