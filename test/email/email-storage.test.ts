// The outbox and the action tokens on both stores (PGlite and PostgreSQL): claims that never
// overlap, retries and give-ups that clear bodies, single-use tokens where two consumers race.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openDatabase, type Database } from '../../src/storage/database.ts';
import { migrateLatest } from '../../src/storage/migrate.ts';
import { Store } from '../../src/storage/store.ts';
import { EmailOutboxRepository } from '../../src/storage/email-outbox-repository.ts';
import { ActionTokenRepository } from '../../src/storage/action-token-repository.ts';
import { ActionLinks, hashToken } from '../../src/email/action-links.ts';
import { freshPostgresDatabase } from '../helpers/postgres.ts';

const backends: Array<[string, () => Promise<{ db: Database; drop?: () => Promise<void> }>]> = [
  ['PGlite', async () => ({ db: await openDatabase({ dataDir: ':memory:' }) })],
  [
    'PostgreSQL',
    async () => {
      const fresh = await freshPostgresDatabase();
      if ('skip' in fresh) throw new Error(fresh.skip);
      return { db: await openDatabase({ url: fresh.url }), drop: fresh.drop };
    },
  ],
];

for (const [backend, open] of backends) {
  describe(`email storage: ${backend}`, () => {
    let db: Database;
    let drop: (() => Promise<void>) | undefined;
    let store: Store;
    let outbox: EmailOutboxRepository;
    let tokens: ActionTokenRepository;

    before(async () => {
      ({ db, drop } = await open());
      await migrateLatest(db.knex, { serialize: db.kind === 'postgres' });
      store = new Store(db.knex);
      outbox = new EmailOutboxRepository(db.knex);
      tokens = new ActionTokenRepository(db.knex);
    });
    after(async () => {
      await db?.close();
      await drop?.();
    });

    const mail = (to: string, kind = 'test') => ({ recipient: to, subject: 'Hi', text: 'link: http://x/secret-token', html: '<p>secret-token</p>', kind });

    test('two claims at once never get the same mail; each claim counts an attempt', async () => {
      const ids = new Set<string>();
      for (let i = 0; i < 12; i++) ids.add(await outbox.enqueue(mail(`claim${i}@example.org`)));
      const [a, b] = await Promise.all([outbox.claimDue(8, 60), outbox.claimDue(8, 60)]);
      const claimed = [...a, ...b].map((m) => m.id);
      assert.equal(new Set(claimed).size, claimed.length, 'a mail was claimed twice');
      assert.deepEqual(new Set(claimed), ids);
      assert.ok([...a, ...b].every((m) => m.status === 'sending' && m.attempts === 1));
      assert.deepEqual(await outbox.claimDue(10, 60), [], 'claimed mails are not due again while their claim holds');
      for (const id of claimed) await outbox.markSent(id);
    });

    test('a sent mail keeps no body; a retry waits; a failed mail keeps its error but no body', async () => {
      const sent = await outbox.enqueue(mail('sent@example.org'));
      const retry = await outbox.enqueue(mail('retry@example.org'));
      const failed = await outbox.enqueue(mail('failed@example.org'));
      const claimed = await outbox.claimDue(10, 60);
      assert.deepEqual(new Set(claimed.map((m) => m.id)), new Set([sent, retry, failed]));
      assert.equal(await outbox.markSent(sent), true);
      assert.equal(await outbox.markSent(sent), false, 'only a held claim can be marked sent');
      await outbox.markRetry(retry, 'connect ECONNREFUSED', new Date(Date.now() + 3600_000));
      await outbox.markFailed(failed, 'mailbox unavailable');
      const [s, r, f] = await Promise.all([outbox.find(sent), outbox.find(retry), outbox.find(failed)]);
      assert.equal(s?.status, 'sent');
      assert.equal(s?.text, '');
      assert.equal(s?.html, null);
      assert.ok(s?.sentAt);
      assert.equal(r?.status, 'pending');
      assert.equal(r?.lastError, 'connect ECONNREFUSED');
      assert.match(r?.text ?? '', /secret-token/, 'a mail still to be sent keeps its body');
      assert.deepEqual(await outbox.claimDue(10, 60), [], 'a retry is not due before its time');
      assert.equal(f?.status, 'failed');
      assert.equal(f?.lastError, 'mailbox unavailable');
      assert.equal(f?.text, '');
    });

    test('a claim that ran out (the sender died) is taken over', async () => {
      const id = await outbox.enqueue(mail('takeover@example.org'));
      const [first] = await outbox.claimDue(10, 60);
      assert.equal(first?.id, id);
      await db.knex('email_outbox').where({ id }).update({ claimed_until: new Date(Date.now() - 1000) });
      const [again] = await outbox.claimDue(10, 60);
      assert.equal(again?.id, id);
      assert.equal(again?.attempts, 2);
      await outbox.markSent(id);
    });

    test('mails per address and kind are counted case-insensitively', async () => {
      await outbox.enqueue(mail('Count@Example.org', 'password_reset'));
      await outbox.enqueue(mail('count@example.org', 'password_reset'));
      await outbox.enqueue(mail('count@example.org', 'registration'));
      const since = new Date(Date.now() - 60_000);
      assert.equal(await outbox.countRecent('COUNT@example.org', 'password_reset', since), 2);
      assert.equal(await outbox.countRecent('count@example.org', 'registration', since), 1);
      assert.equal(await outbox.countRecent('other@example.org', 'password_reset', since), 0);
    });

    test('an action token stores only its hash and is consumed once, even by two at once', async () => {
      const links = new ActionLinks(store, 'https://id.example.org');
      const user = await store.users.create({ username: 'tokenuser', email: 'tokenuser@example.org' });
      const link = await links.issue('reset_password', { userId: user.id, email: user.email, data: { uid: 'abc' }, minutes: 30 });
      assert.match(link.token, /^[A-Za-z0-9_-]{43}$/);
      assert.equal(link.url, `https://id.example.org/password/reset/${link.token}`);
      const rows = await db.knex('action_tokens').select('*');
      assert.ok(rows.every((r: { token_hash: string }) => r.token_hash !== link.token), 'the token itself is stored');
      assert.ok(rows.some((r: { token_hash: string }) => r.token_hash === hashToken(link.token)));

      assert.equal(await links.look(link.token, ['verify_email']), null, 'purpose-bound');
      assert.equal((await links.look(link.token, ['reset_password']))?.userId, user.id, 'looking does not consume');
      assert.equal((await links.look(link.token, ['reset_password']))?.userId, user.id);
      const results = await Promise.all([links.consume(link.token, ['reset_password']), links.consume(link.token, ['reset_password']), links.consume(link.token, ['reset_password'])]);
      assert.equal(results.filter(Boolean).length, 1, 'exactly one consumer wins');
      assert.deepEqual(results.find(Boolean)?.data, { uid: 'abc' });
      assert.equal(await links.consume(link.token, ['reset_password']), null);
      assert.equal(await links.look(link.token, ['reset_password']), null);
    });

    test('expired, malformed and revoked tokens do nothing', async () => {
      const links = new ActionLinks(store, 'https://id.example.org');
      const user = await store.users.create({ username: 'expiring', email: 'expiring@example.org' });
      const expired = await links.issue('reset_password', { userId: user.id, email: user.email, minutes: 30 });
      await db.knex('action_tokens').where({ token_hash: hashToken(expired.token) }).update({ expires_at: new Date(Date.now() - 1000) });
      assert.equal(await links.look(expired.token, ['reset_password']), null);
      assert.equal(await links.consume(expired.token, ['reset_password']), null);
      assert.equal(await links.consume("x' OR '1'='1", ['reset_password']), null);
      assert.equal(await links.consume('', ['reset_password']), null);
      const a = await links.issue('reset_password', { userId: user.id, email: user.email, minutes: 30 });
      const b = await links.issue('reset_password', { userId: user.id, email: user.email, minutes: 30 });
      assert.equal(await links.revokeForUser(user.id, 'reset_password'), 3, 'every unused reset link of the user, the expired one too');
      assert.equal(await links.consume(a.token, ['reset_password']), null);
      assert.equal(await links.consume(b.token, ['reset_password']), null);
      // Tokens go with their user.
      const c = await links.issue('verify_email', { userId: user.id, email: user.email, minutes: 30 });
      await store.users.delete(user.id);
      assert.equal(await tokens.find(hashToken(c.token)), null);
    });

    test('a consume rolled back with its transaction leaves the token usable', async () => {
      const links = new ActionLinks(store, 'https://id.example.org');
      const link = await links.issue('register', { email: 'pending@example.org', data: { username: 'pending' }, minutes: 30 });
      await assert.rejects(
        store.transaction(async (tx) => {
          assert.ok(await links.consume(link.token, ['register'], tx));
          throw new Error('later step failed');
        }),
        /later step failed/,
      );
      assert.ok(await links.look(link.token, ['register']));
    });
  });
}
