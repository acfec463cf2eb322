import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDatabase } from '../../src/storage/database.ts';
import { migrateLatest } from '../../src/storage/migrate.ts';
import { Store } from '../../src/storage/store.ts';
import { seedStaticUsers } from '../../src/accounts/seed-static-users.ts';
import { hashPassword, verifyPassword } from '../../src/accounts/passwords.ts';
import { parseConfig } from '../../src/config/load-config.ts';

test('static users follow the config on every start, without touching other memberships', async () => {
  const db = await openDatabase({ dataDir: ':memory:' });
  try {
    await migrateLatest(db.knex);
    const store = new Store(db.knex);
    const users = (yaml: string) => parseConfig(`issuer: http://x.example\nusers:\n${yaml}`, { env: {} }).users;

    assert.deepEqual(await seedStaticUsers(store, users('  - { username: ann, email: ann@example.org, password: first-lantern-harbor, groups: [a, b] }\n')), { created: 1, updated: 0, unchanged: 0, argon2: 1 });
    const ann = (await store.users.findByUsername('ann'))!;
    const firstHash = (await store.credentials.getPasswordHash(ann.id))!;
    assert.equal(await verifyPassword(firstHash, 'first-lantern-harbor'), true);
    await store.groups.addMember(ann.id, 'granted-at-runtime', 'local');

    // Unchanged password: the stored hash is kept (no rehash on every start).
    const stamp = async () => (await db.knex.raw("SELECT u.updated_at, c.updated_at AS credential_at, c.data FROM users u JOIN credentials c ON c.user_id = u.id AND c.type = 'password' WHERE u.id = ?", [ann.id])).rows[0];
    const before = await stamp();
    assert.deepEqual(await seedStaticUsers(store, users('  - { username: ann, email: ann@example.org, password: first-lantern-harbor, groups: [b, a] }\n')), { created: 0, updated: 0, unchanged: 1, argon2: 0 });
    assert.equal(await store.credentials.getPasswordHash(ann.id), firstHash);
    // Nothing changed in the config: nothing is written (the user's updated_at stays).
    assert.deepEqual(await stamp(), before);
    assert.deepEqual(await store.groups.groupsOf(ann.id), ['a', 'b', 'granted-at-runtime']);

    // One field or one group changed is written, and only that user.
    assert.deepEqual(await seedStaticUsers(store, users('  - { username: ann, email: ann@example.org, name: Ann A., password: first-lantern-harbor, groups: [a, b] }\n')), { created: 0, updated: 1, unchanged: 0, argon2: 0 });
    assert.equal((await store.users.findById(ann.id))!.name, 'Ann A.');
    assert.deepEqual(await seedStaticUsers(store, users('  - { username: ann, email: ann@example.org, name: Ann A., password: first-lantern-harbor, groups: [a] }\n')), { created: 0, updated: 1, unchanged: 0, argon2: 0 });
    assert.deepEqual(await store.groups.groupsOf(ann.id), ['a', 'granted-at-runtime']);
    // A change made outside the config (the admin API, say) is put back at the next start: the config is authoritative.
    await store.users.update(ann.id, { email: 'elsewhere@example.org' });
    assert.deepEqual(await seedStaticUsers(store, users('  - { username: ann, email: ann@example.org, name: Ann A., password: first-lantern-harbor, groups: [a] }\n')), { created: 0, updated: 1, unchanged: 0, argon2: 0 });
    assert.equal((await store.users.findById(ann.id))!.email, 'ann@example.org');

    assert.deepEqual(await seedStaticUsers(store, users('  - { username: ann, email: ann@new.example, name: Ann, password: second-lantern-harbor, groups: [b], enabled: false }\n')), { created: 0, updated: 1, unchanged: 0, argon2: 2 });
    const after = (await store.users.findById(ann.id))!;
    assert.equal(after.email, 'ann@new.example');
    assert.equal(after.enabled, false);
    assert.equal(await verifyPassword((await store.credentials.getPasswordHash(ann.id))!, 'second-lantern-harbor'), true);
    assert.deepEqual(await store.groups.groupsOf(ann.id), ['b', 'granted-at-runtime']);
  } finally {
    await db.close();
  }
});

test('a start where no static password changed does no argon2 work, and a changed one still takes effect', async () => {
  const db = await openDatabase({ dataDir: ':memory:' });
  try {
    await migrateLatest(db.knex);
    const store = new Store(db.knex);
    const config = (passwordOf: (i: number) => string) =>
      parseConfig(`issuer: http://x.example\nusers:\n${Array.from({ length: 16 }, (_, i) => `  - { username: user${i}, password: ${passwordOf(i)} }\n`).join('')}`, { env: {} }).users;
    const hashOf = async (name: string) => (await store.credentials.getPasswordHash((await store.users.findByUsername(name))!.id))!;

    assert.deepEqual(await seedStaticUsers(store, config((i) => `tangerine-orbit-${i}`)), { created: 16, updated: 0, unchanged: 0, argon2: 16 });
    const first = await hashOf('user3');
    // Unchanged: 16 users cost no argon2 at all (before: one verify each, ~20 ms apiece), and no write.
    assert.deepEqual(await seedStaticUsers(store, config((i) => `tangerine-orbit-${i}`)), { created: 0, updated: 0, unchanged: 16, argon2: 0 });
    assert.equal(await hashOf('user3'), first);

    // One password changed in config: only that user is hashed again, and the new one works.
    const changed = await seedStaticUsers(store, config((i) => (i === 3 ? 'new-tangerine-orbit-3' : `tangerine-orbit-${i}`)));
    assert.ok(changed.argon2 > 0 && changed.argon2 <= 2, `argon2 ${changed.argon2}`);
    assert.equal(await verifyPassword(await hashOf('user3'), 'new-tangerine-orbit-3'), true);
    assert.equal(await verifyPassword(await hashOf('user3'), 'tangerine-orbit-3'), false);
    assert.equal((await seedStaticUsers(store, config((i) => (i === 3 ? 'new-tangerine-orbit-3' : `tangerine-orbit-${i}`)))).argon2, 0);

    // A password set by other means (admin API) is not vouched for by the old fingerprint:
    // config stays authoritative at the next start.
    const user5 = (await store.users.findByUsername('user5'))!;
    await store.credentials.setPassword(user5.id, await hashPassword('set-by-admin'));
    assert.ok((await seedStaticUsers(store, config((i) => (i === 3 ? 'new-tangerine-orbit-3' : `tangerine-orbit-${i}`)))).argon2 > 0);
    assert.equal(await verifyPassword(await hashOf('user5'), 'tangerine-orbit-5'), true);

    // A forged fingerprint (no key) does not stand in for a check.
    await db.knex.raw("UPDATE credentials SET data = jsonb_build_object('configFingerprint', 'x') WHERE user_id = ?", [user5.id]);
    assert.equal((await seedStaticUsers(store, config((i) => (i === 3 ? 'new-tangerine-orbit-3' : `tangerine-orbit-${i}`)))).argon2, 1);
  } finally {
    await db.close();
  }
});
