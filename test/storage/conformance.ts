// One storage conformance suite; every backend runs all of it.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Knex } from 'knex';
import { Store } from '../../src/storage/store.ts';
import { migrateLatest } from '../../src/storage/migrate.ts';
import { createOidcAdapter, purgeExpired } from '../../src/storage/oidc-adapter.ts';
import { holdAuthorizationWrites, holdInteractionWrites, rideAlong } from '../../src/storage/held-writes.ts';
import { refreshGrace } from '../../src/storage/refresh-grace.ts';
import { AlreadyExists, InvalidInput, NotFound } from '../../src/errors.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { knexStatements, type SqlStatements } from '../../src/storage/pg-statements.ts';
import { createAccountLookup } from '../../src/storage/account-cache.ts';
import { GroupCycle } from '../../src/storage/group-repository.ts';

/** `statements`: the store's hot-path SQL (prepared statements on PostgreSQL); default knex.raw. */
/** `singleProcess`: the adapter also keeps records in memory, as the broker does on PGlite (artifact-cache.ts). */
export type Opened = { knex: Knex; serialize: boolean; statements?: SqlStatements; singleProcess?: boolean; cleanup(): Promise<void> } | { skip: string };

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
    /** oidc-provider's adapter on this store, as the broker opens it. */
    const oidcAdapter = () => {
      const { statements, singleProcess } = opened as { statements?: SqlStatements; singleProcess?: boolean };
      return createOidcAdapter(store.knex, { statements, singleProcess });
    };
    /** Which of these oidc_payloads ids are stored, sorted. */
    const storedIds = async (...ids: string[]) => (await store.knex('oidc_payloads').whereIn('id', ids).select('id')).map((r: { id: string }) => r.id).sort();

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
      assert.equal((await store.users.findLoginAccount({ login: 'CAROL@example.org' }))?.user.id, u.id);
      assert.equal((await store.users.findLoginAccount({ login: 'carol' }))?.user.id, u.id);
      assert.equal(await store.users.findById('00000000-0000-0000-0000-000000000000'), null);
      assert.equal(await store.users.findByUsername('nobody'), null);
      assert.equal(await store.users.findLoginAccount({ login: 'nobody@example.org' }), null);
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
      assert.equal((await store.users.findLoginAccount({ login: 'ZOE.KEY@example.org' }))?.user.id, zoe.id);
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

    test('groups: source, paging, members by id, nesting with ancestors in every group lookup and cycles refused', async (t) => {
      if (!ready(t)) return;
      const u = await store.users.create({ username: 'nell' });
      const other = await store.users.create({ username: 'otto' });
      const [upstream] = await store.groups.ensure(['nest-ldap'], 'corp-ldap');
      assert.equal(upstream.source, 'corp-ldap');
      assert.equal((await store.groups.ensure(['nest-ldap'], 'local'))[0].source, 'corp-ldap', 'the first source keeps it');
      const child = await store.groups.create('nest-child', 'd');
      const parent = await store.groups.create('nest-parent');
      const top = await store.groups.create('nest-top');
      assert.equal(child.source, 'local');
      assert.equal((await store.groups.findById(child.id))?.name, 'nest-child');
      assert.equal(await store.groups.findById('nope'), null);
      assert.deepEqual((await store.groups.page({ q: 'nest-', limit: 2 })).map((g) => g.name), ['nest-child', 'nest-ldap']);
      assert.deepEqual((await store.groups.page({ q: 'nest-', afterName: 'nest-ldap', limit: 5 })).map((g) => g.name), ['nest-parent', 'nest-top']);
      assert.equal((await store.groups.update(child.id, { description: 'e' }))?.description, 'e');
      assert.equal(await store.groups.update('nope', { description: 'e' }), null);

      assert.equal(await store.groups.setMember(child.id, u.id, true), true);
      assert.equal(await store.groups.setMember(child.id, u.id, true), false);
      await store.groups.setMember(child.id, u.id, true, 'corp-ldap');
      await store.groups.setMember(child.id, other.id, true);
      assert.deepEqual(await store.groups.membershipSources(child.id, u.id), ['corp-ldap', 'local']);
      assert.deepEqual(await store.groups.sourcesIn(child.id), ['corp-ldap', 'local']);
      assert.deepEqual(await store.groups.sourcesIn(top.id), []);
      assert.deepEqual((await store.groups.members(child.id, { limit: 1 })).map((m) => [m.username, m.sources]), [['nell', ['corp-ldap', 'local']]]);
      assert.deepEqual((await store.groups.members(child.id, { after: ['nell', u.id], limit: 5 })).map((m) => m.username), ['otto']);

      assert.equal(await store.groups.nest(child.id, parent.id), true);
      assert.equal(await store.groups.nest(child.id, parent.id), false);
      assert.equal(await store.groups.nest(parent.id, top.id), true);
      const expected = ['nest-child', 'nest-parent', 'nest-top'];
      assert.deepEqual(await store.groups.groupsOf(u.id), expected);
      assert.deepEqual((await store.users.findWithGroups(u.id))?.groups, expected);
      const accounts = createAccountLookup((opened as { statements?: SqlStatements }).statements ?? knexStatements(store.knex), 0);
      assert.deepEqual((await accounts(u.id))?.groups, expected, 'the hot-path statement includes ancestors');
      const { parents, children } = await store.groups.neighbours(parent.id);
      assert.deepEqual([parents.map((g) => g.name), children.map((g) => g.name)], [['nest-top'], ['nest-child']]);
      await assert.rejects(store.groups.nest(top.id, child.id), (err: Error) => err instanceof GroupCycle && err.path.map((g) => g.name).join('>') === 'nest-top>nest-child>nest-parent>nest-top');
      await assert.rejects(store.groups.nest(top.id, top.id), GroupCycle);
      assert.equal(await store.groups.unnest(parent.id, top.id), true);
      assert.equal(await store.groups.unnest(parent.id, top.id), false);
      assert.deepEqual(await store.groups.groupsOf(u.id), ['nest-child', 'nest-parent']);
      assert.equal(await store.groups.setMember(child.id, u.id, false), true);
      assert.deepEqual(await store.groups.membershipSources(child.id, u.id), ['corp-ldap']);
      // A ladder of diamonds (2^24 paths from its foot to its head, 96 edges): the cycle check
      // costs the edges, not the paths.
      let foot = await store.groups.create('ladder-0');
      const bottom = foot;
      for (let level = 1; level <= 24; level++) {
        const [left, right, head] = await Promise.all(['l', 'r', 'h'].map((side) => store.groups.create(`ladder-${level}-${side}`)));
        for (const side of [left, right]) {
          await store.groups.nest(foot.id, side.id);
          await store.groups.nest(side.id, head.id);
        }
        foot = head;
      }
      const started = Date.now();
      await assert.rejects(store.groups.nest(foot.id, bottom.id), (err: Error) => err instanceof GroupCycle && err.path.length === 50);
      assert.ok(Date.now() - started < 5_000, `the check took ${Date.now() - started} ms`);
      // Deleting a group removes its nesting rows too.
      await store.groups.delete(parent.id);
      assert.equal((await store.knex('group_parents').where({ group_id: child.id })).length, 0);
      assert.deepEqual(await store.groups.groupsOf(u.id), ['nest-child']);
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

    test('clients: hashed secrets with a previous one, pages by id, revoking tokens, a lock per update, every write announced', async (t) => {
      if (!ready(t)) return;
      const announced: Array<{ kind: string; id: string; inTransaction: boolean }> = [];
      const notifier = { async notify(k: Knex, kind: string, id: string) { announced.push({ kind, id, inTransaction: Boolean((k as Knex.Transaction).isTransaction) }); } };
      const watched = new Store(store.knex, { changes: notifier });
      const version = async () => Number((await store.knex('change_versions').where({ kind: 'client' }).first())?.version ?? 0);
      await watched.clients.create({ id: 'page-b', metadata: {}, secretHash: 'hash-b' });
      await watched.clients.create({ id: 'page-a', metadata: {} });
      await watched.clients.create({ id: 'page-c', metadata: {} });
      const b = await watched.clients.find('page-b');
      assert.equal(b?.secretHash, 'hash-b');
      assert.equal(b?.previousSecretHash, null);
      const until = new Date(Date.now() + 60_000);
      const rotated = await watched.clients.update('page-b', { secretHash: 'hash-b2', previousSecretHash: 'hash-b', previousSecretExpiresAt: until });
      assert.equal(rotated?.secretHash, 'hash-b2');
      assert.equal(rotated?.previousSecretHash, 'hash-b');
      assert.equal(rotated?.previousSecretExpiresAt?.getTime(), until.getTime());
      assert.deepEqual((await store.clients.listPage({ limit: 2, after: 'page-' })).map((c) => c.id), ['page-a', 'page-b']);
      // Byte order, not the database's collation: "Z" sorts before "a", "-" before "_".
      await watched.clients.create({ id: 'page-Z', metadata: {} });
      await watched.clients.create({ id: 'page_', metadata: {} });
      assert.deepEqual((await store.clients.listPage({ limit: 10, after: 'page-' })).map((c) => c.id).filter((id) => id.startsWith('page')), ['page-Z', 'page-a', 'page-b', 'page-c', 'page_']);
      await store.clients.delete('page-Z');
      await store.clients.delete('page_');
      assert.deepEqual((await store.clients.listPage({ limit: 2, after: 'page-b' })).map((c) => c.id).filter((id) => id.startsWith('page-')), ['page-c']);
      await watched.clients.delete('page-c');
      assert.equal(await watched.clients.delete('page-c'), false, 'a repeated delete changes nothing');
      assert.deepEqual(announced.map((a) => `${a.kind}:${a.id}`), ['client:page-b', 'client:page-a', 'client:page-c', 'client:page-b', 'client:page-Z', 'client:page_', 'client:page-c']);
      assert.ok(announced.every((a) => a.inTransaction), 'announced inside the writing transaction');
      // The default announcer (no feed: the CLI) moves the version every instance polls.
      const v0 = await version();
      await store.clients.update('page-a', { enabled: false });
      assert.equal(await version(), v0 + 1);
      // Tokens, codes and grants of one client go; another client's stay.
      const payload = (clientId: string) => JSON.stringify({ clientId });
      await store.knex('oidc_payloads').insert([
        { kind: 'AccessToken', id: 'rev-at-1', payload: payload('page-b') },
        { kind: 'Grant', id: 'rev-grant-1', payload: payload('page-b') },
        { kind: 'Session', id: 'rev-session-1', payload: payload('page-b') },
        { kind: 'AccessToken', id: 'rev-at-2', payload: payload('page-a') },
      ]);
      assert.equal(await store.clients.revokeArtifacts('page-b'), 2);
      assert.deepEqual((await store.knex('oidc_payloads').whereIn('id', ['rev-at-1', 'rev-grant-1', 'rev-session-1', 'rev-at-2']).orderBy('id')).map((r: { id: string }) => r.id), ['rev-at-2', 'rev-session-1']);
      // findForUpdate holds the row: a second writer waits for the first transaction (PostgreSQL).
      if (opened && !('skip' in opened) && opened.serialize) {
        const order: string[] = [];
        let release!: () => void;
        const held = new Promise<void>((r) => (release = r));
        const first = store.transaction(async (tx) => {
          await tx.clients.findForUpdate('page-b');
          order.push('first locked');
          await held;
          await tx.clients.update('page-b', { firstParty: true });
          order.push('first wrote');
        });
        await new Promise((r) => setTimeout(r, 50));
        const second = store.transaction(async (tx) => {
          await tx.clients.findForUpdate('page-b');
          order.push('second locked');
        });
        await new Promise((r) => setTimeout(r, 100));
        release();
        await Promise.all([first, second]);
        assert.deepEqual(order, ['first locked', 'first wrote', 'second locked']);
      }
      await store.clients.delete('page-a');
      await store.clients.delete('page-b');
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

    test('audit search (every filter, below an id) and login counts per bucket', async (t) => {
      if (!ready(t)) return;
      const at = Date.parse('2025-05-05T10:00:00Z');
      const row = (minutes: number, type: string, extra: Record<string, unknown> = {}) => ({ at: new Date(at + minutes * 60_000), type, outcome: type === 'login.success' || type === 'srch.ok' ? 'success' : 'failure', details: '{}', ...extra });
      await store.knex('audit_events').insert([
        row(0, 'srch.ok', { user_id: 'su', client_id: 'sc', connector_id: 'sk', ip: '192.0.2.1' }),
        row(1, 'srch.bad', { client_id: 'sc' }),
        row(2, 'srch_x.ok'),
        row(0, 'login.success', { connector_id: 'sk' }),
        row(30, 'login.success', { connector_id: 'sk' }),
        row(61, 'login.failure', { connector_id: 'sk', details: JSON.stringify({ reason: 'invalid_credentials' }) }),
        row(62, 'login.throttled'),
        row(60 * 24, 'login.success', { connector_id: 'sk' }),
      ]);
      const types = async (filter: Partial<Parameters<typeof store.audit.search>[0]>) => (await store.audit.search({ limit: 10, ...filter })).map((e) => e.type);
      assert.deepEqual(await types({ type: 'srch.*' }), ['srch.bad', 'srch.ok'], 'newest first; _ in a prefix is literal');
      assert.deepEqual(await types({ type: 'srch.*', outcome: 'success' }), ['srch.ok']);
      assert.deepEqual(await types({ clientId: 'sc' }), ['srch.bad', 'srch.ok']);
      assert.deepEqual(await types({ userId: 'su', connectorId: 'sk', ip: '192.0.2.1' }), ['srch.ok']);
      assert.deepEqual(await types({ type: 'srch.*', since: new Date(at + 60_000), until: new Date(at + 120_000) }), ['srch.bad']);
      const [newest] = await store.audit.search({ type: 'srch.*', limit: 1 });
      assert.deepEqual(await types({ type: 'srch.*', beforeId: newest.id }), ['srch.ok']);
      await assert.rejects(store.audit.search({ beforeId: 'x', limit: 1 }), InvalidInput);

      const hours = await store.audit.loginCounts(new Date(at), new Date(at + 2 * 3_600_000), 'hour');
      assert.deepEqual(hours.map((h) => [h.bucket.toISOString(), h.connectorId, h.outcome, h.count]), [
        ['2025-05-05T10:00:00.000Z', 'sk', 'success', 2],
        ['2025-05-05T11:00:00.000Z', null, 'failure', 1],
        ['2025-05-05T11:00:00.000Z', 'sk', 'failure', 1],
      ]);
      const days = await store.audit.loginCounts(new Date(at), new Date(at + 2 * 86_400_000), 'day');
      assert.deepEqual(days.map((d) => [d.bucket.toISOString().slice(0, 10), d.connectorId, d.outcome, d.count]), [
        ['2025-05-05', null, 'failure', 1],
        ['2025-05-05', 'sk', 'failure', 1],
        ['2025-05-05', 'sk', 'success', 2],
        ['2025-05-06', 'sk', 'success', 1],
      ]);
      const reasons = await store.audit.loginFailureReasons(new Date(at), 5);
      assert.deepEqual(reasons.filter((r) => ['invalid_credentials', 'login.throttled'].includes(r.reason)), [
        { reason: 'invalid_credentials', count: 1 },
        { reason: 'login.throttled', count: 1 },
      ]);
    });

    test('SAML service providers: pages in byte order, lock for update', async (t) => {
      if (!ready(t)) return;
      for (const id of ['https://b.example/sp', 'https://B.example/sp', 'https://a.example/sp']) await store.samlServiceProviders.create({ entityId: id, settings: {} });
      const page = await store.samlServiceProviders.page({ limit: 2 });
      assert.deepEqual(page.map((r) => r.entityId), ['https://B.example/sp', 'https://a.example/sp'], 'upper case before lower case, whatever the collation');
      assert.deepEqual((await store.samlServiceProviders.page({ afterEntityId: 'https://a.example/sp', limit: 5 })).map((r) => r.entityId), ['https://b.example/sp']);
      await store.transaction(async (tx) => {
        assert.equal((await tx.samlServiceProviders.lock('https://a.example/sp'))?.entityId, 'https://a.example/sp');
        assert.equal(await tx.samlServiceProviders.lock('https://none.example/sp'), null);
      });
      for (const id of ['https://b.example/sp', 'https://B.example/sp', 'https://a.example/sp']) await store.samlServiceProviders.delete(id);
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
      const first = await store.loginSessions.upsert({ sessionUid: 'sess-1', userId: u.id, connectorId: 'local', federatedIdentityId: null, amr: ['pwd'], claims: { level: 2 }, expiresAt: new Date(Date.now() + 60_000) });
      assert.equal((await store.loginSessions.find('sess-1'))?.connectorId, 'local');
      assert.deepEqual(first, await store.loginSessions.find('sess-1'), 'upsert answers the row as stored');
      assert.deepEqual([first.amr, first.claims], [['pwd'], { level: 2 }]);
      const second = await store.loginSessions.upsert({ sessionUid: 'sess-1', userId: u.id, connectorId: 'corp', federatedIdentityId: null, amr: ['pwd', 'otp'], expiresAt: new Date(Date.now() + 60_000) });
      assert.equal((await store.loginSessions.find('sess-1'))?.connectorId, 'corp');
      assert.deepEqual(second, await store.loginSessions.find('sess-1'));
      assert.deepEqual([second.amr, second.claims], [['pwd', 'otp'], {}], 'a later login of the session replaces what it says');
      assert.equal(second.createdAt.getTime(), first.createdAt.getTime(), 'created_at stays from the first login of the session');
      assert.equal(await store.loginSessions.find('sess-1', new Date(Date.now() + 120_000)), null);
      assert.equal(await store.loginSessions.deleteExpired(new Date(Date.now() + 120_000)), 1);
      assert.equal(await store.loginSessions.find('sess-1'), null);
    });

    test('login sessions: the user agent each signed in with, printable and bounded, replaced by a new sign-in', async (t) => {
      if (!ready(t)) return;
      const u = await store.users.create({ username: 'ursa' });
      const later = new Date(Date.now() + 60_000);
      await store.loginSessions.upsert({ sessionUid: 'sess-ua1', userId: u.id, connectorId: 'local', federatedIdentityId: null, amr: ['pwd'], expiresAt: later, userAgent: 'Mozilla/5.0 (X11; Linux x86_64)\u0007' + 'x'.repeat(1000) });
      await store.loginSessions.upsert({ sessionUid: 'sess-ua2', userId: u.id, connectorId: 'local', federatedIdentityId: null, amr: ['pwd'], expiresAt: later, userAgent: '  ' });
      const agentOf = async (uid: string) => ((await store.knex('login_sessions').where('session_uid', uid).first('user_agent')) as { user_agent: string | null } | undefined)?.user_agent;
      assert.equal((await agentOf('sess-ua1'))!.length, 512);
      assert.ok((await agentOf('sess-ua1'))!.startsWith('Mozilla/5.0 (X11; Linux x86_64)x'));
      assert.equal(await agentOf('sess-ua2'), null, 'blank: none');
      await store.loginSessions.upsert({ sessionUid: 'sess-ua1', userId: u.id, connectorId: 'local', federatedIdentityId: null, amr: ['pwd'], expiresAt: later, userAgent: 'Firefox/130.0' });
      assert.equal(await agentOf('sess-ua1'), 'Firefox/130.0');
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
      const Adapter = oidcAdapter();
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
      // A second consumption of a single-use code (a redemption racing the first) is refused,
      // and the first consumption time stays.
      await assert.rejects(codes.consume('c1'), (err: Error & { error_detail?: string }) => err.name === 'InvalidGrant' && /authorization code already consumed/.test(err.error_detail ?? ''));
      assert.equal((await codes.find('c1'))?.consumed, consumed?.consumed);
      await codes.upsert('c2', { jti: 'c2', grantId: 'g2', kind: 'AuthorizationCode' }, 60);
      const racing = await Promise.allSettled([codes.consume('c2'), codes.consume('c2'), codes.consume('c2')]);
      assert.equal(racing.filter((r) => r.status === 'fulfilled').length, 1, 'one of three concurrent consumptions wins');
      // An access token's consumption (revocation marks) is not a claim: a repeat is no error.
      await tokens.consume('at2');
      await tokens.consume('at2');

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

      // An interaction is destroyed as its authorization request resumes: of two resumes at
      // once, one goes on and the other is refused as a resume of a finished interaction.
      const interactions = new Adapter('Interaction');
      await interactions.upsert('i1', { uid: 'i1', kind: 'Interaction' }, 60);
      const resumes = await Promise.allSettled([interactions.destroy('i1'), interactions.destroy('i1')]);
      assert.equal(resumes.filter((r) => r.status === 'fulfilled').length, 1, 'one of two concurrent destroys of an interaction succeeds');
      assert.equal(((resumes.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason as Error).name, 'SessionNotFound');
      assert.equal(await interactions.find('i1'), undefined);
      await assert.rejects(interactions.destroy('i1'), { name: 'SessionNotFound' });
      await tokens.destroy('never-stored');

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

    test('oidc adapter in a code exchange: the code is claimed with the tokens it gives, in one statement; a lost claim stores none of them', async (t) => {
      if (!ready(t)) return;
      const Adapter = oidcAdapter();
      const [codes, accessTokens, refreshTokens] = [new Adapter('AuthorizationCode'), new Adapter('AccessToken'), new Adapter('RefreshToken')];
      // A token request as the broker serves it: refreshGrace around what oidc-provider does.
      const exchange = async (steps: () => Promise<void>) => {
        const ctx = { method: 'POST', path: '/token', status: 404, body: undefined as unknown };
        await refreshGrace(store.knex)(ctx as never, async () => {
          await steps();
          ctx.status = 200;
          ctx.body = { access_token: 'x' };
        });
        return ctx;
      };
      const issue = (code: string, tag: string, withRefresh: boolean) => async () => {
        await codes.consume(code);
        await accessTokens.upsert(`at-${tag}`, { jti: `at-${tag}`, grantId: 'gx', kind: 'AccessToken' }, 60);
        if (withRefresh) await refreshTokens.upsert(`rt-${tag}`, { jti: `rt-${tag}`, grantId: 'gx', kind: 'RefreshToken' }, 60);
      };

      for (const withRefresh of [true, false]) {
        const code = `cx-${withRefresh}`;
        await codes.upsert(code, { jti: code, grantId: 'gx', kind: 'AuthorizationCode' }, 60);
        // Two exchanges of one code at once: one stores its tokens, the other is refused and stores nothing.
        const answers = await Promise.allSettled([exchange(issue(code, `a-${withRefresh}`, withRefresh)), exchange(issue(code, `b-${withRefresh}`, withRefresh))]);
        const outcome = answers.map((a) => (a.status === 'rejected' ? (a.reason as Error).name : a.value.status === 200 ? 'ok' : (a.value.body as { error: string }).error));
        assert.deepEqual([...outcome].sort(), withRefresh ? ['InvalidGrant', 'ok'] : ['invalid_grant', 'ok'], `with a refresh token: ${withRefresh}`);
        const winner = outcome.indexOf('ok') === 0 ? 'a' : 'b';
        const tokens = (tag: string) => (withRefresh ? [`at-${tag}-${withRefresh}`, `rt-${tag}-${withRefresh}`] : [`at-${tag}-${withRefresh}`]);
        assert.deepEqual(await storedIds(...tokens('a'), ...tokens('b')), tokens(winner).sort(), 'only the winner\'s tokens are stored');
        assert.equal(typeof (await codes.find(code))?.consumed, 'number', 'the code is consumed');
        assert.deepEqual((await accessTokens.find(`at-${winner}-${withRefresh}`))?.jti, `at-${winner}-${withRefresh}`);
        // Used again later: refused, nothing stored.
        const replay = await exchange(issue(code, `c-${withRefresh}`, withRefresh)).catch((err: Error) => err);
        assert.ok(replay instanceof Error ? replay.name === 'InvalidGrant' : (replay.body as { error: string }).error === 'invalid_grant', 'a later use is refused');
        assert.deepEqual(await storedIds(...tokens('c')), []);
      }

      // A request that fails between the code's consumption and its tokens consumes nothing.
      await codes.upsert('cy', { jti: 'cy', grantId: 'gy', kind: 'AuthorizationCode' }, 60);
      await assert.rejects(exchange(async () => {
        await codes.consume('cy');
        throw new Error('the account is gone');
      }), /the account is gone/);
      assert.equal((await codes.find('cy'))?.consumed, undefined, 'the code is still unused');
      // A success that saves no token (as with a JWT access token and no refresh token) still consumes it.
      const alone = await exchange(async () => codes.consume('cy'));
      assert.equal(alone.status, 200);
      assert.equal(typeof (await codes.find('cy'))?.consumed, 'number');
      // Outside a token request a consumption is an immediate claim, as before.
      await codes.upsert('cz', { jti: 'cz', grantId: 'gz', kind: 'AuthorizationCode' }, 60);
      await codes.consume('cz');
      assert.equal(typeof (await codes.find('cz'))?.consumed, 'number');
    });

    test('oidc adapter in an authorization request: grant and code held, saved with the session in one statement, all or none', async (t) => {
      if (!ready(t)) return;
      const Adapter = oidcAdapter();
      const [grants, codes, sessions] = [new Adapter('Grant'), new Adapter('AuthorizationCode'), new Adapter('Session')];
      const hold = holdAuthorizationWrites();
      // The answer's status as oidc-provider leaves it: a redirect that carries the code, or an error page.
      const removed: string[] = [];
      const request = (path: string, work: () => Promise<void>, status = 303) => hold({ method: 'GET', path, status, remove: (name: string) => removed.push(`${path} ${name}`) } as never, work);

      await request('/auth/uid-1', async () => {
        await grants.upsert('held-g', { jti: 'held-g', accountId: 'a' }, 60);
        await codes.upsert('held-c', { jti: 'held-c', grantId: 'held-g' }, 60);
        assert.deepEqual(await storedIds('held-g', 'held-c'), [], 'held until the session is saved');
        assert.equal((await grants.find('held-g'))?.accountId, 'a', 'a held record is read from the hold in its request');
        await sessions.upsert('held-s', { uid: 'held-u', accountId: 'a' }, 60);
        assert.deepEqual(await storedIds('held-g', 'held-c', 'held-s'), ['held-c', 'held-g', 'held-s'], 'saved with the session');
      });
      // No session saved: what was held is written as the request's middleware returns.
      await request('/auth', async () => {
        await codes.upsert('held-c2', { jti: 'held-c2' }, 60);
        assert.deepEqual(await storedIds('held-c2'), []);
      });
      assert.deepEqual(await storedIds('held-c2'), ['held-c2']);
      // The session's save fails (PostgreSQL refuses a NUL in JSON): neither the grant nor the code is stored.
      await request('/auth/uid-2', async () => {
        await grants.upsert('held-g3', { jti: 'held-g3' }, 60);
        await codes.upsert('held-c3', { jti: 'held-c3' }, 60);
        await assert.rejects(sessions.upsert('held-s3', { uid: 'held-u3', bad: 'a\u0000b' }, 60));
      });
      assert.deepEqual(await storedIds('held-g3', 'held-c3', 'held-s3'), [], 'all or none');
      assert.deepEqual(removed, ['/auth/uid-2 Location', '/auth/uid-2 Set-Cookie'], 'and the answer carries neither the code nor the cookie of what was not stored');
      // A request that fails stores nothing it held.
      await assert.rejects(request('/auth/uid-4', async () => {
        await codes.upsert('held-c4', { jti: 'held-c4' }, 60);
        throw new Error('the request failed');
      }), /the request failed/);
      assert.deepEqual(await storedIds('held-c4'), []);
      // Nor does one whose error oidc-provider renders as a page (the error does not propagate).
      await request('/auth/uid-6', async () => {
        await grants.upsert('held-g6', { jti: 'held-g6' }, 60);
        await codes.upsert('held-c6', { jti: 'held-c6', grantId: 'held-g6' }, 60);
      }, 400);
      assert.deepEqual(await storedIds('held-g6', 'held-c6'), [], 'an error page carries no code: nothing held is stored');
      // Outside an authorization request nothing is held.
      await request('/token', async () => {
        await codes.upsert('held-c5', { jti: 'held-c5' }, 60);
        assert.deepEqual(await storedIds('held-c5'), ['held-c5']);
      });
      assert.deepEqual(await codes.find('held-c'), { jti: 'held-c', grantId: 'held-g' });
      await store.knex('oidc_payloads').where('id', 'like', 'held-%').delete();
    });

    test("oidc adapter as a login resumes: the interaction's delete goes with the session, grant, code and login row, and decides whether they are stored", async (t) => {
      if (!ready(t)) return;
      const Adapter = oidcAdapter();
      const [interactions, grants, codes, sessions] = [new Adapter('Interaction'), new Adapter('Grant'), new Adapter('AuthorizationCode'), new Adapter('Session')];
      const hold = holdAuthorizationWrites();
      const user = await store.users.create({ username: 'resume-user' });
      const settled: Array<[string, string | null]> = [];
      const loginRow = (n: string) => ({ sessionUid: `resume-u${n}`, userId: user.id, connectorId: 'local', federatedIdentityId: null, amr: ['pwd'], expiresAt: new Date(Date.now() + 60_000), ip: `192.0.2.${n}` });
      /** A resume as oidc-provider runs it, in an authorization request; its answer's status, and the headers taken off it. */
      const resume = (n: string, interaction: string, between: () => Promise<void> = async () => {}, status = 303) => {
        const ctx = { method: 'GET', path: `/auth/${interaction}`, status, removed: [] as string[], remove(name: string) { this.removed.push(name); } };
        const done = hold(ctx as never, async () => {
          assert.ok(await interactions.find(interaction), 'the interaction is read first');
          await interactions.destroy(interaction);
          assert.equal(await interactions.find(interaction), undefined, 'gone for the rest of its request');
          const held = store.loginSessions.hold(loginRow(n), (stored) => settled.push([n, stored?.connectorId ?? null]));
          assert.equal(held?.userId, user.id, "the login's row is held, as it will be stored");
          await grants.upsert(`resume-g${n}`, { jti: `resume-g${n}`, accountId: user.id }, 60);
          await codes.upsert(`resume-c${n}`, { jti: `resume-c${n}`, grantId: `resume-g${n}` }, 60);
          await between();
          if (status < 400) await sessions.upsert(`resume-s${n}`, { uid: `resume-u${n}`, accountId: user.id }, 60);
        });
        return { ctx, done };
      };
      const logins = async () => (await store.knex('login_sessions').where('session_uid', 'like', 'resume-%').select('session_uid', 'ip')).map((r: { session_uid: string; ip: string }) => `${r.session_uid} ${r.ip}`).sort();

      // Two resumes of one interaction at once, both past its read and its (held) delete before
      // either saves: only the one whose delete removed it stores anything.
      await interactions.upsert('resume-i1', { uid: 'resume-i1' }, 60);
      let arrived = 0;
      let bothThere!: () => void;
      const barrier = new Promise<void>((r) => (bothThere = r));
      const meet = async () => {
        if (++arrived === 2) bothThere();
        await barrier;
      };
      const [one, two] = [resume('1', 'resume-i1', meet), resume('2', 'resume-i1', meet)];
      const outcomes = await Promise.allSettled([one.done, two.done]);
      assert.deepEqual(outcomes.map((o) => o.status).sort(), ['fulfilled', 'rejected'], 'one resume goes on');
      const loser = outcomes[0]!.status === 'rejected' ? { ...one, n: '1', out: outcomes[0] } : { ...two, n: '2', out: outcomes[1]! };
      const w = loser.n === '1' ? '2' : '1';
      const refusal = (loser.out as PromiseRejectedResult).reason as Error & { allow_redirect?: boolean };
      assert.equal(refusal.name, 'SessionNotFound');
      assert.equal(refusal.allow_redirect, false, 'an error page, not a redirect to the client');
      assert.deepEqual(loser.ctx.removed, ['Location', 'Set-Cookie'], 'its answer carries no code and sets no cookie');
      assert.deepEqual((w === '1' ? one : two).ctx.removed, []);
      assert.deepEqual(await storedIds(`resume-g${w}`, `resume-c${w}`, `resume-s${w}`, `resume-g${loser.n}`, `resume-c${loser.n}`, `resume-s${loser.n}`, 'resume-i1'), [`resume-c${w}`, `resume-g${w}`, `resume-s${w}`].sort(), "the winner's writes, none of the loser's, and the interaction gone");
      assert.deepEqual(await logins(), [`resume-u${w} 192.0.2.${w}`], "the winner's login row");
      assert.deepEqual(settled.sort(), [[w, 'local'], [loser.n, null]].sort(), 'each held login row hears whether it was stored');

      // A resume whose answer is an error page: its interaction is removed, nothing else is stored.
      settled.length = 0;
      await interactions.upsert('resume-i3', { uid: 'resume-i3' }, 60);
      await resume('3', 'resume-i3', async () => {}, 400).done;
      assert.deepEqual(await storedIds('resume-i3', 'resume-g3', 'resume-c3'), []);
      assert.deepEqual(settled, [['3', null]]);
      // One that throws: the same.
      await interactions.upsert('resume-i4', { uid: 'resume-i4' }, 60);
      await assert.rejects(resume('4', 'resume-i4', async () => { throw new Error('the request failed'); }).done, /the request failed/);
      assert.deepEqual(await storedIds('resume-i4', 'resume-g4', 'resume-c4', 'resume-s4'), []);
      assert.deepEqual(await logins(), [`resume-u${w} 192.0.2.${w}`], 'no other login row');
      // Outside an authorization request, the login row is not held (upsert() writes it).
      assert.equal(store.loginSessions.hold(loginRow('5'), () => assert.fail('not held')), null);
      await store.knex('oidc_payloads').where('id', 'like', 'resume-%').delete();
      await store.knex('login_sessions').where('session_uid', 'like', 'resume-%').delete();
    });

    test("oidc adapter in a login's form post: a companion write goes with the post's next save, in one statement, or alone when none comes or that save fails", async (t) => {
      if (!ready(t)) return;
      const Adapter = oidcAdapter();
      const [interactions, grants] = [new Adapter('Interaction'), new Adapter('Grant')];
      const hold = holdInteractionWrites();
      const post = (work: () => Promise<void>, path = '/interaction/c1/login', method = 'POST') => hold({ method, path } as never, work);
      const counters = async () => (await store.knex('rate_limits').where('key', 'like', 'companion-%').select('key')).map((r: { key: string }) => r.key).sort();
      const seed = () => store.knex('rate_limits').insert(['companion-a', 'companion-b'].map((key) => ({ key, points: 1, expire: Date.now() + 60_000 }))).onConflict('key').ignore();
      const alone: string[] = [];
      /** Forgets the two counters, as a successful login does (src/limits/rate-limits.ts). */
      const companion = (label: string) => ({
        name: 'conformance_forget',
        text: (first: number) => `DELETE FROM rate_limits WHERE key = ANY($${first}::varchar[])`,
        values: [['companion-a', 'companion-b']],
        alone: async () => {
          alone.push(label);
          await store.knex('rate_limits').whereIn('key', ['companion-a', 'companion-b']).delete();
        },
      });

      // Taken along by the next save: both written, no write of its own.
      await seed();
      await post(async () => {
        assert.equal(rideAlong(companion('taken')), true);
        assert.equal(rideAlong(companion('second')), false, 'one companion at a time: a second is written by its caller');
        assert.deepEqual(await counters(), ['companion-a', 'companion-b'], 'waiting for the save');
        // A grant saved in a form post is not held (that is the authorization request's hold).
        await grants.upsert('companion-g', { jti: 'companion-g' }, 60);
        assert.deepEqual(await storedIds('companion-g'), ['companion-g']);
        assert.deepEqual(await counters(), [], 'went with that save');
        await interactions.upsert('companion-i1', { uid: 'companion-i1' }, 60);
      });
      assert.deepEqual(alone, []);
      assert.deepEqual(await storedIds('companion-i1'), ['companion-i1']);
      // No save comes: written alone as the request ends, even if it fails.
      await seed();
      await assert.rejects(post(async () => {
        assert.equal(rideAlong(companion('no save')), true);
        throw new Error('the post failed');
      }), /the post failed/);
      assert.deepEqual([alone, await counters()], [['no save'], []]);
      // The save that takes it fails (PostgreSQL refuses a NUL in JSON): the companion still goes, alone.
      await seed();
      alone.length = 0;
      await post(async () => {
        assert.equal(rideAlong(companion('failed save')), true);
        await assert.rejects(interactions.upsert('companion-i2', { bad: 'a\u0000b' }, 60));
      });
      assert.deepEqual([alone, await counters(), await storedIds('companion-i2')], [['failed save'], [], []]);
      // Outside a form post (a GET, the authorization endpoint, no request at all) nothing waits.
      await post(async () => assert.equal(rideAlong(companion('get')), false), '/interaction/c1', 'GET');
      await holdAuthorizationWrites()({ method: 'GET', path: '/auth', status: 303 } as never, async () => assert.equal(rideAlong(companion('auth')), false));
      assert.equal(rideAlong(companion('none')), false);
      await store.knex('oidc_payloads').where('id', 'like', 'companion-%').delete();
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

    test('users: search by key/email/name prefix with filters, keyset pages, row lock, memberships with sources', async (t) => {
      if (!ready(t)) return;
      const made = await store.users.createMany([
        { username: 'srch-Bravo', email: 'X.bravo@srch.example', name: 'Bee Srch' },
        { username: 'srch-alpha', email: 'alpha@srch.example', enabled: false },
        { username: 'srch-charlie', name: 'Charlie' },
        { username: 'srch_%', name: 'wild' },
      ]);
      const names = (list: { username: string }[]) => list.map((u) => u.username);
      assert.deepEqual(names(await store.users.search({ q: 'SRCH-', limit: 10 })), ['srch-alpha', 'srch-Bravo', 'srch-charlie'], 'key order, case-insensitive, wildcards literal');
      assert.deepEqual(names(await store.users.search({ q: 'ｓｒｃｈ-b', limit: 10 })), ['srch-Bravo'], 'the prefix is folded like a username');
      assert.deepEqual(names(await store.users.search({ q: 'x.BRAVO', limit: 10 })), ['srch-Bravo'], 'email prefix');
      assert.deepEqual(names(await store.users.search({ q: 'bee s', limit: 10 })), ['srch-Bravo'], 'name prefix');
      assert.deepEqual(names(await store.users.search({ q: 'srch_%', limit: 10 })), ['srch_%']);
      assert.deepEqual(names(await store.users.search({ q: 'srch-', enabled: false, limit: 10 })), ['srch-alpha']);
      const page1 = await store.users.search({ q: 'srch-', limit: 2 });
      const last = page1.at(-1)!;
      assert.deepEqual(names(await store.users.search({ q: 'srch-', limit: 2, after: ['srch-bravo', last.id] })), ['srch-charlie']);
      await store.groups.addMember(made[2].id, 'srch-group');
      await store.groups.addMember(made[2].id, 'srch-group', 'corp');
      assert.deepEqual(names(await store.users.search({ group: 'srch-group', limit: 10 })), ['srch-charlie']);
      assert.deepEqual(await store.users.memberships(made[2].id), [{ name: 'srch-group', sources: ['corp', 'local'] }]);
      await store.identities.create({ userId: made[0].id, connectorId: 'srch-conn', subject: 's1' });
      await store.users.update(made[1].id, { managedBy: 'srch-conn' });
      assert.deepEqual(names(await store.users.search({ connector: 'srch-conn', limit: 10 })), ['srch-alpha', 'srch-Bravo']);
      await store.credentials.setPassword(made[0].id, '$argon2id$fake');
      assert.deepEqual([...(await store.credentials.withPassword(made.map((u) => u.id)))], [made[0].id]);
      // A locked row makes a second writer wait for the first transaction (PGlite runs transactions one at a time anyway).
      const order: string[] = [];
      await Promise.all([
        store.transaction(async (tx) => {
          assert.equal((await tx.users.findByIdForUpdate(made[0].id))?.username, 'srch-Bravo');
          await new Promise((r) => setTimeout(r, 100));
          await tx.users.update(made[0].id, { name: 'first' });
          order.push('first');
        }),
        new Promise((r) => setTimeout(r, 30)).then(() =>
          store.transaction(async (tx) => {
            const seen = await tx.users.findByIdForUpdate(made[0].id);
            order.push(`second saw ${seen?.name}`);
          }),
        ),
      ]);
      assert.deepEqual(order, ['first', 'second saw first']);
      assert.equal(await store.users.findByIdForUpdate('00000000-0000-0000-0000-000000000000'), null);
    });

    test('user sessions: grants and sessions by account, revoking a grant takes its tokens, others stay', async (t) => {
      if (!ready(t)) return;
      const Adapter = oidcAdapter();
      const u = await store.users.create({ username: 'gsess' });
      const other = await store.users.create({ username: 'gsess-other' });
      const now = Math.floor(Date.now() / 1000);
      const grants = new Adapter('Grant');
      const sessions = new Adapter('Session');
      const access = new Adapter('AccessToken');
      const refresh = new Adapter('RefreshToken');
      await grants.upsert('gs-g1', { jti: 'gs-g1', kind: 'Grant', accountId: u.id, clientId: 'app', openid: { scope: 'openid email' }, resources: { 'https://api': 'read write' }, iat: now - 10 }, 600);
      await grants.upsert('gs-g2', { jti: 'gs-g2', kind: 'Grant', accountId: u.id, clientId: 'other-app', openid: { scope: 'openid' }, iat: now }, 600);
      await grants.upsert('gs-g3', { jti: 'gs-g3', kind: 'Grant', accountId: other.id, clientId: 'app', iat: now }, 600);
      await access.upsert('gs-at1', { jti: 'gs-at1', grantId: 'gs-g1', accountId: u.id, iat: now - 5 }, 600);
      await refresh.upsert('gs-rt1', { jti: 'gs-rt1', grantId: 'gs-g1', accountId: u.id, iat: now - 3 }, 600);
      await access.upsert('gs-at3', { jti: 'gs-at3', grantId: 'gs-g3', accountId: other.id, iat: now }, 600);
      await sessions.upsert('gs-s1', { jti: 'gs-s1', kind: 'Session', uid: 'gs-uid-1', accountId: u.id, loginTs: now - 20, iat: now - 20, authorizations: { app: { grantId: 'gs-g1', sid: 'sid-1' } } }, 600);
      await store.loginSessions.upsert({ sessionUid: 'gs-uid-1', userId: u.id, connectorId: 'local', federatedIdentityId: null, amr: ['pwd'], expiresAt: new Date(Date.now() + 60_000), ip: '192.0.2.7' });
      await store.loginSessions.upsert({ sessionUid: 'gs-uid-orphan', userId: u.id, connectorId: 'local', federatedIdentityId: null, amr: ['pwd'], expiresAt: new Date(Date.now() + 60_000) });

      assert.deepEqual((await store.userSessions.grantsOf(u.id)).map((g) => g.id), ['gs-g2', 'gs-g1'], 'newest first, only this account');
      const g1 = (await store.userSessions.grantOf(u.id, 'gs-g1'))!;
      assert.deepEqual([g1.clientId, g1.scopes, g1.resources], ['app', ['openid', 'email'], { 'https://api': ['read', 'write'] }]);
      assert.equal(await store.userSessions.grantOf(u.id, 'gs-g3'), null, "another account's grant");
      const [s] = await store.userSessions.sessionsOf(u.id);
      assert.equal(s.uid, 'gs-uid-1');
      assert.equal(s.ip, '192.0.2.7');
      assert.equal(s.connectorId, 'local');
      assert.deepEqual(s.clients, ['app']);
      assert.equal(s.lastUsedAt?.getTime(), (now - 3) * 1000, 'the newest token under its grants');
      assert.deepEqual((await store.userSessions.sessionUidsOf(u.id)).sort(), ['gs-uid-1', 'gs-uid-orphan']);

      // Read once before the revocation: where records are also kept in memory, it must forget them.
      assert.ok(await access.find('gs-at1'));
      assert.equal(await store.userSessions.revokeGrants(['gs-g1']), 3);
      assert.equal(await access.find('gs-at1'), undefined);
      assert.equal(await refresh.find('gs-rt1'), undefined);
      assert.ok(await access.find('gs-at3'), "other grants' tokens stay");
      assert.deepEqual((await store.userSessions.grantIdsOf(u.id)), ['gs-g2']);
      assert.equal(await store.userSessions.revokeGrants([]), 0);
    });

    test('user search and a user\'s grants can use their indexes (migration 0007)', async (t) => {
      if (!ready(t)) return;
      const captured: Array<{ sql: string; bindings: unknown[] }> = [];
      const listen = (e: { sql: string; bindings: unknown[] }) => void captured.push(e);
      store.knex.on('query', listen);
      try {
        await store.users.search({ q: 'plan', limit: 5 });
        await store.userSessions.grantIdsOf('plan-user');
      } finally {
        store.knex.removeListener('query', listen);
      }
      const literal = (e: { sql: string; bindings: unknown[] }) => {
        let next = 0;
        return e.sql.replace(/\$(\d+)|\?/g, (_m, n: string | undefined) => {
          const value = e.bindings[n ? Number(n) - 1 : next++];
          return typeof value === 'number' ? String(value) : `'${String(value).replace(/'/g, "''")}'`;
        });
      };
      const plans: string[] = [];
      await store.transaction(async (tx) => {
        // With a handful of rows the planner would rightly scan; this asks whether it could use the indexes.
        await tx.knex.raw('SET LOCAL enable_seqscan = off');
        for (const e of captured) {
          const { rows } = (await tx.knex.raw(`EXPLAIN ${literal(e)}`)) as { rows: Array<Record<string, string>> };
          plans.push(rows.map((r) => Object.values(r)[0]).join('\n'));
        }
      });
      assert.match(plans[0], /users_username_key_prefix/);
      assert.match(plans[0], /users_email_prefix/);
      assert.match(plans[0], /users_name_prefix/);
      assert.match(plans[1], /oidc_payloads_account/);
    });

    test('the newest login outcomes of several connectors come in one query, each on its own', async (t) => {
      if (!ready(t)) return;
      const rec = (type: string, connectorId: string, details: Record<string, unknown> = {}) => store.audit.record({ type, outcome: type === 'login.success' ? 'success' : 'failure', connectorId, details });
      await rec('login.success', 'lo-a');
      await rec('login.error', 'lo-a', { stage: 'callback' });
      await rec('login.success', 'lo-a');
      await rec('login.failure', 'lo-b', { reason: 'upstream_error', detail: 'old' });
      // An upstream_error older than the last 20 failures is out of the window.
      for (let i = 0; i < 20; i++) await rec('login.failure', 'lo-c', i === 0 ? { reason: 'upstream_error' } : { reason: 'invalid_credentials' });
      await rec('login.failure', 'lo-c', { reason: 'invalid_credentials' });
      await rec('login.failure', 'lo-b', { reason: 'upstream_error', detail: 'new' });
      await rec('login.success', 'lo-other');
      const queries: string[] = [];
      const listen = (e: { sql: string }) => void queries.push(e.sql);
      store.knex.on('query', listen);
      let found: Awaited<ReturnType<typeof store.audit.latestLoginOutcomes>>;
      try {
        found = await store.audit.latestLoginOutcomes(['lo-a', 'lo-b', 'lo-c', 'lo-none', 'lo-a']);
      } finally {
        store.knex.removeListener('query', listen);
      }
      assert.equal(queries.length, 1, 'one round trip for every connector');
      assert.deepEqual([...found.keys()].sort(), ['lo-a', 'lo-b', 'lo-c', 'lo-none']);
      const a = found.get('lo-a')!;
      assert.ok(a.successAt && a.error && a.successAt >= a.error.at, 'the newest success, after the error');
      assert.equal(a.error.details.stage, 'callback');
      assert.equal(a.upstreamFailure, null);
      assert.equal(found.get('lo-b')!.upstreamFailure!.details.detail, 'new');
      assert.equal(found.get('lo-b')!.successAt, null);
      assert.equal(found.get('lo-c')!.upstreamFailure, null, 'only the last 20 failures are looked at');
      assert.deepEqual(found.get('lo-none'), { successAt: null, error: null, upstreamFailure: null });
      assert.equal((await store.audit.latestLoginOutcomes([])).size, 0);
    });

    test("a connector's newest event of one type (the admin API's connector status) uses its index (migration 0011)", async (t) => {
      if (!ready(t)) return;
      const captured: Array<{ sql: string; bindings: unknown[] }> = [];
      const listen = (e: { sql: string; bindings: unknown[] }) => void captured.push(e);
      store.knex.on('query', listen);
      try {
        await store.audit.latestLoginOutcomes(['plan-dir', 'plan-other']);
      } finally {
        store.knex.removeListener('query', listen);
      }
      const [e] = captured;
      let next = 0;
      const sql = e.sql.replace(/\$(\d+)|\?/g, (_m, n: string | undefined) => {
        const value = e.bindings[n ? Number(n) - 1 : next++];
        return typeof value === 'number' ? String(value) : `'${String(value).replace(/'/g, "''")}'`;
      });
      const plan = await store.transaction(async (tx) => {
        await tx.knex.raw('SET LOCAL enable_seqscan = off');
        const { rows } = (await tx.knex.raw(`EXPLAIN ${sql}`)) as { rows: Array<Record<string, string>> };
        return rows.map((r) => Object.values(r)[0]).join('\n');
      });
      assert.match(plan, /audit_events_connector_type/);
    });
  });
}
