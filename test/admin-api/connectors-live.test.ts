// Connectors managed through the admin API, end to end: an LDAP connector created against a real
// OpenLDAP is tested, signs a person in (code flow), imports the directory (sync with progress,
// one at a time), reports a wrong bind DN at its field, and leaves the login page when disabled.
// And two instances on one PostgreSQL: what one creates or disables, the other follows in 2 s.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as oidc from 'openid-client';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { freshPostgresDatabase } from '../helpers/postgres.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { Browser } from '../helpers/browser.ts';
import { signIn } from '../helpers/login-flow.ts';
import { startOpenLdap, type OpenLdapServer } from '../helpers/openldap.ts';
import { AdminApiClient, adminClientConfig, clientToken } from '../helpers/admin-api.ts';
import { offeredConnectors, RP_CLIENT, RP_REDIRECT, within } from '../helpers/login-page-connectors.ts';
import { freePort } from '../helpers/free-port.ts';
import { startFakeGitHub, type FakeGitHub } from '../helpers/fake-oauth-providers.ts';

const TOKEN_KEY = 'connector-live-token-key-0123456789abcdef';

describe('an LDAP connector managed through the admin API, against a real slapd', () => {
  let ldap: OpenLdapServer | undefined;
  let skipReason = '';
  let broker: TestBroker;
  let api: AdminApiClient;
  let directory: Record<string, unknown>;

  before(async () => {
    const started = await startOpenLdap();
    if ('skip' in started) {
      skipReason = started.skip;
      return;
    }
    ldap = started;
    directory = {
      url: ldap.url,
      startTls: true,
      tls: { caFile: ldap.caFile },
      bindDn: ldap.serviceDn,
      bindPassword: ldap.servicePassword,
      users: { baseDn: `ou=people,${ldap.baseDn}` },
    };
    broker = await startTestBroker({ syncFirstRunMs: 300, config: { secrets: { tokenKeys: [TOKEN_KEY] }, clients: [adminClientConfig('ops'), RP_CLIENT] } });
    api = new AdminApiClient(broker.issuer, await clientToken(broker.issuer, 'ops', 'admin:read admin:write'));
  });
  after(async () => {
    await broker?.close();
    await ldap?.stop();
  });

  test('create, test (ok), code-flow login, sync with progress, wrong bind DN reported at config.bindDn, disable removes it from the login page', async (t) => {
    if (!ldap) return skipLoudly(t, skipReason);
    const created = await api.post('/connectors', { id: 'corp', type: 'ldap', name: 'Corporate directory', config: directory });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.ok(!created.text.includes(ldap.servicePassword), 'the bind password is returned');
    assert.deepEqual(created.body.secretsSet, ['bindPassword']);

    const probe = await api.post('/connectors/corp/test');
    assert.equal(probe.status, 200);
    assert.equal(probe.body.ok, true, JSON.stringify(probe.body));
    assert.deepEqual(probe.body.steps.map((s: { name: string; ok: boolean }) => [s.name, s.ok]), [['connect', true], ['bind', true], ['search', true]]);
    assert.ok(probe.body.found.usersFound === '5+' || probe.body.found.usersFound >= 1, JSON.stringify(probe.body.found));
    assert.match(probe.body.found.sampleUser.dn, /ou=people,dc=example,dc=org$/);

    // A person signs in through it (authorization code flow with PKCE, real pages).
    await within(2000, async () => (await offeredConnectors(broker.issuer)).includes('corp'), 'the login page offers corp');
    const rp = await oidc.discovery(new URL(broker.issuer), RP_CLIENT.id, RP_CLIENT.secret, undefined, { execute: [oidc.allowInsecureRequests] });
    const verifier = oidc.randomPKCECodeVerifier();
    const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: RP_REDIRECT, scope: 'openid profile offline_access', prompt: 'consent', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state: 'st' });
    const callback = await signIn(new Browser(broker.issuer), url.href, { username: 'alice', password: 'alicepass', connector: 'corp' });
    const tokens = await oidc.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier, expectedState: 'st' });
    assert.equal(tokens.claims()!.idp, 'corp');
    assert.ok(tokens.refresh_token, 'a refresh token');
    const refreshed = await oidc.refreshTokenGrant(rp, tokens.refresh_token!);

    // Import: one at a time across instances (the scheduler's lease), progress readable.
    assert.equal((await api.get('/connectors/corp/sync')).status, 404);
    assert.ok(await broker.store.leases.acquire('sync:corp', 'another-instance', 60_000));
    const busy = await api.post('/connectors/corp/sync');
    assert.equal(busy.status, 409);
    assert.equal(busy.body.code, 'sync_running');
    await broker.store.leases.release('sync:corp', 'another-instance');
    const sync = await api.post('/connectors/corp/sync');
    assert.equal(sync.status, 202, JSON.stringify(sync.body));
    assert.equal(sync.body.state, 'running');
    let progress: any;
    await within(30_000, async () => {
      progress = (await api.get('/connectors/corp/sync')).body;
      return progress.state !== 'running';
    }, 'the import finishes');
    assert.equal(progress.state, 'succeeded', JSON.stringify(progress));
    assert.equal(progress.id, sync.body.id);
    assert.ok(progress.progress.processed > 0 && progress.progress.processed === progress.progress.created + progress.progress.updated + progress.progress.unchanged, JSON.stringify(progress.progress));
    assert.ok(progress.finishedAt);
    assert.ok((await broker.store.users.findByUsername('bob')), 'the directory users were imported');

    // A wrong bind DN: the test names the bind step and the field.
    const etag = (await api.get('/connectors/corp')).headers.get('etag')!;
    const wrong = await api.patch('/connectors/corp', { config: { ...directory, bindPassword: undefined, bindDn: `cn=nobody,ou=services,${ldap.baseDn}` } }, { headers: { 'if-match': etag } });
    assert.equal(wrong.status, 200, JSON.stringify(wrong.body));
    const failed = await api.post('/connectors/corp/test');
    assert.equal(failed.status, 200);
    assert.equal(failed.body.ok, false);
    const failing = failed.body.steps.find((s: { ok: boolean }) => !s.ok);
    assert.equal(failing.name, 'bind');
    assert.equal(failing.field, 'config.bindDn');
    assert.ok(!failed.text.includes(ldap.servicePassword));

    // Fixed again without sending the password (the stored one is kept): refresh re-checks the directory and works.
    const fixed = await api.patch('/connectors/corp', { config: { ...directory, bindPassword: undefined } });
    assert.equal(fixed.status, 200);
    assert.equal((await api.post('/connectors/corp/test')).body.ok, true);
    const again = await oidc.refreshTokenGrant(rp, refreshed.refresh_token ?? tokens.refresh_token!);
    assert.ok(again.access_token);

    const disabled = await api.post('/connectors/corp/disable');
    assert.equal(disabled.status, 200);
    await within(2000, async () => !(await offeredConnectors(broker.issuer)).includes('corp'), 'the login page stops offering corp');
    // Its identities may no longer refresh (the refresh check asks the running registry).
    await assert.rejects(oidc.refreshTokenGrant(rp, again.refresh_token ?? refreshed.refresh_token ?? tokens.refresh_token!), (err: { error?: string }) => err.error === 'invalid_grant');
    const refused = await api.post('/connectors/corp/sync');
    assert.equal(refused.status, 409);
    assert.equal(refused.body.code, 'connector_not_running');
  });

  test('a connector created with a sync interval is imported on schedule without a restart', async (t) => {
    if (!ldap) return skipLoudly(t, skipReason);
    const created = await api.post('/connectors', { id: 'corp-scheduled', type: 'ldap', config: { ...directory, sync: { intervalMinutes: 60 } } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    await within(10_000, async () => (await broker.store.audit.query({ type: 'sync.completed', limit: 20 })).some((e: { connectorId: string | null }) => e.connectorId === 'corp-scheduled'), 'the scheduled import ran');
    let recorded: any;
    await within(5000, async () => {
      recorded = await api.get('/connectors/corp-scheduled/sync');
      return recorded.status === 200 && recorded.body.state !== 'running';
    }, 'the scheduled run is recorded like an API one');
    assert.equal(recorded.body.state, 'succeeded');
    assert.ok(recorded.body.progress.processed > 0);
    assert.equal((await api.delete('/connectors/corp-scheduled')).status, 204);
  });
});

