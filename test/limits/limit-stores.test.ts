// The limiter on each store it runs on: the embedded PGlite, PostgreSQL and Redis. Two limiter
// instances over one store stand for two broker instances: what one counts, the other sees.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { stringify } from 'yaml';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { parseConfig } from '../../src/config/load-config.ts';
import { openDatabase, type Database } from '../../src/storage/database.ts';
import { migrateDatabase } from '../../src/storage/migrate.ts';
import { createLogger } from '../../src/log.ts';
import { createRateLimits, type RateLimits } from '../../src/limits/rate-limits.ts';
import { freshPostgresDatabase } from '../helpers/postgres.ts';
import { skipLoudly } from '../helpers/skip.ts';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const limitsConfig = (extra: Record<string, unknown> = {}) =>
  parseConfig(
    stringify({
      issuer: 'http://127.0.0.1:5556',
      limits: {
        account: { freeFailures: 2, maxBackoffSeconds: 30, lockoutFailures: 5, lockoutSeconds: 600, failureWindowSeconds: 600 },
        ip: { login: { points: 3, durationSeconds: 60 }, callback: { points: 2, durationSeconds: 60 }, token: { points: 4, durationSeconds: 60 }, tokenFailures: { points: 2, durationSeconds: 60 } },
      },
      ...extra,
    }),
    { env: {}, source: 'test' },
  );

interface StoreCase {
  name: string;
  open(): Promise<{ database: Database; redisUrl?: string; cleanup(): Promise<void> } | { skip: string }>;
}

const stores: StoreCase[] = [
  {
    name: 'PGlite',
    async open() {
      const database = await openDatabase({ dataDir: ':memory:' });
      await migrateDatabase(database);
      return { database, cleanup: () => database.close() };
    },
  },
  {
    name: 'PostgreSQL',
    async open() {
      const fresh = await freshPostgresDatabase();
      if ('skip' in fresh) return fresh;
      const database = await openDatabase({ url: fresh.url });
      await migrateDatabase(database);
      return {
        database,
        async cleanup() {
          await database.close();
          await fresh.drop();
        },
      };
    },
  },
  {
    name: 'Redis',
    async open() {
      const probe = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 2000 });
      try {
        await probe.connect();
        await probe.ping();
      } catch (err) {
        probe.disconnect();
        return { skip: `Redis is not reachable at ${REDIS_URL} (${(err as Error).message}); .ci/run starts redis-server` };
      } finally {
        probe.disconnect();
      }
      const database = await openDatabase({ dataDir: ':memory:' });
      await migrateDatabase(database);
      return { database, redisUrl: REDIS_URL, cleanup: () => database.close() };
    },
  },
];

