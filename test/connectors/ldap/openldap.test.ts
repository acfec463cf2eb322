// The ldap connector against a real OpenLDAP (slapd) started by the suite: logins, escaping,
// groups (member DN, uniqueMember, posix, memberOf, nesting, cycles), account state, transports,
// the connection pool, refresh after upstream changes, and a directory that is down or silent.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Attribute, Change, Control } from 'ldapts';
import plugin from '../../../connectors/ldap/index.ts';
import type { LdapConfigInput } from '../../../connectors/ldap/ldap-config.ts';
import type { PasswordConnector } from '../../../src/connectors/contract.ts';
import { boundClient, createDirectoryConnector, expectOk } from '../../helpers/ldap-connector.ts';
import { startOpenLdap, ssha, type OpenLdapServer } from '../../helpers/openldap.ts';
import { skipLoudly } from '../../helpers/skip.ts';
import { freePort } from '../../helpers/free-port.ts';

let ldap: OpenLdapServer | undefined;
let skipReason = '';
const open: PasswordConnector[] = [];

async function connector(overrides: Partial<LdapConfigInput> = {}): Promise<PasswordConnector> {
  const s = ldap!;
  const c = await createDirectoryConnector(plugin as never, 'corp', {
    url: s.url,
    bindDn: s.serviceDn,
    bindPassword: s.servicePassword,
    users: { baseDn: `ou=people,${s.baseDn}`, extraAttributes: ['title'], trustEmail: true },
    groups: {
      sources: [
        { type: 'member', baseDn: `ou=groups,${s.baseDn}` },
        { type: 'posix', baseDn: `ou=posixgroups,${s.baseDn}` },
      ],
    },
    ...overrides,
  });
  open.push(c);
  return c;
}

const admin = () => boundClient(ldap!.url, ldap!.adminDn, ldap!.adminPassword);

