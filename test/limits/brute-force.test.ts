// Brute force through the real pages and endpoints: a password guessed in a tight loop, many
// usernames from one address, the token endpoint flooded or fed wrong secrets, callbacks
// flooded; on two instances over one PostgreSQL, and over Redis.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { Browser, type Page } from '../helpers/browser.ts';
import { freshPostgresDatabase } from '../helpers/postgres.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { freePort } from '../helpers/free-port.ts';

const RP = 'http://127.0.0.1:9/cb';
const SVC_SECRET = 'svc-secret-0123456789abcdef-xyz';

function authorizationUrl(issuer: string): string {
  const verifier = randomBytes(32).toString('base64url');
  const url = new URL(`${issuer}/auth`);
  url.search = new URLSearchParams({
    client_id: 'spa',
    response_type: 'code',
    scope: 'openid',
    redirect_uri: RP,
    state: randomBytes(8).toString('hex'),
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  }).toString();
  return url.href;
}

const baseConfig = (limits: Record<string, unknown>) => ({
  clients: [
    { id: 'spa', redirectUris: [RP], firstParty: true },
    { id: 'svc', secret: SVC_SECRET, grantTypes: ['client_credentials'] },
  ],
  users: [
    { username: 'alice', password: 'alice-password-1', email: 'alice@example.org' },
    { username: 'bob', password: 'bob-password-1', email: 'bob@example.org' },
    { username: 'carol', password: 'carol-password-1', email: 'carol@example.org' },
    { username: 'dave', password: 'dave-password-1', email: 'dave@example.org' },
  ],
  limits,
});

/** One interaction, its login form submitted again and again, as a guessing script would. */
class Guesser {
  readonly browser: Browser;
  page!: Page;
  readonly issuer: string;
  constructor(issuer: string) {
    this.issuer = issuer;
    this.browser = new Browser(issuer);
  }
  async open(): Promise<void> {
    this.page = await this.browser.go(authorizationUrl(this.issuer));
    assert.match(this.page.html, /name="password"/);
  }
  async guess(username: string, password: string): Promise<Page> {
    const page = await this.browser.submit(this.page, '/login', { username, password });
    // A failed or throttled login shows the form again: keep using it.
    if (page.html.includes('name="password"')) this.page = page;
    return page;
  }
}

async function auditTypes(broker: TestBroker, type: string): Promise<{ details: Record<string, unknown>; ip: string | null }[]> {
  return broker.store.knex('audit_events').where({ type }).select('details', 'ip');
}

