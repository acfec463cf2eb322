// The oidc connector against real upstream OpenID providers (node-oidc-provider on loopback, see
// test/helpers/upstream-op.ts): start → the upstream's own login page → callback, the protocol
// checks (PKCE, state, nonce, RFC 9207 iss, ID token iss/aud), failures that must be results and
// failures that must throw, refresh with rotation and revocation, and the presets' quirks
// (Google hd, Entra tenants and group overage through a fake Graph, Apple's signed client secret
// and form_post `user`, GitLab groups from userinfo). No mocks: every answer is the OP's.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import type { ClientMetadata } from 'oidc-provider';
import pino from 'pino';
import { connectorUrls } from '../../src/connectors/registry.ts';
import plugin from '../../connectors/oidc/index.ts';
import { resolveOidcConfig, type OidcConfigInput } from '../../connectors/oidc/oidc-config.ts';
import type { LoginResult, RedirectConnector, UpstreamIdentity } from '../../src/connectors/contract.ts';
import { checkConnectorEntries } from '../../src/connectors/registry.ts';
import { loadConfig } from '../../src/config/load-config.ts';
import { configConnectorEntries } from '../../src/server/connector-entries.ts';
import { startUpstreamOp, type UpstreamOp, type UpstreamUser } from '../helpers/upstream-op.ts';

const CALLBACK = 'http://127.0.0.1:5556/callback/upstream';
const SECRET = 'broker-secret-0123456789';
const TENANT = '11111111-aaaa-4bbb-8ccc-000000000001';
const OTHER_TENANT = '22222222-aaaa-4bbb-8ccc-000000000002';
const brokerClient = (overrides: Partial<ClientMetadata> = {}): ClientMetadata => ({
  client_id: 'broker',
  client_secret: SECRET,
  redirect_uris: [CALLBACK],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  ...overrides,
});

async function connect(config: OidcConfigInput, fetchFn: typeof fetch = fetch): Promise<RedirectConnector> {
  const parsed = plugin.configSchema.parse(config);
  return (await plugin.create({ id: 'upstream', name: 'Upstream', config: parsed, logger: pino({ level: 'silent' }), fetch: fetchFn, urls: connectorUrls('https://broker.example.org', 'upstream'), services: {} as never })) as RedirectConnector;
}

function ok(result: LoginResult): UpstreamIdentity {
  assert.ok(result.ok, `expected success, got ${JSON.stringify(result)}`);
  return result.identity;
}

function failed(result: LoginResult, reason: string, detail?: RegExp): void {
  assert.equal(result.ok, false, `expected ${reason}, got ${JSON.stringify(result)}`);
  if (result.ok) return;
  assert.equal(result.reason, reason, `detail: ${result.detail}`);
  if (detail) assert.match(result.detail ?? '', detail);
}

type Credentials = { username: string; password: string } | { cancel: true };

/** start → the upstream's login page → callback, as the broker and a browser would. */
async function login(connector: RedirectConnector, op: UpstreamOp, credentials: Credentials, edit?: (params: Record<string, string>) => void) {
  const state = `state-${Math.random().toString(36).slice(2)}`;
  const started = await connector.start({ callbackUrl: CALLBACK, state });
  // The broker stores the context as JSON.
  const context = JSON.parse(JSON.stringify(started.context)) as Record<string, unknown>;
  const back = await op.authorize(started.location, credentials);
  edit?.(back.params);
  const result = await connector.callback({ callbackUrl: CALLBACK, params: back.params, context });
  return { started, back, context, result };
}

const tokenRequests = (op: UpstreamOp) => op.requests.filter((r) => /^POST \S*\/token$/.test(r)).length;

