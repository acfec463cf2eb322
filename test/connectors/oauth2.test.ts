// The `oauth2` connector against local fakes of GitHub (and Enterprise), Bitbucket and Discord
// speaking those providers' real API shapes, over real HTTP: the browser's trip to the
// authorize endpoint is a plain fetch that follows nothing, the rest is the connector's own.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import plugin from '../../connectors/oauth2/index.ts';
import { mapClaims, resolvePath } from '../../connectors/oauth2/claims-mapper.ts';
import { resolveOAuth2Config } from '../../connectors/oauth2/oauth2-config.ts';
import { checkConnectorEntries } from '../../src/connectors/registry.ts';
import { loadConfig } from '../../src/config/load-config.ts';
import type { LoginResult, RedirectConnector, UpstreamIdentity } from '../../src/connectors/contract.ts';
import { connectorUrls } from '../../src/connectors/registry.ts';
import { startFakeBitbucket, startFakeDiscord, startFakeGitHub, type FakeBitbucket, type FakeDiscord, type FakeGitHub, type FakeGitHubUser } from '../helpers/fake-oauth-providers.ts';

const CLIENT_ID = 'kb-client';
const CLIENT_SECRET = 'kb-client-secret-do-not-log';
const CALLBACK = 'https://broker.example.org/connectors/upstream/callback';

async function connectorFor(config: Record<string, unknown>, id = 'upstream'): Promise<RedirectConnector> {
  const parsed = plugin.configSchema.parse({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, ...config });
  return (await plugin.create({ id, name: id, config: parsed, logger: pino({ level: 'silent' }), fetch, urls: connectorUrls('https://broker.example.org', 'upstream'), services: {} as never })) as RedirectConnector;
}

interface Attempt {
  location: URL;
  params: Record<string, string>;
  context: Record<string, unknown>;
  finish(params?: Record<string, string>, context?: Record<string, unknown>): Promise<LoginResult>;
}

/** start → the browser at the upstream (approves or denies at once) → the redirect back. */
async function attempt(connector: RedirectConnector, login?: string): Promise<Attempt> {
  const state = randomBytes(16).toString('base64url');
  const started = await connector.start({ callbackUrl: CALLBACK, state });
  // The broker keeps the context server-side as JSON.
  const context = JSON.parse(JSON.stringify(started.context)) as Record<string, unknown>;
  const location = new URL(started.location);
  assert.equal(location.searchParams.get('state'), state, 'the broker state goes out verbatim');
  const browser = new URL(location);
  if (login) browser.searchParams.set('login', login);
  const res = await fetch(browser, { redirect: 'manual' });
  assert.equal(res.status, 302);
  const back = new URL(res.headers.get('location')!);
  assert.equal(`${back.origin}${back.pathname}`, CALLBACK);
  const params = Object.fromEntries(back.searchParams);
  return { location, params, context, finish: (p = params, ctx = context) => connector.callback({ callbackUrl: CALLBACK, params: p, context: ctx }) };
}

async function signIn(connector: RedirectConnector, login?: string): Promise<UpstreamIdentity> {
  return expectOk(await (await attempt(connector, login)).finish());
}

function expectOk(result: LoginResult): UpstreamIdentity {
  assert.ok(result.ok, `expected success, got ${JSON.stringify(result)}`);
  return result.identity;
}

function expectFailure(result: LoginResult, reason: string): string {
  assert.equal(result.ok, false, `expected ${reason}, got ${JSON.stringify(result)}`);
  if (result.ok) return '';
  assert.equal(result.reason, reason, result.detail);
  assert.ok(!JSON.stringify(result).includes(CLIENT_SECRET), 'no secret in a failure');
  return result.detail ?? '';
}

const octo: FakeGitHubUser = {
  id: 583231,
  login: 'octocat',
  name: 'The Octocat',
  email: 'public@octocat.example',
  emails: [
    { email: 'old@octocat.example', primary: false, verified: true, visibility: null },
    { email: 'octo@octocat.example', primary: true, verified: true, visibility: 'private' },
  ],
  orgs: ['acme', 'blue-sky', 'cats'],
  teams: [
    { org: 'acme', slug: 'core-devs' },
    { org: 'acme', slug: 'ops', name: 'Operations' },
    { org: 'cats', slug: 'whiskers' },
  ],
};
const unverified: FakeGitHubUser = {
  id: 777,
  login: 'newbie',
  name: null,
  email: 'newbie@example.org',
  emails: [
    { email: 'newbie@example.org', primary: true, verified: false },
    { email: 'other@example.org', primary: false, verified: true },
  ],
  orgs: ['other-org'],
};

