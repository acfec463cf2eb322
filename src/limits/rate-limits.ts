// Brute-force and rate limits (rate-limiter-flexible). Counters that must hold across instances
// (per-account failures, per-IP login and callback budgets, per-IP token failures) live in the
// database (`rate_limits`, migration 0005) or in Redis when `redis.url` is set; should that store
// fail, each counter falls back to the instance's memory rather than failing the request. The
// per-IP request budget of the token endpoints is counted in memory only, so the hot path never
// pays a round trip for it.
import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { RateLimiterMemory, RateLimiterPostgres, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract, type IRateLimiterStoreOptions } from 'rate-limiter-flexible';
import type { Config } from '../config/schema.ts';
import { usernameKey } from '../accounts/normalize-username.ts';
import { knexStatements, type SqlStatements, type Statement } from '../storage/pg-statements.ts';
import { isDatabaseUnavailable } from '../storage/database-unavailable.ts';
import { rideAlong } from '../storage/held-writes.ts';

export type IpBudget = 'login' | 'callback' | 'token';

/** Whether a request may go on; when not, how long until it may (whole seconds, at least 1). */
export interface Verdict {
  allowed: boolean;
  retryAfterSeconds: number;
  /** True for the first refusal of a blocking period (what gets audited, once). */
  firstRefusal: boolean;
}

/** What a failed password attempt did to the account's counter. */
export interface FailureOutcome {
  /** This failure started a lockout. */
  locked: boolean;
  failures: number;
}

export interface RateLimits {
  readonly enabled: boolean;
  /** Counts one request against an IP budget. */
  hitIp(budget: IpBudget, ip: string): Promise<Verdict>;
  /** Counts a failed token-endpoint request of an IP (bad client, grant or code), shared by every instance. */
  tokenFailure(ip: string): Promise<void>;
  /** Before a password is checked: counts the attempt, refuses while the account backs off or is locked. */
  accountAttempt(connectorId: string, username: string): Promise<Verdict>;
  /**
   * A password (or code) is about to be checked: `hitIp('login', ip)`, then, if the address may
   * go on and `account` is given, `accountAttempt` for it. On the database store both are one
   * statement; `account` is null when it was not counted.
   */
  loginAttempt(ip: string, account?: { connectorId: string; username: string }): Promise<{ ip: Verdict; account: Verdict | null }>;
  /** The password was wrong (or the account unknown: counted the same). */
  accountFailure(connectorId: string, username: string): Promise<FailureOutcome>;
  /** The attempt ended without a verdict on the password (upstream down): it does not count. */
  accountNeutral(connectorId: string, username: string): Promise<void>;
  /** A successful login forgets the failures. */
  accountSuccess(connectorId: string, username: string): Promise<void>;
  /** Deletes expired counters (database store); returns how many. */
  sweep(): Promise<number>;
  /** Resolves once the shared store answers (Redis connects in the background), or after a few seconds. */
  ready(): Promise<void>;
  close(): Promise<void>;
}

const ALLOW: Verdict = { allowed: true, retryAfterSeconds: 0, firstRefusal: false };
const refuse = (ms: number, firstRefusal: boolean): Verdict => ({ allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(ms / 1000)), firstRefusal });

/**
 * The account part of a counter key: the username's comparison key (any spelling, case or
 * Unicode compatibility form of it counts as one), hashed so keys stay short and carry no personal data.
 */
export function accountKey(connectorId: string, username: string): string {
  return `${connectorId}:${createHash('sha256').update(usernameKey(username)).digest('base64url')}`;
}

/** Node's `consume` rejects with the result once over budget; this returns it either way. */
async function consume(limiter: RateLimiterAbstract, key: string, points = 1): Promise<RateLimiterRes> {
  try {
    return await limiter.consume(key, points);
  } catch (err) {
    if (err instanceof RateLimiterRes) return err;
    throw err;
  }
}

type StoreOptions = Omit<IRateLimiterStoreOptions, 'storeClient'>;

/** Builds shared counters on Redis or on the database; memory insures each against store failures. */
interface SharedStore {
  make(opts: StoreOptions): RateLimiterAbstract;
  /** The database store's statements (absent on Redis): the login's counters in one statement. */
  sql?: SqlStatements;
  sweep(): Promise<number>;
  ready(): Promise<void>;
  close(): Promise<void>;
}

