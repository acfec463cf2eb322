// What the account console suites share: a broker with local users and a real upstream OpenID
// provider (oidc-provider on loopback) as connector `acme`, a first-party app `rp` with refresh
// tokens, signing in to the account console's own client over HTTP (code + PKCE through the real
// login pages, as the console does), and a small client for the account API.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as oidc from 'openid-client';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { Browser, type Page } from '../helpers/browser.ts';
import { freePort } from '../helpers/free-port.ts';
import { startUpstreamOp, type UpstreamOp, type UpstreamUser } from '../helpers/upstream-op.ts';
import { hashPassword } from '../../src/accounts/passwords.ts';

export const CLIENT_ID = 'keybridge-account-console';
export const RP_SECRET = 'rp-secret-0123456789abcdef';
export const RP_REDIRECT = 'http://127.0.0.1:9/cb';
export const UPSTREAM_SECRET = 'keybridge-at-upstream-0123456789';
export const PASSWORD = 'correct horse battery staple';

export const upstreamUser = (id: string, claims: Record<string, unknown> = {}): UpstreamUser => ({
  id: `op-${id}`,
  username: id,
  password: `${id}#Upstream1`,
  claims: { preferred_username: id, email: `${id}@upstream.example`, email_verified: true, name: `${id} Upstream`, ...claims },
});

export interface AccountWorld {
  broker: TestBroker;
  op: UpstreamOp;
  rp: oidc.Configuration;
  close(): Promise<void>;
}

/** A broker (PGlite unless databaseUrl) with connectors local and acme (the upstream OP), and the rp client. */
export async function startAccountWorld(options: { databaseUrl?: string; upstreamUsers: UpstreamUser[]; account?: Record<string, unknown>; config?: Record<string, unknown> }): Promise<AccountWorld> {
  const port = await freePort();
  const op = await startUpstreamOp({
    users: options.upstreamUsers,
    clients: [{ client_id: 'keybridge', client_secret: UPSTREAM_SECRET, redirect_uris: [`http://127.0.0.1:${port}/callback/acme`], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'] }],
  });
  const broker = await startTestBroker({
    port,
    databaseUrl: options.databaseUrl,
    config: {
      secrets: { tokenKeys: ['token-key-for-the-account-suite-00001'] },
      clients: [{ id: 'rp', secret: RP_SECRET, redirectUris: [RP_REDIRECT], grantTypes: ['authorization_code', 'refresh_token'], firstParty: true }],
      connectors: [
        { id: 'local', type: 'local', name: 'Username and password' },
        { id: 'acme', type: 'oidc', name: 'Acme ID', storeTokens: true, config: { issuer: op.issuer, clientId: 'keybridge', clientSecret: UPSTREAM_SECRET, scopes: ['openid', 'profile', 'email', 'offline_access'], timeoutMs: 3000 } },
      ],
      account: options.account ?? {},
      ...options.config,
    },
  });
  const rp = await oidc.discovery(new URL(broker.issuer), 'rp', RP_SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
  return {
    broker,
    op,
    rp,
    async close() {
      await broker.close();
      await op.close();
    },
  };
}

/** A local user managed at runtime (not declared in config), with a password. */
export async function createLocalUser(broker: TestBroker, username: string, extra: Record<string, unknown> = {}): Promise<string> {
  const user = await broker.store.users.create({ username, email: `${username}@example.org`, emailVerified: true, name: `${username} Local`, ...extra });
  await broker.store.credentials.setPassword(user.id, await hashPassword(PASSWORD));
  return user.id;
}

const b64 = (buf: Buffer) => buf.toString('base64url');

export interface ConsoleLogin {
  accessToken: string;
  browser: Browser;
}

/**
 * Signs in to the account console's client the way the console does (code + PKCE, redirect to
 * /account/callback), through the login page with a password, or through `upstream`'s login.
 * `reauthenticate`: prompt=login and max_age=0 (the console's re-authentication).
 */
export async function consoleLogin(
  issuer: string,
  who: { username: string; password?: string; upstream?: { op: UpstreamOp; user: UpstreamUser } },
  options: { browser?: Browser; reauthenticate?: boolean; acceptLanguage?: string } = {},
): Promise<ConsoleLogin> {
  const browser = options.browser ?? new Browser(issuer);
  const verifier = b64(randomBytes(32));
  const challenge = b64(createHash('sha256').update(verifier).digest());
  const redirectUri = `${issuer}/account/callback`;
  const url = new URL(`${issuer}/auth`);
  url.search = new URLSearchParams({
    client_id: CLIENT_ID,
    response_type: 'code',
    redirect_uri: redirectUri,
    scope: 'openid profile email',
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state: 'st',
    ...(options.reauthenticate ? { prompt: 'login', max_age: '0' } : {}),
  }).toString();
  let page: Page = await browser.go(url.href);
  if (/name="password"/.test(page.html)) {
    if (who.upstream) {
      const away = await browser.submit(page, '/connector/acme');
      assert.ok(away.url.startsWith(who.upstream.op.origin), `sent upstream: ${away.url}`);
      const back = await who.upstream.op.authorize(away.url, { username: who.upstream.user.username, password: who.upstream.user.password });
      page = await browser.go(back.url);
    } else {
      page = await browser.submit(page, '/login', { username: who.username, password: who.password ?? PASSWORD });
    }
  }
  const at = new URL(page.url);
  assert.equal(at.pathname, '/account/callback', `expected the console callback, got ${page.status} at ${page.url}: ${page.html.slice(0, 300)}`);
  const code = at.searchParams.get('code');
  assert.ok(code, `no code at ${page.url}`);
  const res = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, client_id: CLIENT_ID, code_verifier: verifier }),
  });
  const body = (await res.json()) as { access_token?: string };
  assert.equal(res.status, 200, JSON.stringify(body));
  return { accessToken: body.access_token!, browser };
}