describe('oidc connector: generic issuer', () => {
  let op: UpstreamOp;
  const alice: UpstreamUser = {
    id: 'alice-0001',
    username: 'alice',
    password: 'Alice#Pass1',
    claims: { preferred_username: 'alice', email: 'alice@example.org', email_verified: true, name: 'Alice Liddell', given_name: 'Alice', family_name: 'Liddell', groups: ['engineering', 'staff'] },
  };
  const bob: UpstreamUser = { id: 'bob-0002', username: 'bob', password: 'Bob#Pass1', claims: { preferred_username: 'bob', email: 'bob@example.org', email_verified: 'false', groups: 'staff' } };
  const base = () => ({ issuer: op.issuer, clientId: 'broker', clientSecret: SECRET, scopes: ['openid', 'profile', 'email', 'offline_access'] });

  before(async () => {
    op = await startUpstreamOp({ users: [alice, bob], clients: [brokerClient()] });
  });
  after(() => op.close());

  test('login: subject, mapped claims, userinfo claims, groups, tokens; PKCE, nonce and state sent', async () => {
    const connector = await connect(base());
    const { started, back, result } = await login(connector, op, { username: 'alice', password: 'Alice#Pass1' });
    const location = new URL(started.location);
    assert.equal(location.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(location.searchParams.get('code_challenge')?.length, 43);
    assert.match(location.searchParams.get('state')!, /^state-/);
    assert.equal(location.searchParams.get('nonce'), started.context.nonce);
    assert.equal(back.params.state, location.searchParams.get('state'), 'the broker state comes back verbatim');
    assert.deepEqual(Object.keys(started.context).sort(), ['codeVerifier', 'nonce', 'state']);

    const identity = ok(result);
    assert.equal(identity.connectorId, 'upstream');
    assert.equal(identity.subject, 'alice-0001');
    assert.equal(identity.username, 'alice');
    assert.equal(identity.email, 'alice@example.org');
    assert.equal(identity.emailVerified, true);
    assert.equal(identity.name, 'Alice Liddell');
    assert.equal(identity.givenName, 'Alice');
    assert.equal(identity.familyName, 'Liddell');
    assert.deepEqual(identity.groups, ['engineering', 'staff']);
    assert.deepEqual(identity.amr, ['pwd'], 'the upstream\'s authentication methods');
    assert.equal(identity.attributes?.email, 'alice@example.org');
    assert.equal(identity.attributes?.nonce, undefined, 'token mechanics are not attributes');
    assert.deepEqual(JSON.parse(JSON.stringify(identity)), identity, 'JSON-serializable');
    const tokens = identity.tokens!;
    assert.ok(tokens.accessToken && tokens.refreshToken && tokens.idToken);
    assert.ok(tokens.expiresAt! > Date.now() / 1000 + 3000);
    assert.match(tokens.scope!, /openid/);
    // oidc-provider keeps profile claims out of the ID token when it issues an access token:
    // the email above came from userinfo.
    assert.equal(decodeJwt(tokens.idToken!).email, undefined);
    assert.ok(op.requests.some((r) => r.startsWith('GET /me')));
  });

  test('userinfo: never keeps to the ID token; claim paths and string flags are mapped', async () => {
    const never = ok((await login(await connect({ ...base(), userinfo: 'never' }), op, { username: 'alice', password: 'Alice#Pass1' })).result);
    assert.equal(never.subject, 'alice-0001');
    assert.equal(never.email, undefined);
    const mapped = ok((await login(await connect({ ...base(), claims: { username: 'email', groups: 'groups' } }), op, { username: 'bob', password: 'Bob#Pass1' })).result);
    assert.equal(mapped.username, 'bob@example.org');
    assert.equal(mapped.emailVerified, false, '"false" is false');
    assert.deepEqual(mapped.groups, ['staff'], 'one group is a list of one');
  });

  test('create() does not contact the upstream; discovery happens once, on first start', async () => {
    let calls = 0;
    const counting: typeof fetch = (input, init) => {
      calls++;
      return fetch(input, init);
    };
    const before = op.requests.length;
    const connector = await connect(base(), counting);
    const unreachable = await connect({ ...base(), issuer: 'http://127.0.0.1:9/nothing-here' }, counting);
    assert.equal(calls, 0);
    assert.equal(op.requests.length, before);
    await connector.start({ callbackUrl: CALLBACK, state: 's1' });
    await connector.start({ callbackUrl: CALLBACK, state: 's2' });
    assert.equal(op.requests.slice(before).filter((r) => r.includes('/.well-known/openid-configuration')).length, 1, 'metadata cached');
    await assert.rejects(unreachable.start({ callbackUrl: CALLBACK, state: 's3' }), /unavailable/);
  });

  test('a wrong PKCE verifier fails at the token endpoint', async () => {
    const connector = await connect(base());
    const started = await connector.start({ callbackUrl: CALLBACK, state: 'pkce-state' });
    const back = await op.authorize(started.location, { username: 'alice', password: 'Alice#Pass1' });
    const result = await connector.callback({ callbackUrl: CALLBACK, params: back.params, context: { ...started.context, codeVerifier: 'x'.repeat(43) } });
    failed(result, 'upstream_error', /invalid_grant/);
  });

  test('state mismatch is refused before the code is redeemed', async () => {
    const connector = await connect(base());
    const started = await connector.start({ callbackUrl: CALLBACK, state: 'state-one' });
    const back = await op.authorize(started.location, { username: 'alice', password: 'Alice#Pass1' });
    const tokenCalls = tokenRequests(op);
    failed(await connector.callback({ callbackUrl: CALLBACK, params: back.params, context: { ...started.context, state: 'state-two' } }), 'upstream_error', /state/);
    assert.equal(tokenRequests(op), tokenCalls);
  });

  test('an authorization response from another issuer (RFC 9207 iss) is refused, code not redeemed', async () => {
    const connector = await connect(base());
    const tokenCalls = tokenRequests(op);
    const { result } = await login(connector, op, { username: 'alice', password: 'Alice#Pass1' }, (p) => {
      p.iss = 'https://attacker.example';
    });
    failed(result, 'upstream_error', /iss/);
    assert.equal(tokenRequests(op), tokenCalls);
    const { result: missing } = await login(connector, op, { username: 'alice', password: 'Alice#Pass1' }, (p) => {
      delete p.iss;
    });
    failed(missing, 'upstream_error', /iss/);
  });

  for (const [claim, value, message] of [
    ['nonce', 'someone-elses-nonce', /nonce/],
    ['aud', 'another-client', /aud/],
    ['iss', 'https://evil.example', /iss/],
  ] as const) {
    test(`a validly signed ID token with the wrong ${claim} is refused`, async () => {
      const connector = await connect(base());
      op.tamper = { [claim]: value };
      try {
        failed((await login(connector, op, { username: 'alice', password: 'Alice#Pass1' })).result, 'upstream_error', message);
      } finally {
        op.tamper = undefined;
      }
    });
  }

  test('an ID token signed with a key that is not the upstream\'s is refused', async () => {
    const connector = await connect(base());
    op.tamper = { foreignKey: true };
    try {
      failed((await login(connector, op, { username: 'alice', password: 'Alice#Pass1' })).result, 'upstream_error', /signature/);
    } finally {
      op.tamper = undefined;
    }
  });

  test('userinfo for another subject than the ID token is refused', async () => {
    const connector = await connect(base());
    op.tamper = { sub: 'bob-0002' };
    try {
      failed((await login(connector, op, { username: 'alice', password: 'Alice#Pass1' })).result, 'upstream_error', /sub/);
    } finally {
      op.tamper = undefined;
    }
  });

  test('cancel at the upstream is access_denied; an upstream error parameter is upstream_error', async () => {
    const connector = await connect(base());
    const cancelled = await login(connector, op, { cancel: true });
    assert.equal(cancelled.back.params.error, 'access_denied');
    failed(cancelled.result, 'access_denied');
    // prompt=none without an upstream session: the OP answers error=login_required.
    const silent = await connect({ ...base(), extraAuthParams: { prompt: 'none' } });
    const { back, result } = await login(silent, op, { username: 'alice', password: 'Alice#Pass1' });
    assert.equal(back.params.error, 'login_required');
    failed(result, 'upstream_error', /login_required/);
  });

  test('upstream down: start throws, then works once it is back (discovery retried)', async () => {
    const connector = await connect(base());
    await op.setDown(true);
    try {
      await assert.rejects(connector.start({ callbackUrl: CALLBACK, state: 'down' }), /is unavailable: discovery failed/);
      await assert.rejects(connector.start({ callbackUrl: CALLBACK, state: 'down' }), /ECONNREFUSED/);
    } finally {
      await op.setDown(false);
    }
    ok((await login(connector, op, { username: 'alice', password: 'Alice#Pass1' })).result);
  });

  test('an upstream slower than timeoutMs: start and callback throw, promptly', async () => {
    const slowStart = await connect({ ...base(), timeoutMs: 300 });
    op.delayMs = 2000;
    let t0 = Date.now();
    try {
      await assert.rejects(slowStart.start({ callbackUrl: CALLBACK, state: 'slow' }), /timed out/);
    } finally {
      op.delayMs = 0;
    }
    assert.ok(Date.now() - t0 < 1500, `gave up after ${Date.now() - t0} ms`);

    const slowToken = await connect({ ...base(), timeoutMs: 300 });
    const started = await slowToken.start({ callbackUrl: CALLBACK, state: 'slow-token' });
    const back = await op.authorize(started.location, { username: 'alice', password: 'Alice#Pass1' });
    op.delayMs = 2000;
    t0 = Date.now();
    try {
      await assert.rejects(slowToken.callback({ callbackUrl: CALLBACK, params: back.params, context: started.context }), /unavailable: timed out/);
    } finally {
      op.delayMs = 0;
    }
    assert.ok(Date.now() - t0 < 1500);
  });

  test('refresh: rotates tokens and re-reads the profile; reuse of an old refresh token fails and kills the grant', async () => {
    const connector = await connect(base());
    const first = ok((await login(connector, op, { username: 'alice', password: 'Alice#Pass1' })).result);
    alice.claims.groups = ['engineering', 'staff', 'on-call'];
    try {
      const second = ok(await connector.refresh!(first));
      assert.equal(second.subject, first.subject);
      assert.notEqual(second.tokens!.refreshToken, first.tokens!.refreshToken, 'rotated');
      assert.notEqual(second.tokens!.accessToken, first.tokens!.accessToken);
      assert.deepEqual(second.groups, ['engineering', 'staff', 'on-call'], 'profile re-read');
      assert.equal(second.email, 'alice@example.org');

      failed(await connector.refresh!(first), 'reauth_needed', /invalid_grant/);
      failed(await connector.refresh!(second), 'reauth_needed', /invalid_grant/);
    } finally {
      alice.claims.groups = ['engineering', 'staff'];
    }
  });

  test('refresh: userinfo failing in transit after a rotation keeps the rotated tokens and the known profile', async () => {
    let failUserinfo = false;
    const connector = await connect(base(), async (input, init) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      if (failUserinfo && url.pathname.endsWith('/me')) throw new TypeError('fetch failed');
      return fetch(input, init);
    });
    const identity = ok((await login(connector, op, { username: 'alice', password: 'Alice#Pass1' })).result);
    failUserinfo = true;
    const kept = ok(await connector.refresh!(identity));
    assert.notEqual(kept.tokens!.refreshToken, identity.tokens!.refreshToken, 'the rotated refresh token is kept');
    assert.deepEqual(kept.groups, identity.groups);
    failUserinfo = false;
    ok(await connector.refresh!(kept));
    failed(await connector.refresh!(identity), 'reauth_needed', /invalid_grant/);
  });

  test('refresh: a grant revoked upstream is reauth_needed; no stored tokens is ok unchanged; down throws', async () => {
    const connector = await connect(base());
    const identity = ok((await login(connector, op, { username: 'bob', password: 'Bob#Pass1' })).result);
    const { tokens: _omit, ...withoutTokens } = identity;
    assert.deepEqual(await connector.refresh!(withoutTokens), { ok: true, identity: withoutTokens });

    await op.setDown(true);
    try {
      await assert.rejects(connector.refresh!(identity), /unavailable/);
    } finally {
      await op.setDown(false);
    }
    ok(await connector.refresh!(identity));
    const fresh = ok((await login(connector, op, { username: 'bob', password: 'Bob#Pass1' })).result);
    assert.ok((await op.revokeGrants('bob-0002')) >= 1);
    failed(await connector.refresh!(fresh), 'reauth_needed', /invalid_grant/);
  });
});