describe('oauth2 connector, github preset', () => {
  let gh: FakeGitHub;
  const github = (extra: Record<string, unknown> = {}) => connectorFor({ preset: 'github', baseUrl: gh.url, apiUrl: gh.apiUrl, ...extra });

  before(async () => {
    // Two items per page, so every org and team listing takes several pages.
    gh = await startFakeGitHub({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, users: [octo, unverified], maxPerPage: 2 });
  });
  after(() => gh?.close());

  test('login: numeric id as subject, verified primary email, orgs and teams as groups across pages', async () => {
    gh.requests.length = 0;
    const connector = await github({ loadGroups: true });
    assert.equal(gh.requests.length, 0, 'create() does not contact the upstream');
    const a = await attempt(connector);
    assert.equal(a.location.origin + a.location.pathname, gh.authorizeUrl);
    assert.deepEqual(a.location.searchParams.get('scope')?.split(' '), ['read:user', 'user:email', 'read:org']);
    assert.equal(a.location.searchParams.get('redirect_uri'), CALLBACK);
    const identity = expectOk(await a.finish());
    assert.equal(identity.connectorId, 'upstream');
    assert.equal(identity.subject, '583231');
    assert.equal(identity.username, 'octocat');
    assert.equal(identity.name, 'The Octocat');
    assert.equal(identity.email, 'octo@octocat.example', 'the primary one, not the public profile email');
    assert.equal(identity.emailVerified, true);
    assert.deepEqual(identity.groups, ['acme', 'blue-sky', 'cats', 'acme:core-devs', 'acme:ops', 'cats:whiskers']);
    assert.equal(identity.attributes?.login, 'octocat');
    assert.deepEqual(JSON.parse(JSON.stringify(identity.attributes)), identity.attributes);
    assert.match(identity.tokens!.accessToken, /^gho_/);
    assert.equal(identity.tokens!.scope, 'read:user user:email read:org');
    assert.equal(identity.tokens!.refreshToken, undefined);
    assert.equal(identity.tokens!.expiresAt, undefined);

    const paged = (path: string) => gh.requests.filter((r) => r.path === `/api${path}`).map((r) => new URLSearchParams(r.query).get('page') ?? '1');
    assert.deepEqual(paged('/user/orgs'), ['1', '2']);
    assert.deepEqual(paged('/user/teams'), ['1', '2']);
    const token = gh.requests.find((r) => r.path === '/login/oauth/access_token')!;
    assert.equal(token.authorization, undefined, 'GitHub gets the client credentials in the body');
    assert.ok(gh.requests.filter((r) => r.path.startsWith('/api/')).every((r) => r.authorization === `Bearer ${identity.tokens!.accessToken}`));
  });

  test('teams by name, and no org/team lookups (nor read:org) unless asked', async () => {
    const byName = await signIn(await github({ loadGroups: true, teamNameField: 'name' }));
    assert.deepEqual(byName.groups?.slice(3), ['acme:Core Devs', 'acme:Operations', 'cats:Whiskers']);
    gh.requests.length = 0;
    const a = await attempt(await github());
    assert.equal(a.location.searchParams.get('scope'), 'read:user user:email');
    const plain = expectOk(await a.finish());
    assert.equal(plain.groups, undefined);
    assert.ok(!gh.requests.some((r) => r.path === '/api/user/orgs' || r.path === '/api/user/teams'));
  });

  test('an unverified primary email is never used', async () => {
    const identity = await signIn(await github(), 'newbie');
    assert.equal(identity.subject, '777');
    assert.equal(identity.email, undefined, 'neither the unverified primary nor the verified secondary');
    assert.notEqual(identity.emailVerified, true);
    assert.equal(identity.name, undefined);
  });

  test('allowedOrgs: members get in with only those orgs as groups, others are not permitted', async () => {
    const connector = await github({ allowedOrgs: ['ACME'], loadGroups: true });
    const member = await signIn(connector);
    assert.deepEqual(member.groups, ['acme', 'acme:core-devs', 'acme:ops']);
    const detail = expectFailure(await (await attempt(connector, 'newbie')).finish(), 'not_permitted');
    assert.match(detail, /allowedOrgs/);
    // allowedOrgs alone reads the orgs (and asks for read:org) but makes no groups.
    const a = await attempt(await github({ allowedOrgs: ['cats'] }));
    assert.match(a.location.searchParams.get('scope')!, /read:org/);
    assert.equal(expectOk(await a.finish()).groups, undefined);
  });

  test('PKCE: S256 challenge sent, verifier checked by the upstream; off when configured', async () => {
    const connector = await github();
    const a = await attempt(connector);
    assert.equal(a.location.searchParams.get('code_challenge_method'), 'S256');
    assert.match(a.location.searchParams.get('code_challenge')!, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(typeof a.context.codeVerifier, 'string');
    const detail = expectFailure(await a.finish(undefined, { ...a.context, codeVerifier: randomBytes(32).toString('base64url') }), 'upstream_error');
    assert.match(detail, /bad_verification_code/);

    const off = await attempt(await github({ pkce: false }));
    assert.equal(off.location.searchParams.has('code_challenge'), false);
    assert.equal(off.context.codeVerifier, undefined);
    expectOk(await off.finish());
  });

  test('state mismatch is refused before any token request', async () => {
    const a = await attempt(await github());
    gh.requests.length = 0;
    const detail = expectFailure(await a.finish({ ...a.params, state: 'someone-elses-state' }), 'upstream_error');
    assert.match(detail, /state/);
    expectFailure(await a.finish({ code: a.params.code }), 'upstream_error');
    assert.equal(gh.requests.length, 0);
  });

  test('access denied at the upstream, and other upstream errors', async () => {
    const connector = await github();
    gh.signInAs('deny');
    try {
      const a = await attempt(connector);
      assert.equal(a.params.error, 'access_denied');
      expectFailure(await a.finish(), 'access_denied');
      expectFailure(await a.finish({ state: a.params.state, error: 'temporarily_unavailable' }), 'upstream_error');
    } finally {
      gh.signInAs('octocat');
    }
  });

  test('a bad or reused code is an upstream_error (GitHub answers HTTP 200 with error=)', async () => {
    const connector = await github();
    const a = await attempt(connector);
    assert.match(expectFailure(await a.finish({ ...a.params, code: 'not-a-code' }), 'upstream_error'), /bad_verification_code/);
    const b = await attempt(connector);
    expectOk(await b.finish());
    assert.match(expectFailure(await b.finish(), 'upstream_error'), /bad_verification_code/, 'codes are single use');
  });

  test('a wrong client secret is an upstream_error that does not repeat it', async () => {
    const parsed = plugin.configSchema.parse({ preset: 'github', clientId: CLIENT_ID, clientSecret: 'wrong-secret-value', baseUrl: gh.url, apiUrl: gh.apiUrl });
    const connector = (await plugin.create({ id: 'x', name: 'x', config: parsed, logger: pino({ level: 'silent' }), fetch, urls: connectorUrls('https://broker.example.org', 'upstream'), services: {} as never })) as RedirectConnector;
    const result = await (await attempt(connector)).finish();
    assert.match(expectFailure(result, 'upstream_error'), /incorrect_client_credentials/);
    assert.ok(!JSON.stringify(result).includes('wrong-secret-value'));
  });

  test('token endpoint down: the callback throws (not a failure result)', async () => {
    const a = await attempt(await github());
    gh.setDown(true);
    try {
      await assert.rejects(a.finish(), (err: Error) => err.name === 'UpstreamUnavailable' && /token endpoint/.test(err.message));
    } finally {
      gh.setDown(false);
    }
  });

  test('an upstream slower than timeoutMs: throws after timeoutMs', async () => {
    const connector = await github({ timeoutMs: 300 });
    const a = await attempt(connector);
    gh.setDelay(3000);
    const t0 = Date.now();
    try {
      await assert.rejects(a.finish(), (err: Error) => err.name === 'UpstreamUnavailable' && /timed out after 300 ms/.test(err.message));
      assert.ok(Date.now() - t0 < 2000, `gave up after ${Date.now() - t0} ms`);
    } finally {
      gh.setDelay(0);
    }
  });

  test('refresh: no tokens → unchanged; live token re-reads the profile; revoked → reauth_needed; left the org → not_permitted', async () => {
    const connector = await github({ allowedOrgs: ['acme', 'other-org'], loadGroups: true });
    const { tokens: _, ...noTokens } = await signIn(connector);
    assert.deepEqual(await connector.refresh!(noTokens), { ok: true, identity: noTokens });

    const identity = await signIn(connector);
    const again = expectOk(await connector.refresh!(identity));
    assert.equal(again.subject, identity.subject);
    assert.equal(again.tokens?.accessToken, identity.tokens!.accessToken);

    gh.revokeTokens('octocat');
    assert.match(expectFailure(await connector.refresh!(identity), 'reauth_needed'), /401/);

    const newbie = await signIn(connector, 'newbie');
    unverified.orgs = ['elsewhere'];
    try {
      expectFailure(await connector.refresh!(newbie), 'not_permitted');
    } finally {
      unverified.orgs = ['other-org'];
    }

    const live = await signIn(connector);
    gh.setDown(true);
    try {
      await assert.rejects(connector.refresh!(live), { name: 'UpstreamUnavailable' });
    } finally {
      gh.setDown(false);
    }
  });
});

describe('oauth2 connector, GitHub Enterprise Server and expiring tokens', () => {
  let ghe: FakeGitHub;
  before(async () => {
    ghe = await startFakeGitHub({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, users: [octo], enterprise: true, expiringTokens: true });
  });
  after(() => ghe?.close());

  test('baseUrl alone puts the API at /api/v3', async () => {
    ghe.requests.length = 0;
    const identity = await signIn(await connectorFor({ preset: 'github', baseUrl: `${ghe.url}/` }));
    assert.equal(identity.subject, '583231');
    assert.equal(identity.email, 'octo@octocat.example');
    assert.ok(ghe.requests.some((r) => r.path === '/api/v3/user'));
    assert.ok(ghe.requests.some((r) => r.path === '/api/v3/user/emails'));
    assert.equal(ghe.apiUrl, `${ghe.url}/api/v3`);
  });

  test('expiring user tokens: refreshed when about to expire, rotated, and the old refresh token is dead', async () => {
    const connector = await connectorFor({ preset: 'github', baseUrl: ghe.url });
    const identity = await signIn(connector);
    const first = identity.tokens!;
    assert.match(first.refreshToken ?? '', /^ghr_/);
    assert.ok(first.expiresAt! > Date.now() / 1000 + 8 * 3600 - 60);

    // Not close to expiry: no refresh grant.
    ghe.requests.length = 0;
    assert.equal(expectOk(await connector.refresh!(identity)).tokens?.accessToken, first.accessToken);
    assert.ok(!ghe.requests.some((r) => r.path === '/login/oauth/access_token'));

    const expiring = { ...identity, tokens: { ...first, expiresAt: Math.floor(Date.now() / 1000) + 30 } };
    const refreshed = expectOk(await connector.refresh!(expiring));
    const second = refreshed.tokens!;
    assert.notEqual(second.accessToken, first.accessToken);
    assert.notEqual(second.refreshToken, first.refreshToken);
    assert.ok(second.expiresAt! > expiring.tokens.expiresAt);
    assert.equal(refreshed.email, 'octo@octocat.example');

    // The rotated-away refresh token is refused: the grant is gone.
    assert.match(expectFailure(await connector.refresh!(expiring), 'reauth_needed'), /bad_refresh_token/);
    // The current one still works.
    expectOk(await connector.refresh!({ ...refreshed, tokens: { ...second, expiresAt: 1 } }));
  });

  test('a profile read that fails in transit right after a rotation keeps the rotated tokens (the old refresh token is spent)', async () => {
    let failProfile = false;
    const ctxFetch: typeof fetch = async (input, init) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      if (failProfile && url.pathname.startsWith('/api/v3/user')) throw new TypeError('fetch failed');
      return fetch(input, init);
    };
    const parsed = plugin.configSchema.parse({ preset: 'github', clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, baseUrl: ghe.url });
    const connector = (await plugin.create({ id: 'gh', name: 'gh', config: parsed, logger: pino({ level: 'silent' }), fetch: ctxFetch, urls: connectorUrls('https://broker.example.org', 'upstream'), services: {} as never })) as RedirectConnector;
    const identity = await signIn(connector);
    const expiring = { ...identity, tokens: { ...identity.tokens!, expiresAt: Math.floor(Date.now() / 1000) + 30 } };
    failProfile = true;
    const kept = expectOk(await connector.refresh!(expiring));
    assert.notEqual(kept.tokens!.refreshToken, identity.tokens!.refreshToken, 'the rotated refresh token is returned');
    assert.equal(kept.email, identity.email, 'the profile stays as it was');
    // Without a rotation first, an unreachable upstream is an outage (throw), not a pass.
    await assert.rejects(connector.refresh!(kept));
    failProfile = false;
    expectOk(await connector.refresh!({ ...kept, tokens: { ...kept.tokens!, expiresAt: 1 } }));
  });

  test('an access token revoked early is refreshed once on 401; with the grant revoked too, reauth_needed', async () => {
    const connector = await connectorFor({ preset: 'github', baseUrl: ghe.url });
    const identity = await signIn(connector);
    ghe.revokeTokens('octocat');
    assert.match(expectFailure(await connector.refresh!(identity), 'reauth_needed'), /bad_refresh_token/);
    // An expired token without a refresh token needs no upstream call to know.
    ghe.requests.length = 0;
    const { refreshToken: _, ...noRefresh } = identity.tokens!;
    expectFailure(await connector.refresh!({ ...identity, tokens: { ...noRefresh, expiresAt: 1 } }), 'reauth_needed');
    assert.equal(ghe.requests.length, 0);
  });
});

