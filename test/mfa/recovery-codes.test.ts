// Recovery codes on both stores: issued once in plain text, stored hashed, each usable once.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { skipLoudly } from '../helpers/skip.ts';
import { openDatabase } from '../../src/storage/database.ts';
import { migrateLatest } from '../../src/storage/migrate.ts';
import { Store } from '../../src/storage/store.ts';
import { issueRecoveryCodes, normalizeRecoveryCode, useRecoveryCode } from '../../src/mfa/recovery-codes.ts';
import { freshPostgresDatabase } from '../helpers/postgres.ts';

function recoverySuite(name: string, open: () => Promise<{ store: Store; close(): Promise<void> } | { skip: string }>) {
  describe(`recovery codes on ${name}`, () => {
    let backend: { store: Store; close(): Promise<void> } | undefined;
    let skip: string | undefined;
    before(async () => {
      const opened = await open();
      if ('skip' in opened) skip = opened.skip;
      else backend = opened;
    });
    after(async () => backend?.close());

    test('10 distinct codes, stored hashed, each usable once; the count goes down', async (t) => {
      if (skip || !backend) return skipLoudly(t, skip ?? 'the store did not open');
      const { store } = backend;
      const user = await store.users.create({ username: 'alice' });
      const codes = await issueRecoveryCodes(store, user.id);
      assert.equal(codes.length, 10);
      assert.equal(new Set(codes).size, 10);
      for (const code of codes) assert.match(code, /^[2-9a-hjkmnp-z]{5}-[2-9a-hjkmnp-z]{5}$/);
      const rows: { code_hash: string }[] = await store.knex('mfa_recovery_codes').where({ user_id: user.id }).select('code_hash');
      assert.equal(rows.length, 10);
      for (const { code_hash } of rows) {
        assert.match(code_hash, /^[0-9a-f]{64}$/);
        assert.ok(!codes.some((c) => code_hash.includes(c.replace('-', ''))), 'no code in plain text');
      }
      assert.equal(await store.mfa.recoveryCodesLeft(user.id), 10);
      assert.equal(await useRecoveryCode(store, user.id, codes[0]), 9);
      assert.equal(await useRecoveryCode(store, user.id, codes[0]), null, 'used once only');
      assert.equal(await useRecoveryCode(store, user.id, codes[1]), 8);
      assert.equal(await store.mfa.recoveryCodesLeft(user.id), 8);

      const other = await store.users.create({ username: 'bob' });
      assert.equal(await useRecoveryCode(store, other.id, codes[2]), null, "another user's code");
      assert.equal(await useRecoveryCode(store, user.id, codes[2]), 7, 'still valid for its owner');
    });

    test('formatting variants are accepted; hostile input is refused', async (t) => {
      if (skip || !backend) return skipLoudly(t, skip ?? 'the store did not open');
      const { store } = backend;
      const user = await store.users.create({ username: 'carol' });
      const codes = await issueRecoveryCodes(store, user.id);
      const bare = codes.map((c) => c.replace('-', ''));
      const variants = [codes[0].toUpperCase(), bare[1], ` ${bare[2].slice(0, 3)} ${bare[2].slice(3)} `, `${bare[3].slice(0, 2)}--${bare[3].slice(2)}`, codes[4].replace('-', '\t')];
      let left = 10;
      for (const v of variants) assert.equal(await useRecoveryCode(store, user.id, v), --left, v);
      for (const bad of [`${codes[5]}\u0000`, codes[5].slice(0, 10), `${codes[5]}x`, codes[5].repeat(1000), 'x'.repeat(10_240), '\ud800'.repeat(10), 'ｌｏｏｋｓ-ｌｉｋｅ', 12345, null, { code: codes[5] }]) {
        assert.equal(await useRecoveryCode(store, user.id, bad), null, JSON.stringify(bad)?.slice(0, 40));
      }
      assert.equal(await useRecoveryCode(store, user.id, codes[5]), left - 1, 'refused inputs used nothing');
      assert.equal(normalizeRecoveryCode('ABCDE-FGHJK'), 'abcdefghjk');
      assert.equal(normalizeRecoveryCode('abcde-fghj0'), null, '0 is not in the alphabet');
    });

    test('reissuing invalidates the earlier codes', async (t) => {
      if (skip || !backend) return skipLoudly(t, skip ?? 'the store did not open');
      const { store } = backend;
      const user = await store.users.create({ username: 'dave' });
      const first = await issueRecoveryCodes(store, user.id);
      await useRecoveryCode(store, user.id, first[0]);
      const second = await issueRecoveryCodes(store, user.id);
      assert.equal(second.filter((c) => first.includes(c)).length, 0);
      assert.equal(await store.mfa.recoveryCodesLeft(user.id), 10);
      for (const old of first.slice(1)) assert.equal(await useRecoveryCode(store, user.id, old), null);
      assert.equal(await useRecoveryCode(store, user.id, second[9]), 9);
    });
  });
}

recoverySuite('PGlite', async () => {
  const db = await openDatabase({ dataDir: ':memory:' });
  await migrateLatest(db.knex);
  return { store: new Store(db.knex), close: () => db.close() };
});

recoverySuite('PostgreSQL', async () => {
  const fresh = await freshPostgresDatabase();
  if ('skip' in fresh) return fresh;
  const db = await openDatabase({ url: fresh.url });
  await migrateLatest(db.knex);
  return { store: new Store(db.knex), close: async () => { await db.close(); await fresh.drop(); } };
});