describe('two instances on one PostgreSQL follow each other\'s connector changes within 2 s', () => {
  let a: TestBroker;
  let b: TestBroker;
  let drop: () => Promise<void> = async () => {};
  let skipped: string | undefined;
  let api: AdminApiClient;

  before(async () => {
    const db = await freshPostgresDatabase();
    if ('skip' in db) {
      skipped = db.skip;
      return;
    }
    drop = db.drop;
    const config = { secrets: { tokenKeys: [TOKEN_KEY] }, clients: [adminClientConfig('ops'), RP_CLIENT] };
    a = await startTestBroker({ databaseUrl: db.url, config });
    b = await startTestBroker({ databaseUrl: db.url, config });
    api = new AdminApiClient(a.issuer, await clientToken(a.issuer, 'ops', 'admin:read admin:write'));
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await drop();
  });

  test('created on A: B offers it; disabled on A: B stops; changed on A: B runs the new version; deleted: gone', async (t) => {
    if (skipped) return skipLoudly(t, skipped);
    const dead = `http://127.0.0.1:${await freePort()}`;
    const config = { clientId: 'c', clientSecret: 'two-instance-secret', authorizationUrl: `${dead}/authorize`, tokenUrl: `${dead}/token`, userinfoUrl: `${dead}/userinfo` };
    assert.ok(!(await offeredConnectors(b.issuer)).includes('shared'));
    assert.equal((await api.post('/connectors', { id: 'shared', type: 'oauth2', name: 'Shared', config })).status, 201);
    const seen = await within(2000, async () => (await offeredConnectors(b.issuer)).includes('shared'), 'B offers the connector created on A');
    t.diagnostic(`B offered it after ${seen} ms`);
    // B runs it with the secret it decrypted: its redirect carries the client id.
    assert.equal((await api.patch('/connectors/shared', { name: 'Shared v2' })).status, 200);
    await within(2000, async () => {
      const query = new URLSearchParams({ client_id: RP_CLIENT.id, response_type: 'code', redirect_uri: RP_REDIRECT, scope: 'openid', state: 'st', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' });
      const page = await new Browser(b.issuer).go(`${b.issuer}/auth?${query}`);
      return page.html.includes('Continue with Shared v2');
    }, 'B shows the new name');
    assert.equal((await api.post('/connectors/shared/disable')).status, 200);
    await within(2000, async () => !(await offeredConnectors(b.issuer)).includes('shared'), 'B stops offering the connector disabled on A');
    assert.equal((await api.post('/connectors/shared/enable')).status, 200);
    await within(2000, async () => (await offeredConnectors(b.issuer)).includes('shared'), 'B offers it again');
    assert.equal((await api.delete('/connectors/shared')).status, 204);
    await within(2000, async () => !(await offeredConnectors(b.issuer)).includes('shared'), 'B drops the connector deleted on A');
  });
});

describe('a redirect login under way when its connector is changed through the API', () => {
  let broker: TestBroker;
  let github: FakeGitHub;
  let api: AdminApiClient;

  before(async () => {
    github = await startFakeGitHub({ clientId: 'gh-client', clientSecret: 'gh-secret-0123456789', users: [{ id: 7, login: 'octo', name: 'Octo', email: null, emails: [{ email: 'octo@example.org', primary: true, verified: true }] }] });
    broker = await startTestBroker({ config: { secrets: { tokenKeys: [TOKEN_KEY] }, clients: [adminClientConfig('ops'), RP_CLIENT] } });
    api = new AdminApiClient(broker.issuer, await clientToken(broker.issuer, 'ops', 'admin:read admin:write'));
  });
  after(async () => {
    await broker?.close();
    await github?.close();
  });

  test('started on the old instance, finished after the swap: the person gets their tokens', async () => {
    const created = await api.post('/connectors', { id: 'gh-db', type: 'oauth2', name: 'GitHub', config: { preset: 'github', clientId: 'gh-client', clientSecret: 'gh-secret-0123456789', baseUrl: github.url, apiUrl: github.apiUrl } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const rp = await oidc.discovery(new URL(broker.issuer), RP_CLIENT.id, RP_CLIENT.secret, undefined, { execute: [oidc.allowInsecureRequests] });
    const verifier = oidc.randomPKCECodeVerifier();
    const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: RP_REDIRECT, scope: 'openid profile', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state: 'st' });
    const browser = new Browser(broker.issuer);
    const login = await browser.go(url.href);
    const away = await browser.submit(login, '/connector/gh-db');
    assert.ok(away.url.startsWith(github.url), `sent to GitHub: ${away.url}`);

    // While the person is at GitHub, an administrator changes the connector: a new instance runs.
    const changed = await api.patch('/connectors/gh-db', { name: 'GitHub (company)', config: { preset: 'github', clientId: 'gh-client', baseUrl: github.url, apiUrl: github.apiUrl, scopes: ['read:user', 'user:email'] } });
    assert.equal(changed.status, 200, JSON.stringify(changed.body));
    await within(2000, async () => {
      const fresh = new Browser(broker.issuer);
      return (await fresh.go(url.href)).html.includes('Continue with GitHub (company)');
    }, 'the new version is running');

    github.signInAs('octo');
    const res = await fetch(away.url, { redirect: 'manual' });
    const back = await browser.go(res.headers.get('location')!);
    assert.ok(back.url.startsWith(RP_REDIRECT), `expected to be back at the app, got ${back.status} ${back.url}: ${back.html.slice(0, 300)}`);
    const tokens = await oidc.authorizationCodeGrant(rp, new URL(back.url), { pkceCodeVerifier: verifier, expectedState: 'st' });
    assert.equal(tokens.claims()!.idp, 'gh-db');
  });
});
