// TOTP enrolment and verification on both stores, with real codes computed by otpauth from the
// enrolled secret. Time is pinned to the middle of a step so "one step back" means exactly that.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { skipLoudly } from '../helpers/skip.ts';
import { Secret, TOTP, URI } from 'otpauth';
import { openDatabase, type Database } from '../../src/storage/database.ts';
import { migrateLatest } from '../../src/storage/migrate.ts';
import { Store } from '../../src/storage/store.ts';
import { TokenCipher } from '../../src/accounts/token-cipher.ts';
import { mfaCipher } from '../../src/mfa/mfa-cipher.ts';
import { TotpService } from '../../src/mfa/totp.ts';
import { freshPostgresDatabase } from '../helpers/postgres.ts';

const NOW = Math.floor(Date.now() / 30_000) * 30_000 + 15_000;
const codeAt = (secret: string, offsetSteps: number) => TOTP.generate({ secret: Secret.fromBase32(secret), timestamp: NOW + offsetSteps * 30_000 });
/** A 6-digit code that is none of the codes of the steps around NOW. */
function wrongCode(secret: string): string {
  const near = new Set([-2, -1, 0, 1, 2].map((o) => codeAt(secret, o)));
  for (let n = 0; ; n++) if (!near.has(String(n).padStart(6, '0'))) return String(n).padStart(6, '0');
}

interface Backend {
  store: Store;
  /** A second Store as another instance would open it (own connection pool where the backend has one). */
  other(): Promise<Store>;
  close(): Promise<void>;
}

