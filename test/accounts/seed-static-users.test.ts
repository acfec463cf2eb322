import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDatabase } from '../../src/storage/database.ts';
import { migrateLatest } from '../../src/storage/migrate.ts';
import { Store } from '../../src/storage/store.ts';
import { seedStaticUsers } from '../../src/accounts/seed-static-users.ts';
import { verifyPassword } from '../../src/accounts/passwords.ts';
import { parseConfig } from '../../src/config/load-config.ts';

test('static users follow the config on every start, without touching other memberships', async () => {
  const db = await openDatabase({ dataDir: ':memory:' });
  try {
    await migrateLatest(db.knex);
    const store = new Store(db.knex);
    const users = (yaml: string) => parseConfig(`issuer: http://x.example\nusers:\n${yaml}`, { env: {} }).users;

    assert.deepEqual(await seedStaticUsers(store, users('  - { username: ann, email: ann@example.org, password: first-pass, groups: [a, b] }\n')), { created: 1, updated: 0 });
    const ann = (await store.users.findByUsername('ann'))!;
    const firstHash = (await store.credentials.getPasswordHash(ann.id))!;
    assert.equal(await verifyPassword(firstHash, 'first-pass'), true);
    await store.groups.addMember(ann.id, 'granted-at-runtime', 'local');

    // Unchanged password: the stored hash is kept (no rehash on every start).
    await seedStaticUsers(store, users('  - { username: ann, email: ann@example.org, password: first-pass, groups: [a, b] }\n'));
    assert.equal(await store.credentials.getPasswordHash(ann.id), firstHash);

    assert.deepEqual(await seedStaticUsers(store, users('  - { username: ann, email: ann@new.example, name: Ann, password: second-pass, groups: [b], enabled: false }\n')), { created: 0, updated: 1 });
    const after = (await store.users.findById(ann.id))!;
    assert.equal(after.email, 'ann@new.example');
    assert.equal(after.enabled, false);
    assert.equal(await verifyPassword((await store.credentials.getPasswordHash(ann.id))!, 'second-pass'), true);
    assert.deepEqual(await store.groups.groupsOf(ann.id), ['b', 'granted-at-runtime']);
  } finally {
    await db.close();
  }
});
