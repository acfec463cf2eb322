// The database goes away (stopped) or hangs (every server process frozen with SIGSTOP) under a
// running broker: the API endpoints answer 503 temporarily_unavailable JSON with Retry-After,
// a browser at /auth gets the "temporarily unavailable" page (503, Retry-After), /readyz
// answers 503 within its bound, nothing logs an error with a stack (one warn line per outage),
// and once the database is back everything works again without restarting the broker.
// The suite runs its own PostgreSQL cluster (test/helpers/private-postgres.ts).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { privatePostgres, type PrivatePostgres } from '../helpers/private-postgres.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { assertNoErrorLogs, basic, codeFlowTokens, RP, startFaultBroker, type FaultBroker } from './fault-broker.ts';
import { Browser, findForm } from '../helpers/browser.ts';
import { DatabaseUnavailable } from '../../src/storage/database-unavailable.ts';

const RP_CLIENT = { id: 'rp', secret: 'rp-secret-0123456789abcdef' };
const SVC = { id: 'svc', secret: 'svc-secret-0123456789abcdef' };
const ADMIN = { id: 'ops', secret: 'ops-secret-0123456789abcdef' };
// Short bounds so the hung-database checks stay quick.
const STATEMENT_TIMEOUT_MS = 1000;
const ACQUIRE_TIMEOUT_MS = 1000;

