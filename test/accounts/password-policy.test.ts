// The password policy (src/accounts/password-policy.ts) on PGlite and PostgreSQL: every refusal
// code with its reason, the order of the checks, the offline breached list, zxcvbn with the
// person's own names, history (the last N refused, the N+1-th allowed), expiry and the check a
// login makes, migration 0014's tables, and hostile input (1 MB, NUL, lone surrogates).
import { declaredInConfig } from '../../src/accounts/config-users.ts';
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { openDatabase, type Database } from '../../src/storage/database.ts';
import { migrateLatest } from '../../src/storage/migrate.ts';
import { Store } from '../../src/storage/store.ts';
import { createPasswordPolicy, codePointsUpTo, describePasswordProblem, type PasswordPolicyService } from '../../src/accounts/password-policy.ts';
import { isCommonPassword, sortedLinesInclude } from '../../src/accounts/breached-passwords.ts';
import { estimateStrength, stopStrengthEstimator, strengthEstimatorRunning } from '../../src/accounts/password-strength.ts';
import { passwordPolicySchema, type PasswordPolicyConfig } from '../../src/config/password-policy-schema.ts';
import { verifyPassword } from '../../src/accounts/passwords.ts';
import { MessageCatalogs } from '../../src/i18n/messages.ts';
import { parseConfig } from '../../src/config/load-config.ts';
import { seedStaticUsers } from '../../src/accounts/seed-static-users.ts';
import { ConfigError } from '../../src/errors.ts';
import { STORES, SuiteDatabase } from '../helpers/suite-database.ts';

const settings = (over: Partial<Record<keyof PasswordPolicyConfig, unknown>> = {}): PasswordPolicyConfig => passwordPolicySchema.parse(over);
const STRONG = ['tangerine-orbit-lantern-7', 'violet-harbour-quartz-9', 'copper-meadow-glacier-4', 'saffron-tundra-beacon-2', 'indigo-walrus-pepper-5', 'marble-canyon-whistle-8'];