for (const store of stores) {
  describe(`rate limits on ${store.name}`, () => {
    let opened: Awaited<ReturnType<StoreCase['open']>>;
    let a: RateLimits;
    let b: RateLimits;
    // Fresh keys per run: Redis outlives the test process.
    const run = randomBytes(6).toString('hex');
    const ip = (n: number) => `198.51.100.${n}-${run}`;

    before(async () => {
      opened = await store.open();
      if ('skip' in opened) return;
      const config = limitsConfig(opened.redisUrl ? { redis: { url: opened.redisUrl } } : {});
      const logger = createLogger('silent');
      a = await createRateLimits(config, opened.database.knex, logger);
      b = await createRateLimits(config, opened.database.knex, logger);
      await Promise.all([a.ready(), b.ready()]);
    });

    after(async () => {
      if (!opened || 'skip' in opened) return;
      await a.close();
      await b.close();
      await opened.cleanup();
    });

    const ready = (t: { skip(reason: string): void }) => {
      if ('skip' in opened) {
        skipLoudly(t as never, opened.skip);
        return false;
      }
      return true;
    };

    test('an IP budget is shared: what one instance counts, the other refuses', async (t) => {
      if (!ready(t)) return;
      assert.equal((await a.hitIp('login', ip(1))).allowed, true);
      assert.equal((await b.hitIp('login', ip(1))).allowed, true);
      assert.equal((await a.hitIp('login', ip(1))).allowed, true);
      const refused = await b.hitIp('login', ip(1));
      assert.equal(refused.allowed, false);
      assert.equal(refused.firstRefusal, true);
      assert.ok(refused.retryAfterSeconds >= 1 && refused.retryAfterSeconds <= 60, `retry after ${refused.retryAfterSeconds}`);
      const again = await a.hitIp('login', ip(1));
      assert.equal(again.allowed, false);
      assert.equal(again.firstRefusal, false, 'only the first refusal of a period is audited');
      assert.equal((await a.hitIp('login', ip(2))).allowed, true, 'another address has its own budget');
    });

    test('wrong passwords: free attempts, then backoff, then lockout; seen by both instances', async (t) => {
      if (!ready(t)) return;
      const user = `alice-${run}`;
      for (let i = 1; i <= 2; i++) {
        assert.equal((await a.accountAttempt('local', user)).allowed, true, `attempt ${i}`);
        assert.deepEqual(await a.accountFailure('local', user), { locked: false, failures: i });
      }
      // The third failure makes the next attempt wait (2^0 = 1 s), on every instance.
      assert.equal((await b.accountAttempt('local', user)).allowed, true);
      assert.deepEqual(await b.accountFailure('local', user), { locked: false, failures: 3 });
      const waiting = await a.accountAttempt('local', user);
      assert.equal(waiting.allowed, false);
      assert.equal(waiting.retryAfterSeconds, 1);
      // Attempts refused while waiting count too: hammering locks the account.
      let verdict = waiting;
      for (let i = 0; i < 3 && !verdict.firstRefusal; i++) verdict = await b.accountAttempt('local', user);
      assert.equal(verdict.allowed, false);
      assert.equal(verdict.firstRefusal, true, 'the attempt past the limit starts the lockout');
      assert.ok(verdict.retryAfterSeconds > 500, `locked for the lockout period, got ${verdict.retryAfterSeconds} s`);
      const later = await a.accountAttempt('local', user);
      assert.equal(later.allowed, false);
      assert.ok(later.retryAfterSeconds > 500);
    });

    test('an unknown username is counted exactly like a real one', async (t) => {
      if (!ready(t)) return;
      const trace = async (user: string) => {
        const out: string[] = [];
        for (let i = 0; i < 8; i++) {
          const v = await a.accountAttempt('local', user);
          out.push(v.allowed ? 'try' : `wait:${v.retryAfterSeconds > 60 ? 'lock' : 'backoff'}`);
          if (v.allowed) await a.accountFailure('local', user);
        }
        return out;
      };
      assert.deepEqual(await trace(`ghost-${run}`), await trace(`bob-${run}`));
    });

    test('the failure that reaches the limit locks at once', async (t) => {
      if (!ready(t)) return;
      const config = limitsConfig({ ...(opened && !('skip' in opened) && opened.redisUrl ? { redis: { url: opened.redisUrl } } : {}), limits: { account: { freeFailures: 10, lockoutFailures: 3, lockoutSeconds: 600 } } });
      const c = await createRateLimits(config, (opened as { database: Database }).database.knex, createLogger('silent'));
      await c.ready();
      try {
        const user = `carol-${run}`;
        for (let i = 1; i <= 3; i++) {
          assert.equal((await c.accountAttempt('local', user)).allowed, true);
          assert.equal((await c.accountFailure('local', user)).locked, i === 3);
        }
        const v = await c.accountAttempt('local', user);
        assert.equal(v.allowed, false);
        assert.equal(v.firstRefusal, false, 'the lockout was already reported when it began');
      } finally {
        await c.close();
      }
    });

    test('success forgets the failures; an attempt without a verdict does not count', async (t) => {
      if (!ready(t)) return;
      const user = `dave-${run}`;
      for (let i = 0; i < 2; i++) {
        await a.accountAttempt('local', user);
        await a.accountFailure('local', user);
      }
      await a.accountAttempt('local', user);
      await a.accountSuccess('local', user);
      for (let i = 1; i <= 2; i++) {
        assert.equal((await b.accountAttempt('local', user)).allowed, true);
        assert.equal((await b.accountFailure('local', user)).failures, i, 'counting starts over after a success');
      }
      await b.accountAttempt('local', user);
      await b.accountNeutral('local', user);
      assert.equal((await b.accountAttempt('local', user)).allowed, true);
      assert.equal((await b.accountFailure('local', user)).failures, 3, 'the neutral attempt was given back');
    });

    test('loginAttempt: the address budget, then the account, counted as hitIp and accountAttempt count them', async (t) => {
      if (!ready(t)) return;
      const user = `frank-${run}`;
      const attempt = (limits: RateLimits, n: number) => limits.loginAttempt(ip(n), { connectorId: 'local', username: user });
      // Three failures from three addresses: the third makes the next attempt wait, on both instances.
      for (let i = 1; i <= 3; i++) {
        const v = await (i % 2 ? a : b).loginAttempt(ip(10 + i), { connectorId: 'local', username: user });
        assert.deepEqual([v.ip.allowed, v.account?.allowed], [true, true], `attempt ${i}`);
        assert.equal((await a.accountFailure('local', user)).failures, i);
      }
      const waiting = await attempt(b, 14);
      assert.equal(waiting.ip.allowed, true);
      assert.equal(waiting.account?.allowed, false, 'the backoff written by accountFailure is read in the same statement');
      assert.equal(waiting.account?.retryAfterSeconds, 1);
      // A success forgets the attempts and the backoff: the next attempt goes through at once.
      await b.accountSuccess('local', user);
      const after = await attempt(a, 15);
      assert.equal(after.account?.allowed, true);
      assert.equal((await a.accountFailure('local', user)).failures, 1, 'counting starts over after a success');

      // An address over its budget (3 per minute) is refused, and the account is not counted for it.
      const other = `grace-${run}`;
      for (let i = 0; i < 3; i++) assert.equal((await a.loginAttempt(ip(20), { connectorId: 'local', username: other })).account?.allowed, true);
      const refused = await b.loginAttempt(ip(20), { connectorId: 'local', username: other });
      assert.deepEqual([refused.ip.allowed, refused.ip.firstRefusal, refused.account], [false, true, null]);
      assert.ok(refused.ip.retryAfterSeconds >= 1 && refused.ip.retryAfterSeconds <= 60, `retry after ${refused.ip.retryAfterSeconds}`);
      assert.equal((await a.loginAttempt(ip(20))).ip.firstRefusal, false, 'only the first refusal of a period is audited');
      assert.equal((await a.accountFailure('local', other)).failures, 3, 'the refused attempts never reached the account counter');
      // Without an account only the address counts.
      assert.deepEqual(await a.loginAttempt(ip(21)), { ip: { allowed: true, retryAfterSeconds: 0, firstRefusal: false }, account: null });
    });

    test('loginAttempt locks an account like accountAttempt: the attempt past the limit starts the lockout, reported once', async (t) => {
      if (!ready(t)) return;
      const user = `heidi-${run}`;
      // lockoutFailures 5: attempts without failures recorded (no backoff), each from a fresh address.
      const verdicts = [];
      for (let i = 0; i < 7; i++) verdicts.push((await (i % 2 ? a : b).loginAttempt(ip(30 + i), { connectorId: 'local', username: user })).account!);
      assert.deepEqual(verdicts.map((v) => v.allowed), [true, true, true, true, true, false, false]);
      assert.deepEqual(verdicts.map((v) => v.firstRefusal), [false, false, false, false, false, true, false]);
      assert.ok(verdicts[5]!.retryAfterSeconds > 500 && verdicts[6]!.retryAfterSeconds > 500, `locked for the lockout period: ${verdicts[5]!.retryAfterSeconds} s`);
      assert.equal((await a.accountAttempt('local', user)).allowed, false, 'accountAttempt sees the same lockout');
    });

    test('loginAttempt: twenty at once from one address over two instances count exactly', async (t) => {
      if (!ready(t)) return;
      const user = `ivan-${run}`;
      const verdicts = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).loginAttempt(ip(40), { connectorId: 'local', username: user })));
      // The address's budget is 3: three go on, and only those reach the account's counter.
      assert.equal(verdicts.filter((v) => v.ip.allowed).length, 3);
      assert.equal(verdicts.filter((v) => v.account !== null).length, 3);
      assert.equal(verdicts.filter((v) => !v.ip.allowed && v.ip.firstRefusal).length, 1, 'one first refusal');
      assert.equal((await a.accountFailure('local', user)).failures, 3);
    });

    test('usernames that differ only in case or compatibility form share one counter', async (t) => {
      if (!ready(t)) return;
      const user = `Zoe\u0308-${run}`;
      for (let i = 0; i < 2; i++) {
        await a.accountAttempt('local', user);
        await a.accountFailure('local', user);
      }
      await a.accountAttempt('local', user.toUpperCase());
      assert.equal((await a.accountFailure('local', `zo\u00eb-${run}`)).failures, 3);
    });

    test('token endpoint: the request budget is per instance, failures are shared', async (t) => {
      if (!ready(t)) return;
      for (let i = 0; i < 4; i++) assert.equal((await a.hitIp('token', ip(3))).allowed, true);
      assert.equal((await a.hitIp('token', ip(3))).allowed, false);
      assert.equal((await b.hitIp('token', ip(3))).allowed, true, 'the request budget lives in each instance');
      await a.tokenFailure(ip(4));
      await a.tokenFailure(ip(4));
      assert.equal((await a.hitIp('token', ip(4))).allowed, true, 'within the failure budget');
      await b.tokenFailure(ip(4));
      const blocked = await b.hitIp('token', ip(4));
      assert.equal(blocked.allowed, false, 'the third failure, counted by the other instance, blocks the address');
      assert.ok(blocked.retryAfterSeconds >= 1);
      await a.tokenFailure(ip(4));
      assert.equal((await a.hitIp('token', ip(4))).allowed, false, 'and the next failure at the first instance blocks it there too');
    });
  });
}