describe('oauth2 connector, bitbucket preset', () => {
  let bb: FakeBitbucket;
  before(async () => {
    bb = await startFakeBitbucket({
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      maxPerPage: 1,
      users: [
        {
          username: 'bucketeer',
          displayName: 'Bucket Eer',
          emails: [
            { email: 'secondary@bucket.example', primary: false, confirmed: true },
            { email: 'bucketeer@bucket.example', primary: true, confirmed: true },
          ],
          workspaces: ['team-a', 'team-b'],
        },
        { username: 'fresh', emails: [{ email: 'fresh@bucket.example', primary: true, confirmed: false }], workspaces: ['elsewhere'] },
      ],
    });
  });
  after(() => bb?.close());
  const bitbucket = (extra: Record<string, unknown> = {}) =>
    connectorFor({ preset: 'bitbucket', authorizationUrl: bb.authorizeUrl, tokenUrl: bb.tokenUrl, apiUrl: bb.apiUrl, ...extra });

  test('login: uuid subject, primary confirmed email across pages, workspaces as groups, Basic client auth', async () => {
    bb.requests.length = 0;
    const identity = await signIn(await bitbucket({ loadGroups: true }));
    assert.match(identity.subject, /^\{[0-9a-f-]{36}\}$/);
    assert.equal(identity.username, 'bucketeer');
    assert.equal(identity.name, 'Bucket Eer');
    assert.equal(identity.email, 'bucketeer@bucket.example');
    assert.equal(identity.emailVerified, true);
    assert.deepEqual(identity.groups, ['team-a', 'team-b']);
    assert.ok(identity.tokens?.refreshToken && identity.tokens.expiresAt);
    assert.equal(identity.tokens?.scope, 'account email');
    assert.match(bb.requests.find((r) => r.path === '/site/oauth2/access_token')!.authorization ?? '', /^Basic /);
    assert.equal(bb.requests.filter((r) => r.path === '/2.0/user/emails').length, 2, 'followed `next`');

    // Bitbucket keeps the refresh token: it is carried over.
    const refreshed = expectOk(await (await bitbucket()).refresh!({ ...identity, tokens: { ...identity.tokens!, expiresAt: 1 } }));
    assert.equal(refreshed.tokens?.refreshToken, identity.tokens!.refreshToken);
    assert.notEqual(refreshed.tokens?.accessToken, identity.tokens!.accessToken);
  });

  test('an unconfirmed primary email is not used; allowedWorkspaces refuses outsiders', async () => {
    const fresh = await signIn(await bitbucket(), 'fresh');
    assert.equal(fresh.email, undefined);
    const connector = await bitbucket({ allowedWorkspaces: ['team-b'] });
    expectOk(await (await attempt(connector)).finish());
    assert.match(expectFailure(await (await attempt(connector, 'fresh')).finish(), 'not_permitted'), /allowedWorkspaces/);
  });

  test('with client_secret_post (not accepted by Bitbucket) the login is an upstream_error', async () => {
    assert.match(expectFailure(await (await attempt(await bitbucket({ clientAuth: 'client_secret_post' }))).finish(), 'upstream_error'), /invalid_client/);
  });
});