describe('password policy: the list and the rules alone', () => {
  test('the shipped list is the sorted, lowercase top 100,000 and is searched by bytes', () => {
    const buf = gunzipSync(readFileSync(path.join(import.meta.dirname, '../../src/accounts/common-passwords/top-100k.txt.gz')));
    const lines = buf.toString('utf8').replace(/\n$/, '').split('\n');
    // Case variants fold together: fewer than 100,000 lines, but not many fewer.
    assert.ok(lines.length > 95_000 && lines.length <= 100_000, `${lines.length} lines`);
    for (let i = 1; i < lines.length; i++) assert.ok(Buffer.compare(Buffer.from(lines[i - 1]), Buffer.from(lines[i])) < 0, `not sorted at line ${i}`);
    assert.ok(lines.every((l) => l === l.toLowerCase() && l.length > 0));
    const tiny = Buffer.from('apple\nbanana\ncherry');
    for (const word of ['apple', 'banana', 'cherry']) assert.equal(sortedLinesInclude(tiny, Buffer.from(word)), true, word);
    for (const word of ['', 'app', 'applex', 'banan', 'zzz', 'a']) assert.equal(sortedLinesInclude(tiny, Buffer.from(word)), false, word);
  });

  test('breached passwords are found without regard to case; others are not', async () => {
    assert.equal(await isCommonPassword('chickenwing101'), true);
    assert.equal(await isCommonPassword('ChickenWing101'), true);
    assert.equal(await isCommonPassword('CHICKENWING101'), true);
    assert.equal(await isCommonPassword('password'), true);
    assert.equal(await isCommonPassword('tangerine-orbit-lantern-7'), false);
    assert.equal(await isCommonPassword('password\nqwerty'), false);
  });

  test('code points are counted, not UTF-16 units, and counting stops at the limit', () => {
    assert.equal(codePointsUpTo('abc', 10), 3);
    assert.equal(codePointsUpTo('😀😀', 10), 2);
    assert.equal(codePointsUpTo('\ud800\ud800x', 10), 3);
    assert.equal(codePointsUpTo('x'.repeat(1 << 20), 129), 129);
    assert.equal(codePointsUpTo('😀'.repeat(100), 129), 100);
  });

  test('zxcvbn runs in a worker that starts on the first estimate, serves concurrent ones, and starts again after it ends', async () => {
    await stopStrengthEstimator();
    // Making a policy and using the breached list loads no zxcvbn.
    const policy = createPasswordPolicy(settings(), null);
    assert.equal((await policy.problem('password', {}))?.code, 'too_short');
    assert.equal((await policy.problem('chickenwing101', {}))?.code, 'breached');
    assert.equal(strengthEstimatorRunning(), false);
    const many = await Promise.all(['abcdefghijklmnop', 'tangerine-orbit-lantern-7', 'qwertyuiopasdfgh', 'violet-harbour-quartz-9'].map((pw) => estimateStrength(pw, [])));
    assert.deepEqual(many.map((e) => e.score >= 3), [false, true, false, true]);
    assert.equal(strengthEstimatorRunning(), true);
    await stopStrengthEstimator();
    assert.equal(strengthEstimatorRunning(), false);
    assert.equal((await estimateStrength('\ud800 lone \udc00 surrogates \u0000 and NUL', [])).score >= 0, true);
    assert.equal(strengthEstimatorRunning(), true);
  });

  test('zxcvbn judges the first 64 characters: a long password is as strong as its start', async () => {
    const policy = createPasswordPolicy(settings(), null);
    assert.equal((await policy.problem('password'.repeat(16), {}))?.code, 'weak');
    assert.equal((await policy.problem('aaaaaaaa'.repeat(8) + 'tangerine-orbit-lantern-7', {}))?.code, 'weak');
    assert.equal(await policy.problem('tangerine-orbit-lantern-7-' + 'a'.repeat(100), {}), null);
  });

  test('config: defaults, bounds, and minLength not above maxLength', () => {
    assert.deepEqual(settings(), { minLength: 12, maxLength: 128, minScore: 3, breachedList: true, history: 5, expiryDays: 0 });
    assert.deepEqual(parseConfig('issuer: http://x.example\npasswordPolicy: { minScore: "4", breachedList: "false", expiryDays: "90" }\n', { env: {} }).passwordPolicy, { minLength: 12, maxLength: 128, minScore: 4, breachedList: false, history: 5, expiryDays: 90 });
    for (const bad of ['{ maxLength: 5000 }', '{ minScore: 5 }', '{ minLength: 40, maxLength: 20 }', '{ history: -1 }', '{ history: 25 }', '{ nope: 1 }', '{ minLength: 1.5 }']) {
      assert.throws(() => parseConfig(`issuer: http://x.example\npasswordPolicy: ${bad}\n`, { env: {} }), (err: unknown) => err instanceof ConfigError && err.issues.some((i) => i.path.startsWith('passwordPolicy')), bad);
    }
  });
});

