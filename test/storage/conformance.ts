// One storage conformance suite; every backend runs all of it.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Knex } from 'knex';
import { Store } from '../../src/storage/store.ts';
import { migrateLatest } from '../../src/storage/migrate.ts';
import { createOidcAdapter, purgeExpired } from '../../src/storage/oidc-adapter.ts';
import { AlreadyExists, InvalidInput, NotFound } from '../../src/errors.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { knexStatements, type SqlStatements } from '../../src/storage/pg-statements.ts';
import { createAccountLookup } from '../../src/storage/account-cache.ts';

/** `statements`: the store's hot-path SQL (prepared statements on PostgreSQL); default knex.raw. */
export type Opened = { knex: Knex; serialize: boolean; statements?: SqlStatements; cleanup(): Promise<void> } | { skip: string };

export function storageConformance(backend: string, open: () => Promise<Opened>): void {
  describe(`storage conformance: ${backend}`, () => {
    let opened: Opened;
    let store: Store;
    const ready = (t: { skip(msg?: string): void } & object) => {
      if ('skip' in opened) {
        skipLoudly(t as never, opened.skip);
        return false;
      }
      return true;
    };

    before(async () => {
      opened = await open();
      if ('skip' in opened) return;
      await migrateLatest(opened.knex, { serialize: opened.serialize });
      store = new Store(opened.knex);
    });
    after(async () => {
      if (opened && !('skip' in opened)) await opened.cleanup();
    });

    test('migrations are idempotent', async (t) => {
      if (!ready(t)) return;
      assert.deepEqual(await migrateLatest((opened as { knex: Knex }).knex), []);
    });

    test('users: create, find case-insensitively, misses are null', async (t) => {
      if (!ready(t)) return;
      const u = await store.users.create({ username: 'Carol', email: 'Carol@Example.org', name: 'Carol C' });
      assert.match(u.id, /^[0-9a-f-]{36}$/);
      assert.equal(u.enabled, true);
      assert.equal(u.emailVerified, false);
      assert.equal((await store.users.findByUsername('carol'))?.id, u.id);
      assert.equal((await store.users.findByEmail('carol@example.ORG'))?.id, u.id);
      assert.equal((await store.users.findForLogin('CAROL@example.org'))?.id, u.id);
      assert.equal((await store.users.findForLogin('carol'))?.id, u.id);
      assert.equal(await store.users.findById('00000000-0000-0000-0000-000000000000'), null);
      assert.equal(await store.users.findByUsername('nobody'), null);
      assert.equal(await store.users.findForLogin('nobody@example.org'), null);
    });

    test('users: unique username and email (case-insensitive) leave data unchanged', async (t) => {
      if (!ready(t)) return;
      const dave = await store.users.create({ username: 'dave', email: 'dave@example.org' });
      await assert.rejects(store.users.create({ username: 'DAVE' }), AlreadyExists);
      await assert.rejects(store.users.create({ username: 'dave2', email: 'DAVE@example.org' }), AlreadyExists);
      const erin = await store.users.create({ username: 'erin' });
      await assert.rejects(store.users.update(erin.id, { username: 'Dave' }), AlreadyExists);
      assert.equal((await store.users.findById(erin.id))?.username, 'erin');
      assert.equal((await store.users.findById(dave.id))?.email, 'dave@example.org');
      assert.equal(await store.users.update('00000000-0000-0000-0000-000000000000', { name: 'x' }), null);
    });

    test('users: usernames by their RFC 8265 key; no @ in a username; @-identifiers are emails', async (t) => {
      if (!ready(t)) return;
      const zoe = await store.users.create({ username: 'Zo\u00eb', email: 'zoe.key@example.org' });
      assert.equal((await store.users.findByUsername('ZOE\u0308'))?.id, zoe.id);
      await assert.rejects(store.users.create({ username: 'zoe\u0308' }), AlreadyExists);
      assert.deepEqual([...(await store.users.takenUsernames(['ZO\u00cb', 'nobody-key']))], ['zo\u00eb']);
      await assert.rejects(store.users.create({ username: 'zoe.key@example.org' }), InvalidInput);
      assert.equal((await store.users.findForLogin('ZOE.KEY@example.org'))?.id, zoe.id);
    });

    test('users: update, list with search and paging, delete', async (t) => {
      if (!ready(t)) return;
      const f = await store.users.create({ username: 'frank_list' });
      const updated = await store.users.update(f.id, { name: 'Frank', enabled: false, attributes: { dept: 'ops' } });
      assert.equal(updated?.name, 'Frank');
      assert.equal(updated?.enabled, false);
      assert.deepEqual(updated?.attributes, { dept: 'ops' });
      assert.ok(updated!.updatedAt.getTime() >= f.updatedAt.getTime());
      const found = await store.users.list({ search: 'frank_' });
      assert.deepEqual(found.items.map((u) => u.username), ['frank_list']);
      assert.equal(found.total, 1);
      assert.equal((await store.users.list({ search: '%' })).total, 0, 'LIKE wildcards are literal');
      const page = await store.users.list({ limit: 1, offset: 0 });
      assert.equal(page.items.length, 1);
      assert.equal(page.total, await store.users.count());
      assert.equal(await store.users.delete(f.id), true);
      assert.equal(await store.users.delete(f.id), false);
    });

    test('credentials: one password per user, listing hides secrets', async (t) => {
      if (!ready(t)) return;
      const u = await store.users.create({ username: 'gina' });
      assert.equal(await store.credentials.getPasswordHash(u.id), null);
      await store.credentials.setPassword(u.id, '$argon2id$first');
      await store.credentials.setPassword(u.id, '$argon2id$second');
      assert.equal(await store.credentials.getPasswordHash(u.id), '$argon2id$second');
      const list = await store.credentials.list(u.id);
      assert.equal(list.length, 1);
      assert.equal(list[0].type, 'password');
      assert.equal(JSON.stringify(list).includes('argon2'), false);
      assert.equal(await store.credentials.remove(u.id, 'password'), 1);
      await assert.rejects(store.credentials.setPassword('00000000-0000-0000-0000-000000000000', 'x'), NotFound);
      assert.equal(await store.credentials.getPasswordHash(u.id), null);
    });

    test('groups: memberships per source are replaced only for that source', async (t) => {
      if (!ready(t)) return;
      const u = await store.users.create({ username: 'hank' });
      await store.groups.setMemberships(u.id, ['dev', 'ops'], 'local');
      await store.groups.setMemberships(u.id, ['ldap-staff', 'dev'], 'corp-ldap');
      assert.deepEqual(await store.groups.groupsOf(u.id), ['dev', 'ldap-staff', 'ops']);
      await store.groups.setMemberships(u.id, ['ldap-admins'], 'corp-ldap');
      assert.deepEqual(await store.groups.groupsOf(u.id), ['dev', 'ldap-admins', 'ops']);
      // A group asserted by two sources survives one of them clearing it.
      await store.groups.setMemberships(u.id, ['shared'], 'local');
      await store.groups.setMemberships(u.id, ['ldap-admins', 'shared'], 'corp-ldap');
      await store.groups.setMemberships(u.id, [], 'local');
      assert.deepEqual(await store.groups.groupsOf(u.id), ['ldap-admins', 'shared'], 'a group another source still asserts stays');
      await store.groups.setMemberships(u.id, ['ldap-admins'], 'corp-ldap');
      assert.deepEqual(await store.groups.groupsOf(u.id), ['ldap-admins']);
      assert.deepEqual((await store.users.findWithGroups(u.id))?.groups, ['ldap-admins']);
      assert.deepEqual(await store.groups.membersOf('ldap-admins'), [u.id]);
      const loner = await store.users.create({ username: 'loner' });
      assert.deepEqual((await store.users.findWithGroups(loner.id))?.groups, []);
      assert.equal(await store.users.findWithGroups('00000000-0000-0000-0000-000000000000'), null);
      await store.groups.addMember(u.id, 'extra');
      assert.deepEqual(await store.groups.membersOf('extra'), [u.id]);
      assert.equal(await store.groups.removeMember(u.id, 'extra'), true);
      assert.equal(await store.groups.removeMember(u.id, 'no-such-group'), false);
      await assert.rejects(store.groups.create('dev'), AlreadyExists);
      assert.equal((await store.groups.findByName('dev'))?.name, 'dev');
      assert.equal(await store.groups.findByName('nope'), null);
      const [g1, g2] = await Promise.all([store.groups.ensure(['race']), new Store(store.knex).groups.ensure(['race'])]);
      assert.equal(g1[0].id, g2[0].id);
    });

    test('federated identities: unique per (connector, subject)', async (t) => {
      if (!ready(t)) return;
      const u = await store.users.create({ username: 'ivy' });
      const fed = await store.identities.create({ userId: u.id, connectorId: 'corp', subject: 'uuid-1', username: 'ivy', data: { a: 1 } });
      await assert.rejects(store.identities.create({ userId: u.id, connectorId: 'corp', subject: 'uuid-1' }), AlreadyExists);
      await store.identities.create({ userId: u.id, connectorId: 'other', subject: 'uuid-1' });
      assert.equal((await store.identities.find('corp', 'uuid-1'))?.id, fed.id);
      assert.equal(await store.identities.find('corp', 'uuid-2'), null);
      await store.identities.recordLogin(fed.id, { email: 'ivy@corp.example', data: { a: 2 } });
      const after = await store.identities.findById(fed.id);
      assert.equal(after?.email, 'ivy@corp.example');
      assert.deepEqual(after?.data, { a: 2 });
      assert.ok(after?.lastLoginAt instanceof Date);
      assert.equal((await store.identities.listForUser(u.id)).length, 2);
      assert.equal(await store.identities.delete(fed.id), true);
      assert.equal(await store.identities.findById(fed.id), null);
    });

    test('federated identities: import bookkeeping (findMany, recordSync, touchSynced, listUnseen, markRemoved)', async (t) => {
      if (!ready(t)) return;
      const u = await store.users.create({ username: 'sync-user', managedBy: 'dir' });
      assert.equal(u.managedBy, 'dir');
      const [a, b, c] = await Promise.all(['s-a', 's-b', 's-c'].map((subject) => store.identities.create({ userId: u.id, connectorId: 'dir', subject })));
      await new Promise((r) => setTimeout(r, 5));
      const runStart = new Date();
      const found = await store.identities.findMany('dir', ['s-a', 's-b', 'missing']);
      assert.deepEqual([...found.keys()].sort(), ['s-a', 's-b']);
      assert.deepEqual(await store.identities.findMany('dir', []), new Map());

      await store.identities.recordSync(a!.id, { username: 'alice', email: 'a@x', data: { v: 1 }, digest: 'd1', syncedAt: runStart });
      const synced = await store.identities.findById(a!.id);
      assert.equal(synced?.digest, 'd1');
      assert.equal(synced?.syncedAt?.getTime(), runStart.getTime());
      await store.identities.touchSynced([b!.id], runStart);
      await store.identities.touchSynced([], runStart);

      const unseen = await store.identities.listUnseen('dir', runStart, 10);
      assert.deepEqual(unseen.map((i) => i.id), [c!.id], 'only the identity this run did not see');
      await store.identities.markRemoved(c!.id, runStart);
      assert.ok((await store.identities.findById(c!.id))?.removedAt instanceof Date);
      assert.deepEqual(await store.identities.listUnseen('dir', runStart, 10), []);
      await store.identities.recordSync(c!.id, { username: null, email: null, data: {}, digest: 'd2', syncedAt: new Date() });
      assert.equal((await store.identities.findById(c!.id))?.removedAt, null, 'seen again clears the removal mark');
    });

    test('bulk writes for imports: users, identities, memberships, audit; all or none', async (t) => {
      if (!ready(t)) return;
      const users = await store.users.createMany([
        { username: 'Bulk-One', email: 'bulk1@example.org', managedBy: 'dir' },
        { username: 'bulk-two', enabled: false, managedBy: 'dir' },
      ]);
      assert.deepEqual(users.map((u) => [u.username, u.enabled, u.managedBy]), [['Bulk-One', true, 'dir'], ['bulk-two', false, 'dir']]);
      assert.deepEqual([...(await store.users.takenUsernames(['bulk-one', 'BULK-TWO', 'bulk-three']))].sort(), ['bulk-one', 'bulk-two']);
      assert.deepEqual([...(await store.users.takenEmails(['BULK1@example.org', 'none@example.org']))], ['bulk1@example.org']);
      assert.deepEqual(await store.users.takenUsernames([]), new Set());
      const before = await store.users.count();
      await assert.rejects(store.users.createMany([{ username: 'bulk-three' }, { username: 'BULK-ONE' }]), AlreadyExists);
      assert.equal(await store.users.count(), before, 'a failed bulk insert inserts nothing');

      const at = new Date();
      await store.identities.createMany(users.map((u, i) => ({ userId: u.id, connectorId: 'bulk', subject: `b-${i}`, username: u.username, email: null, data: { i }, digest: `d${i}`, syncedAt: at })));
      const found = await store.identities.findMany('bulk', ['b-0', 'b-1']);
      assert.equal(found.get('b-1')?.digest, 'd1');
      assert.deepEqual(found.get('b-0')?.data, { i: 0 });
      await assert.rejects(store.identities.createMany([{ userId: users[0]!.id, connectorId: 'bulk', subject: 'b-0', username: null, email: null, data: {}, digest: 'x', syncedAt: at }]), AlreadyExists);

      await store.groups.addMemberships([{ userId: users[0]!.id, group: 'bulk-g1' }, { userId: users[0]!.id, group: 'bulk-g2' }, { userId: users[1]!.id, group: 'bulk-g1' }], 'bulk');
      await store.groups.addMemberships([{ userId: users[0]!.id, group: 'bulk-g1' }], 'bulk');
      assert.deepEqual(await store.groups.groupsOf(users[0]!.id), ['bulk-g1', 'bulk-g2']);
      assert.deepEqual((await store.groups.membersOf('bulk-g1')).length, 2);

      await store.audit.recordMany([{ type: 'bulk.test', userId: users[0]!.id }, { type: 'bulk.test', userId: users[1]!.id }]);
      assert.equal((await store.audit.list({ type: 'bulk.test' })).length, 2);
    });

    test('leases: one holder at a time, renewable, released, expired leases are taken over', async (t) => {
      if (!ready(t)) return;
      assert.equal(await store.leases.acquire('job', 'one', 60_000), true);
      assert.equal(await store.leases.acquire('job', 'two', 60_000), false);
      assert.equal(await store.leases.acquire('job', 'one', 60_000), true, 'the holder renews');
      await store.leases.release('job', 'two');
      assert.equal(await store.leases.acquire('job', 'two', 60_000), false, 'releasing a lease one does not hold does nothing');
      await store.leases.release('job', 'one');
      assert.equal(await store.leases.acquire('job', 'two', 1), true);
      await new Promise((r) => setTimeout(r, 10));
      assert.equal(await store.leases.acquire('job', 'three', 60_000), true, 'an expired lease goes to the next caller');
      const racers = await Promise.all(['r1', 'r2', 'r3', 'r4'].map((h) => store.leases.acquire('race', h, 60_000)));
      assert.equal(racers.filter(Boolean).length, 1, 'concurrent callers: exactly one wins');
    });

    test('a failed transaction leaves stored data as it was', async (t) => {
      if (!ready(t)) return;
      const before = await store.users.count();
      await assert.rejects(store.transaction(async (tx) => {
        const u = await tx.users.create({ username: 'jack' });
        await tx.groups.setMemberships(u.id, ['jacks'], 'local');
        await tx.users.create({ username: 'JACK' });
      }), AlreadyExists);
      assert.equal(await store.users.count(), before);
      assert.equal(await store.users.findByUsername('jack'), null);
      assert.equal(await store.groups.findByName('jacks'), null);
    });

    test('clients: create, update, disable, delete', async (t) => {
      if (!ready(t)) return;
      const c = await store.clients.create({ id: 'db-app', metadata: { redirect_uris: ['https://app.example/cb'] } });
      assert.equal(c.metadata.client_id, 'db-app');
      await assert.rejects(store.clients.create({ id: 'db-app', metadata: {} }), AlreadyExists);
      assert.equal((await store.clients.update('db-app', { firstParty: true }))?.firstParty, true);
      assert.equal(await store.clients.update('missing', { enabled: false }), null);
      assert.equal((await store.clients.list()).length >= 1, true);
      assert.equal(await store.clients.delete('db-app'), true);
      assert.equal(await store.clients.find('db-app'), null);
    });

    test('connectors: insert, unique id, update stamps updated_at, change stamp moves on every write, delete', async (t) => {
      if (!ready(t)) return;
      const empty = await store.connectors.changeStamp();
      const c = await store.connectors.insert({ id: 'conf-ldap', type: 'ldap', name: 'Directory', enabled: true, config: { url: 'ldap://x' }, secrets: 'v1.sealed', policy: null, position: 3 });
      assert.deepEqual([c.config, c.secrets, c.policy, c.position], [{ url: 'ldap://x' }, 'v1.sealed', null, 3]);
      await assert.rejects(store.connectors.insert({ ...c }), AlreadyExists);
      const afterInsert = await store.connectors.changeStamp();
      assert.notEqual(afterInsert, empty);
      await new Promise((r) => setTimeout(r, 5));
      const updated = (await store.connectors.update('conf-ldap', { enabled: false, policy: { storeTokens: false } }))!;
      assert.equal(updated.enabled, false);
      assert.deepEqual(updated.policy, { storeTokens: false });
      assert.equal(updated.secrets, 'v1.sealed', 'fields not given stay');
      assert.ok(updated.updatedAt.getTime() > c.updatedAt.getTime(), 'updated_at moves');
      const afterUpdate = await store.connectors.changeStamp();
      assert.notEqual(afterUpdate, afterInsert);
      assert.equal(await store.connectors.update('missing', { name: 'x' }), null);
      assert.deepEqual((await store.connectors.find('conf-ldap'))?.policy, { storeTokens: false });
      const locked = await store.transaction((tx) => tx.connectors.find('conf-ldap', { forUpdate: true }));
      assert.equal(locked?.id, 'conf-ldap');
      assert.equal(await store.connectors.delete('conf-ldap'), true);
      assert.equal(await store.connectors.delete('conf-ldap'), false, 'a second delete finds nothing');
      assert.equal(await store.connectors.find('conf-ldap'), null);
      assert.notEqual(await store.connectors.changeStamp(), afterUpdate, 'a delete moves the stamp');
    });

    test('connector syncs: started, progress, finished; the latest is found per connector', async (t) => {
      if (!ready(t)) return;
      assert.equal(await store.connectors.latestSync('conf-dir'), null);
      const first = await store.connectors.startSync('s1', 'conf-dir', {});
      assert.equal(first.state, 'running');
      await store.connectors.updateSync('s1', { progress: { processed: 10 } });
      assert.deepEqual((await store.connectors.findSync('s1'))?.progress, { processed: 10 });
      await store.connectors.updateSync('s1', { state: 'failed', error: 'directory down', finished: true });
      await new Promise((r) => setTimeout(r, 5));
      await store.connectors.startSync('s2', 'conf-dir', { processed: 0 });
      await store.connectors.startSync('other', 'conf-other', {});
      const latest = (await store.connectors.latestSync('conf-dir'))!;
      assert.equal(latest.id, 's2');
      const failed = (await store.connectors.findSync('s1'))!;
      assert.deepEqual([failed.state, failed.error, failed.finishedAt instanceof Date], ['failed', 'directory down', true]);
    });

    test('signing keys: rotate retires, publishes for the grace period, purges after', async (t) => {
      if (!ready(t)) return;
      await store.signingKeys.insert({ kid: 'k1', alg: 'ES256', privateJwk: { kty: 'EC' } });
      const fp1 = await store.signingKeys.fingerprint();
      await store.signingKeys.rotate([{ kid: 'k2', alg: 'ES256', privateJwk: { kty: 'EC' } }], new Date(Date.now() + 60_000));
      const fp2 = await store.signingKeys.fingerprint();
      assert.notEqual(fp1, fp2);
      const keys = await store.signingKeys.listPublishable();
      assert.deepEqual(keys.map((k) => `${k.kid}:${k.status}`), ['k2:active', 'k1:retired']);
      await assert.rejects(store.signingKeys.rotate([{ kid: 'k1', alg: 'ES256', privateJwk: {} }], new Date(Date.now() + 60_000)), AlreadyExists);
      assert.equal(await store.signingKeys.fingerprint(), fp2, 'a failed rotation changes nothing');
      assert.equal(await store.signingKeys.purgeExpired(new Date()), 0);
      const later = new Date(Date.now() + 120_000);
      assert.deepEqual((await store.signingKeys.listPublishable(later)).map((k) => k.kid), ['k2']);
      assert.equal(await store.signingKeys.purgeExpired(later), 1);
      assert.notEqual(await store.signingKeys.fingerprint(), fp2);
    });

    test('secrets: concurrent getOrCreate agree on one value', async (t) => {
      if (!ready(t)) return;
      const other = new Store(store.knex);
      const [a, b] = await Promise.all([store.secrets.getOrCreate('s1', () => 'from-a'), other.secrets.getOrCreate('s1', () => 'from-b')]);
      assert.equal(a, b);
      assert.equal(await store.secrets.get('s1'), a);
      assert.equal(await store.secrets.get('missing'), null);
      // The first stored value wins for good; a later maker is never even called.
      assert.equal(await store.secrets.getOrCreate('s1', () => assert.fail('make() called for a stored secret')), a);
    });

    test('audit events: newest first, filtered', async (t) => {
      if (!ready(t)) return;
      await store.audit.record({ type: 'test.one', details: { n: 1 } });
      await store.audit.record({ type: 'test.two', outcome: 'failure', userId: 'u-1' });
      const latest = await store.audit.list({ limit: 2 });
      assert.deepEqual(latest.map((e) => e.type), ['test.two', 'test.one']);
      assert.equal(latest[0].outcome, 'failure');
      assert.deepEqual((await store.audit.list({ type: 'test.one' }))[0].details, { n: 1 });
      assert.equal((await store.audit.list({ userId: 'u-1' })).length, 1);
      assert.deepEqual((await store.audit.list({ beforeId: latest[0].id, limit: 1 }))[0].type, 'test.one');
      await assert.rejects(store.audit.list({ beforeId: "1; DROP TABLE users" }), InvalidInput);
    });

    test('federated identities: stored upstream tokens and upstream checks', async (t) => {
      if (!ready(t)) return;
      const u = await store.users.create({ username: 'tokyo' });
      const fed = await store.identities.create({ userId: u.id, connectorId: 'oidc', subject: 'tok-1' });
      assert.equal(fed.tokens, null);
      await store.identities.recordLogin(fed.id, { tokens: 'v1.k.iv.cipher-1' });
      const logged = (await store.identities.findById(fed.id))!;
      assert.equal(logged.tokens, 'v1.k.iv.cipher-1');
      assert.ok(logged.checkedAt instanceof Date);
      // A login that brings no tokens leaves the stored ones alone; an explicit null clears them.
      await store.identities.recordLogin(fed.id, {});
      assert.equal((await store.identities.findById(fed.id))!.tokens, 'v1.k.iv.cipher-1');
      await store.identities.recordCheck(fed.id, { tokens: 'v1.k.iv.cipher-2', data: { groups: ['g'] }, email: 'tok@example.org' });
      const checked = (await store.identities.findById(fed.id))!;
      assert.deepEqual([checked.tokens, checked.data, checked.email], ['v1.k.iv.cipher-2', { groups: ['g'] }, 'tok@example.org']);
      assert.ok(checked.checkedAt! >= logged.checkedAt!);
      await store.identities.recordLogin(fed.id, { tokens: null });
      assert.equal((await store.identities.findById(fed.id))!.tokens, null);
    });

    test('login sessions: mapped claims are kept and updated per federated identity', async (t) => {
      if (!ready(t)) return;
      const u = await store.users.create({ username: 'clara' });
      const fed = await store.identities.create({ userId: u.id, connectorId: 'oidc', subject: 'clara-1' });
      const later = new Date(Date.now() + 3_600_000);
      await store.loginSessions.upsert({ sessionUid: 'sess-c1', userId: u.id, connectorId: 'oidc', federatedIdentityId: fed.id, amr: ['fed'], claims: { department: 'R&D' }, expiresAt: later });
      await store.loginSessions.upsert({ sessionUid: 'sess-c2', userId: u.id, connectorId: 'oidc', federatedIdentityId: fed.id, amr: ['fed'], expiresAt: later });
      await store.loginSessions.upsert({ sessionUid: 'sess-c3', userId: u.id, connectorId: 'local', federatedIdentityId: null, amr: ['pwd'], expiresAt: later });
      assert.deepEqual((await store.loginSessions.find('sess-c1'))!.claims, { department: 'R&D' });
      assert.deepEqual((await store.loginSessions.find('sess-c2'))!.claims, {});
      await store.loginSessions.updateClaims(fed.id, { department: 'Ops' });
      assert.deepEqual((await store.loginSessions.find('sess-c1'))!.claims, { department: 'Ops' });
      assert.deepEqual((await store.loginSessions.find('sess-c2'))!.claims, { department: 'Ops' });
      assert.deepEqual((await store.loginSessions.find('sess-c3'))!.claims, {});
    });

    test('login sessions: upsert, expiry, clean-up', async (t) => {
      if (!ready(t)) return;
      const u = await store.users.create({ username: 'kate' });
      await store.loginSessions.upsert({ sessionUid: 'sess-1', userId: u.id, connectorId: 'local', federatedIdentityId: null, amr: ['pwd'], expiresAt: new Date(Date.now() + 60_000) });
      assert.equal((await store.loginSessions.find('sess-1'))?.connectorId, 'local');
      await store.loginSessions.upsert({ sessionUid: 'sess-1', userId: u.id, connectorId: 'corp', federatedIdentityId: null, amr: ['pwd'], expiresAt: new Date(Date.now() + 60_000) });
      assert.equal((await store.loginSessions.find('sess-1'))?.connectorId, 'corp');
      assert.equal(await store.loginSessions.find('sess-1', new Date(Date.now() + 120_000)), null);
      assert.equal(await store.loginSessions.deleteExpired(new Date(Date.now() + 120_000)), 1);
      assert.equal(await store.loginSessions.find('sess-1'), null);
    });

    test('login sessions: upstream sessions are found by upstream subject and session id, and deleted', async (t) => {
      if (!ready(t)) return;
      const u = await store.users.create({ username: 'uma' });
      const later = new Date(Date.now() + 3_600_000);
      const upstream = (id: string) => ({ subject: 'uma@idp', id, data: { nameID: 'uma@idp', sessionIndex: id } });
      const signedInAt = new Date(Date.now() - 5_000);
      await store.loginSessions.upsert({ sessionUid: 'sess-u1', userId: u.id, connectorId: 'saml', federatedIdentityId: null, amr: ['fed'], expiresAt: later, upstreamSession: upstream('idx-1'), authenticatedAt: signedInAt });
      await store.loginSessions.upsert({ sessionUid: 'sess-u2', userId: u.id, connectorId: 'saml', federatedIdentityId: null, amr: ['fed'], expiresAt: later, upstreamSession: upstream('idx-2') });
      await store.loginSessions.upsert({ sessionUid: 'sess-u3', userId: u.id, connectorId: 'other', federatedIdentityId: null, amr: ['fed'], expiresAt: later, upstreamSession: upstream('idx-1') });
      await store.loginSessions.upsert({ sessionUid: 'sess-u4', userId: u.id, connectorId: 'saml', federatedIdentityId: null, amr: ['fed'], expiresAt: new Date(Date.now() - 1000), upstreamSession: upstream('idx-1') });
      const one = await store.loginSessions.find('sess-u1');
      assert.deepEqual(one!.upstreamSession, upstream('idx-1'));
      assert.equal(one!.authenticatedAt.getTime(), signedInAt.getTime());
      const uids = (list: { sessionUid: string }[]) => list.map((s) => s.sessionUid).sort();
      assert.deepEqual(uids(await store.loginSessions.findByUpstream('saml', 'uma@idp', ['idx-1'])), ['sess-u1']);
      assert.deepEqual(uids(await store.loginSessions.findByUpstream('saml', 'uma@idp', null)), ['sess-u1', 'sess-u2']);
      assert.deepEqual(await store.loginSessions.findByUpstream('saml', 'someone@idp', null), []);
      await store.loginSessions.delete('sess-u1');
      assert.equal(await store.loginSessions.find('sess-u1'), null);
      assert.deepEqual(uids(await store.loginSessions.findByUpstream('saml', 'uma@idp', null)), ['sess-u2']);
    });

    test('replay guard: a key is used once until it expires, concurrent first uses agree', async (t) => {
      if (!ready(t)) return;
      const soon = new Date(Date.now() + 60_000);
      assert.equal(await store.replay.firstUse('saml:a:1', soon), true);
      assert.equal(await store.replay.firstUse('saml:a:1', soon), false);
      assert.equal(await store.replay.firstUse('saml:a:2', soon), true);
      // Once expired, the record no longer guards anything.
      assert.equal(await store.replay.firstUse('saml:a:1', new Date(Date.now() + 120_000), new Date(Date.now() + 61_000)), true);
      const racing = await Promise.all(Array.from({ length: 5 }, () => store.replay.firstUse('saml:a:race', soon)));
      assert.equal(racing.filter(Boolean).length, 1);
      assert.equal(await store.replay.deleteExpired(new Date(Date.now() + 3_600_000)), 3);
    });

    test('oidc adapter: upsert, find, consume, expiry, lookups, revoke by grant', async (t) => {
      if (!ready(t)) return;
      const Adapter = createOidcAdapter(store.knex, { statements: (opened as { statements?: SqlStatements }).statements });
      const tokens = new Adapter('AccessToken');
      const codes = new Adapter('AuthorizationCode');
      const sessions = new Adapter('Session');
      const devices = new Adapter('DeviceCode');
      assert.equal(await tokens.find('none'), undefined);
      await tokens.upsert('at1', { jti: 'at1', grantId: 'g1', kind: 'AccessToken' }, 60);
      await tokens.upsert('at2', { jti: 'at2', grantId: 'g2', kind: 'AccessToken' }, 60);
      await codes.upsert('c1', { jti: 'c1', grantId: 'g1', kind: 'AuthorizationCode' }, 60);
      assert.deepEqual(await tokens.find('at1'), { jti: 'at1', grantId: 'g1', kind: 'AccessToken' });
      assert.equal(await codes.find('at1'), undefined, 'kinds are separate');

      await codes.consume('c1');
      const consumed = await codes.find('c1');
      assert.equal(typeof consumed?.consumed, 'number');

      await tokens.revokeByGrantId('g1');
      assert.equal(await tokens.find('at1'), undefined);
      assert.ok(await tokens.find('at2'), 'other grants untouched');
      assert.ok(await codes.find('c1'), 'other kinds untouched');

      await sessions.upsert('s1', { uid: 'uid-1', accountId: 'a' }, 60);
      assert.equal((await sessions.findByUid('uid-1'))?.accountId, 'a');
      assert.equal(await sessions.findByUid('uid-2'), undefined);
      await devices.upsert('d1', { userCode: 'ABCD-EFGH', grantId: 'g3' }, 60);
      assert.equal((await devices.findByUserCode('ABCD-EFGH'))?.grantId, 'g3');

      const attempts = new Adapter('UpstreamLogin');
      await attempts.upsert('st1', { uid: 'u' }, 60);
      const claims = await Promise.all([attempts.claim('st1'), attempts.claim('st1'), attempts.claim('st1')]);
      assert.deepEqual(claims.sort(), [false, false, true], 'exactly one claim wins');
      assert.equal(await attempts.claim('missing'), false);
      await store.knex('oidc_payloads').insert({ kind: 'UpstreamLogin', id: 'st-old', payload: '{}', expires_at: new Date(Date.now() - 1000) });
      assert.equal(await attempts.claim('st-old'), false, 'expired records cannot be claimed');

      await tokens.upsert('at2', { jti: 'at2', grantId: 'g2', scope: 'updated' }, 60);
      assert.equal((await tokens.find('at2'))?.scope, 'updated');
      await tokens.destroy('at2');
      assert.equal(await tokens.find('at2'), undefined);

      await store.knex('oidc_payloads').insert({ kind: 'AccessToken', id: 'old', payload: JSON.stringify({ jti: 'old' }), expires_at: new Date(Date.now() - 1000) });
      assert.equal(await tokens.find('old'), undefined, 'expired rows are not returned');
      const purged = await purgeExpired(store.knex);
      assert.ok(purged.payloads >= 1);
      assert.equal((await store.knex('oidc_payloads').where({ id: 'old' })).length, 0);
    });

    test('expired artifacts are purged in batches until none is left, live ones stay', async (t) => {
      if (!ready(t)) return;
      const past = new Date(Date.now() - 1000);
      await store.knex('oidc_payloads').insert(Array.from({ length: 25 }, (_, i) => ({ kind: 'AccessToken', id: `batch-old-${i}`, payload: '{}', expires_at: past })));
      await store.knex('oidc_payloads').insert({ kind: 'AccessToken', id: 'batch-live', payload: '{}', expires_at: new Date(Date.now() + 60_000) });
      const deletes: string[] = [];
      const onQuery = (q: { sql: string }) => {
        if (/^delete from "oidc_payloads"/i.test(q.sql)) deletes.push(q.sql);
      };
      store.knex.on('query', onQuery);
      const purged = await purgeExpired(store.knex, new Date(), 10).finally(() => store.knex.off('query', onQuery));
      assert.equal(purged.payloads, 25);
      assert.equal(deletes.length, 3, 'three statements of at most 10 rows');
      assert.equal((await store.knex('oidc_payloads').where('id', 'like', 'batch-old-%')).length, 0);
      assert.equal((await store.knex('oidc_payloads').where({ id: 'batch-live' })).length, 1);
    });

    test('oidc adapter: Client reads enabled clients from the clients table', async (t) => {
      if (!ready(t)) return;
      const clients = new (createOidcAdapter(store.knex, { statements: (opened as { statements?: SqlStatements }).statements }))('Client');
      await store.clients.create({ id: 'stored', metadata: { redirect_uris: ['https://x.example/cb'] }, firstParty: true });
      const found = await clients.find('stored');
      assert.equal(found?.client_id, 'stored');
      assert.equal(found?.first_party, true);
      await store.clients.update('stored', { enabled: false });
      assert.equal(await clients.find('stored'), undefined);
      assert.equal(await clients.find('missing'), undefined);
      assert.equal(await clients.find('bad\0id'), undefined, 'an id PostgreSQL cannot store names no client');
    });

    test('account lookup: user and groups in one statement, cached, forgotten at once on every change', async (t) => {
      if (!ready(t)) return;
      const accounts = createAccountLookup((opened as { statements?: SqlStatements }).statements ?? knexStatements(store.knex), 60_000);
      const user = await store.users.create({ username: 'cached-ivy', email: 'ivy@example.org' });
      assert.equal(await accounts('00000000-0000-0000-0000-00000000ffff'), null);
      assert.deepEqual(await accounts(user.id), { user, groups: [] });
      await store.groups.setMemberships(user.id, ['zeta', 'alpha']);
      assert.deepEqual((await accounts(user.id))?.groups, ['alpha', 'zeta'], 'memberships change at once');
      await store.groups.addMember(user.id, 'beta');
      assert.deepEqual((await accounts(user.id))?.groups, ['alpha', 'beta', 'zeta']);
      await store.groups.removeMember(user.id, 'zeta');
      assert.deepEqual((await accounts(user.id))?.groups, ['alpha', 'beta']);
      await store.groups.delete((await store.groups.findByName('beta'))!.id);
      assert.deepEqual((await accounts(user.id))?.groups, ['alpha'], 'a deleted group leaves every cached account');
      await store.users.update(user.id, { enabled: false, name: 'Ivy' });
      const disabled = await accounts(user.id);
      assert.equal(disabled?.user.enabled, false, 'a disabled user is seen at once');
      assert.equal(disabled?.user.name, 'Ivy');
      await store.users.delete(user.id);
      assert.equal(await accounts(user.id), null, 'a deleted user is gone at once');
    });
  });
}
