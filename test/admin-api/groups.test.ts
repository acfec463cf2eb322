// Groups through the admin API, on PGlite and PostgreSQL: CRUD with ETags, pagination and search,
// validation paths, look-alike names, local members, groups and memberships of the config file
// or an upstream read-only (409), nested groups (inherited in the groups claim, cycles refused,
// also when two requests race) and an audit entry per change.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { freshPostgresDatabase } from '../helpers/postgres.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { Browser } from '../helpers/browser.ts';
import { signIn } from '../helpers/login-flow.ts';
import { hashPassword } from '../../src/accounts/passwords.ts';
import { AdminApiClient, adminClientConfig, clientToken, consoleClientConfig, userToken, ADMIN_STORES as stores } from '../helpers/admin-api.ts';


const RP = 'http://127.0.0.1:9/cb';
const RP_CLIENT = { id: 'rp', secret: 'rp-secret-0123456789abcdef', redirectUris: [RP], firstParty: true, grantTypes: ['authorization_code'] };

for (const store of stores) {
  describe(`admin API groups on ${store.name}`, () => {
    let broker: TestBroker;
    let drop: () => Promise<void> = async () => {};
    let api: AdminApiClient;
    let skipped: string | undefined;

    before(async () => {
      const db = await store.url();
      if ('skip' in db) {
        skipped = db.skip;
        return;
      }
      drop = db.drop;
      broker = await startTestBroker({
        databaseUrl: db.url,
        config: {
          admin: { groups: ['ops-admins'] },
          clients: [adminClientConfig('ops'), adminClientConfig('reader', ['admin:read']), adminClientConfig('grouper', ['admin:groups:write']), adminClientConfig('plain', ['profile']), RP_CLIENT, consoleClientConfig()],
          users: [
            { username: 'alice', password: 'alice-password-1', groups: ['staff'] },
            { username: 'bob', password: 'bob-password-1' },
          ],
        },
      });
      api = new AdminApiClient(broker.issuer, await clientToken(broker.issuer, 'ops', 'admin:read admin:write'));
    });

    after(async () => {
      await broker?.close();
      await drop();
    });

    const live = (t: { skip(msg: string): void }) => {
      if (skipped) skipLoudly(t as never, skipped);
      return !skipped;
    };
    const create = async (name: string, description?: string) => {
      const res = await api.post('/groups', { name, ...(description !== undefined ? { description } : {}) });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      return res.body as { id: string; name: string };
    };
    const userId = async (username: string) => (await broker.store.users.findByUsername(username))!.id;
    const auditOf = (type: string) => broker.store.audit.query({ type, limit: 100 });

    /** The groups claim of a fresh userinfo for this user. */
    const claimedGroups = async (username: string, password: string): Promise<string[]> => {
      const url = new URL('/auth', broker.issuer);
      url.search = new URLSearchParams({ client_id: RP_CLIENT.id, response_type: 'code', redirect_uri: RP, scope: 'openid groups', state: 'st' }).toString();
      const code = new URL(await signIn(new Browser(broker.issuer), url.href, { username, password })).searchParams.get('code')!;
      const tokenRes = await fetch(`${broker.issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${RP_CLIENT.id}:${RP_CLIENT.secret}`).toString('base64')}` },
        body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: RP }),
      });
      assert.equal(tokenRes.status, 200);
      const { access_token } = (await tokenRes.json()) as { access_token: string };
      const info = (await (await fetch(`${broker.issuer}/me`, { headers: { authorization: `Bearer ${access_token}` } })).json()) as { groups?: string[] };
      return info.groups ?? [];
    };

    test('401 without a token, 403 without the scope; a per-resource scope opens groups only', async (t) => {
      if (!live(t)) return;
      assert.equal((await api.get('/groups', { token: null })).status, 401);
      assert.equal((await api.post('/groups', { name: 'x' }, { token: null })).status, 401);
      assert.equal((await api.get('/groups', { token: await clientToken(broker.issuer, 'plain', 'profile') })).status, 403);
      const reader = await clientToken(broker.issuer, 'reader', 'admin:read');
      assert.equal((await api.get('/groups', { token: reader })).status, 200);
      const refused = await api.post('/groups', { name: 'by-reader' }, { token: reader });
      assert.equal(refused.status, 403);
      assert.equal(await broker.store.groups.findByName('by-reader'), null);
      const grouper = await clientToken(broker.issuer, 'grouper', 'admin:groups:write');
      const made = await api.post('/groups', { name: 'by-grouper' }, { token: grouper });
      assert.equal(made.status, 201);
      assert.equal((await api.get('/keys', { token: grouper })).status, 403, 'groups scope does not open keys');
    });

    test('create, get with an ETag, update with If-Match (412 when stale), delete idempotently; each change audited', async (t) => {
      if (!live(t)) return;
      const created = await api.post('/groups', { name: '  Engineering ', description: 'builders' }, { headers: { 'x-request-id': 'req-create-engineering' } });
      assert.equal(created.status, 201);
      assert.equal(created.body.name, 'Engineering', 'trimmed');
      assert.equal(created.body.source, 'local');
      assert.equal(created.body.readOnly, false);
      assert.ok(created.headers.get('etag'));
      const id = created.body.id as string;
      const got = await api.get(`/groups/${id}`);
      assert.equal(got.status, 200);
      const etag = got.headers.get('etag')!;
      assert.equal(etag, created.headers.get('etag'));

      const updated = await api.patch(`/groups/${id}`, { description: 'the builders' }, { headers: { 'if-match': etag } });
      assert.equal(updated.status, 200);
      assert.equal(updated.body.description, 'the builders');
      assert.notEqual(updated.headers.get('etag'), etag);
      const stale = await api.patch(`/groups/${id}`, { name: 'Eng' }, { headers: { 'if-match': etag } });
      assert.equal(stale.status, 412);
      assert.equal((await broker.store.groups.findById(id))!.name, 'Engineering', 'a stale write changes nothing');
      assert.equal((await api.delete(`/groups/${id}`, { headers: { 'if-match': etag } })).status, 412);

      // Two admins update the same version at once: one wins, the other is told.
      const current = (await api.get(`/groups/${id}`)).headers.get('etag')!;
      const race = await Promise.all([
        api.patch(`/groups/${id}`, { description: 'first' }, { headers: { 'if-match': current } }),
        api.patch(`/groups/${id}`, { description: 'second' }, { headers: { 'if-match': current } }),
      ]);
      assert.deepEqual(race.map((r) => r.status).sort(), [200, 412]);
      const winner = race.find((r) => r.status === 200)!.body.description;
      assert.equal((await broker.store.groups.findById(id))!.description, winner);

      assert.equal((await api.delete(`/groups/${id}`)).status, 204);
      assert.equal((await api.delete(`/groups/${id}`)).status, 404, 'a repeated delete is a 404, not a 500');
      assert.equal((await api.get(`/groups/${id}`)).status, 404);

      const [made] = (await auditOf('admin.group.create')).filter((e) => (e.details.target as { id: string }).id === id);
      assert.equal(made.details.requestId, 'req-create-engineering');
      assert.deepEqual((made.details.actor as { clientId: string }).clientId, 'ops');
      assert.deepEqual((made.details.changes as Record<string, unknown>).name, { before: null, after: 'Engineering' });
      const updates = (await auditOf('admin.group.update')).filter((e) => (e.details.target as { id: string }).id === id);
      assert.equal(updates.length, 2, 'the description change and the race winner; the stale writes left no entry');
      assert.deepEqual((updates[0].details.changes as Record<string, unknown>).description, { before: 'builders', after: 'the builders' });
      assert.equal((await auditOf('admin.group.delete')).filter((e) => (e.details.target as { id: string }).id === id).length, 1);
    });

    test('validation names the field; look-alike and duplicate names are refused', async (t) => {
      if (!live(t)) return;
      const empty = await api.post('/groups', { name: '   ' });
      assert.equal(empty.status, 400);
      assert.deepEqual(empty.body.errors.map((e: { path: string }) => e.path), ['body.name']);
      const long = await api.post('/groups', { name: 'x'.repeat(201) });
      assert.equal(long.status, 400);
      assert.equal(long.body.errors[0].path, 'body.name');
      const huge = await api.post('/groups', { name: 'x'.repeat(100_000) });
      assert.equal(huge.status, 400);
      const invisible = await api.post('/groups', { name: 'ad\u200bmins' });
      assert.equal(invisible.status, 400);
      assert.equal(invisible.body.errors[0].path, 'body.name');
      const extra = await api.post('/groups', { name: 'ok-name', source: 'corp-ldap' });
      assert.equal(extra.status, 400, 'unknown fields (source) are refused');
      assert.equal(extra.body.errors[0].path, 'body');
      const wrongType = await api.post('/groups', { name: 'ok-name', description: 7 });
      assert.equal(wrongType.body.errors[0].path, 'body.description');
      assert.equal((await api.get('/groups?limit=201')).body.errors[0].path, 'query.limit');
      assert.equal((await api.get('/groups?limit=0')).status, 400);
      assert.equal((await api.get('/groups?cursor=not-a-cursor')).body.errors[0].path, 'query.cursor');
      assert.equal((await api.get(`/groups?q=${'q'.repeat(201)}`)).body.errors[0].path, 'query.q');

      await create('Finance');
      for (const name of ['finance', 'FINANCE', 'Ｆｉｎａｎｃｅ']) {
        const dup = await api.post('/groups', { name });
        assert.equal(dup.status, 409, name);
        assert.equal(dup.body.code, 'already_exists');
      }
      const other = await create('Payroll');
      const renamed = await api.patch(`/groups/${other.id}`, { name: 'finance' });
      assert.equal(renamed.status, 409);
      assert.equal((await broker.store.groups.findById(other.id))!.name, 'Payroll');
      assert.equal((await api.get('/groups/no-such-id')).status, 404);
      assert.equal((await api.get('/groups/a%2Fb')).status, 404);
      assert.equal((await api.get('/groups/..%2Fkeys')).status, 404);
    });

    test('list: by name, cursor pages, search by part of the name or description', async (t) => {
      if (!live(t)) return;
      for (const n of ['pg-a', 'pg-b', 'pg-c', 'pg-d', 'pg-e']) await create(n, n === 'pg-c' ? 'the 100% group_' : undefined);
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const res: { status: number; body: { items: Array<{ name: string }>; nextCursor: string | null } } = await api.get(`/groups?q=pg-&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
        assert.equal(res.status, 200);
        assert.ok(res.body.items.length <= 2);
        seen.push(...res.body.items.map((g) => g.name));
        cursor = res.body.nextCursor;
        pages++;
      } while (cursor);
      assert.deepEqual(seen, ['pg-a', 'pg-b', 'pg-c', 'pg-d', 'pg-e']);
      assert.equal(pages, 3);
      const byDescription = await api.get(`/groups?q=${encodeURIComponent('100%')}`);
      assert.deepEqual(byDescription.body.items.map((g: { name: string }) => g.name), ['pg-c']);
      assert.deepEqual((await api.get(`/groups?q=${encodeURIComponent('_')}`)).body.items.map((g: { name: string }) => g.name), ['pg-c'], '_ and % are literal');
      const all = await api.get('/groups?limit=200');
      assert.ok(all.body.items.some((g: { name: string; source: string; readOnly: boolean }) => g.name === 'staff' && g.source === 'config' && g.readOnly));
    });

    test('members: add, list with sources and pages, remove; repeated and unknown ids answer 404', async (t) => {
      if (!live(t)) return;
      const group = await create('Readers');
      const alice = await userId('alice');
      const bob = await userId('bob');
      const extra = await Promise.all(['m-1', 'm-2', 'm-3'].map((username) => broker.store.users.create({ username })));
      for (const id of [alice, bob, ...extra.map((u) => u.id)]) assert.equal((await api.put(`/groups/${group.id}/members/${id}`)).status, 204);
      assert.equal((await api.put(`/groups/${group.id}/members/${alice}`)).status, 204, 'idempotent');
      assert.equal((await auditOf('admin.group.member_add')).filter((e) => e.userId === alice && (e.details.details as { groupId: string }).groupId === group.id).length, 1, 'a repeated add changed nothing and is not audited');
      const names: string[] = [];
      let cursor: string | null = null;
      do {
        const res: { body: { items: Array<{ username: string; sources: string[]; readOnly: boolean }>; nextCursor: string | null } } = await api.get(`/groups/${group.id}/members?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
        for (const m of res.body.items) {
          assert.deepEqual(m.sources, ['local']);
          assert.equal(m.readOnly, false);
        }
        names.push(...res.body.items.map((m) => m.username));
        cursor = res.body.nextCursor;
      } while (cursor);
      assert.deepEqual(names, ['alice', 'bob', 'm-1', 'm-2', 'm-3']);
      assert.deepEqual(await broker.store.groups.groupsOf(bob), ['Readers']);

      assert.equal((await api.delete(`/groups/${group.id}/members/${bob}`)).status, 204);
      assert.equal((await api.delete(`/groups/${group.id}/members/${bob}`)).status, 404);
      assert.deepEqual(await broker.store.groups.groupsOf(bob), []);
      assert.equal((await auditOf('admin.group.member_remove')).filter((e) => e.userId === bob).length, 1);
      assert.equal((await api.put(`/groups/${group.id}/members/no-such-user`)).status, 404);
      assert.equal((await api.put(`/groups/${group.id}/members/a%2F..%2Fb`)).status, 404);
      assert.equal((await api.put(`/groups/no-such-group/members/${bob}`)).status, 404);
      assert.equal((await api.get('/groups/no-such-group/members')).status, 404);
      assert.equal((await api.put(`/groups/${group.id}/members/${'x'.repeat(129)}`)).body.errors[0].path, 'params.userId');
    });

    test('groups and memberships from the config file or an upstream are visible with their source and read-only (409)', async (t) => {
      if (!live(t)) return;
      const alice = await userId('alice');
      const bob = await userId('bob');
      const staff = (await broker.store.groups.findByName('staff'))!;
      const got = await api.get(`/groups/${staff.id}`);
      assert.equal(got.body.source, 'config');
      assert.equal(got.body.readOnly, true);
      const members = await api.get(`/groups/${staff.id}/members`);
      assert.deepEqual(members.body.items.map((m: { username: string; sources: string[]; readOnly: boolean }) => [m.username, m.sources, m.readOnly]), [['alice', ['config'], true]]);
      for (const res of [
        await api.patch(`/groups/${staff.id}`, { name: 'staff2' }),
        await api.delete(`/groups/${staff.id}`),
        await api.put(`/groups/${staff.id}/members/${bob}`),
        await api.delete(`/groups/${staff.id}/members/${alice}`),
      ]) {
        assert.equal(res.status, 409);
        assert.equal(res.body.code, 'read_only');
        assert.match(res.body.detail, /config file/);
      }
      assert.deepEqual(await broker.store.groups.groupsOf(alice), ['Readers', 'staff'], 'nothing changed');

      // An LDAP sync brings a group in; a local group also gets a membership asserted upstream.
      await broker.store.groups.setMemberships(bob, ['ldap-engineers'], 'corp-ldap');
      const ldap = (await broker.store.groups.findByName('ldap-engineers'))!;
      assert.equal((await api.get(`/groups/${ldap.id}`)).body.source, 'corp-ldap');
      const denied = await api.delete(`/groups/${ldap.id}/members/${bob}`);
      assert.equal(denied.status, 409);
      assert.match(denied.body.detail, /connector "corp-ldap"/);
      const local = await create('mixed');
      await broker.store.groups.addMember(bob, 'mixed', 'corp-ldap');
      const mixed = await api.get(`/groups/${local.id}/members`);
      assert.deepEqual(mixed.body.items[0].sources, ['corp-ldap']);
      assert.equal(mixed.body.items[0].readOnly, true);
      assert.equal((await api.delete(`/groups/${local.id}/members/${bob}`)).status, 409);
      assert.equal((await api.put(`/groups/${local.id}/members/${bob}`)).status, 204, 'a local membership can sit beside the upstream one');
      assert.deepEqual((await api.get(`/groups/${local.id}/members`)).body.items[0].sources, ['corp-ldap', 'local']);
      // The upstream asserts it by name: renaming or deleting the group would break that.
      const rename = await api.patch(`/groups/${local.id}`, { name: 'mixed-2' });
      assert.equal(rename.status, 409);
      assert.match(rename.body.detail, /connector "corp-ldap" also asserts members/);
      assert.equal((await api.delete(`/groups/${local.id}`)).status, 409);
      assert.equal((await api.patch(`/groups/${local.id}`, { description: 'both' })).status, 200, 'its description is ours');
      assert.deepEqual(await broker.store.groups.membershipSources(local.id, bob), ['corp-ldap', 'local']);
    });

    test('nested groups: members inherit ancestors in the groups claim; cycles are refused with their path, also when two requests race', async (t) => {
      if (!live(t)) return;
      const bob = await userId('bob');
      const [child, parent, top] = [await create('n-child'), await create('n-parent'), await create('n-top')];
      assert.equal((await api.put(`/groups/${parent.id}/subgroups/${child.id}`)).status, 204);
      assert.equal((await api.put(`/groups/${top.id}/subgroups/${parent.id}`)).status, 204);
      assert.equal((await api.put(`/groups/${top.id}/subgroups/${parent.id}`)).status, 204, 'idempotent');
      assert.equal((await api.put(`/groups/${child.id}/members/${bob}`)).status, 204);
      assert.deepEqual(await broker.store.groups.groupsOf(bob), ['ldap-engineers', 'mixed', 'n-child', 'n-parent', 'n-top']);
      assert.deepEqual(await claimedGroups('bob', 'bob-password-1'), ['ldap-engineers', 'mixed', 'n-child', 'n-parent', 'n-top'], 'userinfo shows the inherited groups');

      const detail = await api.get(`/groups/${parent.id}`);
      assert.deepEqual(detail.body.parents, [{ id: top.id, name: 'n-top' }]);
      assert.deepEqual(detail.body.subgroups, [{ id: child.id, name: 'n-child' }]);

      const cycle = await api.put(`/groups/${child.id}/subgroups/${top.id}`);
      assert.equal(cycle.status, 409);
      assert.equal(cycle.body.code, 'cycle');
      assert.match(cycle.body.detail, /"n-top" inside "n-child" inside "n-parent" inside "n-top"/);
      const self = await api.put(`/groups/${top.id}/subgroups/${top.id}`);
      assert.equal(self.status, 409);
      assert.match(self.body.detail, /"n-top" inside "n-top"/);

      // Two requests that each add half of a cycle: one of them must lose.
      for (let round = 0; round < 3; round++) {
        const [x, y] = [await create(`race-x${round}`), await create(`race-y${round}`)];
        const both = await Promise.all([api.put(`/groups/${x.id}/subgroups/${y.id}`), api.put(`/groups/${y.id}/subgroups/${x.id}`)]);
        assert.deepEqual(both.map((r) => r.status).sort(), [204, 409], `round ${round}`);
        const rows = await broker.store.knex('group_parents').whereIn('group_id', [x.id, y.id]);
        assert.equal(rows.length, 1);
      }

      assert.equal((await api.delete(`/groups/${top.id}/subgroups/${parent.id}`)).status, 204);
      assert.equal((await api.delete(`/groups/${top.id}/subgroups/${parent.id}`)).status, 404);
      assert.deepEqual(await broker.store.groups.groupsOf(bob), ['ldap-engineers', 'mixed', 'n-child', 'n-parent']);
      assert.equal((await api.put(`/groups/${parent.id}/subgroups/no-such-group`)).status, 404);
      const adds = (await auditOf('admin.group.subgroup_add')).filter((e) => (e.details.target as { id: string }).id === top.id);
      assert.equal(adds.length, 1, 'the repeated nesting changed nothing');
      assert.equal((await auditOf('admin.group.subgroup_remove')).length, 1);

      // Deleting a group takes it (and what it passed up) from its members at once.
      assert.equal((await api.delete(`/groups/${parent.id}`)).status, 204);
      assert.deepEqual(await broker.store.groups.groupsOf(bob), ['ldap-engineers', 'mixed', 'n-child']);
    });

    test('GET /group-nesting lists every parent-child pair in one answer, for readers too; taking a group out or deleting it removes its pairs', async (t) => {
      if (!live(t)) return;
      const [root, mid, leaf, other] = [await create('tree-root'), await create('tree-mid'), await create('tree-leaf'), await create('tree-other')];
      assert.equal((await api.put(`/groups/${root.id}/subgroups/${mid.id}`)).status, 204);
      assert.equal((await api.put(`/groups/${mid.id}/subgroups/${leaf.id}`)).status, 204);
      assert.equal((await api.put(`/groups/${other.id}/subgroups/${leaf.id}`)).status, 204);
      const mine = new Set([root.id, mid.id, leaf.id, other.id]);
      const pairs = async (token?: string) => {
        const res = await api.get('/group-nesting', token ? { token } : undefined);
        assert.equal(res.status, 200);
        return (res.body.items as { parentId: string; childId: string }[]).filter((p) => mine.has(p.parentId)).map((p) => `${p.parentId}>${p.childId}`).sort();
      };
      assert.deepEqual(await pairs(), [`${root.id}>${mid.id}`, `${mid.id}>${leaf.id}`, `${other.id}>${leaf.id}`].sort());
      const reader = await clientToken(broker.issuer, 'reader', 'admin:read');
      assert.equal((await pairs(reader)).length, 3);
      assert.equal((await api.get('/group-nesting', { token: null })).status, 401);

      assert.equal((await api.delete(`/groups/${other.id}/subgroups/${leaf.id}`)).status, 204);
      assert.equal((await api.delete(`/groups/${mid.id}`)).status, 204);
      assert.deepEqual(await pairs(), []);
    });

    test('a group nested inside an admin group makes its members administrators, until it is taken out', async (t) => {
      if (!live(t)) return;
      const admins = await create('ops-admins');
      const team = await create('ops-team');
      const carol = await broker.store.users.create({ username: 'carol' });
      await broker.store.credentials.setPassword(carol.id, await hashPassword('carol-password-1'));
      assert.equal((await api.put(`/groups/${team.id}/members/${carol.id}`)).status, 204);
      const token = await userToken(broker.issuer, 'keybridge-admin-console', 'carol', 'carol-password-1');
      assert.equal((await api.get('/groups', { token })).status, 403, 'not an administrator yet');
      assert.equal((await api.put(`/groups/${admins.id}/subgroups/${team.id}`)).status, 204);
      assert.equal((await api.get('/groups', { token })).status, 200, 'an administrator through ops-team');
      assert.equal((await api.delete(`/groups/${admins.id}/subgroups/${team.id}`)).status, 204);
      assert.equal((await api.get('/groups', { token })).status, 403, 'at once on this instance');
    });

    test('an unauthenticated request never yields a 500, whatever the path', async (t) => {
      if (!live(t)) return;
      for (const path of ['/groups/%00', '/groups/a%2Fb/members', '/groups/x/subgroups/y', `/groups/${'z'.repeat(5000)}`]) {
        const res = await fetch(`${broker.issuer}/admin/api/v1${path}`, { method: 'PUT' });
        assert.ok(res.status < 500, `${path}: ${res.status}`);
      }
    });
  });
}

describe('admin API groups across two instances on PostgreSQL', () => {
  let a: TestBroker;
  let b: TestBroker;
  let db: Awaited<ReturnType<typeof freshPostgresDatabase>>;

  before(async () => {
    db = await freshPostgresDatabase();
    if ('skip' in db) return;
    const config = { clients: [adminClientConfig('ops'), RP_CLIENT], users: [{ username: 'dora', password: 'dora-password-1' }] };
    a = await startTestBroker({ databaseUrl: db.url, config });
    b = await startTestBroker({ databaseUrl: db.url, config });
  });

  after(async () => {
    await a?.close();
    await b?.close();
    if (db && !('skip' in db)) await db.drop();
  });

  test('a nesting made through one instance reaches the other instance\'s userinfo within 2 s', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const api = new AdminApiClient(a.issuer, await clientToken(a.issuer, 'ops', 'admin:write'));
    const url = new URL('/auth', b.issuer);
    url.search = new URLSearchParams({ client_id: RP_CLIENT.id, response_type: 'code', redirect_uri: RP, scope: 'openid groups', state: 'st' }).toString();
    const code = new URL(await signIn(new Browser(b.issuer), url.href, { username: 'dora', password: 'dora-password-1' })).searchParams.get('code')!;
    const tokenRes = await fetch(`${b.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${RP_CLIENT.id}:${RP_CLIENT.secret}`).toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: RP }),
    });
    const { access_token } = (await tokenRes.json()) as { access_token: string };
    const groupsOnB = async () => ((await (await fetch(`${b.issuer}/me`, { headers: { authorization: `Bearer ${access_token}` } })).json()) as { groups?: string[] }).groups ?? [];
    const child = (await api.post('/groups', { name: 'two-child' })).body as { id: string };
    const parent = (await api.post('/groups', { name: 'two-parent' })).body as { id: string };
    const dora = (await a.store.users.findByUsername('dora'))!;
    assert.equal((await api.put(`/groups/${child.id}/members/${dora.id}`)).status, 204);
    const deadline = Date.now() + 2_500;
    while (!(await groupsOnB()).includes('two-child') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(await groupsOnB(), ['two-child']);
    assert.equal((await api.put(`/groups/${parent.id}/subgroups/${child.id}`)).status, 204);
    const changedAt = Date.now();
    while (!(await groupsOnB()).includes('two-parent') && Date.now() - changedAt < 2_500) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(await groupsOnB(), ['two-child', 'two-parent'], `instance B shows the inherited group (after ${Date.now() - changedAt} ms)`);
    assert.ok(Date.now() - changedAt <= 2_500);
  });
});