async function sharedStore(config: Config, knex: Knex, statements: SqlStatements, logger: Logger): Promise<SharedStore> {
  if (config.redis.url) {
    // Loaded only when configured: deployments without Redis never pay for the client.
    const { Redis } = await import('ioredis');
    const redis = new Redis(config.redis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 2000, lazyConnect: false });
    let warned = false;
    redis.on('error', (err: Error) => {
      if (!warned) logger.warn({ err: err.message }, 'rate-limit store (Redis) unavailable: counting in memory until it is back');
      warned = true;
    });
    redis.on('ready', () => (warned = false));
    return {
      make: (opts) => new RateLimiterRedis({ ...opts, storeClient: redis, rejectIfRedisNotReady: true, insuranceLimiter: new RateLimiterMemory(opts) }),
      sweep: async () => 0,
      ready: () =>
        redis.status === 'ready'
          ? Promise.resolve()
          : new Promise<void>((resolve) => {
              const timer = setTimeout(done, 3000);
              function done() {
                clearTimeout(timer);
                redis.off('ready', done);
                resolve();
              }
              redis.once('ready', done);
            }),
      close: async () => {
        redis.disconnect();
      },
    };
  }
  // rate-limiter-flexible's PostgreSQL store sends `{ name, text, values }` with $n parameters:
  // the hot-path statements take them as they are (prepared on PostgreSQL, PGlite's own query).
  const client = {
    async query(q: { name?: string; text: string; values?: unknown[] }) {
      const result = await statements.run({ name: q.name ?? `rate_limits:${q.text.length}`, text: q.text }, q.values ?? []);
      // The store reads rowCount, which some drivers leave at 0 for a SELECT.
      return { rows: result.rows, rowCount: result.rows.length || result.rowCount };
    },
  };
  return {
    make: (opts) =>
      new RateLimiterPostgres({ ...opts, storeClient: client, storeType: 'client', tableName: 'rate_limits', tableCreated: true, clearExpiredByTimeout: false, insuranceLimiter: new RateLimiterMemory(opts) }),
    sql: statements,
    sweep: async () => (await knex('rate_limits').where('expire', '<', Date.now() - 60_000).delete()) as number,
    ready: async () => {},
    close: async () => {},
  };
}

/**
 * A password attempt's counters on the database store, in one statement where rate-limiter-flexible
 * takes three: the address's login budget counts one; if that leaves the address within its
 * budget ($5), the account's attempts count one; and the account's backoff row is read. Each
 * upsert is the library's own (`rlflx-upsert`): a counter whose period is over starts again at 1
 * with a new expiry. $1/$3/$6: the keys with the limiters' prefixes; $2/$4: the new expiries;
 * $7: now (epoch milliseconds, as the library stores them).
 */
const LOGIN_ATTEMPT_SQL: Statement = {
  name: 'kb_rate_login_attempt',
  text: `WITH ip AS (
  INSERT INTO rate_limits AS r (key, points, expire) VALUES ($1::varchar, 1, $2::bigint)
  ON CONFLICT (key) DO UPDATE SET
    points = CASE WHEN r.expire <= $7::bigint THEN 1 ELSE r.points + 1 END,
    expire = CASE WHEN r.expire <= $7::bigint THEN $2::bigint ELSE r.expire END
  RETURNING points, expire
), account AS (
  INSERT INTO rate_limits AS r (key, points, expire)
  SELECT $3::varchar, 1, $4::bigint FROM ip WHERE $3::varchar IS NOT NULL AND ip.points <= $5::int
  ON CONFLICT (key) DO UPDATE SET
    points = CASE WHEN r.expire <= $7::bigint THEN 1 ELSE r.points + 1 END,
    expire = CASE WHEN r.expire <= $7::bigint THEN $4::bigint ELSE r.expire END
  RETURNING points, expire
)
SELECT ip.points AS ip_points, ip.expire AS ip_expire, account.points AS account_points, account.expire AS account_expire,
  wait.points AS wait_points, wait.expire AS wait_expire
FROM ip
LEFT JOIN account ON true
LEFT JOIN rate_limits wait ON wait.key = $6::varchar AND (wait.expire > $7::bigint OR wait.expire IS NULL)`,
};

/** A successful login forgets the account's attempts and its backoff: the keys are parameter `$first`. */
const forgetText = (first: number) => `DELETE FROM rate_limits WHERE key = ANY($${first}::varchar[])`;
/** That delete in one statement (or with the login post's next save: accountSuccess). */
const FORGET_SQL: Statement = { name: 'kb_rate_forget', text: forgetText(1) };

interface LoginAttemptRow {
  ip_points: number;
  ip_expire: string | number | null;
  account_points: number | null;
  account_expire: string | number | null;
  wait_points: number | null;
  wait_expire: string | number | null;
}

/** A counter after a count: what a verdict is made of. */
interface Counted {
  consumedPoints: number;
  msBeforeNext: number;
}

/** What rate-limiter-flexible's PostgreSQL store makes of a counter row (its `_getRateLimiterRes`). */
function counted(points: number, expire: string | number | null): Counted {
  return { consumedPoints: points, msBeforeNext: expire === null ? -1 : Math.max(Number(expire) - Date.now(), 0) };
}

