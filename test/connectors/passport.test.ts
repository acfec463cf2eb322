// The `passport` connector: the real passport-github2 strategy against a fake GitHub over real
// HTTP, a local non-OAuth strategy loaded by path, and config errors, all through the registry.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { pino } from 'pino';
import * as oidc from 'openid-client';
import { ConnectorRegistry, checkConnectorEntries } from '../../src/connectors/registry.ts';
import { ConfigError } from '../../src/errors.ts';
import { loadConfig } from '../../src/config/load-config.ts';
import { configConnectorEntries } from '../../src/server/connector-entries.ts';
import type { LocalAccounts, RedirectConnector } from '../../src/connectors/contract.ts';
import { startFakeGitHub, type FakeGitHub } from '../helpers/fake-oauth-providers.ts';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { Browser } from '../helpers/browser.ts';

const CLIENT_ID = 'Iv1.passport-bridge';
const CLIENT_SECRET = 'gh-secret-do-not-leak-4711';
const CALLBACK = 'https://keybridge.test/callback/github';
const noLocalAccounts: LocalAccounts = { findForLogin: async () => null, findById: async () => null };

const registries: ConnectorRegistry[] = [];

async function openConnector(config: Record<string, unknown>, id = 'github'): Promise<RedirectConnector> {
  const registry = await ConnectorRegistry.open([{ id, type: 'passport', name: 'GitHub', enabled: true, config, origin: 'connectors[0]' }], {
    logger: pino({ level: 'silent' }),
    localAccounts: noLocalAccounts,
  });
  registries.push(registry);
  return registry.get(id)!.connector as RedirectConnector;
}