test('a store that fails falls back to counting in memory instead of failing logins', async () => {
  const database = await openDatabase({ dataDir: ':memory:' });
  await migrateDatabase(database);
  const warnings: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push((JSON.parse(line) as { msg: string }).msg) });
  const limits = await createRateLimits(limitsConfig(), database.knex, logger);
  await database.knex.schema.dropTable('rate_limits');
  try {
    const user = `erin-${randomBytes(4).toString('hex')}`;
    for (let i = 1; i <= 2; i++) {
      assert.equal((await limits.accountAttempt('local', user)).allowed, true);
      assert.equal((await limits.accountFailure('local', user)).failures, i);
    }
    assert.equal((await limits.hitIp('login', '203.0.113.9')).allowed, true);
    // The combined statement fails too: the attempt is counted in memory, with the failures above.
    const attempt = await limits.loginAttempt('203.0.113.9', { connectorId: 'local', username: user });
    assert.deepEqual([attempt.ip.allowed, attempt.account?.allowed], [true, true]);
    assert.equal((await limits.accountFailure('local', user)).failures, 3, 'the memory counter went on from the two failures above');
    await limits.accountSuccess('local', user);
    assert.equal((await limits.loginAttempt('203.0.113.9', { connectorId: 'local', username: user })).account?.allowed, true);
    assert.equal((await limits.accountFailure('local', user)).failures, 1, 'the success was forgotten in memory');
    // Not an outage (the table is gone): said once per failed statement, never silently.
    assert.ok(warnings.includes('the login attempt statement failed: counting in memory'), warnings.join('; '));
    assert.ok(warnings.includes('forgetting the failures of a sign-in failed: forgetting them in memory'), warnings.join('; '));
  } finally {
    await limits.close();
    await database.close();
  }
});
