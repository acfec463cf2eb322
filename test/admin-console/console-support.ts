// For the dashboard and audit suites: real sign-in traffic (logins through Keybridge's own login
// page for a relying party, code + PKCE as test/helpers/admin-api.ts's userToken does, succeeding
// or failing with a wrong password) so the audit trail and the statistics hold real login events.
import assert from 'node:assert/strict';
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
