// The activedirectory connector (the ldap connector's AD preset) against a real Samba AD DC
// started by the suite: the four login name forms, AD's bind sub-status codes, account flags,
// transitive groups through the in-chain rule, objectGUID subjects, transports and refresh.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Attribute, Change } from 'ldapts';
import plugin from '../../../connectors/activedirectory/index.ts';
import type { LdapConfigInput } from '../../../connectors/ldap/ldap-config.ts';
import type { PasswordConnector } from '../../../src/connectors/contract.ts';
import { boundClient, createDirectoryConnector, expectOk } from '../../helpers/ldap-connector.ts';
import { startSambaAd, type SambaAd } from '../../helpers/samba-ad.ts';
import { openDatabase } from '../../../src/storage/database.ts';
import { migrateLatest } from '../../../src/storage/migrate.ts';
import { Store } from '../../../src/storage/store.ts';
import { syncDirectory } from '../../../src/federation/sync-directory.ts';
import { skipLoudly } from '../../helpers/skip.ts';

let ad: SambaAd | undefined;
let skipReason = '';
const open: PasswordConnector[] = [];

async function connector(overrides: Partial<LdapConfigInput> = {}): Promise<PasswordConnector> {
  const c = await createDirectoryConnector(plugin as never, 'ad', {
    url: ad!.url,
    bindDn: ad!.serviceUpn,
    bindPassword: ad!.servicePassword,
    netbiosDomain: ad!.domain,
    users: { baseDn: ad!.baseDn, extraAttributes: ['description'] },
    ...overrides,
  });
  open.push(c);
  return c;
}