describe('brute force through the login form', () => {
  let broker: TestBroker;

  before(async () => {
    broker = await startTestBroker({
      config: baseConfig({ account: { freeFailures: 3, lockoutFailures: 10, lockoutSeconds: 900 }, ip: { login: { points: 1000, durationSeconds: 60 } } }),
    });
  });
  after(() => broker?.close());

  test('200 wrong passwords in a tight loop lock the account; the right password is then refused', async () => {
    const g = new Guesser(broker.issuer);
    await g.open();
    const statuses: number[] = [];
    for (let i = 0; i < 200; i++) statuses.push((await g.guess('alice', `wrong-${i}`)).status);
    const wrong = statuses.filter((s) => s === 401).length;
    assert.ok(wrong >= 4 && wrong <= 10, `at most 10 passwords were really tried, got ${wrong}`);
    assert.equal(statuses.filter((s) => s === 429).length, 200 - wrong, 'every other attempt was throttled');
    assert.deepEqual(statuses.slice(0, 4), [401, 401, 401, 401], 'the first free failures and the one that starts the backoff');

    const right = await g.guess('alice', 'alice-password-1');
    assert.equal(right.status, 429, 'the right password does not get through a lockout');
    assert.match(right.html, /Too many failed sign-in attempts for this account\. Try again in 15 minutes\./);
    const retry = Number(right.headers.get('retry-after'));
    assert.ok(retry > 800 && retry <= 900, `Retry-After ${retry}`);

    assert.equal((await auditTypes(broker, 'account.locked')).length, 1);
    assert.ok((await auditTypes(broker, 'login.throttled')).length >= 190);
    assert.ok((await auditTypes(broker, 'login.failure')).length <= 10, 'throttled attempts never reached the password check');
  });

  test('50 guesses at once: no more passwords are checked than the lockout allows', async () => {
    const g = new Guesser(broker.issuer);
    await g.open();
    const form = g.page;
    const pages = await Promise.all(Array.from({ length: 50 }, (_, i) => g.browser.submit(form, '/login', { username: 'dave', password: `parallel-${i}` })));
    const checked = pages.filter((p) => p.status === 401).length;
    assert.ok(checked >= 1 && checked <= 10, `passwords checked: ${checked}`);
    assert.equal(pages.filter((p) => p.status === 429).length, 50 - checked);
  });

  test('an unknown username is throttled exactly like an existing one', async () => {
    const trace = async (username: string) => {
      const g = new Guesser(broker.issuer);
      await g.open();
      const out: string[] = [];
      for (let i = 0; i < 30; i++) {
        const page = await g.guess(username, `wrong-${i}`);
        out.push(`${page.status}:${/Too many failed sign-in attempts for this account|Invalid username or password/.exec(page.html)?.[0]}:${page.headers.get('retry-after') ?? ''}`);
      }
      return out;
    };
    const existing = await trace('bob');
    const unknown = await trace('nobody-at-all');
    // Retry-After may differ by a second between the two runs; status and text may not.
    const shape = (t: string[]) => t.map((s) => s.split(':').slice(0, 2).join(':'));
    assert.deepEqual(shape(unknown), shape(existing));
    assert.ok(existing.some((s) => s.startsWith('429')));
  });

  test('a successful login resets the counter', async () => {
    const g = new Guesser(broker.issuer);
    await g.open();
    for (let i = 0; i < 3; i++) assert.equal((await g.guess('carol', `wrong-${i}`)).status, 401);
    const ok = await g.guess('carol', 'carol-password-1');
    assert.ok(ok.url.startsWith(RP), `signed in and back at the app, got ${ok.status} at ${ok.url}`);
    const g2 = new Guesser(broker.issuer);
    await g2.open();
    for (let i = 0; i < 3; i++) assert.equal((await g2.guess('carol', `wrong-again-${i}`)).status, 401, 'three free failures again');
  });
});

