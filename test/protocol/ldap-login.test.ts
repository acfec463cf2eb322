// End to end through the broker: an openid-client code flow whose login goes through the LDAP
// connector (OpenLDAP over StartTLS), ID tokens carrying the directory's groups, refresh
// re-checking the directory, and a directory outage that leaves other connectors working.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as oidc from 'openid-client';
import { Attribute, Change, Control } from 'ldapts';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { Browser } from '../helpers/browser.ts';
import { signIn } from '../helpers/login-flow.ts';
import { startOpenLdap, ssha, type OpenLdapServer } from '../helpers/openldap.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { boundClient, createDirectoryConnector } from '../helpers/ldap-connector.ts';
import plugin from '../../connectors/ldap/index.ts';
import { syncDirectory } from '../../src/federation/sync-directory.ts';
import { hashPassword } from '../../src/accounts/passwords.ts';
import { freePort } from '../helpers/free-port.ts';

const RP = 'http://127.0.0.1:9/cb';
const SECRET = 'rp-secret-0123456789abcdef';

describe('LDAP login through the broker', () => {
  let ldap: OpenLdapServer | undefined;
  let skipReason = '';
  let broker: TestBroker;
  let rp: oidc.Configuration;
  let corpConfig: Record<string, unknown>;

  before(async () => {
    const started = await startOpenLdap();
    if ('skip' in started) {
      skipReason = started.skip;
      return;
    }
    ldap = started;
    const directory = {
      bindDn: ldap.serviceDn,
      bindPassword: ldap.servicePassword,
      users: { baseDn: `ou=people,${ldap.baseDn}`, trustEmail: true },
      groups: { sources: [{ type: 'member', baseDn: `ou=groups,${ldap.baseDn}` }, { type: 'posix', baseDn: `ou=posixgroups,${ldap.baseDn}` }] },
    };
    corpConfig = { url: ldap.url, startTls: true, tls: { caFile: ldap.caFile }, ...directory };
    broker = await startTestBroker({
      config: {
        clients: [{ id: 'rp', secret: SECRET, redirectUris: [RP], firstParty: true, grantTypes: ['authorization_code', 'refresh_token'] }],
        users: [{ username: 'localadmin', password: 'local-password-1', email: 'admin@local.example', groups: ['ops'] }],
        connectors: [
          { id: 'local', type: 'local', name: 'Local account' },
          { id: 'corp', type: 'ldap', name: 'Corporate directory', config: { url: ldap.url, startTls: true, tls: { caFile: ldap.caFile }, ...directory } },
          { id: 'branch', type: 'ldap', name: 'Branch directory', config: { url: `ldap://127.0.0.1:${await freePort()}`, connectTimeoutMs: 500, ...directory } },
        ],
      },
    });
    rp = await oidc.discovery(new URL(broker.issuer), 'rp', SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
  });
  after(async () => {
    await broker?.close();
    await ldap?.stop();
  });

  async function authorize() {
    const verifier = oidc.randomPKCECodeVerifier();
    const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: RP, scope: 'openid profile email groups offline_access', prompt: 'consent', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state: 'st' });
    return { url: url.href, verifier };
  }

  async function login(username: string, password: string, connector = 'corp') {
    const { url, verifier } = await authorize();
    const callback = await signIn(new Browser(broker.issuer), url, { username, password, connector });
    return oidc.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier, expectedState: 'st' });
  }

  const admin = () => boundClient(ldap!.url, ldap!.adminDn, ldap!.adminPassword);

  test('code flow through the LDAP connector: ID token with local sub and directory groups', async (t) => {
    if (!ldap) return skipLoudly(t, skipReason);
    const tokens = await login('alice', 'alicepass');
    const claims = tokens.claims()!;
    assert.deepEqual(claims.groups, ['admins', 'developers', 'engineering', 'staff']);
    assert.equal(claims.idp, 'corp');
    assert.deepEqual(claims.amr, ['pwd']);
    assert.equal(claims.email, 'alice@example.org');
    assert.equal(claims.email_verified, true);
    assert.equal(claims.name, 'Alice Anderson');

    const user = await broker.store.users.findById(claims.sub);
    assert.equal(user?.managedBy, 'corp');
    const [fed] = await broker.store.identities.listForUser(claims.sub);
    assert.equal(fed?.connectorId, 'corp');
    assert.match(fed!.subject, /^[0-9a-f-]{36}$/, 'linked by entryUUID');

    const again = await login('alice@example.org', 'alicepass');
    assert.equal(again.claims()!.sub, claims.sub, 'same directory entry, same local user, whatever name was typed');
  });

  test('refresh re-reads the directory: new groups flow in, a locked or deleted entry ends the grant', async (t) => {
    if (!ldap) return skipLoudly(t, skipReason);
    const client = await admin();
    const dn = (uid: string) => `uid=${uid},ou=people,${ldap!.baseDn}`;
    try {
      for (const uid of ['gina', 'hank']) {
        await client.add(dn(uid), { objectClass: ['inetOrgPerson'], uid, cn: uid, sn: uid, mail: `${uid}@example.org`, userPassword: ssha(`${uid}pass`) });
      }
      const gina = await login('gina', 'ginapass');
      assert.deepEqual(gina.claims()!.groups, []);
      await client.modify(`cn=engineering,ou=groups,${ldap.baseDn}`, new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [dn('gina')] }) }));
      const refreshed = await oidc.refreshTokenGrant(rp, gina.refresh_token!);
      assert.deepEqual(refreshed.claims()!.groups, ['engineering', 'staff'], 'groups changed upstream reach the new ID token');

      await client.modify(dn('gina'), new Change({ operation: 'add', modification: new Attribute({ type: 'pwdAccountLockedTime', values: ['000001010000Z'] }) }), new Control('1.3.6.1.4.1.4203.666.5.12'));
      await assert.rejects(oidc.refreshTokenGrant(rp, refreshed.refresh_token!), (err: oidc.ResponseBodyError) => err.error === 'invalid_grant');
      assert.equal((await oidc.tokenIntrospection(rp, refreshed.access_token)).active, false, 'the whole grant is revoked');

      const hank = await login('hank', 'hankpass');
      await client.del(dn('hank'));
      await assert.rejects(oidc.refreshTokenGrant(rp, hank.refresh_token!), (err: oidc.ResponseBodyError) => err.error === 'invalid_grant');
      const denied = await broker.store.audit.list({ type: 'token.refresh_denied' });
      assert.deepEqual(denied.slice(0, 2).map((e) => e.details.reason).sort(), ['account_locked', 'user_gone']);
    } finally {
      await client.unbind();
    }
  });

  test('failures are shown per reason and nothing is created', async (t) => {
    if (!ldap) return skipLoudly(t, skipReason);
    const before = await broker.store.users.count();
    for (const [username, password, message] of [
      ['alice', 'wrong', 'Invalid username or password.'],
      ['*', 'alicepass', 'Invalid username or password.'],
      // Locked (ppolicy): said like a wrong password, so a stranger learns nothing.
      ['dave', 'davepass', 'Invalid username or password.'],
      ['dave', 'wrong', 'Invalid username or password.'],
    ]) {
      const browser = new Browser(broker.issuer);
      const page = await browser.go((await authorize()).url);
      const failed = await browser.submit(page, '/login', { username: username!, password: password!, connector: 'corp' });
      assert.equal(failed.status, 401);
      assert.ok(failed.html.includes(message!), `${username}: expected "${message}"`);
    }
    assert.equal(await broker.store.users.count(), before);
    const failures = await broker.store.audit.list({ type: 'login.failure' });
    assert.ok(!failures.some((e) => e.details.reason === 'account_locked'), 'no page or audit entry tells a locked account apart');
  });

  test('a directory that is down: its login says so, other connectors keep working', async (t) => {
    if (!ldap) return skipLoudly(t, skipReason);
    const before = await broker.store.users.count();
    const browser = new Browser(broker.issuer);
    const page = await browser.go((await authorize()).url);
    const down = await browser.submit(page, '/login', { username: 'alice', password: 'alicepass', connector: 'branch' });
    assert.equal(down.status, 503);
    assert.match(down.html, /Branch directory is unavailable right now/);
    assert.doesNotMatch(down.html, /ECONNREFUSED|127\.0\.0\.1|ldap:\/\//, 'no internals on the page');
    assert.equal(await broker.store.users.count(), before, 'nothing half-written');
    assert.equal((await broker.store.audit.list({ type: 'login.error' }))[0]?.connectorId, 'branch');

    // The same form still works for the other connectors.
    const local = await browser.submit(down, '/login', { username: 'localadmin', password: 'local-password-1', connector: 'local' });
    assert.equal(local.html, '', `local login went through: ${local.status}`);
    assert.equal((await login('bob', 'bobpass')).claims()!.preferred_username, 'bob');
  });

  test('directory lifecycle: an import disables a locked user; unlocked upstream, her next login lets her in before any import', async (t) => {
    if (!ldap) return skipLoudly(t, skipReason);
    const client = await admin();
    const dn = `uid=lina,ou=people,${ldap.baseDn}`;
    const RELAX = new Control('1.3.6.1.4.1.4203.666.5.12');
    const lock = (at: string) => client.modify(dn, new Change({ operation: 'add', modification: new Attribute({ type: 'pwdAccountLockedTime', values: [at] }) }), RELAX);
    const unlock = () => client.modify(dn, new Change({ operation: 'delete', modification: new Attribute({ type: 'pwdAccountLockedTime', values: [] }) }), RELAX);
    const importer = await createDirectoryConnector(plugin as never, 'corp', corpConfig);
    const importNow = () => syncDirectory(broker.store, 'corp', importer.sync!);
    const failsWith = async (password: string, message: string) => {
      const browser = new Browser(broker.issuer);
      const page = await browser.go((await authorize()).url);
      const failed = await browser.submit(page, '/login', { username: 'lina', password, connector: 'corp' });
      assert.equal(failed.status, 401);
      assert.ok(failed.html.includes(message), `expected "${message}"`);
    };
    try {
      await client.add(dn, { objectClass: ['inetOrgPerson'], uid: 'lina', cn: 'Lina Lock', sn: 'Lock', mail: 'lina@example.org', userPassword: ssha('linapass') });
      const first = await login('lina', 'linapass');
      const sub = first.claims()!.sub;
      await lock('000001010000Z');
      await importNow();
      assert.equal((await broker.store.users.findById(sub))?.enabled, false, 'the import disabled her');
      await failsWith('linapass', 'Invalid username or password.');

      // Unlocked in the directory; no import runs (intervalMinutes 0): her login re-enables her.
      await unlock();
      const back = await login('lina', 'linapass');
      assert.equal(back.claims()!.sub, sub);
      assert.equal((await broker.store.users.findById(sub))?.enabled, true);
      const [enabled] = await broker.store.audit.list({ type: 'user.enabled' });
      assert.deepEqual([enabled?.userId, enabled?.details.reason, enabled?.details.via], [sub, 'upstream_login', 'login']);
      const after = await importNow();
      assert.equal(after.disabled, 0);
      assert.equal((await broker.store.users.findById(sub))?.enabled, true, 'the next import agrees');

      // Locked again: the import still sees it (the login kept nothing stale), and an unlock
      // seen by an import enables her too.
      await lock('000001010000Z');
      await importNow();
      assert.equal((await broker.store.users.findById(sub))?.enabled, false);
      await unlock();
      await importNow();
      assert.equal((await broker.store.users.findById(sub))?.enabled, true);

      // An administrator's own disable is not undone by a directory login.
      await broker.store.users.update(sub, { enabled: false });
      await failsWith('linapass', 'This account is disabled.');
      assert.equal((await broker.store.users.findById(sub))?.enabled, false);
      await broker.store.users.update(sub, { enabled: true });
    } finally {
      await importer.close?.();
      await client.unbind();
    }
  });

  test('an upstream username that is an email never shadows a local user\'s email', async (t) => {
    if (!ldap) return skipLoudly(t, skipReason);
    const client = await admin();
    const dn = `uid=Pia.Confirm@example.org,ou=people,${ldap.baseDn}`;
    try {
      const local = await broker.store.users.create({ username: 'pia', email: 'pia.confirm@example.org', emailVerified: true });
      await broker.store.credentials.setPassword(local.id, await hashPassword('pia-local-password'));
      await client.add(dn, { objectClass: ['inetOrgPerson'], uid: 'Pia.Confirm@example.org', cn: 'Pia Upstream', sn: 'Upstream', userPassword: ssha('piapass') });
      const upstream = await login('Pia.Confirm@example.org', 'piapass');
      const created = await broker.store.users.findById(upstream.claims()!.sub);
      assert.equal(created?.username, 'Pia.Confirm', 'the upstream name, made a valid local one');
      assert.notEqual(created?.id, local.id);
      const byEmail = await login('pia.confirm@example.org', 'pia-local-password', 'local');
      assert.equal(byEmail.claims()!.sub, local.id, 'the local user still signs in by her email');
    } finally {
      await client.del(dn).catch(() => {});
      await client.unbind();
    }
  });
});
