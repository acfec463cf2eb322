import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { openDatabase, type Database } from '../../src/storage/database.ts';
import { migrateLatest } from '../../src/storage/migrate.ts';
import { Store } from '../../src/storage/store.ts';
import { ConnectorRegistry, checkConnectorEntries } from '../../src/connectors/registry.ts';
import { createLocalAccounts } from '../../src/accounts/local-accounts.ts';
import { hashPassword } from '../../src/accounts/passwords.ts';
import { ConfigError } from '../../src/errors.ts';
import type { PasswordConnector } from '../../src/connectors/contract.ts';

describe('local connector through the registry', () => {
  let db: Database;
  let store: Store;
  let registry: ConnectorRegistry;
  let login: PasswordConnector['login'];
  let refresh: NonNullable<PasswordConnector['refresh']>;

  before(async () => {
    db = await openDatabase({ dataDir: ':memory:' });
    await migrateLatest(db.knex);
    store = new Store(db.knex);
    const u = await store.users.create({ username: 'mia', email: 'mia@example.org', emailVerified: true, name: 'Mia' });
    await store.credentials.setPassword(u.id, await hashPassword('mia-password-1'));
    await store.groups.setMemberships(u.id, ['crew']);
    await store.users.create({ username: 'nopass' });
    registry = await ConnectorRegistry.open(
      [
        { id: 'local', type: 'local', name: 'Local', enabled: true, config: {}, origin: 'connectors[0]' },
        { id: 'strict', type: 'local', name: 'Usernames only', enabled: true, config: { allowEmailLogin: false }, origin: 'connectors[1]' },
        { id: 'off', type: 'local', name: 'Off', enabled: false, config: { bogus: true }, origin: 'connectors[2]' },
      ],
      { logger: pino({ level: 'silent' }), localAccounts: createLocalAccounts(store) },
    );
    const c = registry.get('local')!.connector as PasswordConnector;
    login = c.login.bind(c);
    refresh = c.refresh!.bind(c);
  });
  after(async () => {
    await registry?.close();
    await db?.close();
  });

  test('disabled entries are not loaded (nor validated)', () => {
    assert.deepEqual(registry.list().map((c) => c.id), ['local', 'strict']);
    assert.equal(registry.get('off'), undefined);
  });

  test('good password, by username (any case) or email', async () => {
    for (const name of ['mia', 'MIA', 'mia@example.org']) {
      const r = await login(name, 'mia-password-1');
      assert.equal(r.ok, true, name);
      if (r.ok) {
        assert.equal(r.identity.username, 'mia');
        assert.equal(r.identity.email, 'mia@example.org');
        assert.deepEqual(r.identity.groups, ['crew']);
        assert.deepEqual(r.identity.amr, ['pwd']);
        assert.equal(r.identity.localUserId, r.identity.subject);
      }
    }
  });

  test('failures are results, and the same result for unknown users', async () => {
    assert.deepEqual(await login('mia', 'wrong'), { ok: false, reason: 'invalid_credentials', detail: 'wrong password' });
    assert.deepEqual(await login('ghost', 'wrong'), { ok: false, reason: 'invalid_credentials', detail: 'no such user' });
    assert.equal((await login('nopass', '')).ok, false);
    assert.equal((await login('', 'x')).ok, false);
    assert.equal((await login("mia' OR '1'='1", 'x')).ok, false);
  });

  test('email login can be turned off per connector', async () => {
    const strict = registry.get('strict')!.connector as PasswordConnector;
    assert.equal((await strict.login('mia@example.org', 'mia-password-1')).ok, false);
    assert.equal((await strict.login('mia', 'mia-password-1')).ok, true);
  });

  test('a disabled user is refused after the password check; refresh notices too', async () => {
    const mia = (await store.users.findByUsername('mia'))!;
    const ok = await login('mia', 'mia-password-1');
    assert.ok(ok.ok);
    await store.users.update(mia.id, { enabled: false });
    try {
      assert.deepEqual(await login('mia', 'mia-password-1'), { ok: false, reason: 'account_disabled' });
      assert.deepEqual(await refresh(ok.identity), { ok: false, reason: 'account_disabled' });
    } finally {
      await store.users.update(mia.id, { enabled: true });
    }
    assert.equal((await refresh(ok.identity)).ok, true);
    assert.deepEqual(await refresh({ ...ok.identity, localUserId: '00000000-0000-0000-0000-000000000000' }), { ok: false, reason: 'user_gone' });
  });

  test('Unicode: the decomposed spelling of a username and of a password signs in (RFC 8265)', async () => {
    const zoe = await store.users.create({ username: 'Zo\u00eb', email: 'zoe@example.org' });
    await store.credentials.setPassword(zoe.id, await hashPassword('cr\u00e8me-br\u00fbl\u00e9e'));
    for (const name of ['Zo\u00eb', 'zoe\u0308', 'ZOE\u0308', 'ｚｏë']) {
      const r = await login(name, 'cre\u0300me-bru\u0302le\u0301e');
      assert.equal(r.ok && r.identity.subject, zoe.id, JSON.stringify(name));
    }
  });

  test("one account's username never shadows another's email", async () => {
    // Only possible before: a username that is someone else's email (now refused on store).
    const owner = await store.users.create({ username: 'pia', email: 'pia.confirm@example.org' });
    await store.credentials.setPassword(owner.id, await hashPassword('pia-password-1'));
    await db.knex('users').insert({ id: 'legacy-at', username: 'Pia.Confirm@example.org', username_key: 'pia.confirm@example.org' });
    const r = await login('Pia.Confirm@example.org', 'pia-password-1');
    assert.equal(r.ok && r.identity.subject, owner.id);
  });

  test('bad connector config and unknown types are reported with their paths', async () => {
    const { issues } = await checkConnectorEntries([
      { id: 'a', type: 'local', name: 'A', enabled: true, config: { allowEmailLogin: 'yes' }, origin: 'connectors[0]' },
      { id: 'b', type: 'ldapx', name: 'B', enabled: true, config: {}, origin: 'connectors[1]' },
      { id: 'c', type: '../../etc', name: 'C', enabled: true, config: {}, origin: 'connectors[2]' },
    ]);
    assert.deepEqual(issues.map((i) => i.path), ['connectors[0].config.allowEmailLogin', 'connectors[1].type', 'connectors[2].type']);
    await assert.rejects(
      ConnectorRegistry.open([{ id: 'a', type: 'local', name: 'A', enabled: true, config: { nope: 1 }, origin: 'connectors[0]' }], { logger: pino({ level: 'silent' }), localAccounts: createLocalAccounts(store) }),
      (err: ConfigError) => err instanceof ConfigError && err.issues[0].path === 'connectors[0].config',
    );
  });
});