/** What the registry reports for a config that cannot become a connector. */
async function configProblem(config: Record<string, unknown>): Promise<string> {
  const { issues } = await checkConnectorEntries([{ id: 'x', type: 'passport', name: 'X', enabled: true, config, origin: 'connectors[0]' }]);
  if (issues.length) return issues.map((i) => `${i.path}: ${i.message}`).join('\n');
  const err = await openConnector(config, 'x').then(
    () => assert.fail('expected a config error'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ConfigError, String(err));
  return err.issues.map((i) => `${i.path}: ${i.message}`).join('\n');
}

const newState = () => `st-${Math.random().toString(36).slice(2)}-${Date.now()}`;

/** Plays the browser at the upstream: follows /authorize's 302 and returns what reached the callback. */
async function authorize(location: string): Promise<Record<string, string>> {
  const res = await fetch(location, { redirect: 'manual' });
  assert.equal(res.status, 302, `authorize answered ${res.status}`);
  const back = new URL(res.headers.get('location')!);
  assert.equal(`${back.origin}${back.pathname}`, CALLBACK);
  return Object.fromEntries(back.searchParams);
}

describe('passport connector with passport-github2', () => {
  let gh: FakeGitHub;
  let github: RedirectConnector;
  const githubOptions = () => ({
    clientID: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    authorizationURL: gh.authorizeUrl,
    tokenURL: gh.tokenUrl,
    userProfileURL: `${gh.apiUrl}/user`,
    userEmailURL: `${gh.apiUrl}/user/emails`,
    scope: ['user:email'],
  });

  before(async () => {
    gh = await startFakeGitHub({
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      users: [
        {
          id: 583231,
          login: 'octocat',
          name: 'The Octocat',
          email: null,
          emails: [
            { email: 'octocat@users.example', primary: true, verified: true },
            { email: 'old@octo.example', primary: false, verified: false },
          ],
        },
        { id: 9001, login: 'hubot', name: null, emails: [{ email: 'hubot@example.org', primary: true, verified: false }] },
      ],
    });
    github = await openConnector({ strategy: 'passport-github2', options: githubOptions() });
  });
  after(async () => {
    await Promise.all(registries.map((r) => r.close()));
    await gh?.close();
  });

  test('a full login: the broker state goes upstream, the identity and tokens come back', async () => {
    gh.signInAs('octocat');
    const state = newState();
    const start = await github.start({ callbackUrl: CALLBACK, state });
    const url = new URL(start.location);
    assert.equal(`${url.origin}${url.pathname}`, gh.authorizeUrl);
    assert.equal(url.searchParams.get('state'), state);
    assert.equal(url.searchParams.get('client_id'), CLIENT_ID);
    assert.equal(url.searchParams.get('redirect_uri'), CALLBACK);
    assert.equal(url.searchParams.get('scope'), 'user:email');
    assert.equal(url.searchParams.get('code_challenge'), null);
    assert.deepEqual(start.context, { state });

    const params = await authorize(start.location);
    assert.equal(params.state, state);
    const result = await github.callback({ callbackUrl: CALLBACK, params, context: start.context });
    assert.ok(result.ok, JSON.stringify(result));
    const { identity } = result;
    assert.equal(identity.connectorId, 'github');
    assert.equal(identity.subject, '583231');
    assert.equal(identity.username, 'octocat');
    assert.equal(identity.name, 'The Octocat');
    // The public profile has no email: it came from the emails API (the primary one).
    assert.equal(identity.email, 'octocat@users.example');
    // passport-github2 drops the verified flag unless allRawEmails is set: not verified.
    assert.equal(identity.emailVerified, false);
    assert.equal(identity.attributes?.login, 'octocat');
    assert.equal(identity.attributes?.id, 583231);
    assert.match(identity.tokens!.accessToken, /^gho_/);
    assert.equal(identity.tokens!.refreshToken, undefined);
    assert.equal(identity.tokens!.scope, 'user:email');
    assert.doesNotThrow(() => JSON.stringify(identity));

    const emailsCall = gh.requests.find((r) => r.path === '/api/user/emails');
    assert.equal(emailsCall?.authorization, `Bearer ${identity.tokens!.accessToken}`);
  });

  test('allRawEmails and an emailVerified path carry GitHub\'s verified flag', async () => {
    const connector = await openConnector({ strategy: 'passport-github2', options: { ...githubOptions(), allRawEmails: true }, profile: { emailVerified: 'emails.0.verified' } }, 'github-raw');
    for (const [login, verified] of [['octocat', true], ['hubot', false]] as const) {
      gh.signInAs(login);
      const start = await connector.start({ callbackUrl: CALLBACK, state: newState() });
      const result = await connector.callback({ callbackUrl: CALLBACK, params: await authorize(start.location), context: start.context });
      assert.ok(result.ok, JSON.stringify(result));
      assert.equal(result.identity.emailVerified, verified, login);
      assert.equal(result.identity.name, login === 'hubot' ? undefined : 'The Octocat');
    }
  });

  test('a state that is not the attempt\'s is rejected before any token request', async () => {
    gh.signInAs('octocat');
    const start = await github.start({ callbackUrl: CALLBACK, state: newState() });
    const params = await authorize(start.location);
    const before = gh.requests.length;
    const result = await github.callback({ callbackUrl: CALLBACK, params: { ...params, state: newState() }, context: start.context });
    assert.deepEqual(result, { ok: false, reason: 'upstream_error', detail: 'the state sent back does not match the attempt' });
    const missing = await github.callback({ callbackUrl: CALLBACK, params: { code: params.code }, context: start.context });
    assert.equal(missing.ok, false);
    assert.equal(gh.requests.length, before);
  });

  test('the person declining at GitHub is access_denied', async () => {
    gh.signInAs('deny');
    const start = await github.start({ callbackUrl: CALLBACK, state: newState() });
    const params = await authorize(start.location);
    assert.equal(params.error, 'access_denied');
    const result = await github.callback({ callbackUrl: CALLBACK, params, context: start.context });
    assert.equal(result.ok, false);
    assert.equal(!result.ok && result.reason, 'access_denied');
  });

  test('a bad or replayed code is an upstream_error with GitHub\'s error code, and no secret', async () => {
    gh.signInAs('octocat');
    const start = await github.start({ callbackUrl: CALLBACK, state: newState() });
    const params = await authorize(start.location);
    const first = await github.callback({ callbackUrl: CALLBACK, params, context: start.context });
    assert.ok(first.ok);
    for (const code of [params.code, 'not-a-code']) {
      const result = await github.callback({ callbackUrl: CALLBACK, params: { ...params, code }, context: start.context });
      assert.equal(result.ok, false);
      if (!result.ok) {
        assert.equal(result.reason, 'upstream_error');
        assert.match(result.detail!, /bad_verification_code/);
        assert.doesNotMatch(result.detail!, new RegExp(`${CLIENT_SECRET}|${code}`));
      }
    }
  });

  test('GitHub unreachable at the callback throws (the broker shows "unavailable")', async () => {
    gh.signInAs('octocat');
    const start = await github.start({ callbackUrl: CALLBACK, state: newState() });
    const params = await authorize(start.location);
    gh.setDown(true);
    try {
      await assert.rejects(github.callback({ callbackUrl: CALLBACK, params, context: start.context }), (err: Error) => {
        assert.match(err.message, /passport-github2.*(ECONNRESET|socket hang up)/s);
        assert.doesNotMatch(err.message, new RegExp(`${CLIENT_SECRET}|${params.code}`));
        return true;
      });
    } finally {
      gh.setDown(false);
    }
  });

  test('a slow GitHub hits timeoutMs and throws', async () => {
    const connector = await openConnector({ strategy: 'passport-github2', options: githubOptions(), timeoutMs: 300 }, 'github-slow');
    gh.signInAs('octocat');
    const start = await connector.start({ callbackUrl: CALLBACK, state: newState() });
    const params = await authorize(start.location);
    gh.setDelay(1500);
    try {
      const began = Date.now();
      await assert.rejects(connector.callback({ callbackUrl: CALLBACK, params, context: start.context }), /did not finish within 300 ms/);
      assert.ok(Date.now() - began < 1400);
    } finally {
      gh.setDelay(0);
    }
  });

  test('pkce: true keeps the verifier with the attempt, and GitHub checks it', async () => {
    const connector = await openConnector({ strategy: 'passport-github2', options: { ...githubOptions(), pkce: true } }, 'github-pkce');
    gh.signInAs('hubot');
    const state = newState();
    const start = await connector.start({ callbackUrl: CALLBACK, state });
    const url = new URL(start.location);
    assert.equal(url.searchParams.get('state'), state);
    assert.equal(url.searchParams.get('code_challenge_method'), 'S256');
    assert.match(url.searchParams.get('code_challenge')!, /^[\w-]{43}$/);
    assert.equal(start.context.state, state);
    assert.match(String(start.context.codeVerifier), /^[\w-]{43}$/);

    const params = await authorize(start.location);
    const result = await connector.callback({ callbackUrl: CALLBACK, params, context: start.context });
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(result.identity.subject, '9001');

    // Another attempt's verifier does not fit this code's challenge.
    const second = await connector.start({ callbackUrl: CALLBACK, state: newState() });
    const params2 = await authorize(second.location);
    const wrong = await connector.callback({ callbackUrl: CALLBACK, params: params2, context: { ...second.context, codeVerifier: start.context.codeVerifier } });
    assert.equal(wrong.ok, false);
    assert.match(!wrong.ok ? wrong.detail! : '', /bad_verification_code/);
  });

  test('expiring GitHub App tokens: refresh token and expiry reach the identity', async () => {
    const ghApp = await startFakeGitHub({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, expiringTokens: true, users: [{ id: 7, login: 'app-user', emails: [{ email: 'app@example.org', primary: true, verified: true }] }] });
    try {
      const connector = await openConnector(
        { strategy: 'passport-github2', options: { ...githubOptions(), authorizationURL: ghApp.authorizeUrl, tokenURL: ghApp.tokenUrl, userProfileURL: `${ghApp.apiUrl}/user`, userEmailURL: `${ghApp.apiUrl}/user/emails` } },
        'github-app',
      );
      const start = await connector.start({ callbackUrl: CALLBACK, state: newState() });
      const result = await connector.callback({ callbackUrl: CALLBACK, params: await authorize(start.location), context: start.context });
      assert.ok(result.ok, JSON.stringify(result));
      const tokens = result.identity.tokens!;
      assert.match(tokens.accessToken, /^ghu_/);
      assert.match(tokens.refreshToken!, /^ghr_/);
      assert.ok(Math.abs(tokens.expiresAt! - (Date.now() / 1000 + 28_800)) < 60);
    } finally {
      await ghApp.close();
    }
  });
});

describe('passport connector in the broker', () => {
  const RP = 'http://127.0.0.1:9/cb';
  let gh: FakeGitHub;
  let broker: TestBroker;
  let rp: oidc.Configuration;

  before(async () => {
    gh = await startFakeGitHub({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, users: [{ id: 42, login: 'mona', name: 'Mona Lisa', emails: [{ email: 'mona@example.org', primary: true, verified: true }] }] });
    broker = await startTestBroker({
      config: {
        clients: [{ id: 'rp', secret: 'rp-secret-0123456789abcdef', redirectUris: [RP], firstParty: true }],
        connectors: [
          {
            id: 'github',
            type: 'passport',
            name: 'GitHub',
            config: {
              strategy: 'passport-github2',
              options: { clientID: CLIENT_ID, clientSecret: CLIENT_SECRET, authorizationURL: gh.authorizeUrl, tokenURL: gh.tokenUrl, userProfileURL: `${gh.apiUrl}/user`, userEmailURL: `${gh.apiUrl}/user/emails`, scope: ['user:email'], pkce: true },
            },
          },
        ],
      },
    });
    rp = await oidc.discovery(new URL(broker.issuer), 'rp', 'rp-secret-0123456789abcdef', undefined, { execute: [oidc.allowInsecureRequests] });
  });
  after(async () => {
    await broker?.close();
    await gh?.close();
  });

  test('login page -> GitHub -> /callback/github -> tokens for the linked local user', async () => {
    const browser = new Browser(broker.issuer);
    const verifier = oidc.randomPKCECodeVerifier();
    const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: RP, scope: 'openid profile email', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state: 'st' });
    const login = await browser.go(url.href);
    const away = await browser.submit(login, '/connector/github');
    assert.ok(away.url.startsWith(gh.authorizeUrl), `went to GitHub: ${away.url}`);
    assert.equal(new URL(away.url).searchParams.get('redirect_uri'), `${broker.issuer}/callback/github`);
    const res = await fetch(away.url, { redirect: 'manual' });
    const done = await browser.go(res.headers.get('location')!);
    assert.ok(done.url.startsWith(RP), `back at the app: ${done.url} ${done.html.slice(0, 300)}`);
    const tokens = await oidc.authorizationCodeGrant(rp, new URL(done.url), { pkceCodeVerifier: verifier, expectedState: 'st' });
    const claims = tokens.claims()!;
    assert.equal(claims.idp, 'github');
    assert.equal(claims.preferred_username, 'mona');
    const fed = await broker.store.identities.find('github', '42');
    assert.equal(fed?.userId, claims.sub);
  });
});