describe('oauth2 connector, discord preset', () => {
  let dc: FakeDiscord;
  // More guilds than one page of 200.
  const guilds = Array.from({ length: 205 }, (_, i) => ({ id: String(800_000_000_000_000_000n + BigInt(i)), name: `guild ${i}` }));
  before(async () => {
    dc = await startFakeDiscord({
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      users: [
        { id: '80351110224678912', username: 'nelly', globalName: 'Nelly', email: 'nelly@discord.example', verified: true, guilds },
        { id: '80351110224678913', username: 'unverified', globalName: null, email: 'maybe@discord.example', verified: false, guilds: [{ id: '1', name: 'other' }] },
      ],
    });
  });
  after(() => dc?.close());
  const discord = (extra: Record<string, unknown> = {}) =>
    connectorFor({ preset: 'discord', authorizationUrl: dc.authorizeUrl, tokenUrl: dc.tokenUrl, apiUrl: dc.apiUrl, ...extra });

  test('login: id subject, global_name as name, verified email, guild ids as groups across pages', async () => {
    dc.requests.length = 0;
    const allowed = guilds[204].id;
    const connector = await discord({ allowedGuilds: [allowed], loadGroups: true });
    const a = await attempt(connector);
    assert.equal(a.location.searchParams.get('scope'), 'identify email guilds');
    const identity = expectOk(await a.finish());
    assert.equal(identity.subject, '80351110224678912');
    assert.equal(identity.username, 'nelly');
    assert.equal(identity.name, 'Nelly');
    assert.equal(identity.email, 'nelly@discord.example');
    assert.equal(identity.emailVerified, true);
    assert.deepEqual(identity.groups, [allowed], 'the allowed guild was on the second page');
    assert.equal(dc.requests.filter((r) => r.path === '/api/users/@me/guilds').length, 2);

    // Discord rotates refresh tokens.
    const refreshed = expectOk(await connector.refresh!({ ...identity, tokens: { ...identity.tokens!, expiresAt: 1 } }));
    assert.notEqual(refreshed.tokens?.refreshToken, identity.tokens!.refreshToken);
  });

  test('an unverified email is not used; allowedGuilds refuses outsiders', async () => {
    const plain = await signIn(await discord(), 'unverified');
    assert.equal(plain.email, undefined);
    assert.equal(plain.name, undefined);
    assert.equal(plain.groups, undefined);
    expectFailure(await (await attempt(await discord({ allowedGuilds: [guilds[0].id] }), 'unverified')).finish(), 'not_permitted');
  });

  test('a revoked grant on refresh is reauth_needed (401 on the API, then invalid_grant)', async () => {
    const connector = await discord();
    const identity = await signIn(connector);
    dc.revokeTokens('nelly');
    assert.match(expectFailure(await connector.refresh!(identity), 'reauth_needed'), /invalid_grant/);
  });
});