const admin = () => boundClient(ad!.url, ad!.adminUpn, ad!.adminPassword);

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('activedirectory connector against Samba AD', () => {
  before(async () => {
    const started = await startSambaAd();
    if ('skip' in started) skipReason = started.skip;
    else ad = started;
  });
  after(async () => {
    for (const c of open) await c.close?.();
    await ad?.stop();
  });

  const cases: Array<{ name: string; login: string; password: string; expect: string; groups?: string[] }> = [
    { name: 'sAMAccountName', login: 'alice', password: 'Alice#Pass1', expect: 'ok', groups: ['All Company', 'Broker Admins', 'Engineering', 'Staff'] },
    { name: 'userPrincipalName', login: 'alice@example.test', password: 'Alice#Pass1', expect: 'ok' },
    { name: 'down-level DOMAIN\\name', login: 'EXAMPLE\\alice', password: 'Alice#Pass1', expect: 'ok' },
    { name: 'another domain\'s down-level name', login: 'OTHER\\alice', password: 'Alice#Pass1', expect: 'invalid_credentials' },
    { name: 'nested two levels deep, other OU, non-ASCII', login: 'erin', password: 'Erin#Pass1', expect: 'ok', groups: ['All Company'] },
    { name: 'wrong password (52e)', login: 'bob', password: 'Bob#Wrong1', expect: 'invalid_credentials' },
    { name: 'unknown user', login: 'nobody', password: 'Nobody#Pass1', expect: 'invalid_credentials' },
    { name: 'disabled (533)', login: 'dave', password: 'Dave#Pass1', expect: 'account_disabled' },
    { name: 'must change password (773)', login: 'frank', password: 'Frank#Pass1', expect: 'password_change_required' },
    { name: 'account expired (701)', login: 'grace', password: 'Grace#Pass1', expect: 'account_expired' },
    { name: 'injection: wildcard', login: '*', password: 'Alice#Pass1', expect: 'invalid_credentials' },
    { name: 'injection: closing the filter', login: 'alice)(sAMAccountName=*', password: 'Alice#Pass1', expect: 'invalid_credentials' },
  ];

  for (const c of cases) {
    test(`${c.name}: ${JSON.stringify(c.login)} -> ${c.expect}`, async (t) => {
      if (!ad) return skipLoudly(t, skipReason);
      const result = await (await connector()).login(c.login, c.password);
      if (c.expect !== 'ok') {
        assert.equal(!result.ok && result.reason, c.expect, JSON.stringify(result));
        return;
      }
      const identity = expectOk(result);
      assert.match(identity.subject, GUID, 'subject is the objectGUID');
      if (c.groups) assert.deepEqual(identity.groups, c.groups);
      const again = expectOk(await (await connector()).refresh!({ connectorId: 'ad', subject: identity.subject }));
      assert.deepEqual(again, identity, 'refresh finds the user by objectGUID and reads the same identity');
    });
  }

  test('all four login forms are one user; attributes mapped', async (t) => {
    if (!ad) return skipLoudly(t, skipReason);
    const conn = await connector();
    const forms = await Promise.all(['alice', 'alice@example.test', 'EXAMPLE\\alice', 'ALICE'].map((l) => conn.login(l, 'Alice#Pass1')));
    const subjects = new Set(forms.map((r) => expectOk(r).subject));
    assert.equal(subjects.size, 1);
    const alice = expectOk(forms[0]!);
    assert.equal(alice.username, 'alice');
    assert.equal(alice.email, 'alice@example.test');
    assert.equal(alice.givenName, 'Alice');
    assert.equal(alice.familyName, 'Anderson');
    const erin = expectOk(await conn.login('erin', 'Erin#Pass1'));
    assert.equal(erin.givenName, 'Érin');
    assert.match(String(erin.attributes?.dn), /^CN=erin,OU=Contractors,/i);
  });

  test('lockout after repeated failures (775): a wrong password reads as a wrong password; refresh sees the lock', async (t) => {
    if (!ad) return skipLoudly(t, skipReason);
    const conn = await connector();
    const ivan = expectOk(await conn.login('ivan', 'Ivan#Pass1'));
    for (let i = 0; i < 3; i++) assert.equal((await conn.login('ivan', 'Ivan#Wrong1')).ok, false);
    // AD answers 775 before it checks the password, so "locked" would confirm the account to
    // anyone guessing: both read as a wrong password; the log keeps the sub-status.
    for (const password of ['Ivan#Wrong1', 'Ivan#Pass1']) {
      const locked = await conn.login('ivan', password);
      assert.equal(!locked.ok && locked.reason, 'invalid_credentials', password);
      assert.match(String(!locked.ok && locked.detail), /775: locked out/);
    }
    // Disabled (533) is told only to someone who knows the password (52e otherwise).
    const wrongForDisabled = await conn.login('dave', 'Dave#Wrong1');
    assert.equal(!wrongForDisabled.ok && wrongForDisabled.reason, 'invalid_credentials');
    // Refresh and import follow AD's own lockout (msDS-User-Account-Control-Computed).
    const refreshed = await conn.refresh!(ivan);
    assert.equal(!refreshed.ok && refreshed.reason, 'account_locked');
    const listed = [];
    for await (const page of conn.sync!.listUsers()) listed.push(...page);
    assert.equal(listed.find((u) => u.identity.username === 'ivan')?.blocked, 'account_locked');
    assert.equal(listed.find((u) => u.identity.username === 'alice')?.blocked, null);
    // Unlocked by an administrator (lockoutTime 0): refresh lets him through again.
    const client = await admin();
    try {
      await client.modify(String(ivan.attributes?.dn), new Change({ operation: 'replace', modification: new Attribute({ type: 'lockoutTime', values: ['0'] }) }));
    } finally {
      await client.unbind();
    }
    expectOk(await conn.refresh!(ivan));
    expectOk(await conn.login('ivan', 'Ivan#Pass1'));
  });

  test('StartTLS and LDAPS with the CA; an untrusted certificate is refused', async (t) => {
    if (!ad) return skipLoudly(t, skipReason);
    expectOk(await (await connector({ startTls: true, tls: { ca: ad.caPem } })).login('bob', 'Bob#Pass1'));
    expectOk(await (await connector({ url: ad.ldapsUrl, tls: { caFile: ad.caFile } })).login('carol', 'Carol#Pass1'));
    await assert.rejects((await connector({ url: ad.ldapsUrl })).login('carol', 'Carol#Pass1'), /certificate|self-signed|unable to verify/i);
  });

  test('refresh after upstream changes: group added, account disabled, account deleted', async (t) => {
    if (!ad) return skipLoudly(t, skipReason);
    const client = await admin();
    const conn = await connector();
    try {
      const bob = expectOk(await conn.login('bob', 'Bob#Pass1'));
      assert.ok(!bob.groups?.includes('Broker Admins'));
      await client.modify(`CN=Broker Admins,CN=Users,${ad.baseDn}`, new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [String(bob.attributes?.dn)] }) }));
      assert.ok(expectOk(await conn.refresh!(bob)).groups?.includes('Broker Admins'), 'a new group reaches the refreshed identity');

      await client.modify(String(bob.attributes?.dn), new Change({ operation: 'replace', modification: new Attribute({ type: 'userAccountControl', values: ['514'] }) }));
      const disabled = await conn.refresh!(bob);
      assert.equal(!disabled.ok && disabled.reason, 'account_disabled');

      const carol = expectOk(await conn.login('carol', 'Carol#Pass1'));
      await client.del(String(carol.attributes?.dn));
      const gone = await conn.refresh!(carol);
      assert.equal(!gone.ok && gone.reason, 'user_gone');
      const notAGuid = await conn.refresh!({ connectorId: 'ad', subject: 'alice' });
      assert.equal(!notAGuid.ok && notAGuid.reason, 'user_gone');
    } finally {
      await client.unbind();
    }
  });

  test('import from AD: transitive groups, disabled and expired accounts imported disabled', async (t) => {
    if (!ad) return skipLoudly(t, skipReason);
    const db = await openDatabase({ dataDir: ':memory:' });
    try {
      await migrateLatest(db.knex);
      const store = new Store(db.knex);
      const result = await syncDirectory(store, 'ad', (await connector({ sync: { pageSize: 10 } })).sync!);
      assert.ok(result.created >= 8, `imported ${result.created}`);
      assert.equal(result.total, result.processed);
      const alice = (await store.users.findByUsername('alice'))!;
      assert.equal(alice.enabled, true);
      assert.equal(alice.managedBy, 'ad');
      assert.deepEqual(await store.groups.groupsOf(alice.id), ['All Company', 'Broker Admins', 'Engineering', 'Staff']);
      assert.deepEqual(await store.groups.groupsOf((await store.users.findByUsername('erin'))!.id), ['All Company']);
      for (const blocked of ['dave', 'grace']) assert.equal((await store.users.findByUsername(blocked))?.enabled, false, `${blocked} is blocked in AD`);
      const fed = await store.identities.find('ad', (await store.identities.listForUser(alice.id))[0]!.subject);
      assert.match(fed!.subject, GUID);
      const again = await syncDirectory(store, 'ad', (await connector({ sync: { pageSize: 10 } })).sync!);
      assert.deepEqual([again.created, again.updated, again.unchanged], [0, 0, result.processed]);
    } finally {
      await db.close();
    }
  });
});