for (const backend of STORES) {
  describe(`password policy on ${backend.name}`, () => {
    const suite = new SuiteDatabase(backend.url);
    let db: Database;
    let store: Store;
    let policy: PasswordPolicyService;

    before(async () => {
      if (!(await suite.open())) return;
      db = await openDatabase(suite.url ? { url: suite.url } : { dataDir: ':memory:' });
      await migrateLatest(db.knex);
      store = new Store(db.knex);
      policy = createPasswordPolicy(settings(), store);
    });
    after(async () => {
      await db?.close();
      await suite.drop();
    });
    const live = (t: { skip(msg: string): void }) => suite.live(t);
    const newUser = (username: string, extra: { email?: string; name?: string } = {}) => store.users.create({ username, email: extra.email ?? null, name: extra.name ?? null });

    test('every refusal has its code, values and reason; a good password passes', async (t) => {
      if (!live(t)) return;
      const alice = { username: 'asmith', email: 'alice@example.org', name: 'Alice Smith' };
      assert.deepEqual(await policy.problem('x'.repeat(129), alice), { code: 'too_long', values: { max: 128 }, message: 'must be at most 128 characters' });
      assert.deepEqual(await policy.problem('Short-1!', alice), { code: 'too_short', values: { min: 12 }, message: 'must be at least 12 characters' });
      assert.equal((await policy.problem('chickenwing101', alice))?.code, 'breached');
      const weak = await policy.problem('abcdefghijklmnop', alice);
      assert.equal(weak?.code, 'weak');
      assert.equal(weak?.values?.warningKey, 'sequences');
      assert.match(String(weak?.values?.warning), /sequences like "abc"/);
      assert.match(weak!.message, /^is too easy to guess: /);
      for (const built of ['aliceexample2024', 'alice-smith-2024', 'Smith.Alice.1975', 'asmith-asmith']) {
        assert.equal((await policy.problem(built, alice))?.code, 'like_identity', built);
      }
      // The same passwords are fine for someone else.
      assert.equal(await policy.problem('alice-smith-2024', { username: 'bob', email: 'bob@example.org' }), null);
      assert.equal(await policy.problem('tangerine-orbit-lantern-7', alice), null);
      // 128 code points of emoji are 256 UTF-16 units: still within maxLength.
      assert.equal(await policy.problem('🍊🚀🏮🌋'.repeat(32), alice), null);
      assert.equal((await policy.problem('🍊🚀🏮🌋'.repeat(32) + 'x', alice))?.code, 'too_long');
    });

    test('the cheapest check decides first: length before the list, the list before zxcvbn, all before hashing', async (t) => {
      if (!live(t)) return;
      const userId = (await newUser('order-check')).id;
      await policy.setPassword(store, userId, 'tangerine-orbit-lantern-7');
      // 1 MB: refused for its length (it never reaches the list, zxcvbn or argon2 with the history).
      const huge = 'password'.repeat(131_072);
      assert.equal((await policy.problem(huge, { userId, username: 'order-check' }))?.code, 'too_long');
      // A breached password that is also too long for a stricter policy is refused for length.
      const strict = createPasswordPolicy(settings({ maxLength: 12 }), store);
      assert.equal((await strict.problem('chickenwing101', {}))?.code, 'too_long');
      // Too short and breached: too_short. Breached and weak: breached. Reused and fine otherwise: reused.
      assert.equal((await policy.problem('password', {}))?.code, 'too_short');
      assert.equal((await policy.problem('qwertyuiop12', {}))?.code, 'breached');
      assert.equal((await createPasswordPolicy(settings({ breachedList: false }), store).problem('qwertyuiop12', {}))?.code, 'weak');
      assert.equal((await policy.problem('tangerine-orbit-lantern-7', { userId, username: 'order-check' }))?.code, 'reused');
      // Checks switched off are off.
      const lax = createPasswordPolicy(settings({ minLength: 1, minScore: 0, breachedList: false, history: 0 }), store);
      assert.equal(await lax.problem('a', {}), null);
      assert.equal(await lax.problem('tangerine-orbit-lantern-7', { userId }), null);
    });

    test('NUL bytes, lone surrogates and other odd input are judged, never thrown on', async (t) => {
      if (!live(t)) return;
      const userId = (await newUser('odd-input')).id;
      for (const odd of ['\u0000'.repeat(20), 'tangerine\u0000orbit\u0000lantern', '\ud800'.repeat(20), 'orbit-\udfff-lantern-\ud800-quartz', '\ufeff\u200b'.repeat(10), 'a\u0301'.repeat(12)]) {
        const verdict = await policy.problem(odd, { userId, username: 'odd-input' });
        assert.ok(verdict === null || typeof verdict.code === 'string', JSON.stringify(odd));
      }
      assert.equal((await policy.problem('\u0000'.repeat(20), {}))?.code, 'weak');
      // A password with NUL and a lone surrogate can be set and then verified.
      const odd = 'orbit-\udfff-lantern\u0000-quartz-7';
      assert.equal(await policy.problem(odd, { userId }), null);
      await policy.setPassword(store, userId, odd);
      assert.ok(await verifyPassword((await store.credentials.getPasswordHash(userId))!, odd));
      assert.equal((await policy.problem(odd, { userId }))?.code, 'reused');
    });

    test('history: the last N passwords are refused, the N+1-th is allowed again, older hashes are not kept', async (t) => {
      if (!live(t)) return;
      const three = createPasswordPolicy(settings({ history: 3 }), store);
      const userId = (await newUser('history-user')).id;
      for (const pw of STRONG.slice(0, 4)) {
        assert.equal(await three.problem(pw, { userId }), null, pw);
        await three.setPassword(store, userId, pw);
      }
      // Set: 0, 1, 2, 3 (current). The last three are 1, 2, 3.
      for (const pw of STRONG.slice(1, 4)) assert.deepEqual(await three.problem(pw, { userId }), { code: 'reused', values: { count: 3 }, message: 'must not be one of your last 3 passwords' }, pw);
      assert.equal(await three.problem(STRONG[0]!, { userId }), null);
      assert.equal((await store.passwords.recentHashes(userId, 50)).length, 3);
      // Without a userId (registration) there is no history to compare.
      assert.equal(await three.problem(STRONG[3]!, {}), null);
      // A current password from before the history existed still counts.
      const legacy = (await newUser('legacy-user')).id;
      await store.credentials.setPassword(legacy, (await store.credentials.getPasswordHash(userId))!);
      assert.equal((await three.problem(STRONG[3]!, { userId: legacy }))?.code, 'reused');
      // history: 0 keeps nothing.
      const none = createPasswordPolicy(settings({ history: 0 }), store);
      await none.setPassword(store, userId, STRONG[4]!);
      assert.deepEqual(await store.passwords.recentHashes(userId, 50), []);
      // Deleting the user deletes the history (foreign key cascade).
      await three.setPassword(store, userId, STRONG[5]!);
      await store.users.delete(userId);
      assert.equal(Number((await db.knex('password_history').where({ user_id: userId }).count({ n: '*' }))[0]!.n), 0);
    });

    test('setPassword stores, stamps, records and settles update_password in one transaction', async (t) => {
      if (!live(t)) return;
      const userId = (await newUser('set-user')).id;
      await store.passwords.requireChange(userId, 'expired');
      assert.equal(await store.passwords.changeReason(userId), 'expired');
      await policy.setPassword(store, userId, STRONG[0]!);
      assert.equal(await store.passwords.changeReason(userId), undefined);
      assert.deepEqual(await store.mfa.requiredActions(userId), []);
      const facts = (await store.passwords.loginFacts(userId))!;
      assert.ok(Math.abs(facts.changedAt.getTime() - Date.now()) < 600_000);
      assert.equal(facts.policyChecked, policy.stamp);
      // A failure inside leaves nothing half-written: an unknown user gets no credential and no history.
      await assert.rejects(policy.setPassword(store, 'no-such-user', STRONG[1]!));
      assert.equal(Number((await db.knex('password_history').where({ user_id: 'no-such-user' }).count({ n: '*' }))[0]!.n), 0);
      // An administrator's request without a reason reads as null.
      await store.mfa.addRequiredAction(userId, 'update_password');
      assert.equal(await store.passwords.changeReason(userId), null);
    });

    test('at login: expired after expiryDays, or no longer meeting the rules; checked once per password and rules', async (t) => {
      if (!live(t)) return;
      const expiring = createPasswordPolicy(settings({ expiryDays: 30 }), store);
      const user = await newUser('expiry-user');
      await expiring.setPassword(store, user.id, STRONG[0]!);
      const subject = { userId: user.id, username: user.username };
      assert.equal(await expiring.loginProblem(STRONG[0]!, subject), null);
      await db.knex.raw("UPDATE credentials SET password_changed_at = now() - interval '29 days' WHERE user_id = ?", [user.id]);
      assert.equal(await expiring.loginProblem(STRONG[0]!, subject), null);
      await db.knex.raw("UPDATE credentials SET password_changed_at = now() - interval '31 days' WHERE user_id = ?", [user.id]);
      assert.equal(await expiring.loginProblem(STRONG[0]!, subject), 'expired');
      // expiryDays 0: never.
      assert.equal(await policy.loginProblem(STRONG[0]!, subject), null);

      // A weak password stored before the policy: refused at login until changed.
      const old = await newUser('weak-legacy');
      await store.credentials.setPassword(old.id, 'not-a-hash-checked-here');
      assert.equal(await policy.loginProblem('qwertyuiop12', { userId: old.id, username: old.username }), 'policy');
      assert.equal(await policy.loginProblem('qwertyuiop12', { userId: old.id, username: old.username }), 'policy');
      // A good one is checked once and marked; stricter rules check it again.
      const fine = await newUser('fine-legacy');
      await store.credentials.setPassword(fine.id, 'hash-of-a-good-one');
      assert.equal((await store.passwords.loginFacts(fine.id))!.policyChecked, null);
      assert.equal(await policy.loginProblem(STRONG[2]!, { userId: fine.id, username: fine.username }), null);
      assert.equal((await store.passwords.loginFacts(fine.id))!.policyChecked, policy.stamp);
      const longer = createPasswordPolicy(settings({ minLength: 24 }), store);
      assert.notEqual(longer.stamp, policy.stamp);
      assert.equal(await longer.loginProblem(STRONG[2]!, { userId: fine.id, username: fine.username }), 'policy');
      // A new password forgets the old verdict.
      await store.credentials.setPassword(fine.id, 'another-hash');
      assert.equal((await store.passwords.loginFacts(fine.id))!.policyChecked, null);
      // Users declared in config are never asked (their password lives in the file).
      const withConfig = createPasswordPolicy(settings({ expiryDays: 1 }), store, { declared: declaredInConfig({ users: [{ username: 'Weak-Legacy' }] }) });
      assert.equal(await withConfig.loginProblem('qwertyuiop12', { userId: old.id, username: old.username }), null);
    });

    test('seeding checks a static password once per password and rules: an unchanged start runs no zxcvbn', async (t) => {
      if (!live(t)) return;
      const users = (password: string) => parseConfig(`issuer: http://x.example\nusers:\n  - { username: seed-sue, password: ${password} }\n`, { env: {} }).users;
      await seedStaticUsers(store, users('copper-meadow-glacier-4'), settings());
      await stopStrengthEstimator();
      await seedStaticUsers(store, users('copper-meadow-glacier-4'), settings());
      assert.equal(strengthEstimatorRunning(), false, 'nothing changed: no estimate');
      await seedStaticUsers(store, users('copper-meadow-glacier-4'), settings({ minLength: 14 }));
      assert.equal(strengthEstimatorRunning(), true, 'the rules changed: checked again');
      await stopStrengthEstimator();
      await seedStaticUsers(store, users('copper-meadow-glacier-4'), settings({ minLength: 14 }));
      assert.equal(strengthEstimatorRunning(), false);
      // A changed password that breaks the rules stops the seeding; the stored one stays.
      const sue = (await store.users.findByUsername('seed-sue'))!;
      const before = await store.credentials.getPasswordHash(sue.id);
      await assert.rejects(seedStaticUsers(store, users('sue-sue-sue-sue'), settings()), (err: unknown) => err instanceof ConfigError && /seed-sue/.test(err.message) && /like_identity/.test(err.message));
      assert.equal(await store.credentials.getPasswordHash(sue.id), before);
    });

    test('migration 0014: existing passwords count as changed at upgrade; the reason column takes only known reasons', async (t) => {
      if (!live(t)) return;
      const userId = (await newUser('migrated')).id;
      await db.knex.raw("INSERT INTO credentials (id, user_id, type, secret) VALUES ('cred-migrated', ?, 'password', 'h')", [userId]);
      const row = await db.knex('credentials').where({ id: 'cred-migrated' }).first('password_changed_at', 'policy_checked');
      assert.ok(row.password_changed_at instanceof Date || typeof row.password_changed_at === 'string');
      assert.equal(row.policy_checked, null);
      await assert.rejects(db.knex.raw("INSERT INTO required_actions (user_id, action, reason) VALUES (?, 'update_password', 'whim')", [userId]));
    });
  });
}

describe('password policy messages', () => {
  test('every refusal and warning is in English and German, and a weak one reads in the reader\'s language', async () => {
    const catalogs = new MessageCatalogs();
    const en = catalogs.keys('en').filter((k) => k.startsWith('password.'));
    const de = catalogs.keys('de').filter((k) => k.startsWith('password.'));
    assert.deepEqual(de, en);
    for (const code of ['too_long', 'too_short', 'breached', 'weak', 'like_identity', 'reused']) assert.ok(en.includes(`password.problem.${code}`), code);
    const policy = createPasswordPolicy(settings(), null); // problem() without a userId reads no storage
    const weak = (await policy.problem('abcdefghijklmnop', {}))!;
    assert.equal(describePasswordProblem(catalogs.translator('en'), weak), 'This password is too easy to guess. Common character sequences like "abc" are easy to guess.');
    assert.equal(describePasswordProblem(catalogs.translator('de'), weak), 'Dieses Passwort ist zu leicht zu erraten. Häufige Zeichenfolgen wie „abc“ sind leicht zu erraten.');
    assert.equal(describePasswordProblem(catalogs.translator('de'), (await policy.problem('kurz', {}))!), 'Das Passwort muss mindestens 12 Zeichen lang sein.');
  });
});