describe('per-IP limits', () => {
  let broker: TestBroker;

  before(async () => {
    const port = await freePort();
    broker = await startTestBroker({
      config: {
        ...baseConfig({ ip: { login: { points: 30, durationSeconds: 60 }, token: { points: 20, durationSeconds: 60 }, tokenFailures: { points: 5, durationSeconds: 600 }, callback: { points: 5, durationSeconds: 60 } } }),
        http: { listen: `127.0.0.1:${port}`, trustProxy: true },
      },
      port,
    });
  });
  after(() => broker?.close());

  test('200 attempts over 200 usernames from one address: refused after the budget, with Retry-After', async () => {
    const g = new Guesser(broker.issuer);
    await g.open();
    const statuses: number[] = [];
    let last: Page | undefined;
    for (let i = 0; i < 200; i++) {
      last = await g.guess(`user-${i}`, 'Winter2026!');
      statuses.push(last.status);
    }
    assert.equal(statuses.filter((s) => s === 401).length, 30);
    assert.equal(statuses.filter((s) => s === 429).length, 170);
    assert.match(last!.html, /Too many sign-in attempts from your network/);
    assert.ok(Number(last!.headers.get('retry-after')) >= 1);
    const throttled = (await auditTypes(broker, 'login.throttled')).filter((e) => e.details.scope === 'ip');
    assert.equal(throttled.length, 1, 'an address that hits its budget is audited once, not per request');
  });

  test('the token endpoint: a flood gets 429 JSON with Retry-After', async () => {
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 25; i++) {
      last = await fetch(`${broker.url}/token`, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from(`svc:${SVC_SECRET}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': '203.0.113.50' },
        body: 'grant_type=client_credentials',
      });
      statuses.push(last.status);
    }
    assert.deepEqual(statuses.slice(0, 20), Array(20).fill(200));
    assert.deepEqual(statuses.slice(20), Array(5).fill(429));
    assert.equal((await last!.json()).error, 'too_many_requests');
    assert.ok(Number(last!.headers.get('retry-after')) >= 1);
  });

  test('wrong client secrets from one address are blocked after the failure budget', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const res = await fetch(`${broker.url}/token/introspection`, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from(`svc:wrong-secret-${i}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': '203.0.113.51' },
        body: 'token=abc',
      });
      statuses.push(res.status);
    }
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 401, 429, 429]);
    const other = await fetch(`${broker.url}/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`svc:${SVC_SECRET}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': '203.0.113.52' },
      body: 'grant_type=client_credentials',
    });
    assert.equal(other.status, 200, 'other addresses are not affected');
  });

  test('upstream callbacks: a flood gets 429 before any state lookup', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push((await fetch(`${broker.url}/callback/local?state=${'x'.repeat(20)}`, { headers: { 'x-forwarded-for': '203.0.113.53', accept: 'text/html' } })).status);
    assert.deepEqual(statuses, [400, 400, 400, 400, 400, 429, 429]);
  });
});

describe('limits across instances', () => {
  test('two instances on one PostgreSQL share the account lockout', async (t) => {
    const fresh = await freshPostgresDatabase();
    if ('skip' in fresh) return skipLoudly(t, fresh.skip);
    const config = baseConfig({ account: { freeFailures: 10, lockoutFailures: 4, lockoutSeconds: 600 } });
    const a = await startTestBroker({ databaseUrl: fresh.url, config });
    const b = await startTestBroker({ databaseUrl: fresh.url, config });
    try {
      const ga = new Guesser(a.issuer);
      const gb = new Guesser(b.issuer);
      await ga.open();
      await gb.open();
      const seen = [await ga.guess('alice', 'w1'), await gb.guess('alice', 'w2'), await ga.guess('alice', 'w3'), await gb.guess('alice', 'w4')].map((p) => p.status);
      assert.deepEqual(seen, [401, 401, 401, 401]);
      assert.equal((await ga.guess('alice', 'alice-password-1')).status, 429);
      assert.equal((await gb.guess('alice', 'alice-password-1')).status, 429);
    } finally {
      await a.close();
      await b.close();
      await fresh.drop();
    }
  });

  test('with redis.url, two instances share the counters through Redis', async (t) => {
    const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 2000 });
    try {
      await probe.connect();
      await probe.ping();
    } catch (err) {
      return skipLoudly(t, `Redis is not reachable at ${url} (${(err as Error).message}); .ci/run starts redis-server`);
    } finally {
      probe.disconnect();
    }
    // Separate embedded databases: only Redis connects the two instances.
    const user = `zed${randomBytes(4).toString('hex')}`;
    const config = { ...baseConfig({ account: { freeFailures: 10, lockoutFailures: 3, lockoutSeconds: 600 } }), redis: { url } };
    const a = await startTestBroker({ config });
    const b = await startTestBroker({ config });
    try {
      const ga = new Guesser(a.issuer);
      const gb = new Guesser(b.issuer);
      await ga.open();
      await gb.open();
      assert.deepEqual([(await ga.guess(user, 'w1')).status, (await gb.guess(user, 'w2')).status, (await ga.guess(user, 'w3')).status], [401, 401, 401]);
      assert.equal((await gb.guess(user, 'w4')).status, 429);
      assert.equal((await ga.guess(user, 'w5')).status, 429);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