describe('oauth2 connector, HTTP through ctx.fetch', () => {
  let gh: FakeGitHub;
  before(async () => {
    gh = await startFakeGitHub({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, users: [octo], maxPerPage: 2 });
  });
  after(() => gh?.close());

  /** A GitHub connector whose every HTTP call goes through `wrap` (the broker's fetch). */
  async function githubVia(wrap: (url: URL, init: RequestInit | undefined) => Promise<Response | undefined> | undefined, extra: Record<string, unknown> = {}) {
    const calls: string[] = [];
    const ctxFetch: typeof fetch = async (input, init) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      calls.push(url.pathname);
      return (await wrap(url, init)) ?? fetch(input, init);
    };
    const parsed = plugin.configSchema.parse({ preset: 'github', clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, baseUrl: gh.url, apiUrl: gh.apiUrl, loadGroups: true, ...extra });
    const connector = (await plugin.create({ id: 'gh', name: 'gh', config: parsed, logger: pino({ level: 'silent' }), fetch: ctxFetch, urls: connectorUrls('https://broker.example.org', 'upstream'), services: {} as never })) as RedirectConnector;
    return { connector, calls };
  }

  test('every upstream call goes through ctx.fetch', async () => {
    const { connector, calls } = await githubVia(() => undefined);
    gh.requests.length = 0;
    const a = await attempt(connector);
    gh.requests.length = 0; // the browser's visit to /authorize is not the connector's
    expectOk(await a.finish());
    assert.deepEqual(calls, gh.requests.map((r) => r.path));
    assert.ok(calls.length >= 6);
  });

  test('a form-encoded token response (GitHub without Accept: application/json) is understood', async () => {
    const { connector } = await githubVia((url, init) => {
      if (url.pathname !== '/login/oauth/access_token') return undefined;
      const headers = new Headers(init?.headers);
      headers.delete('accept');
      return fetch(url, { ...init, headers });
    });
    const a = await attempt(connector);
    const identity = expectOk(await a.finish());
    assert.equal(identity.tokens?.scope, 'read:user user:email read:org');
    assert.match(expectFailure(await a.finish(), 'upstream_error'), /bad_verification_code/);
  });

  test('a 5xx from the token endpoint or the API throws; a 4xx from the API is an upstream_error', async () => {
    const status = new Map<string, number>();
    const { connector } = await githubVia((url) => (status.has(url.pathname) ? Promise.resolve(new Response('{"message":"Server Error"}', { status: status.get(url.pathname) })) : undefined));
    status.set('/login/oauth/access_token', 502);
    await assert.rejects((await attempt(connector)).finish(), (err: Error) => err.name === 'UpstreamUnavailable' && /HTTP 502/.test(err.message));
    status.clear();
    const identity = await signIn(connector);
    status.set('/api/user', 503);
    await assert.rejects(connector.refresh!(identity), { name: 'UpstreamUnavailable' });
    status.set('/api/user', 422);
    assert.match(expectFailure(await connector.refresh!(identity), 'upstream_error'), /422/);
    status.delete('/api/user');
    status.set('/api/user/teams', 500);
    await assert.rejects((await attempt(connector)).finish(), { name: 'UpstreamUnavailable' });
  });

  test('a paging link to another origin is not followed (the token stays home)', async () => {
    const { connector, calls } = await githubVia(async (url, init) => {
      if (url.pathname !== '/api/user/orgs') return undefined;
      const real = await fetch(url, init);
      const headers = new Headers(real.headers);
      headers.set('link', '<https://attacker.example/api/user/orgs?page=2>; rel="next"');
      return new Response(await real.text(), { status: real.status, headers });
    });
    assert.match(expectFailure(await (await attempt(connector)).finish(), 'upstream_error'), /another origin/);
    assert.ok(!calls.some((p) => p.includes('attacker')));
  });
});

