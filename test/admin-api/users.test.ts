// The admin API's user operations on PGlite and PostgreSQL: search and cursor pagination,
// create with the username rules (look-alikes refused), profile updates with If-Match (412, also
// under two concurrent writers), config users and upstream-managed users read-only (409),
// passwords never returned or audited, linked identities, groups, deletes that repeat safely,
// and an audit entry with before/after for every change. Sessions and grants: sessions.test.ts.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { AdminApiClient, adminClientConfig, clientToken, consoleClientConfig, userToken, ADMIN_PREFIX, ADMIN_STORES as stores } from '../helpers/admin-api.ts';
import { verifyPassword } from '../../src/accounts/passwords.ts';


const GOOD_PASSWORD = 'correct horse battery staple';

for (const store of stores) {
  describe(`admin API users on ${store.name}`, () => {
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
          admin: { groups: ['admins'] },
          clients: [adminClientConfig('ops'), adminClientConfig('reader', ['admin:read']), adminClientConfig('user-admin', ['admin:users:write']), adminClientConfig('plain', ['profile']), consoleClientConfig()],
          users: [
            { username: 'alice', password: 'alice-password-1', email: 'alice@example.org', groups: ['staff'] },
            { username: 'root', password: 'root-password-1', groups: ['admins'] },
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

    const create = async (body: Record<string, unknown>) => {
      const res = await api.post('/users', body);
      assert.equal(res.status, 201, JSON.stringify(res.body));
      return res.body as { id: string; username: string };
    };

    test('401 without a token (never a 500, whatever the path), 403 without the scope, per-resource scopes', async (t) => {
      if (!live(t)) return;
      assert.equal((await api.get('/users', { token: null })).status, 401);
      assert.equal((await api.get('/users/a%2Fb', { token: null })).status, 401);
      assert.equal((await api.post('/users', { username: 'x' }, { token: null })).status, 401);
      assert.equal((await api.delete('/users/x/sessions', { token: null })).status, 401);
      const plain = await clientToken(broker.issuer, 'plain', 'profile');
      assert.equal((await api.get('/users', { token: plain })).status, 403);
      const reader = await clientToken(broker.issuer, 'reader', 'admin:read');
      assert.equal((await api.get('/users', { token: reader })).status, 200);
      const write = await api.post('/users', { username: 'by-reader' }, { token: reader });
      assert.equal(write.status, 403);
      assert.equal(write.body.code, 'insufficient_scope');
      const userAdmin = await clientToken(broker.issuer, 'user-admin', 'admin:users:write');
      const made = await api.post('/users', { username: 'by-user-admin' }, { token: userAdmin });
      assert.equal(made.status, 201);
      // Sessions are their own resource.
      assert.equal((await api.get(`/users/${made.body.id}/sessions`, { token: userAdmin })).status, 403);
      assert.equal((await api.get('/keys', { token: userAdmin })).status, 403);
      assert.equal(await broker.store.users.findByUsername('by-reader'), null);
    });

    test('an administrator signed in to the console acts under their own name in the audit', async (t) => {
      if (!live(t)) return;
      const root = await userToken(broker.issuer, 'keybridge-admin-console', 'root', 'root-password-1');
      const res = await api.post('/users', { username: 'made-by-root' }, { token: root });
      assert.equal(res.status, 201);
      const [event]: any[] = await broker.store.audit.query({ type: 'admin.user.create', userId: res.body.id, limit: 1 });
      assert.equal(event.details.actor.kind, 'user');
      assert.equal(event.details.actor.username, 'root');
      assert.equal((await api.get('/users?q=%20%20')).status, 400, 'a blank search is refused, not a match-all');
    });

    test('create: 201 with ETag and Location, no secret in the answer or the audit', async (t) => {
      if (!live(t)) return;
      const res = await api.post('/users', { username: 'Bob.Builder', email: 'bob@example.org', name: 'Bob Builder', givenName: 'Bob', attributes: { dept: 'ops' }, password: GOOD_PASSWORD });
      assert.equal(res.status, 201);
      assert.ok(res.headers.get('etag'));
      assert.equal(res.headers.get('location'), `${ADMIN_PREFIX}/users/${res.body.id}`);
      assert.equal(res.body.username, 'Bob.Builder');
      assert.equal(res.body.source, 'local');
      assert.equal(res.body.hasPassword, true);
      assert.equal(res.body.enabled, true);
      assert.doesNotMatch(res.text, /horse|argon2/);
      const hash = await broker.store.credentials.getPasswordHash(res.body.id);
      assert.match(hash!, /^\$argon2id\$/);
      assert.ok(await verifyPassword(hash!, GOOD_PASSWORD));
      const [event]: any[] = await broker.store.audit.query({ type: 'admin.user.create', userId: res.body.id, limit: 1 });
      assert.equal(event.details.actor.clientId, 'ops');
      assert.equal(event.details.requestId, res.headers.get('x-request-id'));
      assert.equal(event.details.changes.username.after, 'Bob.Builder');
      assert.equal(event.details.changes.username.before, null);
      assert.doesNotMatch(JSON.stringify(event), /horse|argon2/);
      // Without a password the user can only come in through a linked identity later.
      const bare = await create({ username: 'no-password' });
      assert.equal((bare as any).hasPassword, false);
    });

    test('create: the username rules, look-alikes and taken emails refused with the field path; nothing stored', async (t) => {
      if (!live(t)) return;
      const count = await broker.store.users.count();
      const cases: Array<[Record<string, unknown>, string]> = [
        [{ username: 'carol@example.org' }, 'body.username'],
        [{ username: 'carol smith' }, 'body.username'],
        [{ username: '' }, 'body.username'],
        [{ username: 'c'.repeat(129) }, 'body.username'],
        [{ username: 'c'.repeat(100_000) }, 'body.username'],
        [{ username: 'carol\u200b' }, 'body.username'],
        [{ username: 'carol', email: 'not-an-email' }, 'body.email'],
        [{ username: 'carol', name: 'n'.repeat(201) }, 'body.name'],
        [{ username: 'carol', password: 'short' }, 'body.password'],
        [{ username: 'carol', password: 'carol-carol-carol' }, 'body.password'],
        [{ username: 'carol', password: 'x'.repeat(1025) }, 'body.password'],
        [{ username: 'carol', enabled: 'yes' }, 'body.enabled'],
        [{ username: 'carol', attributes: Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`a${i}`, i])) }, 'body.attributes'],
      ];
      for (const [body, path] of cases) {
        const res = await api.post('/users', body);
        assert.equal(res.status, 400, `${JSON.stringify(body).slice(0, 80)} -> ${res.status}`);
        assert.ok(res.body.errors.some((e: { path: string }) => e.path === path), `${path} in ${JSON.stringify(res.body.errors)}`);
      }
      const unknown = await api.post('/users', { username: 'carol', isAdmin: true });
      assert.equal(unknown.status, 400);
      // Full-width, upper-case and the config user's own name all fold to "alice".
      for (const username of ['\uff21lice', 'ALICE', 'alice']) {
        const res = await api.post('/users', { username });
        assert.equal(res.status, 409, username);
        assert.equal(res.body.code, 'already_exists');
        assert.deepEqual(res.body.errors.map((e: { path: string }) => e.path), ['body.username'], 'the field at fault is named');
      }
      const taken = await api.post('/users', { username: 'alice2', email: 'ALICE@example.org' });
      assert.equal(taken.status, 409);
      assert.equal(await broker.store.users.count(), count, 'nothing was stored');
    });

    test('get: ETag, 404 for an unknown id, an id with %2F, or an over-long id', async (t) => {
      if (!live(t)) return;
      const u = await create({ username: 'getter', email: 'getter@example.org' });
      const res = await api.get(`/users/${u.id}`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('etag')!, /^"[A-Za-z0-9_-]+"$/);
      assert.equal(res.body.email, 'getter@example.org');
      assert.equal((await api.get('/users/00000000-0000-0000-0000-000000000000')).status, 404);
      assert.equal((await api.get(`/users/${u.id}%2F..%2Fkeys`)).status, 404);
      assert.equal((await api.get(`/users/${'x'.repeat(129)}`)).status, 400);
    });

    test('patch: fields replace, null clears, 412 on a stale If-Match leaves the row as it was, audited with before/after', async (t) => {
      if (!live(t)) return;
      const u = await create({ username: 'patchy', email: 'patchy@example.org', name: 'Patchy', attributes: { a: 1 } });
      const read = await api.get(`/users/${u.id}`);
      const etag = read.headers.get('etag')!;
      const res = await api.patch(`/users/${u.id}`, { name: 'Patchy McPatch', familyName: 'McPatch', email: null, attributes: { b: 2 } }, { headers: { 'if-match': etag } });
      assert.equal(res.status, 200);
      assert.equal(res.body.name, 'Patchy McPatch');
      assert.equal(res.body.email, null);
      assert.deepEqual(res.body.attributes, { b: 2 });
      assert.notEqual(res.headers.get('etag'), etag);
      const stale = await api.patch(`/users/${u.id}`, { name: 'Lost update' }, { headers: { 'if-match': etag } });
      assert.equal(stale.status, 412);
      assert.equal(stale.body.code, 'precondition_failed');
      assert.equal((await broker.store.users.findById(u.id))!.name, 'Patchy McPatch');
      const [event]: any[] = await broker.store.audit.query({ type: 'admin.user.update', userId: u.id, limit: 1 });
      assert.deepEqual(event.details.changes.name, { before: 'Patchy', after: 'Patchy McPatch' });
      assert.deepEqual(event.details.changes.email, { before: 'patchy@example.org', after: null });
      assert.equal(event.details.changes.username, undefined, 'only changed fields');
      // Validation names the field; a taken email is a conflict; neither changes anything.
      const bad = await api.patch(`/users/${u.id}`, { email: 'nope', name: 'n'.repeat(201) });
      assert.equal(bad.status, 400);
      assert.deepEqual(bad.body.errors.map((e: { path: string }) => e.path).sort(), ['body.email', 'body.name']);
      assert.equal((await api.patch(`/users/${u.id}`, { email: 'alice@example.org' })).status, 409);
      assert.equal((await api.patch(`/users/${u.id}`, { username: 'ＡＬＩＣＥ' })).status, 409);
      assert.equal((await broker.store.users.findById(u.id))!.email, null);
      const renamed = await api.patch(`/users/${u.id}`, { username: 'patchy-renamed' });
      assert.equal(renamed.status, 200);
      assert.equal(renamed.body.username, 'patchy-renamed');
      assert.equal((await api.patch('/users/00000000-0000-0000-0000-000000000000', { name: 'x' })).status, 404);
    });

    test('two concurrent updates with the same If-Match: exactly one wins, the other gets 412', async (t) => {
      if (!live(t)) return;
      const u = await create({ username: 'racer' });
      const etag = (await api.get(`/users/${u.id}`)).headers.get('etag')!;
      const results = await Promise.all(['first', 'second', 'third'].map((name) => api.patch(`/users/${u.id}`, { name }, { headers: { 'if-match': etag } })));
      const statuses = results.map((r) => r.status).sort();
      assert.deepEqual(statuses, [200, 412, 412]);
      const winner = results.find((r) => r.status === 200)!;
      assert.equal((await broker.store.users.findById(u.id))!.name, winner.body.name);
    });

    test('config users are read-only (409 read_only); upstream-managed users refuse profile and password changes but may be disabled and deleted', async (t) => {
      if (!live(t)) return;
      const alice = (await api.get('/users?q=alice')).body.items.find((u: { username: string }) => u.username === 'alice');
      assert.equal(alice.source, 'config');
      const etag = (await api.get(`/users/${alice.id}`)).headers.get('etag')!;
      for (const res of [
        await api.patch(`/users/${alice.id}`, { name: 'Mallory' }),
        await api.put(`/users/${alice.id}/password`, { password: GOOD_PASSWORD }),
        await api.post(`/users/${alice.id}/password/reset`),
        await api.post(`/users/${alice.id}/disable`),
        await api.post(`/users/${alice.id}/enable`),
        await api.delete(`/users/${alice.id}`),
      ]) {
        assert.equal(res.status, 409);
        assert.equal(res.body.code, 'read_only');
        assert.match(res.body.detail, /configuration/);
      }
      const after = await api.get(`/users/${alice.id}`);
      assert.equal(after.headers.get('etag'), etag, 'alice is unchanged');

      const managed = await broker.store.users.create({ username: 'ldap-dan', managedBy: 'corp-ldap', email: 'dan@corp.example' });
      await broker.store.identities.create({ userId: managed.id, connectorId: 'corp-ldap', subject: 'uid=dan' });
      const view = await api.get(`/users/${managed.id}`);
      assert.equal(view.body.source, 'upstream');
      assert.equal(view.body.managedBy, 'corp-ldap');
      const patch = await api.patch(`/users/${managed.id}`, { name: 'Dan' });
      assert.equal(patch.status, 409);
      assert.match(patch.body.detail, /corp-ldap/);
      assert.equal((await api.put(`/users/${managed.id}/password`, { password: GOOD_PASSWORD })).status, 409);
      assert.equal((await api.post(`/users/${managed.id}/password/reset`)).status, 409);
      assert.equal(await broker.store.credentials.getPasswordHash(managed.id), null);
      const disabled = await api.post(`/users/${managed.id}/disable`);
      assert.equal(disabled.status, 200);
      assert.equal(disabled.body.user.enabled, false);
      assert.equal((await api.post(`/users/${managed.id}/enable`)).body.user.enabled, true);
      assert.equal((await api.delete(`/users/${managed.id}`)).status, 200);
    });

    test('list: 230 users in pages of 200 by cursor, no duplicates, in username order; limit and cursor validated', async (t) => {
      if (!live(t)) return;
      await broker.store.users.createMany(Array.from({ length: 230 }, (_, i) => ({ username: `page-${String(i).padStart(3, '0')}`, email: `page${i}@bulk.example`, enabled: i % 10 !== 0 })));
      const first = await api.get('/users?q=page-&limit=200');
      assert.equal(first.status, 200);
      assert.equal(first.body.items.length, 200);
      assert.ok(first.body.nextCursor);
      const second = await api.get(`/users?q=page-&limit=200&cursor=${first.body.nextCursor}`);
      assert.equal(second.body.items.length, 30);
      assert.equal(second.body.nextCursor, null);
      const names = [...first.body.items, ...second.body.items].map((u: { username: string }) => u.username);
      assert.equal(new Set(names).size, 230);
      assert.deepEqual(names, [...names].sort());
      // Every user, page by page at the default size, reaches the end.
      let cursor: string | null = null;
      let seen = 0;
      do {
        const page: any = await api.get(`/users${cursor ? `?cursor=${cursor}` : ''}`);
        seen += page.body.items.length;
        cursor = page.body.nextCursor;
      } while (cursor);
      assert.equal(seen, await broker.store.users.count());
      assert.deepEqual((await api.get('/users?limit=201')).body.errors?.[0]?.path, 'query.limit');
      assert.equal((await api.get('/users?limit=0')).status, 400);
      const badCursor = await api.get('/users?cursor=bm9wZQ');
      assert.equal(badCursor.status, 400);
      assert.equal(badCursor.body.errors[0].path, 'query.cursor');
      assert.equal((await api.get('/users?enabled=maybe')).body.errors[0].path, 'query.enabled');
      assert.equal((await api.get(`/users?q=${'q'.repeat(257)}`)).status, 400);
    });

    test('list: search by prefix of username, email or name, case-insensitive; filters by enabled, group and connector', async (t) => {
      if (!live(t)) return;
      const zed = await create({ username: 'Zed.Search', email: 'Z.Mail@Search.example', name: 'Zebedee Searcher' });
      await create({ username: 'yves-search', name: 'Yves' });
      const names = async (query: string) => ((await api.get(`/users?${query}`)).body.items as Array<{ username: string }>).map((u) => u.username);
      assert.deepEqual(await names('q=zed.s'), ['Zed.Search']);
      assert.deepEqual(await names('q=%EF%BC%BAED'), ['Zed.Search'], 'a full-width prefix folds like the username');
      assert.deepEqual(await names('q=z.mail%40'), ['Zed.Search']);
      assert.deepEqual(await names('q=ZEBEDEE'), ['Zed.Search']);
      assert.deepEqual(await names('q=search'), [], 'a prefix, not a substring');
      assert.deepEqual(await names('q=%25'), [], 'LIKE wildcards are literal');
      assert.deepEqual(await names('q=page-00'), ['page-000', 'page-001', 'page-002', 'page-003', 'page-004', 'page-005', 'page-006', 'page-007', 'page-008', 'page-009']);
      assert.deepEqual(await names('q=page-00&enabled=false'), ['page-000']);
      assert.ok(!(await names('q=page-00&enabled=true')).includes('page-000'));
      await broker.store.groups.addMember(zed.id, 'searchers');
      assert.deepEqual(await names('group=searchers'), ['Zed.Search']);
      assert.deepEqual(await names('group=staff'), ['alice']);
      assert.deepEqual(await names('group=nobody-here'), []);
      await broker.store.identities.create({ userId: zed.id, connectorId: 'github', subject: '42' });
      await broker.store.users.create({ username: 'managed-by-github', managedBy: 'github' });
      assert.deepEqual(await names('connector=github'), ['managed-by-github', 'Zed.Search'].sort((a, b) => a.toLowerCase().localeCompare(b.toLowerCase())));
      assert.deepEqual(await names('connector=github&q=zed'), ['Zed.Search']);
    });

    test('passwords: set (policy, argon2id), reset returns a strong password once; neither is in the audit', async (t) => {
      if (!live(t)) return;
      const u = await create({ username: 'pw-user' });
      const bad = await api.put(`/users/${u.id}/password`, { password: 'pw-user-pw-user' });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.errors[0].path, 'body.password');
      assert.equal((await api.put(`/users/${u.id}/password`, {})).body.errors[0].path, 'body.password');
      const set = await api.put(`/users/${u.id}/password`, { password: GOOD_PASSWORD });
      assert.equal(set.status, 200);
      assert.equal(set.body.user.hasPassword, true);
      assert.doesNotMatch(set.text, /horse/);
      assert.ok(await verifyPassword((await broker.store.credentials.getPasswordHash(u.id))!, GOOD_PASSWORD));
      const reset = await api.post(`/users/${u.id}/password/reset`);
      assert.equal(reset.status, 200);
      const generated: string = reset.body.password;
      assert.ok(generated.length >= 20);
      const hash = (await broker.store.credentials.getPasswordHash(u.id))!;
      assert.ok(await verifyPassword(hash, generated));
      assert.equal(await verifyPassword(hash, GOOD_PASSWORD), false);
      const events = await broker.store.audit.query({ type: 'admin.user.*', userId: u.id, limit: 10 });
      assert.ok(events.some((e) => e.type === 'admin.user.set_password'));
      assert.ok(events.some((e) => e.type === 'admin.user.reset_password'));
      assert.doesNotMatch(JSON.stringify(events), new RegExp(`horse|argon2|${generated.replace(/[-]/g, '\\-')}`));
      assert.equal((await api.put('/users/00000000-0000-0000-0000-000000000000/password', { password: GOOD_PASSWORD })).status, 404);
    });

    test('identities: listed without tokens, unlinked like the CLI does (the last way in may go, canSignIn says so); 404 for another user\'s', async (t) => {
      if (!live(t)) return;
      const u = await create({ username: 'linked' });
      const other = await create({ username: 'other-linked' });
      const gh = await broker.store.identities.create({ userId: u.id, connectorId: 'github', subject: 'gh-1', username: 'octo', data: { token: 'upstream-secret' } });
      await broker.store.identities.recordLogin(gh.id, { tokens: 'ciphertext-of-upstream-tokens' });
      const mine = await broker.store.identities.create({ userId: other.id, connectorId: 'github', subject: 'gh-2' });
      await broker.store.groups.addMember(u.id, 'octocats', 'github');
      const list = await api.get(`/users/${u.id}/identities`);
      assert.equal(list.status, 200);
      assert.equal(list.body.items.length, 1);
      assert.equal(list.body.items[0].connectorId, 'github');
      assert.doesNotMatch(list.text, /upstream-secret|ciphertext/);
      assert.equal((await api.delete(`/users/${u.id}/identities/${mine.id}`)).status, 404);
      const unlinked = await api.delete(`/users/${u.id}/identities/${gh.id}`);
      assert.equal(unlinked.status, 200);
      assert.equal(unlinked.body.canSignIn, false);
      assert.equal((await api.delete(`/users/${u.id}/identities/${gh.id}`)).status, 404, 'a repeated unlink is a 404, not a 500');
      assert.deepEqual((await api.get(`/users/${u.id}/groups`)).body.items, [], 'what the connector asserted went with the link');
      const [event]: any[] = await broker.store.audit.query({ type: 'admin.user.unlink_identity', userId: u.id, limit: 1 });
      assert.equal(event.details.details.identityId, gh.id);
      assert.equal((await broker.store.audit.query({ type: 'identity.unlinked', userId: u.id, limit: 1 })).length, 1);
    });

    test('groups: each with the sources asserting it', async (t) => {
      if (!live(t)) return;
      const u = await create({ username: 'grouped' });
      await broker.store.groups.addMember(u.id, 'devs');
      await broker.store.groups.addMember(u.id, 'devs', 'corp-ldap');
      await broker.store.groups.addMember(u.id, 'admins');
      const res = await api.get(`/users/${u.id}/groups`);
      assert.deepEqual(res.body.items, [{ name: 'admins', sources: ['local'] }, { name: 'devs', sources: ['corp-ldap', 'local'] }]);
      assert.equal((await api.get('/users/00000000-0000-0000-0000-000000000000/groups')).status, 404);
    });

    test('delete: 200 then 404 on repeat, with its links and credentials; stale If-Match refused first', async (t) => {
      if (!live(t)) return;
      const u = await create({ username: 'doomed', password: GOOD_PASSWORD });
      await broker.store.identities.create({ userId: u.id, connectorId: 'github', subject: 'doomed-1' });
      const etag = (await api.get(`/users/${u.id}`)).headers.get('etag')!;
      await api.patch(`/users/${u.id}`, { name: 'changed' });
      assert.equal((await api.delete(`/users/${u.id}`, { headers: { 'if-match': etag } })).status, 412);
      assert.ok(await broker.store.users.findById(u.id), 'still there');
      const gone = await api.delete(`/users/${u.id}`);
      assert.equal(gone.status, 200);
      assert.equal((await api.delete(`/users/${u.id}`)).status, 404);
      assert.equal((await api.get(`/users/${u.id}`)).status, 404);
      assert.equal(await broker.store.identities.find('github', 'doomed-1'), null);
      assert.equal(await broker.store.credentials.getPasswordHash(u.id), null);
      const [event]: any[] = await broker.store.audit.query({ type: 'admin.user.delete', userId: u.id, limit: 1 });
      assert.equal(event.details.changes.username.before, 'doomed');
      assert.equal(event.details.changes.username.after, null);
    });

    test('disable and enable: idempotent, audited, stale If-Match refused', async (t) => {
      if (!live(t)) return;
      const u = await create({ username: 'switch' });
      const etag = (await api.get(`/users/${u.id}`)).headers.get('etag')!;
      const off = await api.post(`/users/${u.id}/disable`, undefined, { headers: { 'if-match': etag } });
      assert.equal(off.status, 200);
      assert.equal(off.body.user.enabled, false);
      assert.deepEqual(off.body.ended, { sessions: [], grantsRevoked: 0 });
      assert.equal((await api.post(`/users/${u.id}/enable`, undefined, { headers: { 'if-match': etag } })).status, 412);
      assert.equal((await api.post(`/users/${u.id}/disable`)).status, 200, 'again: no error');
      const on = await api.post(`/users/${u.id}/enable`);
      assert.equal(on.body.user.enabled, true);
      assert.equal(on.body.ended, null);
      const events = await broker.store.audit.query({ type: 'admin.user.*', userId: u.id, limit: 10 });
      const disable = events.find((e) => e.type === 'admin.user.disable')!;
      assert.deepEqual((disable.details as any).changes, { enabled: { before: true, after: false } });
      assert.ok(events.some((e) => e.type === 'admin.user.enable'));
      assert.equal((await api.post('/users/00000000-0000-0000-0000-000000000000/disable')).status, 404);
    });
  });
}