describe('oidc connector: presets', () => {
  test('each preset derives its issuer and defaults', () => {
    const resolve = (config: OidcConfigInput) => resolveOidcConfig(plugin.configSchema.parse(config));
    const id = { clientId: 'c', clientSecret: 's' };

    const google = resolve({ preset: 'google', ...id });
    assert.equal(google.issuer, 'https://accounts.google.com');
    assert.deepEqual(google.scopes, ['openid', 'email', 'profile']);
    assert.equal(google.claims.username, 'email');

    assert.equal(resolve({ preset: 'entra', tenant: TENANT, ...id }).issuer, `https://login.microsoftonline.com/${TENANT}/v2.0`);
    const multi = resolve({ preset: 'entra', tenant: 'organizations', allowedTenants: [TENANT], ...id });
    assert.equal(multi.issuer, 'https://login.microsoftonline.com/organizations/v2.0');
    assert.equal(multi.definition.hooks?.issuerTemplate?.(multi), 'https://login.microsoftonline.com/{tenantid}/v2.0');
    assert.equal(multi.userinfo, 'never');
    assert.equal(resolve({ preset: 'entra', tenant: TENANT, authority: 'https://login.microsoftonline.us/', ...id }).issuer, `https://login.microsoftonline.us/${TENANT}/v2.0`);

    const gitlab = resolve({ preset: 'gitlab', ...id });
    assert.equal(gitlab.issuer, 'https://gitlab.com');
    assert.equal(gitlab.claims.username, 'nickname');
    assert.equal(resolve({ preset: 'gitlab', baseUrl: 'https://git.example.org/', ...id }).issuer, 'https://git.example.org');

    assert.equal(resolve({ preset: 'okta', domain: 'dev-123.okta.com', ...id }).issuer, 'https://dev-123.okta.com');
    assert.equal(resolve({ preset: 'okta', domain: 'dev-123.okta.com', authorizationServer: 'default', ...id }).issuer, 'https://dev-123.okta.com/oauth2/default');
    assert.equal(resolve({ preset: 'okta', domain: 'dev-123.okta.com', ...id }).claims.groups, 'groups');
    assert.equal(resolve({ preset: 'auth0', domain: 'example.eu.auth0.com', ...id }).issuer, 'https://example.eu.auth0.com/', 'Auth0 issuers end with a slash');
    assert.equal(resolve({ preset: 'auth0', domain: 'http://127.0.0.1:4000', ...id }).issuer, 'http://127.0.0.1:4000/');
    const keycloak = resolve({ preset: 'keycloak', baseUrl: 'https://sso.example.org', realm: 'staff', ...id });
    assert.equal(keycloak.issuer, 'https://sso.example.org/realms/staff');
    assert.equal(keycloak.claims.username, 'preferred_username');

    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const apple = resolve({ preset: 'apple', clientId: 'org.example.web', teamId: 'TEAM123456', keyId: 'KEY1234567', privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string });
    assert.equal(apple.issuer, 'https://appleid.apple.com');
    assert.equal(apple.responseMode, 'form_post');
    assert.equal(apple.tokenAuthMethod, 'client_secret_post');
    assert.deepEqual(apple.scopes, ['openid', 'name', 'email']);
  });

  describe('google (hd)', () => {
    let op: UpstreamOp;
    before(async () => {
      op = await startUpstreamOp({
        claimsInIdToken: true,
        users: [
          { id: 'g-1', username: 'ann', password: 'pw-ann', claims: { email: 'ann@example.com', email_verified: true, hd: 'example.com', name: 'Ann' } },
          { id: 'g-2', username: 'otto', password: 'pw-otto', claims: { email: 'otto@other.org', email_verified: true, hd: 'other.org' } },
          { id: 'g-3', username: 'gus', password: 'pw-gus', claims: { email: 'gus@gmail.com', email_verified: true } },
        ],
        clients: [brokerClient()],
      });
    });
    after(() => op.close());

    test('one allowed domain is sent as hd and checked against the hd claim', async () => {
      const connector = await connect({ preset: 'google', issuer: op.issuer, clientId: 'broker', clientSecret: SECRET, allowedDomains: ['example.com'] });
      const { started, result } = await login(connector, op, { username: 'ann', password: 'pw-ann' });
      assert.equal(new URL(started.location).searchParams.get('hd'), 'example.com');
      assert.equal(new URL(started.location).searchParams.get('scope'), 'openid email profile');
      const identity = ok(result);
      assert.equal(identity.username, 'ann@example.com');
      assert.equal(identity.attributes?.hd, 'example.com');
      failed((await login(connector, op, { username: 'otto', password: 'pw-otto' })).result, 'not_permitted', /hd other\.org/);
      failed((await login(connector, op, { username: 'gus', password: 'pw-gus' })).result, 'not_permitted', /no hd claim/);
    });

    test('other presets check the domain of a verified email instead', async () => {
      const connector = await connect({ issuer: op.issuer, clientId: 'broker', clientSecret: SECRET, allowedDomains: ['example.com', 'other.org'] });
      assert.equal(new URL((await connector.start({ callbackUrl: CALLBACK, state: 'x' })).location).searchParams.get('hd'), null);
      ok((await login(connector, op, { username: 'otto', password: 'pw-otto' })).result);
      failed((await login(connector, op, { username: 'gus', password: 'pw-gus' })).result, 'not_permitted', /gmail\.com/);
    });
  });

  describe('entra', () => {
    let op: UpstreamOp;
    const GROUP_A = '0b6d1a5e-0000-4000-8000-00000000000a';
    const GROUP_B = '0b6d1a5e-0000-4000-8000-00000000000b';
    before(async () => {
      op = await startUpstreamOp({
        issuerPath: `/${TENANT}/v2.0`,
        claimsInIdToken: true,
        overageFor: ['e-carol'],
        users: [
          { id: 'e-alice', username: 'alice@contoso.test', password: 'pw-a', claims: { tid: TENANT, preferred_username: 'alice@contoso.test', name: 'Alice', groups: [GROUP_A] } },
          { id: 'e-carol', username: 'carol@contoso.test', password: 'pw-c', claims: { tid: TENANT, preferred_username: 'carol@contoso.test', groups: [GROUP_A, GROUP_B] } },
          { id: 'e-mallory', username: 'mallory@fabrikam.test', password: 'pw-m', claims: { tid: OTHER_TENANT, preferred_username: 'mallory@fabrikam.test' } },
        ],
        clients: [brokerClient({ token_endpoint_auth_method: 'client_secret_post' })],
      });
    });
    after(() => op.close());
    const entra = (config: Partial<OidcConfigInput>) =>
      connect({ preset: 'entra', authority: op.origin, graphUrl: op.origin, clientId: 'broker', clientSecret: SECRET, tokenAuthMethod: 'client_secret_post', scopes: ['openid', 'profile', 'email', 'offline_access', 'User.Read'], ...config });

    test('single tenant: groups from the ID token; a token of another tid is refused', async () => {
      const connector = await entra({ tenant: TENANT });
      const identity = ok((await login(connector, op, { username: 'alice@contoso.test', password: 'pw-a' })).result);
      assert.equal(identity.username, 'alice@contoso.test');
      assert.deepEqual(identity.groups, [GROUP_A]);
      assert.equal(identity.attributes?.tid, TENANT);
      failed((await login(connector, op, { username: 'mallory@fabrikam.test', password: 'pw-m' })).result, 'not_permitted', /not the configured tenant/);
    });

    test('multi-tenant through the organizations alias: allowedTenants decides, with or without the iss parameter', async () => {
      const connector = await entra({ tenant: 'organizations', allowedTenants: [TENANT] });
      const withIss = await login(connector, op, { username: 'alice@contoso.test', password: 'pw-a' });
      assert.ok(op.requests.includes('GET /organizations/v2.0/.well-known/openid-configuration'));
      assert.equal(ok(withIss.result).subject, 'e-alice');
      // Entra itself sends no iss parameter: the tenant is then read from the token response.
      const withoutIss = await login(connector, op, { username: 'alice@contoso.test', password: 'pw-a' }, (p) => delete p.iss);
      const identity = ok(withoutIss.result);
      assert.equal(identity.attributes?.iss, `${op.origin}/${TENANT}/v2.0`);
      ok(await connector.refresh!(identity));
      // A tid that is not the issuer's tenant: the issuer template with that tid does not match.
      failed((await login(connector, op, { username: 'mallory@fabrikam.test', password: 'pw-m' }, (p) => delete p.iss)).result, 'upstream_error', /iss/);
      failed((await login(connector, op, { username: 'mallory@fabrikam.test', password: 'pw-m' })).result, 'not_permitted', /not in allowedTenants/);

      const elsewhere = await entra({ tenant: 'organizations', allowedTenants: [OTHER_TENANT] });
      failed((await login(elsewhere, op, { username: 'alice@contoso.test', password: 'pw-a' })).result, 'not_permitted', new RegExp(`tenant ${TENANT} is not in allowedTenants`));
      ok((await login(await entra({ tenant: 'common', allowAnyTenant: true }), op, { username: 'alice@contoso.test', password: 'pw-a' })).result);
    });

    test('group overage: the groups are read from Microsoft Graph with the access token, at login and refresh', async () => {
      const connector = await entra({ tenant: TENANT });
      const before = op.requests.length;
      const { result } = await login(connector, op, { username: 'carol@contoso.test', password: 'pw-c' });
      const identity = ok(result);
      assert.deepEqual(identity.groups, [GROUP_A, GROUP_B]);
      assert.ok(identity.attributes?._claim_names, 'the ID token carried the overage pointer, not the groups');
      assert.equal(op.requests.slice(before).filter((r) => r === 'POST /v1.0/me/getMemberObjects').length, 1);
      const refreshed = ok(await connector.refresh!(identity));
      assert.deepEqual(refreshed.groups, [GROUP_A, GROUP_B]);
      assert.equal(op.requests.slice(before).filter((r) => r === 'POST /v1.0/me/getMemberObjects').length, 2);
      // Not carol's: no overage, no Graph call.
      ok((await login(connector, op, { username: 'alice@contoso.test', password: 'pw-a' })).result);
      assert.equal(op.requests.slice(before).filter((r) => r === 'POST /v1.0/me/getMemberObjects').length, 2);
    });
  });

  describe('apple', () => {
    let op: UpstreamOp;
    const teamId = 'TEAM123456';
    const keyId = 'KEY1234567';
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    before(async () => {
      op = await startUpstreamOp({
        claimsInIdToken: true,
        apple: { clientId: 'org.example.web', teamId, keyId, publicKey },
        users: [{ id: '001234.apple', username: 'ada', password: 'pw-ada', claims: { email: 'ada@privaterelay.appleid.com', email_verified: 'true', is_private_email: 'true', given_name: 'Ada', family_name: 'Lovelace' } }],
        clients: [brokerClient({ client_id: 'org.example.web', client_secret: 'registered-secret-not-known-to-the-broker', token_endpoint_auth_method: 'client_secret_post' })],
      });
    });
    after(() => op.close());

    test('form_post, a signed ES256 client secret, the name from the first `user` parameter only', async () => {
      const connector = await connect({ preset: 'apple', issuer: op.issuer, clientId: 'org.example.web', teamId, keyId, privateKey: pem });
      const first = await login(connector, op, { username: 'ada', password: 'pw-ada' });
      assert.equal(new URL(first.started.location).searchParams.get('response_mode'), 'form_post');
      assert.equal(first.back.method, 'POST');
      assert.equal(first.back.url, CALLBACK);
      assert.ok(first.back.params.user, 'Apple posts `user` on the first authorization');
      const identity = ok(first.result);
      assert.equal(identity.subject, '001234.apple');
      assert.equal(identity.email, 'ada@privaterelay.appleid.com');
      assert.equal(identity.emailVerified, true, '"true" is true');
      assert.equal(identity.name, 'Ada Lovelace');
      assert.equal(identity.givenName, 'Ada');
      assert.equal(identity.familyName, 'Lovelace');

      assert.equal(op.appleSecrets.length, 1);
      const secret = op.appleSecrets[0];
      assert.deepEqual(decodeProtectedHeader(secret), { alg: 'ES256', kid: keyId });
      const claims = decodeJwt(secret);
      assert.equal(claims.iss, teamId);
      assert.equal(claims.sub, 'org.example.web');
      assert.equal(claims.aud, 'https://appleid.apple.com');
      assert.ok(claims.exp! - claims.iat! <= 15_777_000);

      const second = await login(connector, op, { username: 'ada', password: 'pw-ada' });
      assert.equal(second.back.params.user, undefined);
      const again = ok(second.result);
      assert.equal(again.name, undefined);
      assert.equal(again.email, 'ada@privaterelay.appleid.com');
      const refreshed = ok(await connector.refresh!(identity));
      assert.equal(refreshed.name, 'Ada Lovelace', 'the once-only name survives refresh');
    });

    test('a form_post response that arrives as a GET (the code in a URL) is refused before any token request', async () => {
      const connector = await connect({ preset: 'apple', issuer: op.issuer, clientId: 'org.example.web', teamId, keyId, privateKey: pem });
      const started = await connector.start({ callbackUrl: CALLBACK, state: 'st-get' });
      const back = await op.authorize(started.location, { username: 'ada', password: 'pw-ada' });
      const before = tokenRequests(op);
      const context = JSON.parse(JSON.stringify(started.context)) as Record<string, unknown>;
      failed(await connector.callback({ callbackUrl: CALLBACK, method: 'GET', params: back.params, context }), 'upstream_error', /form_post/);
      assert.equal(tokenRequests(op), before);
      ok(await connector.callback({ callbackUrl: CALLBACK, method: 'POST', params: back.params, context }));
    });

    test('a client secret signed with another key is refused by the upstream', async () => {
      const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
      const connector = await connect({ preset: 'apple', issuer: op.issuer, clientId: 'org.example.web', teamId, keyId, privateKey: stranger });
      failed((await login(connector, op, { username: 'ada', password: 'pw-ada' })).result, 'upstream_error', /invalid_client/);
    });

    test('a key that is not P-256 stops create(), naming the field', async () => {
      const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
      await assert.rejects(connect({ preset: 'apple', clientId: 'org.example.web', teamId, keyId, privateKey: rsa }), /privateKey: must be an EC P-256 key/);
      await assert.rejects(connect({ preset: 'apple', clientId: 'org.example.web', teamId, keyId, privateKeyFile: '/nonexistent/AuthKey.p8' }), /privateKeyFile: cannot read \/nonexistent\/AuthKey\.p8 \(ENOENT\)/);
    });
  });

  describe('gitlab (self-managed, pointed at the fixture)', () => {
    let op: UpstreamOp;
    before(async () => {
      op = await startUpstreamOp({
        users: [{ id: '42', username: 'gina', password: 'pw-gina', claims: { nickname: 'gina', email: 'gina@example.org', email_verified: true, groups: ['platform', 'platform/sre'] } }],
        clients: [brokerClient()],
      });
    });
    after(() => op.close());

    test('username from nickname, groups from userinfo', async () => {
      const connector = await connect({ preset: 'gitlab', baseUrl: op.issuer, clientId: 'broker', clientSecret: SECRET });
      const identity = ok((await login(connector, op, { username: 'gina', password: 'pw-gina' })).result);
      assert.equal(identity.subject, '42');
      assert.equal(identity.username, 'gina');
      assert.deepEqual(identity.groups, ['platform', 'platform/sre']);
    });
  });
});