describe('oauth2 connector without a preset (claims mapper)', () => {
  let gh: FakeGitHub;
  before(async () => {
    gh = await startFakeGitHub({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, users: [octo] });
  });
  after(() => gh?.close());
  const generic = (extra: Record<string, unknown> = {}) =>
    connectorFor({ authorizationUrl: gh.authorizeUrl, tokenUrl: gh.tokenUrl, userinfoUrl: `${gh.apiUrl}/user`, scopes: ['read:user'], ...extra });

  test('maps the userinfo JSON by dotted paths; Basic client auth and PKCE by default', async () => {
    gh.requests.length = 0;
    const connector = await generic({ claims: { subject: 'id', username: ['preferred_username', 'login'], email: 'email', emailVerified: true, groups: 'type' } });
    const a = await attempt(connector);
    assert.equal(a.location.searchParams.get('code_challenge_method'), 'S256');
    const identity = expectOk(await a.finish());
    assert.equal(identity.subject, '583231');
    assert.equal(identity.username, 'octocat');
    assert.equal(identity.name, 'The Octocat');
    assert.equal(identity.email, 'public@octocat.example');
    assert.equal(identity.emailVerified, true);
    assert.deepEqual(identity.groups, ['User']);
    assert.match(gh.requests.find((r) => r.path === '/login/oauth/access_token')!.authorization ?? '', /^Basic /);
  });

  test('default claims take id and login; email unverified without an emailVerified claim', async () => {
    const identity = await signIn(await generic());
    assert.equal(identity.subject, '583231');
    assert.equal(identity.username, 'octocat');
    assert.equal(identity.emailVerified, false);
  });

  test('a subject path that resolves to nothing is an upstream_error', async () => {
    assert.match(expectFailure(await (await attempt(await generic({ claims: { subject: 'no.such.field' } }))).finish(), 'upstream_error'), /subject/);
  });

  test('paths: nested objects, array indexes and fan-out over arrays', () => {
    const doc = { data: { user: { id: 42, login: 'x' } }, emails: [{ value: 'a@x' }, { value: 'b@x' }], teams: [{ name: 'a' }, { name: 'b' }, { name: 'a' }], flag: 'true' };
    assert.equal(resolvePath(doc, 'data.user.id'), 42);
    assert.equal(resolvePath(doc, 'emails.1.value'), 'b@x');
    assert.deepEqual(resolvePath(doc, 'teams.name'), ['a', 'b', 'a']);
    assert.equal(resolvePath(doc, 'data.nope.id'), undefined);
    assert.equal(resolvePath(doc, 'constructor'), undefined, 'own properties only');
    const mapped = mapClaims(doc, { subject: 'data.user.id', username: 'data.user.login', email: 'emails.0.value', emailVerified: 'flag', groups: 'teams.name' });
    assert.ok(typeof mapped !== 'string');
    assert.deepEqual([mapped.subject, mapped.username, mapped.email, mapped.emailVerified, mapped.groups], ['42', 'x', 'a@x', true, ['a', 'b']]);
    assert.equal(typeof mapClaims({ id: { nested: true } }, undefined), 'string', 'an object is no subject');
  });
});

