// Local usernames and passwords after RFC 8265: one account per folded name whatever the Unicode
// spelling, no username with `@` from any source (config, CLI, upstream), identifiers with `@`
// only ever match emails, passwords compared as NFC, and migration 0006 on existing rows.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { openDatabase, type Database } from '../../src/storage/database.ts';
import { migrateLatest } from '../../src/storage/migrate.ts';
import { migrations } from '../../src/storage/migrations/index.ts';
import { Store } from '../../src/storage/store.ts';
import { linkIdentity } from '../../src/accounts/link-identity.ts';
import { hashPassword, verifyPassword } from '../../src/accounts/passwords.ts';
import { deriveUsername, usernameKey, usernameProblem } from '../../src/accounts/normalize-username.ts';
import { parseConfig } from '../../src/config/load-config.ts';
import { ConfigError, InvalidInput } from '../../src/errors.ts';

const run = promisify(execFile);
const NFC = 'zo\u00eb';
const NFD = 'zoe\u0308';

describe('usernames and passwords (RFC 8265)', () => {
  let db: Database;
  let store: Store;
  before(async () => {
    db = await openDatabase({ dataDir: ':memory:' });
    await migrateLatest(db.knex);
    store = new Store(db.knex);
  });
  after(() => db?.close());

  test('keys: NFKC and case folding; problems never echo the value', () => {
    assert.equal(usernameKey(NFD), usernameKey(NFC));
    assert.equal(usernameKey('ZOË'), NFC);
    assert.equal(usernameKey('ｚｏë'), NFC, 'full-width letters');
    assert.equal(usernameKey('Straße'), usernameKey('STRASSE'));
    assert.equal(usernameProblem('pia@example.org'), 'must not contain "@" (an email address goes in the email field)');
    assert.equal(usernameProblem('two words'), 'must not contain whitespace');
    assert.equal(usernameProblem('zero\u200bwidth'), 'must not contain control or invisible format characters');
    assert.equal(usernameProblem(NFD), null);
    assert.equal(deriveUsername('Pia.Confirm@example.org'), 'Pia.Confirm');
    assert.equal(deriveUsername('Ann Lee'), 'Ann-Lee');
    assert.equal(deriveUsername('@example.org'), null);
  });

  test('one account per folded name: the NFD spelling finds the NFC account, and cannot make a look-alike', async () => {
    const zoe = await store.users.create({ username: NFC });
    assert.equal((await store.users.findByUsername(NFD))?.id, zoe.id);
    assert.equal((await store.users.findLoginAccount({ login: 'ZOE\u0308' }))?.user.id, zoe.id);
    await assert.rejects(store.users.create({ username: NFD }), { code: 'already_exists' });
    await assert.rejects(store.users.create({ username: 'ｚｏë' }), { code: 'already_exists' });
    const nfdMade = await store.users.create({ username: 'mare\u0301n' });
    assert.equal(nfdMade.username, 'mar\u00e9n', 'stored composed');
  });

  test('no username with @ from any path; @-identifiers match emails only', async () => {
    await assert.rejects(store.users.create({ username: 'x@example.org' }), InvalidInput);
    const u = await store.users.create({ username: 'plain' });
    await assert.rejects(store.users.update(u.id, { username: 'plain@example.org' }), InvalidInput);
    await store.users.create({ username: 'mailer', email: 'Plain@Example.org' });
    assert.equal((await store.users.findLoginAccount({ login: 'plain@example.org' }))?.user.username, 'mailer', 'an @-identifier is an email');
    assert.equal((await store.users.findLoginAccount({ login: 'plain' }))?.user.id, u.id);

    assert.throws(() => parseConfig('issuer: http://x.example\nusers:\n  - { username: a@b.example, password: pass-1 }\n', { env: {} }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.deepEqual(err.issues.map((i) => i.path), ['users[0].username']);
      assert.match(err.issues[0]!.message, /must not contain "@"/);
      assert.doesNotMatch(err.message, /a@b\.example/, 'the message does not repeat the value');
      return true;
    });
  });

  test('an upstream username that is an email or has spaces becomes a valid local one, with a suffix on collision', async () => {
    const owner = await store.users.create({ username: 'pia', email: 'pia.confirm@example.org', emailVerified: true });
    const first = await linkIdentity(store, { connectorId: 'corp', subject: 'p-1', username: 'Pia.Confirm@example.org' });
    assert.equal(first.user.username, 'Pia.Confirm');
    const second = await linkIdentity(store, { connectorId: 'other', subject: 'p-2', username: 'pia.confirm@other.example' });
    assert.equal(second.user.username, 'pia.confirm-2');
    const spaced = await linkIdentity(store, { connectorId: 'corp', subject: 'p-3', username: ' Ann  Lee ' });
    assert.equal(spaced.user.username, 'Ann-Lee');
    const nothingUsable = await linkIdentity(store, { connectorId: 'corp', subject: '@@', username: '@x' });
    assert.equal(nothingUsable.user.username, 'user');
    assert.equal((await store.users.findLoginAccount({ login: 'pia.confirm@example.org' }))?.user.id, owner.id, 'the email still finds its owner');
  });

  test('passwords: NFC on store and on login; hashes made before normalization still verify', async () => {
    const hash = await hashPassword(`p${NFD}ss`);
    assert.equal(await verifyPassword(hash, `p${NFC}ss`), true);
    assert.equal(await verifyPassword(hash, `p${NFD}ss`), true);
    assert.equal(await verifyPassword(await hashPassword('no\u00a0break'), 'no break'), true, 'non-ASCII spaces are spaces');
    assert.equal(await verifyPassword(hash, 'pzoess'), false);
    const { hash: raw } = await import('@node-rs/argon2');
    const legacy = await raw(`p${NFD}ss`, { memoryCost: 19456, timeCost: 2, parallelism: 1 });
    assert.equal(await verifyPassword(legacy, `p${NFD}ss`), true, 'an old NFD hash, typed as then');
  });

  test('migration 0006: collisions keep the older account, @-names are derived; nothing fails; renames are audited', async () => {
    const old = await openDatabase({ dataDir: ':memory:' });
    try {
      const before0006 = migrations.filter((m) => m.name < '0006');
      for (const m of before0006) await m.up(old.knex);
      const at = (s: number) => new Date(Date.UTC(2024, 0, 1, 0, 0, s));
      const rows = [
        { id: 'u1', username: NFC, created_at: at(1) },
        { id: 'u2', username: NFD, created_at: at(2) },
        { id: 'u3', username: 'Pia.Confirm@example.org', email: null, created_at: at(3) },
        { id: 'u4', username: 'pia.confirm', created_at: at(4) },
        { id: 'u5', username: 'zoë-2', created_at: at(5) },
      ];
      await old.knex('users').insert(rows);
      const later = migrations.filter((m) => m.name >= '0006');
      for (const m of later) await m.up(old.knex);
      const after = Object.fromEntries((await old.knex('users').select('id', 'username', 'username_key')).map((r: { id: string; username: string }) => [r.id, r.username]));
      assert.deepEqual(after, { u1: NFC, u2: 'zoë-3', u3: 'Pia.Confirm-2', u4: 'pia.confirm', u5: 'zoë-2' }, 'untouched names stay, renames pick around them');
      const renamed = await old.knex('audit_events').where({ type: 'user.renamed' }).orderBy('user_id');
      assert.deepEqual(renamed.map((e: { user_id: string; details: { reason: string } }) => [e.user_id, e.details.reason]), [['u2', 'username_collision'], ['u3', 'contains_at']]);
      await assert.rejects(old.knex('users').insert({ id: 'u6', username: 'ZOË', username_key: NFC }), /unique|duplicate/i);
    } finally {
      await old.close();
    }
  });

  test('`keybridge users add` refuses a username with @ before touching the database', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'kb-users-'));
    try {
      const configFile = path.join(dir, 'keybridge.yaml');
      await writeFile(configFile, `issuer: http://127.0.0.1:1\ndatabase: { dataDir: ${JSON.stringify(path.join(dir, 'data'))} }\nlog: { level: warn }\n`);
      const main = path.resolve(import.meta.dirname, '../../src/cli/main.ts');
      const failed = await run(process.execPath, [main, 'users', 'add', 'bob@example.org', '-c', configFile], { env: { PATH: process.env.PATH ?? '', KEYBRIDGE_PASSWORD: 'pw-123456' } }).catch((e) => e);
      assert.equal(failed.code, 2);
      assert.match(failed.stderr, /invalid username: must not contain "@"/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