describe('oidc connector: config validation', () => {
  const entry = (config: Record<string, unknown>) => ({ id: 'up', type: 'oidc', name: 'Up', enabled: true, config, origin: 'connectors[0]' });
  const issuesOf = async (config: Record<string, unknown>) => (await checkConnectorEntries([entry(config)])).issues;

  test('every problem is reported at its path, never with the secret', async () => {
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ issuer: 'https://op.example', clientSecret: 's' }, 'connectors[0].config.clientId', /./],
      [{ issuer: 'http://op.example', clientId: 'c', clientSecret: 's' }, 'connectors[0].config.issuer', /https:\/\/ URL \(http:\/\/ only for 127\.0\.0\.1/],
      [{ issuer: 'https://op.example', clientId: 'c', clientSecret: 's', clientSecrett: 'x' }, 'connectors[0].config', /clientSecrett/],
      [{ clientId: 'c', clientSecret: 's' }, 'connectors[0].config.issuer', /required/],
      [{ issuer: 'https://op.example', clientId: 'c' }, 'connectors[0].config.clientSecret', /required/],
      [{ preset: 'entra', tenant: 'organizations', clientId: 'c', clientSecret: 's' }, 'connectors[0].config.allowedTenants', /required for tenant "organizations"/],
      [{ preset: 'entra', tenant: TENANT, allowedTenants: [TENANT], clientId: 'c', clientSecret: 's' }, 'connectors[0].config.allowedTenants', /only for tenant/],
      [{ preset: 'entra', tenant: 'contoso', clientId: 'c', clientSecret: 's' }, 'connectors[0].config.tenant', /./],
      [{ preset: 'entra', tenant: TENANT, issuer: 'https://x.example', clientId: 'c', clientSecret: 's' }, 'connectors[0].config.issuer', /derived from authority and tenant/],
      [{ issuer: 'https://op.example', tenant: TENANT, clientId: 'c', clientSecret: 's' }, 'connectors[0].config.tenant', /only for preset entra/],
      [{ preset: 'keycloak', baseUrl: 'https://sso.example', clientId: 'c', clientSecret: 's' }, 'connectors[0].config.realm', /required for preset keycloak/],
      [{ preset: 'okta', domain: 'http://okta.example', clientId: 'c', clientSecret: 's' }, 'connectors[0].config.domain', /host name/],
      [{ preset: 'apple', clientId: 'c', clientSecret: 's', teamId: 'TEAM123456', keyId: 'KEY1234567', privateKeyFile: '/k.p8' }, 'connectors[0].config.clientSecret', /signed with the key/],
      [{ preset: 'apple', clientId: 'c', teamId: 'TEAM123456', keyId: 'KEY1234567' }, 'connectors[0].config.privateKey', /privateKey or privateKeyFile/],
      [{ issuer: 'https://op.example', clientId: 'c', clientSecret: 's', extraAuthParams: { prompt: 'login', state: 'fixed' } }, 'connectors[0].config.extraAuthParams.state', /cannot be overridden/],
      [{ issuer: 'https://op.example', clientId: 'c', clientSecret: 's', claims: { subjectt: 'oid' } }, 'connectors[0].config.claims', /subjectt/],
    ];
    for (const [config, path, message] of cases) {
      const issues = await issuesOf(config);
      const issue = issues.find((i) => i.path === path);
      assert.ok(issue, `${JSON.stringify(config)}: expected an issue at ${path}, got ${JSON.stringify(issues)}`);
      assert.match(issue.message, message);
    }
    const all = await issuesOf({ issuer: 'http://op.example', clientSecret: 'hunter2-secret-value', preset: 'entra', tenant: 'common', unknownKey: 1 });
    assert.ok(all.length >= 4, `every problem at once: ${JSON.stringify(all)}`);
    assert.ok(all.every((i) => !i.message.includes('hunter2-secret-value')));
    assert.deepEqual(await issuesOf({ issuer: 'http://localhost:8080/realms/x', clientId: 'c', clientSecret: 's' }), [], 'http is fine for loopback');
  });

  test('the Google and Microsoft example configs are valid', async () => {
    for (const file of ['config/examples/google.yaml', 'config/examples/microsoft.yaml']) {
      const { config } = await loadConfig({ path: file, env: { GOOGLE_CLIENT_SECRET: 'g-secret', ENTRA_CLIENT_SECRET: 'e-secret', KEYBRIDGE_TOKEN_KEY: 'k'.repeat(32) } });
      const { issues } = await checkConnectorEntries(configConnectorEntries(config).filter((e) => e.type !== 'local'));
      assert.deepEqual(issues, [], file);
    }
  });
});
