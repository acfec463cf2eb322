// The OpenLDAP fixture starts, holds the seed other tests rely on, speaks plain/StartTLS/LDAPS,
// pages large result sets, runs side by side with itself, and stops cleanly.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { Client, InvalidCredentialsError, SizeLimitExceededError } from 'ldapts';
import { startOpenLdap, type OpenLdapServer } from './openldap.ts';
import { skipLoudly } from './skip.ts';

describe('OpenLDAP test fixture', () => {
  let s: OpenLdapServer | { skip: string };
  let ms = 0;
  const clients: Client[] = [];
  /** A client closed in after(). ldapts does TLS on connect whenever tlsOptions is set, even for ldap://. */
  const client = (url: string) => {
    const tlsOptions = url.startsWith('ldaps:') ? { ca: [(s as OpenLdapServer).caPem] } : undefined;
    const c = new Client({ url, timeout: 10_000, tlsOptions });
    clients.push(c);
    return c;
  };
  const people = 'ou=people,dc=example,dc=org';

  before(async () => {
    const t0 = performance.now();
    s = await startOpenLdap();
    ms = Math.round(performance.now() - t0);
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.unbind().catch(() => {})));
    if (s && !('skip' in s)) await s.stop();
  });

  test('service account sees the seeded users (and no password hashes)', async (t) => {
    if ('skip' in s) return skipLoudly(t, s.skip);
    t.diagnostic(`startOpenLdap() took ${ms} ms`);
    const c = client(s.url);
    await c.bind(s.serviceDn, s.servicePassword);
    const { searchEntries } = await c.search(people, { filter: '(objectClass=inetOrgPerson)', attributes: ['uid', 'cn', 'sn', 'userPassword'] });
    assert.deepEqual(searchEntries.map((e) => e.uid).sort(), ['alice', 'bob', 'carol', 'dave', 'eve', 'o(brien)*']);
    assert.ok(searchEntries.every((e) => String(e.userPassword) === ''), 'ldapts reports a requested but unreadable attribute as []');
    assert.equal(searchEntries.find((e) => e.uid === 'eve')?.sn, 'Müller');
    // The escaped filter finds the user whose uid holds filter metacharacters.
    const ob = await c.search(people, { filter: '(uid=o\\28brien\\29\\2a)', attributes: ['cn'] });
    assert.deepEqual(ob.searchEntries.map((e) => [e.dn, e.cn]), [[`uid=o(brien)*,${people}`, "Ollie O'Brien"]]);
  });

  test('anonymous reads only the rootDSE', async (t) => {
    if ('skip' in s) return skipLoudly(t, s.skip);
    const c = client(s.url);
    const root = await c.search('', { scope: 'base', attributes: ['namingContexts', 'supportedControl'] });
    assert.equal(root.searchEntries[0].namingContexts, s.baseDn);
    assert.ok((root.searchEntries[0].supportedControl as string[]).includes('1.2.840.113556.1.4.319'), 'paged results');
    const { searchEntries } = await c.search(s.baseDn, { filter: '(uid=alice)' }).catch(() => ({ searchEntries: [] }));
    assert.equal(searchEntries.length, 0);
  });

  test('user binds over plain, StartTLS and LDAPS; dave and wrong passwords fail', async (t) => {
    if ('skip' in s) return skipLoudly(t, s.skip);
    await client(s.url).bind(`uid=alice,${people}`, 'alicepass');
    await client(s.url).bind(`uid=eve,${people}`, 'evepass');
    await client(s.url).bind(`uid=o(brien)*,${people}`, 'obrienpass');
    const tls = client(s.url);
    await tls.startTLS({ ca: [s.caPem], servername: 'localhost' });
    await tls.bind(`uid=bob,${people}`, 'bobpass');
    await client(s.ldapsUrl).bind(`uid=carol,${people}`, 'carolpass');
    await assert.rejects(client(s.url).bind(`uid=dave,${people}`, 'davepass'), InvalidCredentialsError);
    await assert.rejects(client(s.url).bind(`uid=alice,${people}`, 'wrong'), InvalidCredentialsError);
    // An LDAPS client that does not trust our CA is refused.
    const untrusting = new Client({ url: s.ldapsUrl, timeout: 5000 });
    await assert.rejects(untrusting.bind(`uid=carol,${people}`, 'carolpass'));
  });

  test('memberOf, nested groups, entryUUID lookup', async (t) => {
    if ('skip' in s) return skipLoudly(t, s.skip);
    const c = client(s.url);
    await c.bind(s.serviceDn, s.servicePassword);
    const memberOf = async (dn: string) =>
      [(await c.search(dn, { scope: 'base', attributes: ['memberOf'] })).searchEntries[0].memberOf].flat().map(String).sort();
    const g = (cn: string) => `cn=${cn},ou=groups,dc=example,dc=org`;
    assert.deepEqual(await memberOf(`uid=bob,${people}`), [g('cycle-a'), g('engineering')]);
    assert.deepEqual(await memberOf(`uid=alice,${people}`), [g('admins'), g('engineering')]);
    assert.deepEqual(await memberOf(`uid=carol,${people}`), [g('staff')], 'groupOfUniqueNames (auditors) gets no memberOf');
    assert.deepEqual(await memberOf(g('engineering')), [g('staff')], 'group entries carry memberOf too');
    assert.deepEqual(await memberOf(g('cycle-a')), [g('cycle-b')]);
    assert.deepEqual(await memberOf(g('cycle-b')), [g('cycle-a')]);
    const [alice] = (await c.search(`uid=alice,${people}`, { scope: 'base', attributes: ['entryUUID'] })).searchEntries;
    const byUuid = await c.search(s.baseDn, { filter: `(entryUUID=${alice.entryUUID})`, attributes: ['uid'] });
    assert.deepEqual(byUuid.searchEntries.map((e) => e.uid), ['alice']);
  });

  test('paged search returns 1200 entries in pages of 200 to a bound user', async (t) => {
    if ('skip' in s) return skipLoudly(t, s.skip);
    const admin = client(s.url);
    await admin.bind(s.adminDn, s.adminPassword);
    const base = 'ou=contractors,dc=example,dc=org';
    for (let i = 0; i < 1200; i += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, j) =>
        admin.add(`cn=c${i + j},${base}`, { objectClass: 'inetOrgPerson', cn: `c${i + j}`, sn: 'Contractor' })));
    }
    const c = client(s.url);
    await c.bind(s.serviceDn, s.servicePassword);
    const pages: number[] = [];
    for await (const page of c.searchPaginated(base, { scope: 'one', filter: '(objectClass=inetOrgPerson)', attributes: ['cn'], paged: { pageSize: 200 } })) {
      pages.push(page.searchEntries.length);
    }
    assert.deepEqual(pages, [200, 200, 200, 200, 200, 200]);
    // Unpaged searches stop at the soft limit of 500, as on a default OpenLDAP.
    await assert.rejects(c.search(base, { scope: 'one', attributes: ['cn'] }), SizeLimitExceededError);
  });

  test('two servers started at once do not collide, and stop() cleans up', async (t) => {
    if ('skip' in s) return skipLoudly(t, s.skip);
    const both = await Promise.all([startOpenLdap(), startOpenLdap()]);
    const [a, b] = both as OpenLdapServer[];
    try {
      assert.notEqual(a.url, b.url);
      assert.notEqual(a.dir, b.dir);
      for (const x of [a, b]) await client(x.url).bind(`uid=alice,${people}`, 'alicepass');
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
    assert.ok(!existsSync(a.dir) && !existsSync(b.dir));
    const gone = new Client({ url: a.url, connectTimeout: 1000 });
    await assert.rejects(gone.bind(`uid=alice,${people}`, 'alicepass'));
  });
});
