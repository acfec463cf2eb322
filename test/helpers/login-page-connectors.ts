// Which connectors the login page offers right now, and waiting (bounded) for it to change:
// what a person sees is the test of a connector reload.
import assert from 'node:assert/strict';
import { Browser } from './browser.ts';

export const RP_REDIRECT = 'http://127.0.0.1:9/rp/cb';

/** A config client whose authorization requests open the login page. */
export const RP_CLIENT = { id: 'rp', secret: 'rp-secret-0123456789abcdef', redirectUris: [RP_REDIRECT], firstParty: true, grantTypes: ['authorization_code', 'refresh_token'] };

/** The ids of the connectors on a fresh login page of `origin` (password and redirect ones). */
export async function offeredConnectors(origin: string): Promise<string[]> {
  const query = new URLSearchParams({ client_id: RP_CLIENT.id, response_type: 'code', redirect_uri: RP_REDIRECT, scope: 'openid', state: 'st', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' });
  const page = await new Browser(origin).go(`${origin}/auth?${query}`);
  assert.equal(page.status, 200, `expected the login page, got ${page.status} at ${page.url}`);
  const ids = new Set<string>();
  for (const m of page.html.matchAll(/<option value="([^"]+)"|name="connector" value="([^"]+)"|\/connector\/([^"]+)"/g)) ids.add(m[1] ?? m[2] ?? m[3]!);
  return [...ids];
}

/** Polls `condition` until it holds; fails after `ms` with `what`. Returns the time it took. */
export async function within(ms: number, condition: () => Promise<boolean>, what: string): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await condition()) return Date.now() - started;
    if (Date.now() - started > ms) assert.fail(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