/**
 * What the library's `consume` does after its upsert when a counter goes over: the count that
 * first crosses the limit blocks the key for the block duration (and the refusal says so).
 */
async function afterConsume(limiter: RateLimiterAbstract, key: string, res: Counted): Promise<Counted> {
  if (res.consumedPoints === limiter.points + 1 && limiter.blockDuration > 0) {
    await limiter.block(key, limiter.blockDuration);
    return { consumedPoints: res.consumedPoints, msBeforeNext: limiter.blockDuration * 1000 };
  }
  return res;
}

/** Remembers, per instance, the IPs that the shared token-failure counter has blocked. */
class BlockedIps {
  readonly #until = new Map<string, number>();
  static readonly MAX = 100_000;

  blockedFor(ip: string): number {
    const until = this.#until.get(ip);
    if (until === undefined) return 0;
    const left = until - Date.now();
    if (left <= 0) this.#until.delete(ip);
    return Math.max(left, 0);
  }

  add(ip: string, ms: number): void {
    if (this.#until.size >= BlockedIps.MAX) this.#until.clear();
    this.#until.set(ip, Date.now() + ms);
  }
}

/** A consumed counter's verdict: refused once over its points (the first refusal is the one that crossed). */
function overBudget(limiter: RateLimiterAbstract, res: Counted): Verdict {
  return res.consumedPoints > limiter.points ? refuse(res.msBeforeNext, res.consumedPoints === limiter.points + 1) : ALLOW;
}

/** An account attempt through the limiters: counts it, then reads the backoff. */
async function attemptOn(attempts: RateLimiterAbstract, backoff: RateLimiterAbstract, key: string): Promise<Verdict> {
  const res = await consume(attempts, key);
  if (res.consumedPoints > attempts.points) return overBudget(attempts, res);
  const wait = await backoff.get(key);
  if (wait && wait.consumedPoints > backoff.points) return refuse(wait.msBeforeNext, false);
  return ALLOW;
}

/** `loginAttempt` through the limiters, a round trip each (Redis, or memory when the database store failed). */
async function loginAttemptOn(ipLimiter: RateLimiterAbstract, attempts: RateLimiterAbstract, backoff: RateLimiterAbstract, ip: string, account?: { connectorId: string; username: string }): Promise<{ ip: Verdict; account: Verdict | null }> {
  const ipVerdict = overBudget(ipLimiter, await consume(ipLimiter, ip));
  if (!ipVerdict.allowed || !account) return { ip: ipVerdict, account: null };
  return { ip: ipVerdict, account: await attemptOn(attempts, backoff, accountKey(account.connectorId, account.username)) };
}

/** The memory limiter that counts for a store limiter while its store fails. */
function insuranceOf(limiter: RateLimiterAbstract): RateLimiterAbstract {
  const insurance = (limiter as unknown as { insuranceLimiter?: RateLimiterAbstract }).insuranceLimiter;
  if (!insurance) throw new Error('a shared counter has no memory insurance');
  return insurance;
}

const DISABLED: RateLimits = {
  enabled: false,
  hitIp: async () => ALLOW,
  tokenFailure: async () => {},
  accountAttempt: async () => ALLOW,
  loginAttempt: async (_ip, account) => ({ ip: ALLOW, account: account ? ALLOW : null }),
  accountFailure: async () => ({ locked: false, failures: 0 }),
  accountNeutral: async () => {},
  accountSuccess: async () => {},
  sweep: async () => 0,
  ready: async () => {},
  close: async () => {},
};

/** `statements`: the database's hot-path statements (knex.raw when not given). */
export async function createRateLimits(config: Config, knex: Knex, logger: Logger, statements: SqlStatements = knexStatements(knex)): Promise<RateLimits> {
  const { limits } = config;
  if (!limits.enabled) return DISABLED;
  const store = await sharedStore(config, knex, statements, logger);
  const budget = (name: string, b: { points: number; durationSeconds: number; blockSeconds: number }): StoreOptions => ({ keyPrefix: `kb:${name}`, points: b.points, duration: b.durationSeconds, blockDuration: b.blockSeconds });

  const ipLimiters: Record<IpBudget, RateLimiterAbstract> = {
    login: store.make(budget('ip-login', limits.ip.login)),
    callback: store.make(budget('ip-callback', limits.ip.callback)),
    token: new RateLimiterMemory(budget('ip-token', limits.ip.token)),
  };
  const tokenFailures = store.make(budget('ip-token-fail', limits.ip.tokenFailures));
  const blockedIps = new BlockedIps();

  const a = limits.account;
  // Every attempt that does not succeed counts; the attempt past `lockoutFailures` locks.
  const attempts = store.make({ keyPrefix: 'kb:acct', points: a.lockoutFailures, duration: a.failureWindowSeconds, blockDuration: a.lockoutSeconds });
  // After `freeFailures`, each failure makes the next attempt wait 2^n seconds.
  const backoff = store.make({ keyPrefix: 'kb:acct-wait', points: 1, duration: a.maxBackoffSeconds });

  return {
    enabled: true,

    async hitIp(name, ip) {
      const limiter = ipLimiters[name];
      if (name === 'token') {
        const blocked = blockedIps.blockedFor(ip);
        if (blocked > 0) return refuse(blocked, false);
      }
      return overBudget(limiter, await consume(limiter, ip));
    },

    async tokenFailure(ip) {
      const res = await consume(tokenFailures, ip);
      if (res.consumedPoints > tokenFailures.points) blockedIps.add(ip, res.msBeforeNext);
    },

    accountAttempt: (connectorId, username) => attemptOn(attempts, backoff, accountKey(connectorId, username)),

    async loginAttempt(ip, account) {
      const sql = store.sql;
      if (!sql) return loginAttemptOn(ipLimiters.login, attempts, backoff, ip, account);
      const key = account ? accountKey(account.connectorId, account.username) : null;
      const now = Date.now();
      let row: LoginAttemptRow | undefined;
      try {
        const expiry = (limiter: RateLimiterAbstract) => (limiter.duration > 0 ? now + limiter.duration * 1000 : null);
        ({ rows: [row] } = await sql.run<LoginAttemptRow>(LOGIN_ATTEMPT_SQL, [
          ipLimiters.login.getKey(ip), expiry(ipLimiters.login),
          key === null ? null : attempts.getKey(key), expiry(attempts),
          ipLimiters.login.points, key === null ? null : backoff.getKey(key), now,
        ]));
      } catch (err) {
        // As the library does when its store fails: the instance's memory counts instead. An
        // outage is logged once by the database layer; anything else would be a fault here.
        if (!isDatabaseUnavailable(err)) logger.warn({ err }, 'the login attempt statement failed: counting in memory');
        return loginAttemptOn(insuranceOf(ipLimiters.login), insuranceOf(attempts), insuranceOf(backoff), ip, account);
      }
      if (!row) throw new Error('the login attempt statement returned no row');
      const ipRes = await afterConsume(ipLimiters.login, ip, counted(row.ip_points, row.ip_expire));
      const ipVerdict = overBudget(ipLimiters.login, ipRes);
      if (!ipVerdict.allowed || key === null || row.account_points === null) return { ip: ipVerdict, account: null };
      const res = await afterConsume(attempts, key, counted(row.account_points, row.account_expire));
      if (res.consumedPoints > attempts.points) return { ip: ipVerdict, account: overBudget(attempts, res) };
      const waiting = row.wait_points !== null && row.wait_points > backoff.points;
      return { ip: ipVerdict, account: waiting ? refuse(counted(row.wait_points!, row.wait_expire).msBeforeNext, false) : ALLOW };
    },

    async accountFailure(connectorId, username) {
      const key = accountKey(connectorId, username);
      const res = await attempts.get(key);
      const failures = res?.consumedPoints ?? 0;
      const over = failures - a.freeFailures;
      if (over > 0 && failures < a.lockoutFailures) await backoff.block(key, Math.min(2 ** (over - 1), a.maxBackoffSeconds));
      // The attempt that reaches the limit locks at once (the next one would too, one try later).
      if (failures >= a.lockoutFailures) {
        await attempts.block(key, a.lockoutSeconds);
        return { locked: true, failures };
      }
      return { locked: false, failures };
    },

    async accountNeutral(connectorId, username) {
      await attempts.reward(accountKey(connectorId, username), 1);
    },

    async accountSuccess(connectorId, username) {
      const key = accountKey(connectorId, username);
      const sql = store.sql;
      if (sql) {
        const keys = [attempts.getKey(key), backoff.getKey(key)];
        const alone = async () => {
          try {
            await sql.run(FORGET_SQL, [keys]);
          } catch (err) {
            if (!isDatabaseUnavailable(err)) logger.warn({ err }, 'forgetting the failures of a sign-in failed: forgetting them in memory');
            await Promise.all([insuranceOf(attempts).delete(key), insuranceOf(backoff).delete(key)]);
          }
        };
        // In a login's form post, the forgetting goes with the post's next save (its interaction's
        // result, or its next step's state): held-writes.ts.
        if (!rideAlong({ name: 'forget', text: forgetText, values: [keys], alone })) await alone();
        return;
      }
      await Promise.all([attempts.delete(key), backoff.delete(key)]);
    },

    sweep: () => store.sweep(),
    ready: () => store.ready(),
    close: () => store.close(),
  };
}