function totpSuite(name: string, open: () => Promise<Backend | { skip: string }>) {
  describe(`TOTP on ${name}`, () => {
    let backend: Backend;
    let skip: string | undefined;
    let service: TotpService;
    const cipher = new TokenCipher(['k'.repeat(16) + 'a-totp-test-key-of-32-characters']);

    before(async () => {
      const opened = await open();
      if ('skip' in opened) skip = opened.skip;
      else backend = opened;
      if (backend) service = new TotpService({ store: backend.store, cipher, issuerName: 'Keybridge Test', clock: () => NOW });
    });
    after(async () => backend?.close());

    const user = async (username: string) => backend.store.users.create({ username });

    test('enrol, confirm with a real code; ±1 step accepted, 2 steps back refused, replays refused', async (t) => {
      if (skip) return skipLoudly(t, skip);
      const alice = await user('alice');
      const enrolment = await service.startEnrolment({ id: alice.id, username: alice.username });
      assert.match(enrolment.secret, /^[A-Z2-7]{32}$/, '20 bytes in base32');
      const parsed = URI.parse(enrolment.uri) as TOTP;
      assert.ok(parsed instanceof TOTP);
      assert.deepEqual([parsed.issuer, parsed.label, parsed.algorithm, parsed.digits, parsed.period, parsed.secret.base32], ['Keybridge Test', 'alice', 'SHA1', 6, 30, enrolment.secret]);
      assert.match(enrolment.qrSvg, /^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
      assert.doesNotMatch(enrolment.qrSvg, /https?:\/\/(?!www\.w3\.org)/, 'no external references');

      assert.deepEqual(await service.verify(alice.id, codeAt(enrolment.secret, 0)), { ok: false, reason: 'not_enrolled' }, 'a pending factor does not count');
      assert.equal(await service.confirmEnrolment(alice.id, enrolment.factorId, wrongCode(enrolment.secret)), 'invalid');
      assert.equal(await service.confirmEnrolment(alice.id, enrolment.factorId, codeAt(enrolment.secret, 0)), 'confirmed');
      assert.equal(await service.confirmEnrolment(alice.id, enrolment.factorId, codeAt(enrolment.secret, 1)), 'gone', 'confirmed already');
      // The login's facts carry, in the same read, what decides its second-factor mode.
      await backend.store.mfaPolicies.set('client', 'rp', 'required');
      await backend.store.mfaPolicies.set('client', 'other-rp', 'off');
      const facts = await backend.store.mfa.loginFacts(alice.id, { clientId: 'rp', connectorId: 'local' });
      assert.equal(facts.enrolled, true);
      assert.deepEqual(facts.applicable.policies.map((p) => [p.kind, p.target, p.mode]), [['client', 'rp', 'required']]);
      assert.deepEqual(facts.applicable, await backend.store.mfaPolicies.applicable({ userId: alice.id, clientId: 'rp', connectorId: 'local' }));
      await backend.store.mfaPolicies.remove('client', 'rp');
      await backend.store.mfaPolicies.remove('client', 'other-rp');

      assert.deepEqual(await service.verify(alice.id, codeAt(enrolment.secret, 0)), { ok: false, reason: 'replayed' }, 'the confirming code is used up');
      assert.deepEqual(await service.verify(alice.id, wrongCode(enrolment.secret)), { ok: false, reason: 'invalid' });
      assert.deepEqual(await service.verify(alice.id, codeAt(enrolment.secret, -2)), { ok: false, reason: 'invalid' }, 'two steps back');
      assert.deepEqual(await service.verify(alice.id, codeAt(enrolment.secret, 2)), { ok: false, reason: 'invalid' }, 'two steps ahead');
      const previous = codeAt(enrolment.secret, -1);
      assert.deepEqual(await service.verify(alice.id, previous.slice(0, 3) + ' ' + previous.slice(3)), { ok: true, factorId: enrolment.factorId }, 'previous step, with a space');
      assert.deepEqual(await service.verify(alice.id, previous), { ok: false, reason: 'replayed' });
      assert.deepEqual(await service.verify(alice.id, codeAt(enrolment.secret, 1)), { ok: true, factorId: enrolment.factorId }, 'next step');

      // Another instance (own Store, on PostgreSQL its own connection pool) sees the same claims.
      const elsewhere = new TotpService({ store: await backend.other(), cipher, issuerName: 'Keybridge Test', clock: () => NOW });
      assert.deepEqual(await elsewhere.verify(alice.id, codeAt(enrolment.secret, 1)), { ok: false, reason: 'replayed' });
      assert.deepEqual(await elsewhere.verify(alice.id, previous), { ok: false, reason: 'replayed' });

      const [row] = await backend.store.knex('mfa_factors').where({ id: enrolment.factorId }).select('secret', 'last_used_at');
      assert.ok(row.secret && !row.secret.includes(enrolment.secret), 'the stored secret is sealed');
      assert.equal(cipher.open(row.secret, `totp:${alice.id}`), enrolment.secret, 'sealed with the user binding');
      assert.ok(row.last_used_at instanceof Date);
    });

    test('confirming another user\'s or a replaced enrolment is "gone"', async (t) => {
      if (skip) return skipLoudly(t, skip);
      const bob = await user('bob-gone');
      const carol = await user('carol-gone');
      const first = await service.startEnrolment({ id: bob.id, username: bob.username });
      assert.equal(await service.confirmEnrolment(carol.id, first.factorId, codeAt(first.secret, 0)), 'gone');
      const second = await service.startEnrolment({ id: bob.id, username: bob.username });
      assert.equal(await service.confirmEnrolment(bob.id, first.factorId, codeAt(first.secret, 0)), 'gone', 'replaced by the second');
      assert.equal(await service.confirmEnrolment(bob.id, second.factorId, codeAt(second.secret, 0)), 'confirmed');
    });

    test('a tampered or moved sealed secret is "invalid", never an exception', async (t) => {
      if (skip) return skipLoudly(t, skip);
      const dave = await user('dave');
      const erin = await user('erin');
      const d = await service.startEnrolment({ id: dave.id, username: dave.username });
      assert.equal(await service.confirmEnrolment(dave.id, d.factorId, codeAt(d.secret, 0)), 'confirmed');
      const e = await service.startEnrolment({ id: erin.id, username: erin.username });
      assert.equal(await service.confirmEnrolment(erin.id, e.factorId, codeAt(e.secret, 0)), 'confirmed');

      const [{ secret: sealed }] = await backend.store.knex('mfa_factors').where({ id: d.factorId }).select('secret');
      // Dave's sealed secret copied onto Erin's factor does not open for Erin.
      await backend.store.knex('mfa_factors').where({ id: e.factorId }).update({ secret: sealed });
      assert.deepEqual(await service.verify(erin.id, codeAt(d.secret, 1)), { ok: false, reason: 'invalid' });

      const flipped = sealed.slice(0, -2) + (sealed.at(-2) === 'A' ? 'B' : 'A') + sealed.at(-1);
      for (const bad of [flipped, 'garbage', '', 'v1.x.y.z']) {
        await backend.store.knex('mfa_factors').where({ id: d.factorId }).update({ secret: bad });
        assert.deepEqual(await service.verify(dave.id, codeAt(d.secret, 1)), { ok: false, reason: 'invalid' }, bad);
      }
      // Sealed with a key this instance does not have.
      const stranger = new TokenCipher(['a-different-key-of-at-least-32-characters!']);
      await backend.store.knex('mfa_factors').where({ id: d.factorId }).update({ secret: stranger.seal(d.secret, `totp:${dave.id}`) });
      assert.deepEqual(await service.verify(dave.id, codeAt(d.secret, 1)), { ok: false, reason: 'invalid' });
    });

    test('hostile input is "invalid" without a claim', async (t) => {
      if (skip) return skipLoudly(t, skip);
      const frank = await user('frank');
      const f = await service.startEnrolment({ id: frank.id, username: frank.username });
      assert.equal(await service.confirmEnrolment(frank.id, f.factorId, '12\u00003456'), 'invalid');
      assert.equal(await service.confirmEnrolment(frank.id, f.factorId, codeAt(f.secret, 0)), 'confirmed');
      const code = codeAt(f.secret, 1);
      for (const bad of [`${code}\u0000`, `\u0000${code}`, code.repeat(1707), '9'.repeat(10_240), 'abcdef', '12345', '1234567', '１２３４５６', '', '\ud800\udc00'.repeat(3), -1, 123456, null, undefined, { code }, [code]]) {
        assert.deepEqual(await service.verify(frank.id, bad), { ok: false, reason: 'invalid' }, JSON.stringify(bad)?.slice(0, 40));
      }
      assert.deepEqual(await service.verify(frank.id, code), { ok: true, factorId: f.factorId }, 'the step was not claimed by the refused inputs');
      assert.deepEqual(await service.verify(frank.id, 'not a code'), { ok: false, reason: 'invalid' });
    });

    test('mfaCipher: tokenKeys when configured, else one stored key every instance shares; adding tokenKeys later keeps old secrets readable', async (t) => {
      if (skip) return skipLoudly(t, skip);
      const configured = await mfaCipher({ secrets: { tokenKeys: ['k'.repeat(16) + 'a-totp-test-key-of-32-characters'] } } as never, backend.store);
      assert.equal(cipher.open(configured.seal('x', 'b'), 'b'), 'x');
      const one = await mfaCipher({ secrets: {} } as never, backend.store);
      const two = await mfaCipher({ secrets: {} } as never, await backend.other());
      assert.equal(two.open(one.seal('shared', 'totp:u'), 'totp:u'), 'shared');
      assert.equal(cipher.open(one.seal('shared', 'totp:u'), 'totp:u'), null, 'not the tokenKeys cipher');
      // tokenKeys configured later: what the stored key sealed still opens; new seals use tokenKeys.
      const later = await mfaCipher({ secrets: { tokenKeys: ['k'.repeat(16) + 'a-totp-test-key-of-32-characters'] } } as never, backend.store);
      assert.equal(later.open(one.seal('enrolled before', 'totp:u'), 'totp:u'), 'enrolled before');
      assert.equal(cipher.open(later.seal('enrolled after', 'totp:u'), 'totp:u'), 'enrolled after');
    });
  });
}

totpSuite('PGlite', async () => {
  const db = await openDatabase({ dataDir: ':memory:' });
  await migrateLatest(db.knex);
  return { store: new Store(db.knex), other: async () => new Store(db.knex), close: () => db.close() };
});

totpSuite('PostgreSQL', async () => {
  const fresh = await freshPostgresDatabase();
  if ('skip' in fresh) return fresh;
  const db = await openDatabase({ url: fresh.url });
  await migrateLatest(db.knex);
  const others: Database[] = [];
  return {
    store: new Store(db.knex),
    async other() {
      const second = await openDatabase({ url: fresh.url });
      others.push(second);
      return new Store(second.knex);
    },
    async close() {
      for (const o of others) await o.close();
      await db.close();
      await fresh.drop();
    },
  };
});