describe('ldap connector against OpenLDAP', () => {
  before(async () => {
    const started = await startOpenLdap();
    if ('skip' in started) skipReason = started.skip;
    else ldap = started;
  });
  after(async () => {
    for (const c of open) await c.close?.();
    await ldap?.stop();
  });

  const cases: Array<{ name: string; login: string; password: string; expect: string; username?: string; groups?: string[] }> = [
    { name: 'good login by uid', login: 'alice', password: 'alicepass', expect: 'ok', username: 'alice', groups: ['admins', 'developers', 'engineering', 'staff'] },
    { name: 'good login by mail', login: 'alice@example.org', password: 'alicepass', expect: 'ok', username: 'alice' },
    { name: 'uid matches case-insensitively', login: 'ALICE', password: 'alicepass', expect: 'ok', username: 'alice' },
    { name: 'nested groups with a cycle end', login: 'bob', password: 'bobpass', expect: 'ok', groups: ['cycle-a', 'cycle-b', 'developers', 'engineering', 'staff'] },
    { name: 'groupOfUniqueNames and posix groups', login: 'carol', password: 'carolpass', expect: 'ok', groups: ['auditors', 'operators', 'staff'] },
    { name: 'non-ASCII names', login: 'eve', password: 'evepass', expect: 'ok', username: 'eve', groups: ['staff'] },
    { name: 'a real uid full of filter metacharacters', login: 'o(brien)*', password: 'obrienpass', expect: 'ok', username: 'o(brien)*' },
    { name: 'wrong password', login: 'alice', password: 'wrong', expect: 'invalid_credentials' },
    { name: 'unknown user', login: 'nobody', password: 'x', expect: 'invalid_credentials' },
    { name: 'empty password (would be an unauthenticated bind)', login: 'alice', password: '', expect: 'invalid_credentials' },
    // ppolicy refuses a locked account before it checks the password: "locked" would confirm the
    // account to anyone, so it is a wrong password like any other (the detail names the lock).
    { name: 'locked by ppolicy, right password', login: 'dave', password: 'davepass', expect: 'invalid_credentials' },
    { name: 'locked by ppolicy, wrong password', login: 'dave', password: 'wrong', expect: 'invalid_credentials' },
    { name: 'injection: wildcard', login: '*', password: 'alicepass', expect: 'invalid_credentials' },
    { name: 'injection: prefix wildcard', login: 'al*', password: 'alicepass', expect: 'invalid_credentials' },
    { name: 'injection: closing the filter', login: 'alice)(uid=*', password: 'alicepass', expect: 'invalid_credentials' },
    { name: 'injection: OR-ing everything', login: '*)(|(uid=*', password: 'alicepass', expect: 'invalid_credentials' },
    { name: 'injection: a whole filter', login: '(uid=alice)', password: 'alicepass', expect: 'invalid_credentials' },
    { name: 'injection: backslash and NUL', login: 'alice\\\0', password: 'alicepass', expect: 'invalid_credentials' },
  ];

  for (const c of cases) {
    test(`${c.name}: ${JSON.stringify(c.login)} -> ${c.expect}`, async (t) => {
      if (!ldap) return skipLoudly(t, skipReason);
      const conn = await connector();
      const result = await conn.login(c.login, c.password);
      if (c.expect !== 'ok') {
        assert.equal(result.ok, false);
        assert.equal(!result.ok && result.reason, c.expect);
        // An injected filter that matched several entries would say "ambiguous"; escaped, it matches nobody.
        if (c.name.startsWith('injection')) assert.match(String(!result.ok && result.detail), /^(no such user|login name not accepted)$/);
        return;
      }
      const identity = expectOk(result);
      assert.equal(identity.connectorId, 'corp');
      assert.match(identity.subject, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'subject is the entryUUID, not the DN');
      if (c.username) assert.equal(identity.username, c.username);
      if (c.groups) assert.deepEqual(identity.groups, c.groups);
      assert.deepEqual(identity.amr, ['pwd']);
      // Every login is re-checked through refresh, which finds the entry by subject alone.
      const again = expectOk(await conn.refresh!({ connectorId: 'corp', subject: identity.subject }));
      assert.deepEqual(again, identity);
    });
  }

  test('attribute mapping: names, verified email when trusted, extra attributes and the DN', async (t) => {
    if (!ldap) return skipLoudly(t, skipReason);
    const alice = expectOk(await (await connector()).login('alice', 'alicepass'));
    assert.equal(alice.email, 'alice@example.org');
    assert.equal(alice.emailVerified, true);
    assert.equal(alice.name, 'Alice Anderson');
    assert.equal(alice.givenName, 'Alice');
    assert.equal(alice.familyName, 'Anderson');
    assert.deepEqual(alice.attributes, { dn: `uid=alice,ou=people,${ldap.baseDn}`, title: 'Engineering Lead' });
    const eve = expectOk(await (await connector({ users: { baseDn: `ou=people,${ldap.baseDn}` } })).login('eve', 'evepass'));
    assert.equal(eve.name, 'Ève Müller');
    assert.equal(eve.emailVerified, false, 'directory email is unverified unless trustEmail');
  });

  test('group depth limit and memberOf source', async (t) => {
    if (!ldap) return skipLoudly(t, skipReason);
    const shallow = await connector({ groups: { maxDepth: 1, sources: [{ type: 'member', baseDn: `ou=groups,${ldap.baseDn}` }] } });
    assert.deepEqual(expectOk(await shallow.login('alice', 'alicepass')).groups, ['admins', 'engineering']);
    const viaMemberOf = await connector({ groups: { sources: [{ type: 'memberOf' }] } });
    assert.deepEqual(expectOk(await viaMemberOf.login('alice', 'alicepass')).groups, ['admins', 'engineering', 'staff']);
    assert.deepEqual(expectOk(await viaMemberOf.login('bob', 'bobpass')).groups, ['cycle-a', 'cycle-b', 'engineering', 'staff']);
    const none = await connector({ groups: { sources: [] } });
    assert.deepEqual(expectOk(await none.login('alice', 'alicepass')).groups, []);
  });

  test('direct bind by DN template, without a service account', async (t) => {
    if (!ldap) return skipLoudly(t, skipReason);
    const direct = await connector({ bindDn: undefined, bindPassword: undefined, userDnTemplate: `uid={username},ou=people,${ldap.baseDn}` });
    const alice = expectOk(await direct.login('alice', 'alicepass'));
    assert.equal(alice.username, 'alice');
    assert.ok(alice.groups?.includes('staff'));
    assert.equal(expectOk(await direct.login('o(brien)*', 'obrienpass')).username, 'o(brien)*');
    for (const login of ['alice', 'alice,ou=people', 'admin,dc=example,dc=org', '*']) {
      const r = await direct.login(login, login === 'alice' ? 'wrong' : 'adminpass');
      assert.equal(!r.ok && r.reason, 'invalid_credentials', login);
    }
  });

  test('StartTLS and LDAPS with the configured CA; verification is on by default', async (t) => {
    if (!ldap) return skipLoudly(t, skipReason);
    const startTls = await connector({ startTls: true, tls: { caFile: ldap.caFile } });
    assert.equal(expectOk(await startTls.login('alice', 'alicepass')).username, 'alice');
    const ldaps = await connector({ url: ldap.ldapsUrl, tls: { ca: ldap.caPem } });
    assert.equal(expectOk(await ldaps.login('bob', 'bobpass')).username, 'bob');

    const untrusted = await connector({ url: ldap.ldapsUrl });
    await assert.rejects(untrusted.login('alice', 'alicepass'), /cannot connect to the directory.*(self-signed|unable to verify|certificate)/i);
    const untrustedStartTls = await connector({ startTls: true });
    await assert.rejects(untrustedStartTls.login('alice', 'alicepass'), /certificate|self-signed|unable to verify/i);
    const wrongName = await connector({ url: ldap.ldapsUrl, tls: { ca: ldap.caPem, serverName: 'ldap.elsewhere.example' } });
    await assert.rejects(wrongName.login('alice', 'alicepass'), /ldap\.elsewhere\.example|altnames|Hostname/i);
  });

  test('the pool reuses connections: many logins, at most pool-size TCP connections', async (t) => {
    if (!ldap) return skipLoudly(t, skipReason);
    const target = new URL(ldap.url);
    let accepted = 0;
    const sockets = new Set<net.Socket>();
    const proxy = net.createServer((client) => {
      accepted += 1;
      const upstream = net.connect(Number(target.port), target.hostname);
      sockets.add(client).add(upstream);
      client.pipe(upstream).pipe(client);
      const end = () => { client.destroy(); upstream.destroy(); };
      client.on('error', end).on('close', end);
      upstream.on('error', end).on('close', end);
    });
    const port = await freePort();
    await new Promise<void>((r) => proxy.listen(port, '127.0.0.1', r));
    try {
      const pooled = await connector({ url: `ldap://127.0.0.1:${port}`, pool: { size: 3 } });
      for (let i = 0; i < 10; i++) expectOk(await pooled.login('alice', 'alicepass'));
      assert.equal(accepted, 2, 'sequential logins share two connections: one stays bound as the service account, one checks passwords');
      const results = await Promise.all(Array.from({ length: 12 }, (_, i) => pooled.login(i % 2 ? 'bob' : 'carol', i % 2 ? 'bobpass' : 'carolpass')));
      results.forEach(expectOk);
      assert.ok(accepted <= 3, `concurrent logins opened ${accepted} connections; the pool holds 3`);

      // The server side drops every connection: the pool notices and opens fresh ones.
      for (const s of sockets) s.destroy();
      sockets.clear();
      await new Promise((r) => setTimeout(r, 50));
      expectOk(await pooled.login('alice', 'alicepass'));
      const wrong = await pooled.login('alice', 'nope');
      assert.equal(!wrong.ok && wrong.reason, 'invalid_credentials');
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => proxy.close(r));
    }
  });

  test('refresh sees upstream changes: new groups, a lock, a deleted entry', async (t) => {
    if (!ldap) return skipLoudly(t, skipReason);
    const dn = `uid=frida,ou=people,${ldap.baseDn}`;
    const client = await admin();
    try {
      await client.add(dn, { objectClass: ['inetOrgPerson'], uid: 'frida', cn: 'Frida Fresh', sn: 'Fresh', mail: 'frida@example.org', userPassword: ssha('fridapass') });
      const conn = await connector();
      const frida = expectOk(await conn.login('frida', 'fridapass'));
      assert.deepEqual(frida.groups, []);

      await client.modify(`cn=admins,ou=groups,${ldap.baseDn}`, new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [dn] }) }));
      assert.deepEqual(expectOk(await conn.refresh!(frida)).groups, ['admins']);

      await client.modify(dn, new Change({ operation: 'add', modification: new Attribute({ type: 'pwdAccountLockedTime', values: ['000001010000Z'] }) }), new Control('1.3.6.1.4.1.4203.666.5.12'));
      const locked = await conn.refresh!(frida);
      assert.equal(!locked.ok && locked.reason, 'account_locked');

      await client.del(dn);
      const gone = await conn.refresh!(frida);
      assert.equal(!gone.ok && gone.reason, 'user_gone');
      const garbage = await conn.refresh!({ connectorId: 'corp', subject: '*' });
      assert.equal(!garbage.ok && garbage.reason, 'user_gone', 'a subject is escaped like any other value');
    } finally {
      await client.unbind();
    }
  });

  test('a directory that is down or never answers fails the login, it does not hang', async (t) => {
    if (!ldap) return skipLoudly(t, skipReason);
    const closedPort = await freePort();
    const down = await connector({ url: `ldap://127.0.0.1:${closedPort}`, connectTimeoutMs: 1000 });
    await assert.rejects(down.login('alice', 'alicepass'), (err: Error) => err.name === 'DirectoryUnavailable' && /cannot connect/.test(err.message));
    await assert.rejects(down.refresh!({ connectorId: 'corp', subject: 'x' }), /cannot connect/);

    // A server that accepts connections and then says nothing: the operation timeout ends it.
    const silent = net.createServer(() => {});
    const silentPort = await freePort();
    await new Promise<void>((r) => silent.listen(silentPort, '127.0.0.1', r));
    try {
      const slow = await connector({ url: `ldap://127.0.0.1:${silentPort}`, timeoutMs: 300, connectTimeoutMs: 300 });
      await assert.rejects(slow.login('alice', 'alicepass'), (err: Error) => err.name === 'DirectoryUnavailable' && /timeout|timed out/i.test(err.message));
    } finally {
      silent.close();
    }

    // Failover: the first URL is down, the second answers.
    const failover = await connector({ url: [`ldap://127.0.0.1:${closedPort}`, ldap.url] });
    expectOk(await failover.login('alice', 'alicepass'));
  });

  test('ppolicy lockouts follow the directory: an expired lock is no lock at login, refresh and import; a live one is', async (t) => {
    if (!ldap) return skipLoudly(t, skipReason);
    const client = await admin();
    const dn = (uid: string) => `uid=${uid},ou=people,${ldap!.baseDn}`;
    const RELAX = new Control('1.3.6.1.4.1.4203.666.5.12');
    // The default policy (the one pwdPolicy entry, found by the connector) locks for 3600 s.
    const lockedAt = (msAgo: number) => new Date(Date.now() - msAgo).toISOString().replace(/[-:T]/g, '').replace(/\.\d+/, '');
    try {
      for (const [uid, when] of [['lena', lockedAt(2 * 3600_000)], ['lars', lockedAt(60_000)]] as const) {
        await client.add(dn(uid), { objectClass: ['inetOrgPerson'], uid, cn: uid, sn: uid, mail: `${uid}@example.org`, userPassword: ssha(`${uid}pass`) });
        await client.modify(dn(uid), new Change({ operation: 'add', modification: new Attribute({ type: 'pwdAccountLockedTime', values: [when] }) }), RELAX);
      }
      const conn = await connector();
      const lars = await conn.login('lars', 'larspass');
      assert.deepEqual([lars.ok, !lars.ok && lars.reason], [false, 'invalid_credentials'], 'a live lock: slapd refuses the bind; said like a wrong password');
      assert.match(String(!lars.ok && lars.detail), /ppolicy lock/, 'the log knows it was a lock');

      // Re-read by subject before any bind: the expired lock is still on the entry.
      const entry = await client.search(dn('lena'), { scope: 'base', attributes: ['entryUUID', 'pwdAccountLockedTime'] });
      const subject = String(entry.searchEntries[0]!.entryUUID);
      assert.ok(entry.searchEntries[0]!.pwdAccountLockedTime, 'the stale lock attribute is there');
      expectOk(await conn.refresh!({ connectorId: 'corp', subject }));
      const listed = [];
      for await (const page of conn.sync!.listUsers()) listed.push(...page);
      assert.equal(listed.find((u) => u.identity.username === 'lena')?.blocked, null, 'import: an expired lock does not block');
      assert.equal(listed.find((u) => u.identity.username === 'lars')?.blocked, 'account_locked', 'import: a live lock does');
      assert.equal(listed.find((u) => u.identity.username === 'dave')?.blocked, 'account_locked', 'import: 000001010000Z is until unlocked');
      expectOk(await conn.login('lena', 'lenapass'));
      // A policy without a duration (or none found) keeps the conservative reading.
      const noDuration = await connector({ users: { baseDn: `ou=people,${ldap.baseDn}`, passwordPolicyDn: `ou=policies,${ldap.baseDn}` } });
      const larsEntry = await client.search(dn('lars'), { scope: 'base', attributes: ['entryUUID'] });
      const refused = await noDuration.refresh!({ connectorId: 'corp', subject: String(larsEntry.searchEntries[0]!.entryUUID) });
      assert.equal(!refused.ok && refused.reason, 'account_locked');
    } finally {
      await client.unbind();
    }
  });

  test('a size limit stops a listing with a message that says what to change', async (t) => {
    if (!ldap) return skipLoudly(t, skipReason);
    const limited = await connector({ bindDn: ldap.limitedDn, bindPassword: ldap.limitedPassword, sync: { pageSize: 10 } });
    const listing = async () => {
      for await (const page of limited.sync!.listUsers()) void page;
    };
    await assert.rejects(listing(), /^Error: size limit reached: the service account needs olcLimits \(or AD MaxPageSize\)/);
    await assert.rejects(limited.sync!.countUsers!(), /size limit reached/);
  });

  test('a refused service account is an outage, not a wrong password', async (t) => {
    if (!ldap) return skipLoudly(t, skipReason);
    const badService = await connector({ bindPassword: 'not-the-password' });
    await assert.rejects(badService.login('alice', 'alicepass'), /service account bind was refused/);
  });
});