describe('passport connector with a local strategy module', () => {
  const fixture = './test/connectors/fixtures/ticket-strategy.cjs';
  const users = { 'T-1': { uid: 'u-100', login: 'ada', name: 'Ada Lovelace', mail: 'ada@example.org', groups: ['analysts', 'engines'] } };
  const config = (extra: Record<string, unknown> = {}) => ({ strategy: fixture, export: 'TicketStrategy', options: { loginURL: 'https://sso.example/login', users }, profile: { groups: 'groups' }, ...extra });

  after(async () => {
    await Promise.all(registries.map((r) => r.close()));
  });

  test('by ./ path: redirect with the state, verify(profile, done) read generically', async () => {
    const connector = await openConnector(config(), 'ticket');
    const state = newState();
    const start = await connector.start({ callbackUrl: CALLBACK, state });
    const url = new URL(start.location);
    assert.equal(url.searchParams.get('state'), state);
    assert.equal(url.searchParams.get('service'), CALLBACK);
    const result = await connector.callback({ callbackUrl: CALLBACK, params: { ticket: 'T-1', state }, context: start.context });
    assert.ok(result.ok, JSON.stringify(result));
    assert.deepEqual(
      { ...result.identity },
      {
        connectorId: 'ticket',
        subject: 'u-100',
        username: 'ada',
        email: 'ada@example.org',
        emailVerified: true,
        name: 'Ada Lovelace',
        groups: ['analysts', 'engines'],
        attributes: { provider: 'ticket', id: 'u-100', username: 'ada', displayName: 'Ada Lovelace', emails: [{ value: 'ada@example.org', verified: true }], groups: ['analysts', 'engines'] },
      },
    );
    assert.equal(result.identity.tokens, undefined);
  });

  test('by absolute path; a refused ticket is a result, an unreachable service throws', async () => {
    const connector = await openConnector(config({ strategy: path.resolve(fixture) }), 'ticket-abs');
    const start = await connector.start({ callbackUrl: CALLBACK, state: newState() });
    const refused = await connector.callback({ callbackUrl: CALLBACK, params: { ticket: 'T-bogus', state: start.context.state as string }, context: start.context });
    assert.deepEqual(refused, { ok: false, reason: 'upstream_error', detail: 'ticket not recognised (status 401)' });
    await assert.rejects(connector.callback({ callbackUrl: CALLBACK, params: { ticket: 'unreachable', state: start.context.state as string }, context: start.context }), /ECONNREFUSED/);
  });

  test('secrets from the options never reach a failure detail', async () => {
    const connector = await openConnector(config({ options: { loginURL: 'https://sso.example/login', users, clientSecret: CLIENT_SECRET } }), 'ticket-leaky');
    const start = await connector.start({ callbackUrl: CALLBACK, state: newState() });
    const result = await connector.callback({ callbackUrl: CALLBACK, params: { ticket: 'leaky', state: start.context.state as string }, context: start.context });
    assert.equal(result.ok, false);
    assert.equal(!result.ok && result.detail, `Error: validation rejected: service=${CALLBACK}&secret=[redacted]&ticket=leaky`);
  });

  test('a strategy that errors at start throws', async () => {
    const connector = await openConnector(config({ authenticateOptions: { failStart: true } }), 'ticket-broken');
    await assert.rejects(connector.start({ callbackUrl: CALLBACK, state: newState() }), /did not start a login: Error: login service metadata unavailable/);
  });

  test('a subject path with nothing behind it is an upstream_error', async () => {
    const connector = await openConnector(config({ profile: { subject: 'employeeNumber' } }), 'ticket-nosub');
    const start = await connector.start({ callbackUrl: CALLBACK, state: newState() });
    const result = await connector.callback({ callbackUrl: CALLBACK, params: { ticket: 'T-1', state: start.context.state as string }, context: start.context });
    assert.deepEqual(result, { ok: false, reason: 'upstream_error', detail: 'the strategy\'s profile has no usable subject at "employeeNumber"' });
  });
});