describe('database outage', () => {
  let cluster: PrivatePostgres | { skip: string };
  let broker: FaultBroker;
  let userAccessToken: string;
  let adminToken: string;

  before(async () => {
    cluster = await privatePostgres();
    if ('skip' in cluster) return;
    broker = await startFaultBroker({
      databaseUrl: cluster.url,
      config: {
        database: { statementTimeoutMs: STATEMENT_TIMEOUT_MS, acquireTimeoutMs: ACQUIRE_TIMEOUT_MS },
        clients: [
          { ...RP_CLIENT, redirectUris: [RP], firstParty: true },
          { ...SVC, grantTypes: ['client_credentials'] },
          { ...ADMIN, grantTypes: ['client_credentials'], scopes: ['admin:read'] },
        ],
        users: [{ username: 'alice', password: 'alice-password-1', email: 'alice@example.org' }],
      },
    });
    userAccessToken = (await codeFlowTokens(broker.issuer, RP_CLIENT)).access_token;
    const admin = await fetch(`${broker.url}/token`, {
      method: 'POST',
      headers: { authorization: basic(ADMIN.id, ADMIN.secret), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'admin:read' }),
    });
    adminToken = ((await admin.json()) as { access_token: string }).access_token;
    // Tokens commit asynchronously (src/storage/database.ts); an immediate stop is a crash and
    // may lose the last ones. Flush, so the token outlives the outage below.
    await broker.database.knex.raw('CHECKPOINT');
  });

  after(async () => {
    await broker?.close();
    if (cluster && !('skip' in cluster)) cluster.destroy();
  });

  const timed = async <T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> => {
    const started = performance.now();
    const value = await fn();
    return { value, ms: performance.now() - started };
  };

  const clientCredentials = () =>
    fetch(`${broker.url}/token`, {
      method: 'POST',
      headers: { authorization: basic(SVC.id, SVC.secret), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials' }),
    });
  const userinfo = () => fetch(`${broker.url}/me`, { headers: { authorization: `Bearer ${userAccessToken}` } });
  const introspect = () =>
    fetch(`${broker.url}/token/introspection`, {
      method: 'POST',
      headers: { authorization: basic(SVC.id, SVC.secret), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: userAccessToken }),
    });
  const authorizeUrl = () => {
    const url = new URL('/auth', broker.url);
    url.search = new URLSearchParams({ client_id: RP_CLIENT.id, response_type: 'code', redirect_uri: RP, scope: 'openid', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', state: 'x' }).toString();
    return url.href;
  };
  const authorize = () => fetch(authorizeUrl(), { headers: { accept: 'text/html' }, redirect: 'manual' });
  const readyz = () => fetch(`${broker.url}/readyz`);

  async function assertUnavailableJson(res: Response, what: string) {
    const body = (await res.json()) as { error?: string };
    assert.equal(res.status, 503, `${what}: ${JSON.stringify(body)}`);
    assert.equal(body.error, 'temporarily_unavailable', what);
    assert.match(res.headers.get('retry-after') ?? '', /^\d+$/, `${what} carries Retry-After`);
  }

  async function assertEverythingWorks() {
    // The pool may first hand out connections that died with the server; give it a few tries.
    const deadline = Date.now() + 20_000;
    for (;;) {
      const res = await clientCredentials();
      if (res.status === 200 || Date.now() > deadline) {
        assert.equal(res.status, 200, `client_credentials works again: ${await res.text()}`);
        break;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal((await readyz()).status, 200);
    assert.equal((await userinfo()).status, 200);
    const introspection = (await (await introspect()).json()) as { active: boolean };
    assert.equal(introspection.active, true);
    const page = await authorize();
    assert.equal(page.status, 303, 'the authorization endpoint starts an interaction again');
  }

  test('everything works with the database up', async (t) => {
    if ('skip' in cluster) return skipLoudly(t, cluster.skip);
    await assertEverythingWorks();
  });

  test('database stopped: 503 with Retry-After everywhere, no error logs, back without a restart', async (t) => {
    if ('skip' in cluster) return skipLoudly(t, cluster.skip);
    const db = cluster;
    // A login page shown before the outage, submitted during it.
    const browser = new Browser(broker.issuer);
    const loginPage = await browser.go(authorizeUrl());
    assert.ok(findForm(loginPage.html, '/login'), 'a login form before the outage');
    const from = broker.logs.length;
    db.stop();
    try {
      // The password form (the interaction, the throttles and the account are all in the database).
      const submitted = await browser.submit(loginPage, '/login', { username: 'alice', password: 'alice-password-1' });
      assert.equal(submitted.status, 503, submitted.html.slice(0, 300));
      assert.match(submitted.html, /temporarily unavailable/i);
      // A reload of the login page: its interaction and the login's state are read together, and
      // both lookups fail; the page is the 503, and neither failure goes unhandled.
      const reloaded = await browser.go(loginPage.url);
      assert.equal(reloaded.status, 503, reloaded.html.slice(0, 300));
      assert.match(reloaded.html, /temporarily unavailable/i);

      await assertUnavailableJson(await clientCredentials(), 'client_credentials');
      await assertUnavailableJson(await userinfo(), 'userinfo');
      await assertUnavailableJson(await introspect(), 'introspection');
      // The admin API, signed in or not: a 503 problem, never a 500.
      for (const token of [adminToken, 'not-a-real-token-0123456789', undefined]) {
        const res = await fetch(`${broker.url}/admin/api/v1/users`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
        const body = (await res.json()) as { status?: number; code?: string };
        if (token === undefined) {
          assert.equal(res.status, 401, 'no token is refused before the database is needed');
          continue;
        }
        assert.equal(res.status, 503, JSON.stringify(body));
        assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
        assert.match(res.headers.get('retry-after') ?? '', /^\d+$/);
        assert.equal(body.code, 'temporarily_unavailable');
      }

      const page = await authorize();
      const html = await page.text();
      assert.equal(page.status, 503, html.slice(0, 300));
      assert.match(page.headers.get('content-type') ?? '', /text\/html/);
      assert.match(page.headers.get('retry-after') ?? '', /^\d+$/);
      assert.match(html, /temporarily unavailable/i);

      const { value: ready, ms } = await timed(readyz);
      assert.equal(ready.status, 503);
      assert.ok(ms < 4000, `readyz answered in ${Math.round(ms)} ms`);

      assertNoErrorLogs(broker.logs, from);
      const warnings = broker.logs.slice(from).filter((l) => l.level === 40 && /database unavailable/.test(l.msg ?? ''));
      assert.equal(warnings.length, 1, 'one warn line for the outage');
    } finally {
      db.start();
    }
    await assertEverythingWorks();
    assertNoErrorLogs(broker.logs, from);
  });

  test('the database goes away between reading the interaction and the account: 503, no error log', async (t) => {
    if ('skip' in cluster) return skipLoudly(t, cluster.skip);
    const browser = new Browser(broker.issuer);
    const loginPage = await browser.go(authorizeUrl());
    const statements = broker.database.pg!.statements;
    const run = statements.run;
    // Only the local account's lookup fails, as the pool fails it when the server is gone.
    statements.run = ((statement, values) => (statement.name.startsWith('kb_login_account') ? Promise.reject(new DatabaseUnavailable(new Error('connect ECONNREFUSED'))) : run.call(statements, statement, values))) as typeof run;
    const from = broker.logs.length;
    try {
      const submitted = await browser.submit(loginPage, '/login', { username: 'alice', password: 'alice-password-1' });
      assert.equal(submitted.status, 503, submitted.html.slice(0, 300));
      assert.match(submitted.html, /temporarily unavailable/i);
      assert.match(submitted.headers.get('retry-after') ?? '', /^\d+$/);
      assertNoErrorLogs(broker.logs, from);
    } finally {
      statements.run = run;
    }
    // The attempt that never reached a verdict did not count: alice signs in at once.
    const again = await browser.submit(await browser.go(authorizeUrl()), '/login', { username: 'alice', password: 'alice-password-1' });
    assert.equal(again.status, 303, again.html.slice(0, 300));
  });

  test('the database goes away as a finished login resumes (the interaction\'s delete): 503, no error log, and the resume works once it is back', async (t) => {
    if ('skip' in cluster) return skipLoudly(t, cluster.skip);
    const browser = new Browser(broker.issuer);
    const loginPage = await browser.go(authorizeUrl());
    const form = findForm(loginPage.html, '/login');
    assert.ok(form, 'a login form');
    const posted = await browser.request(new URL(form.action, loginPage.url).href, { form: { ...form.hidden, username: 'alice', password: 'alice-password-1' } });
    const resume = new URL(posted.headers.get('location') ?? '', broker.issuer).href;
    assert.match(new URL(resume).pathname, /^\/auth\/[^/]+$/, `the login redirects to its resume: ${posted.status}`);
    const statements = broker.database.pg!.statements;
    const run = statements.run;
    // Only the statement whose delete decides which resume goes on (it also saves the session, grant
    // and code) fails, as the pool fails it when the server is gone.
    statements.run = ((statement, values) => (statement.name === 'kb_oidc_resume_save' ? Promise.reject(new DatabaseUnavailable(new Error('connect ECONNREFUSED'))) : run.call(statements, statement, values))) as typeof run;
    const from = broker.logs.length;
    try {
      const failed = await browser.request(resume);
      const html = await failed.text();
      assert.equal(failed.status, 503, html.slice(0, 300));
      assert.match(html, /temporarily unavailable/i);
      assert.equal(failed.headers.get('location'), null, 'no redirect with a code that was never stored');
      assert.equal(failed.headers.get('set-cookie'), null, 'no cookie for a session that was never stored');
      assertNoErrorLogs(broker.logs, from);
    } finally {
      statements.run = run;
    }
    // Nothing was lost: the same resume, once the database answers, issues the code.
    const resumed = await browser.request(resume);
    const location = resumed.headers.get('location') ?? '';
    assert.ok(location.startsWith(RP) && new URL(location).searchParams.get('code'), `a code once the database is back: ${resumed.status} ${location}`);
  });

  test('database hung (SIGSTOP): readyz and /token answer 503 within their bounds, then recover', async (t) => {
    if ('skip' in cluster) return skipLoudly(t, cluster.skip);
    const db = cluster;
    const from = broker.logs.length;
    db.freeze();
    try {
      const { value: ready, ms: readyMs } = await timed(readyz);
      assert.equal(ready.status, 503);
      assert.ok(readyMs < 4000, `readyz answered in ${Math.round(readyMs)} ms`);

      // Bounded by the statement (1 s, plus the client-side margin) or acquire timeout (1 s).
      const { value: token, ms: tokenMs } = await timed(clientCredentials);
      await assertUnavailableJson(token, 'client_credentials on a hung database');
      assert.ok(tokenMs < 6000, `/token answered in ${Math.round(tokenMs)} ms`);

      const { value: me, ms: meMs } = await timed(userinfo);
      await assertUnavailableJson(me, 'userinfo on a hung database');
      assert.ok(meMs < 6000, `/me answered in ${Math.round(meMs)} ms`);
      assertNoErrorLogs(broker.logs, from);
    } finally {
      db.thaw();
    }
    await assertEverythingWorks();
    assertNoErrorLogs(broker.logs, from);
  });
});