/** Signs `username` in to the rp app (by default with offline_access): tokens with a refresh token. */
export async function rpLogin(world: AccountWorld, browser: Browser, username: string, scope = 'openid profile offline_access') {
  const verifier = oidc.randomPKCECodeVerifier();
  const url = oidc.buildAuthorizationUrl(world.rp, { redirect_uri: RP_REDIRECT, scope, prompt: 'consent', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state: 'st' });
  let page = await browser.go(url.href);
  if (/name="password"/.test(page.html)) page = await browser.submit(page, '/login', { username, password: PASSWORD });
  if (page.html && /\/confirm"/.test(page.html)) page = await browser.submit(page, '/confirm');
  assert.ok(page.url.startsWith(RP_REDIRECT), `expected the rp callback, got ${page.status} ${page.url}`);
  return oidc.authorizationCodeGrant(world.rp, new URL(page.url), { pkceCodeVerifier: verifier, expectedState: 'st' });
}

export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

/** Calls the account API with a token (null: none); `body` is sent as JSON, `raw` as given. */
export async function call<T = any>(issuer: string, token: string | null, method: string, path: string, options: { body?: unknown; raw?: string | Uint8Array<ArrayBuffer>; headers?: Record<string, string> } = {}): Promise<ApiResponse<T>> {
  const headers: Record<string, string> = { ...(token ? { authorization: `Bearer ${token}` } : {}), ...options.headers };
  let body: string | Uint8Array<ArrayBuffer> | undefined = options.raw;
  if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(`${issuer}/account/api${path}`, { method, headers, body });
  const text = await res.text();
  const type = res.headers.get('content-type') ?? '';
  return { status: res.status, headers: res.headers, body: (type.includes('json') && text ? JSON.parse(text) : text) as T, text };
}

/** Makes the session of this token look signed in `seconds` ago (the re-authentication clock). */
export async function ageSignIn(broker: TestBroker, userId: string, seconds: number): Promise<void> {
  await broker.store.knex('login_sessions').where('user_id', userId).update({ authenticated_at: new Date(Date.now() - seconds * 1000) });
}