describe('passport connector config errors', () => {
  after(async () => {
    await Promise.all(registries.map((r) => r.close()));
  });

  test('the example config is valid and its connector starts', async () => {
    const { config } = await loadConfig({ path: 'config/examples/passport.yaml', env: { GITHUB_CLIENT_ID: 'Iv1.example', GITHUB_CLIENT_SECRET: CLIENT_SECRET } });
    const entries = configConnectorEntries(config).filter((e) => e.type === 'passport');
    assert.equal(entries.length, 1);
    const registry = await ConnectorRegistry.open(entries, { logger: pino({ level: 'silent' }), localAccounts: noLocalAccounts });
    registries.push(registry);
    const start = await (registry.get('github')!.connector as RedirectConnector).start({ callbackUrl: CALLBACK, state: 'example-state' });
    assert.ok(start.location.startsWith('https://github.com/login/oauth/authorize?'), start.location);
  });

  test('unknown keys and bridge-owned options are rejected by path, without secret values', async () => {
    const problems = await configProblem({
      strategy: 'passport-github2',
      clientSecret: CLIENT_SECRET,
      options: { clientID: 'x', clientSecret: CLIENT_SECRET, callbackURL: 'https://evil.example/cb' },
      authenticateOptions: { state: 'fixed' },
      profile: { subjct: 'id' },
      timeoutMs: 5,
    });
    assert.match(problems, /connectors\[0\]\.config: Unrecognized key: "clientSecret"/);
    assert.match(problems, /connectors\[0\]\.config\.options\.callbackURL: callbackURL is set by the passport connector itself/);
    assert.match(problems, /connectors\[0\]\.config\.authenticateOptions\.state: state is set by the passport connector itself/);
    assert.match(problems, /connectors\[0\]\.config\.profile: Unrecognized key: "subjct"/);
    assert.match(problems, /connectors\[0\]\.config\.timeoutMs:/);
    assert.doesNotMatch(problems, new RegExp(CLIENT_SECRET));
    assert.match(await configProblem({ options: {} }), /config\.strategy:/);
    assert.match(await configProblem({ strategy: 'passport github; rm -rf' }), /config\.strategy: must be an npm module name or a path/);
  });

  test('a module that is not installed is named', async () => {
    assert.match(await configProblem({ strategy: 'passport-keybridge-nonexistent' }), /passport strategy module "passport-keybridge-nonexistent" cannot be found/);
    assert.match(await configProblem({ strategy: './test/connectors/fixtures/missing.cjs' }), /module "\.\/test\/connectors\/fixtures\/missing\.cjs" cannot be found/);
  });

  test('a module without a Strategy class, or without the named export, is named', async () => {
    assert.match(await configProblem({ strategy: './test/connectors/fixtures/not-a-strategy.cjs' }), /module "\.\/test\/connectors\/fixtures\/not-a-strategy\.cjs" exports no Strategy class/);
    assert.match(await configProblem({ strategy: 'passport-github2', export: 'GitLabStrategy', options: { clientID: 'x' } }), /module "passport-github2" has no Strategy class in its export "GitLabStrategy"/);
    // The fixture exports only TicketStrategy: the default lookup finds nothing.
    assert.match(await configProblem({ strategy: './test/connectors/fixtures/ticket-strategy.cjs' }), /exports no Strategy class/);
  });

  test('options the strategy itself rejects are a config error naming the module, without secrets', async () => {
    const problem = await configProblem({ strategy: 'passport-github2', options: { clientSecret: CLIENT_SECRET } });
    assert.match(problem, /connector "x" cannot start: passport strategy "passport-github2" rejected its options: OAuth2Strategy requires a clientID option/);
    assert.doesNotMatch(problem, new RegExp(CLIENT_SECRET));
  });
});