describe('oauth2 config', () => {
  const issuesOf = (config: unknown) => {
    const r = plugin.configSchema.safeParse(config);
    assert.equal(r.success, false);
    return r.success ? [] : r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
  };

  test('every problem at once, each with its path, never repeating a value', () => {
    const issues = issuesOf({
      clientSecret: 'hunter2-top-secret',
      authorizationUrl: 'http://auth.example.org/authorize',
      tokenUrl: 'https://user:hunter2-top-secret@auth.example.org/token',
      scopes: ['read user'],
      timeoutMs: 5,
      claims: { subject: 'a..b', bogus: 1 },
      allowedOrgs: ['acme'],
      colour: 'blue',
    });
    const paths = issues.map((i) => i.path).sort();
    for (const p of ['clientId', 'authorizationUrl', 'tokenUrl', 'userinfoUrl', 'scopes.0', 'timeoutMs', 'claims.subject', 'claims', 'allowedOrgs', '']) {
      assert.ok(paths.includes(p), `an issue at "${p}" in ${JSON.stringify(issues)}`);
    }
    assert.ok(issues.some((i) => i.path === '' && /colour/.test(i.message)), 'unknown keys named');
    assert.ok(issues.some((i) => i.path === 'claims' && /bogus/.test(i.message)));
    assert.ok(!JSON.stringify(issues).includes('hunter2'));
    assert.match(issues.find((i) => i.path === 'authorizationUrl')!.message, /https/);
  });

  test('preset-specific fields are checked against the preset', () => {
    const issues = issuesOf({ preset: 'discord', clientId: 'a', clientSecret: 'b', allowedOrgs: ['acme'], baseUrl: 'https://ghe.example.org', userinfoUrl: 'https://x.example/u', claims: {}, allowedGuilds: ['not-an-id'] });
    assert.deepEqual(issues.map((i) => i.path).sort(), ['allowedGuilds.0', 'allowedOrgs', 'baseUrl', 'claims', 'userinfoUrl']);
    assert.deepEqual(issuesOf({ preset: 'gitlab', clientId: 'a', clientSecret: 'b' }).map((i) => i.path), ['preset']);
    assert.deepEqual(issuesOf({ authorizationUrl: 'https://a.example/x', tokenUrl: 'https://a.example/t', userinfoUrl: 'https://a.example/u', clientId: 'a', clientSecret: 'b', loadGroups: true }).map((i) => i.path), ['loadGroups']);
  });

  test('loopback http is allowed; presets fill in endpoints and scopes; explicit fields win', () => {
    const gh = resolveOAuth2Config(plugin.configSchema.parse({ preset: 'github', clientId: 'a', clientSecret: 'b' }));
    assert.equal(gh.authorizationUrl, 'https://github.com/login/oauth/authorize');
    assert.deepEqual(gh.scopes, ['read:user', 'user:email']);
    assert.equal(gh.pkce, true);
    assert.equal(gh.timeoutMs, 10_000);
    const ghe = resolveOAuth2Config(plugin.configSchema.parse({ preset: 'github', clientId: 'a', clientSecret: 'b', baseUrl: 'https://ghe.corp.example', allowedOrgs: ['acme'], scopes: ['read:org'], pkce: false }));
    assert.equal(ghe.tokenUrl, 'https://ghe.corp.example/login/oauth/access_token');
    assert.deepEqual(ghe.scopes, ['read:org']);
    assert.equal(ghe.pkce, false);
    const bb = resolveOAuth2Config(plugin.configSchema.parse({ preset: 'bitbucket', clientId: 'a', clientSecret: 'b' }));
    assert.equal(bb.clientAuth, 'client_secret_basic');
    const local = plugin.configSchema.safeParse({ clientId: 'a', clientSecret: 'b', authorizationUrl: 'http://localhost:8080/a', tokenUrl: 'http://127.0.0.1:8080/t', userinfoUrl: 'http://[::1]:8080/u' });
    assert.ok(local.success, JSON.stringify(local.error?.issues));
  });

  test('config/examples/github.yaml is valid, every oauth2 entry included', async () => {
    const { config } = await loadConfig({ path: 'config/examples/github.yaml', env: { GITHUB_CLIENT_ID: 'id', GITHUB_CLIENT_SECRET: 'secret', TOKEN_KEY: 'k'.repeat(32) } });
    const entries = config.connectors.filter((c) => c.type === 'oauth2');
    assert.equal(entries.length, 2);
    for (const entry of entries) plugin.configSchema.parse(entry.config);
  });

  test('the registry finds the plugin by type name and reports config paths under the entry', async () => {
    const { issues, valid } = await checkConnectorEntries([
      { id: 'gh', type: 'oauth2', name: 'GitHub', enabled: true, config: { preset: 'github', clientId: 'a', clientSecret: 'b' }, origin: 'connectors[0]' },
      { id: 'bad', type: 'oauth2', name: 'Bad', enabled: true, config: { clientId: 'a', clientSecret: 'b', tokenUrl: 'ftp://x' }, origin: 'connectors[1]' },
    ]);
    assert.ok(valid.has('gh'));
    assert.deepEqual(issues.map((i) => i.path).sort(), ['connectors[1].config.authorizationUrl', 'connectors[1].config.tokenUrl', 'connectors[1].config.userinfoUrl']);
  });
});
