// The token hot path on PostgreSQL: how many statements each request costs (prepared statements
// on the raw pool, no knex query building), and that the account cache never serves a user the
// instance itself disabled or regrouped.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { freshPostgresDatabase } from '../helpers/postgres.ts';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { basic, RP } from '../faults/fault-broker.ts';
import { Browser, findForm } from '../helpers/browser.ts';
import { signIn } from '../helpers/login-flow.ts';
import { hashPassword } from '../../src/accounts/passwords.ts';
import type { Knex } from 'knex';
import type { Statement } from '../../src/storage/pg-statements.ts';
import { createAccountLookup } from '../../src/storage/account-cache.ts';

const CLIENT = { id: 'rp', secret: 'rp-secret-0123456789abcdef' };
const FORM = { authorization: basic(CLIENT.id, CLIENT.secret), 'content-type': 'application/x-www-form-urlencoded' };

describe('token hot path on PostgreSQL', () => {
  let db: Awaited<ReturnType<typeof freshPostgresDatabase>>;
  let broker: TestBroker;
  const seen: string[] = [];
  /** Statement names with the record kind (the first parameter). */
  const kinds: string[] = [];

  before(async () => {
    db = await freshPostgresDatabase();
    if ('skip' in db) return;
    broker = await startTestBroker({
      databaseUrl: db.url,
      // The once-a-second look for changed connectors is background work, not a request's cost:
      // kept out of the measured windows.
      connectorPollMs: 3_600_000,
      config: {
        clients: [{ ...CLIENT, redirectUris: [RP], firstParty: true, grantTypes: ['authorization_code', 'refresh_token', 'client_credentials'] }],
        users: [{ username: 'alice', password: 'alice-password-1', email: 'alice@example.org', groups: ['staff'] }],
      },
    });
    const statements = broker.database.pg?.statements;
    assert.ok(statements, 'a PostgreSQL broker has a raw pool with prepared statements');
    const run = statements.run.bind(statements);
    statements.run = ((statement: Statement, values: readonly unknown[]) => {
      seen.push(statement.name);
      kinds.push(`${statement.name} ${Array.isArray(values[0]) ? values[0].join(',') : String(values[0])}`);
      return run(statement, values);
    }) as typeof statements.run;
    // The change feed's once-a-second poll (change_versions) and the mail worker's look for due
    // mails (email_outbox) are background work, not the request's.
    const background = (sql: string) => sql.includes('change_versions') || sql.includes('email_outbox');
    // A statement knex sends with a name (prepared once per connection) is listed by its name.
    for (const knex of new Set([broker.database.knex, broker.database.artifacts])) knex.on('query', (q: { sql: string; options?: { name?: string } }) => background(q.sql) || seen.push(q.options?.name ? `knex, prepared: ${q.options.name}` : `knex: ${q.sql}`));
  });

  after(async () => {
    await broker?.close();
    if (db && !('skip' in db)) await db.drop();
  });

  /** The statements one request ran. */
  const counted = async (request: () => Promise<Response>): Promise<{ status: number; body: Record<string, string>; statements: string[] }> => {
    seen.length = 0;
    const res = await request();
    const body = (await res.json().catch(() => ({}))) as Record<string, string>;
    return { status: res.status, body, statements: [...seen] };
  };
  /** alice signs in with the groups scope: her tokens. */
  const codeFlowTokens = async (scope = 'openid offline_access groups', browser = new Browser(broker.issuer), prompt: Record<string, string> = { prompt: 'consent' }): Promise<{ access_token: string; refresh_token: string }> => {
    const url = authorizeUrl(scope, prompt);
    const code = new URL(await signIn(browser, url, { username: 'alice', password: 'alice-password-1' })).searchParams.get('code')!;
    const res = await token({ grant_type: 'authorization_code', code, redirect_uri: RP });
    assert.equal(res.status, 200);
    return (await res.json()) as { access_token: string; refresh_token: string };
  };
  const userinfo = (token: string) => fetch(`${broker.url}/me`, { headers: { authorization: `Bearer ${token}` } });
  const token = (form: Record<string, string>) => fetch(`${broker.url}/token`, { method: 'POST', headers: FORM, body: new URLSearchParams(form) });
  /** An authorization request of the test client, as a URL string (`extra` overrides or adds parameters). */
  const authorizeUrl = (scope: string, extra: Record<string, string> = {}) => {
    const url = new URL('/auth', broker.issuer);
    url.search = new URLSearchParams({ client_id: CLIENT.id, response_type: 'code', redirect_uri: RP, scope, state: 'st', ...extra }).toString();
    return url.href;
  };

  test('client_credentials and introspection: one prepared statement each, no knex', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const cc = await counted(() => token({ grant_type: 'client_credentials' }));
    assert.equal(cc.status, 200);
    assert.deepEqual(cc.statements, ['kb_oidc_upsert']);
    const introspected = await counted(() => fetch(`${broker.url}/token/introspection`, { method: 'POST', headers: FORM, body: new URLSearchParams({ token: cc.body.access_token }) }));
    assert.equal(introspected.status, 200);
    assert.equal((introspected.body as unknown as { active: boolean }).active, true);
    assert.deepEqual(introspected.statements, ['kb_oidc_find'], 'one lookup of the token as every kind it may be');
  });

  test('a code exchange: two statements (the code with its grant and session; the code claimed with the tokens it gives)', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    for (const scope of ['openid offline_access groups', 'openid groups']) {
      const url = authorizeUrl(scope, { prompt: 'consent' });
      const code = new URL(await signIn(new Browser(broker.issuer), url, { username: 'alice', password: 'alice-password-1' })).searchParams.get('code')!;
      const exchanged = await counted(() => token({ grant_type: 'authorization_code', code, redirect_uri: RP }));
      assert.equal(exchanged.status, 200);
      assert.ok(exchanged.body.access_token && exchanged.body.refresh_token && exchanged.body.id_token, scope);
      assert.deepEqual(exchanged.statements, ['kb_oidc_find_with_grant_session', 'kb_oidc_claim_save'], scope);
      const replayed = await counted(() => token({ grant_type: 'authorization_code', code, redirect_uri: RP }));
      assert.equal(replayed.body.error, 'invalid_grant', 'the code was consumed');
      assert.equal((await userinfo(exchanged.body.access_token)).status, 401, "the replay revoked the code's tokens");
    }
  });

  test('userinfo: one statement (token with its grant) once the account is cached; refresh: two', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const tokens = await codeFlowTokens();
    assert.equal((await counted(() => userinfo(tokens.access_token))).status, 200);
    const warm = await counted(() => userinfo(tokens.access_token));
    assert.equal(warm.status, 200);
    assert.deepEqual(warm.body.groups, ['staff'] as unknown as string);
    assert.deepEqual(warm.statements, ['kb_oidc_find_with_grant_session'], 'the access token with its grant; the account comes from the cache');

    const refreshed = await counted(() => token({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token }));
    assert.equal(refreshed.status, 200);
    // The refresh token with its grant; the old token consumed, its successor and the access token saved in one.
    assert.deepEqual(refreshed.statements, ['kb_oidc_find_with_grant_session', 'kb_oidc_rotate_many']);
    const again = await counted(() => token({ grant_type: 'refresh_token', refresh_token: refreshed.body.refresh_token }));
    assert.equal(again.status, 200, 'the successor works');
    const reused = await counted(() => token({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token }));
    assert.equal(reused.body.error, 'invalid_grant', 'the rotated token was consumed');
  });

  test('a token bound to its browser session (no offline_access): userinfo reads token, grant and session in one statement, and a signed-out session ends it', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const browser = new Browser(broker.issuer);
    const tokens = await codeFlowTokens('openid groups', browser);
    assert.equal((await counted(() => userinfo(tokens.access_token))).status, 200);
    const warm = await counted(() => userinfo(tokens.access_token));
    assert.equal(warm.status, 200);
    assert.deepEqual(warm.statements, ['kb_oidc_find_with_grant_session'], 'token, grant and the session its binding is checked against');

    // Many callers with the one token at once: each gets the grant and session read along (no
    // further lookups), however the lookups were batched.
    seen.length = 0;
    const many = await Promise.all(Array.from({ length: 20 }, () => userinfo(tokens.access_token)));
    assert.ok(many.every((r) => r.status === 200));
    assert.ok(!seen.includes('kb_oidc_find_uid') && !seen.includes('kb_oidc_find'), `no separate grant or session lookups: ${seen.join(', ')}`);

    // The same at the adapter, where the batching is certain: more lookups of the token than free
    // slots go as one, and every caller's grant and session lookups are answered from it.
    const { createOidcAdapter } = await import('../../src/storage/oidc-adapter.ts');
    const Adapter = createOidcAdapter(broker.database.artifacts, { statements: broker.database.pg!.statements });
    const stored = await broker.database.knex('oidc_payloads').where({ kind: 'AccessToken' }).whereRaw("payload->>'expiresWithSession' = 'true'").first();
    const [AccessToken, Grant, Session] = [new Adapter('AccessToken'), new Adapter('Grant'), new Adapter('Session')];
    seen.length = 0;
    const read = await Promise.all(Array.from({ length: 24 }, async () => {
      const token = (await AccessToken.find(stored.id)) as { grantId: string; sessionUid: string };
      return { session: await Session.findByUid(token.sessionUid), grant: await Grant.find(token.grantId) };
    }));
    assert.ok(read.every((r) => r.session && r.grant), 'every caller gets the session and the grant');
    assert.ok(seen.every((name) => name === 'kb_oidc_find_with_grant_session') && seen.length < 24, `24 callers in ${seen.length} statements: ${seen.join(', ')}`);
    // Read along means once per caller: a later lookup reads afresh.
    seen.length = 0;
    assert.ok(await Grant.find(read[0]!.grant!.jti as string));
    assert.deepEqual(seen, ['kb_oidc_find']);

    // The session ends (the person signs out): the token bound to it no longer works.
    const bound = await broker.database.knex('oidc_payloads').where({ kind: 'AccessToken', id: tokens.access_token }).first();
    assert.equal(bound.payload.expiresWithSession, true);
    assert.equal(await broker.database.knex('oidc_payloads').where({ kind: 'Session', uid: bound.payload.sessionUid }).delete(), 1, 'the browser session behind the token');
    const ended = await counted(() => userinfo(tokens.access_token));
    assert.equal(ended.status, 401);
    assert.deepEqual(ended.statements, ['kb_oidc_find_with_grant_session'], 'the missing session was learnt from the same statement');
  });

  test('concurrent refreshes: each consumes its own predecessor and saves its own successor, however their writes were batched', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const chains = await Promise.all(Array.from({ length: 6 }, () => codeFlowTokens()));
    seen.length = 0;
    const refreshed = await Promise.all(chains.map((c) => token({ grant_type: 'refresh_token', refresh_token: c.refresh_token }).then(async (r) => ({ status: r.status, body: (await r.json()) as { refresh_token: string; access_token: string } }))));
    assert.ok(refreshed.every((r) => r.status === 200), 'every refresh answered');
    assert.ok(seen.filter((n) => n === 'kb_oidc_rotate_many').length <= 6 && !seen.includes('kb_oidc_upsert'), `rotations and access tokens saved together: ${seen.join(', ')}`);
    for (const [i, r] of refreshed.entries()) {
      const intro = (await (await fetch(`${broker.url}/token/introspection`, { method: 'POST', headers: FORM, body: new URLSearchParams({ token: r.body.access_token }) })).json()) as { active: boolean };
      assert.equal(intro.active, true, `access token ${i} stored`);
      const consumed = await broker.database.knex('oidc_payloads').where({ kind: 'RefreshToken', id: chains[i]!.refresh_token }).first();
      assert.ok(consumed.consumed_at, `predecessor ${i} consumed`);
      const successor = await broker.database.knex('oidc_payloads').where({ kind: 'RefreshToken', id: r.body.refresh_token }).first();
      assert.ok(successor && !successor.consumed_at, `successor ${i} stored, unused`);
    }
  });

  test('every token-table statement, as prepared (generic plan, index scans only), reads only the rows it is after in a large table', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const { HOT_PATH_SQL } = await import('../../src/storage/oidc-adapter.ts');
    const knex = broker.database.knex;
    // Thousands of sessions, grants and session-bound refresh tokens, as after a busy day.
    await knex.raw(`INSERT INTO oidc_payloads (kind, id, payload, grant_id, uid, expires_at)
      SELECT 'Session', 'plan-s' || i, jsonb_build_object('uid', 'plan-u' || i), NULL, 'plan-u' || i, now() + interval '1 hour' FROM generate_series(1, 2000) i
      UNION ALL SELECT 'Grant', 'plan-g' || i, '{}'::jsonb, NULL, NULL, now() + interval '1 hour' FROM generate_series(1, 2000) i
      UNION ALL SELECT 'DeviceCode', 'plan-d' || i, '{}'::jsonb, NULL, NULL, now() + interval '1 hour' FROM generate_series(1, 2000) i
      UNION ALL SELECT 'RefreshToken', 'plan-r' || i, jsonb_build_object('sessionUid', 'plan-u' || (i % 2000), 'expiresWithSession', true, 'grantId', 'plan-g' || (i % 2000)), 'plan-g' || (i % 2000), NULL, now() + interval '1 hour' FROM generate_series(1, 6000) i`);
    await knex.raw(`UPDATE oidc_payloads SET user_code = 'PLAN-' || lpad(substr(id, 7), 4, '0') WHERE kind = 'DeviceCode' AND id LIKE 'plan-d%'`);
    const at = "now()";
    const calls: Record<string, string> = {
      find: `'{RefreshToken,AccessToken}', '{plan-r5,none}'`,
      findWithGrant: `'{RefreshToken}', '{plan-r5}'`,
      findByUserCode: `'DeviceCode', 'PLAN-0007'`,
      findByUid: `'Session', 'plan-u7'`,
      upsert: `'AccessToken', 'plan-new', '{}', 'plan-g1', NULL, NULL, ${at}`,
      upsertMany: `'{AccessToken}', '{plan-new2}', ARRAY['{}']::jsonb[], '{plan-g1}', '{NULL}', '{NULL}', ARRAY[${at}]`,
      rotateMany: `'{RefreshToken,AccessToken}', '{plan-r-next,plan-a-next}', ARRAY['{}','{}']::jsonb[], '{plan-g5,plan-g5}', '{NULL,NULL}', '{NULL,NULL}', ARRAY[${at}, ${at}], '{plan-r5}', ARRAY[${at}]`,
      consume: `'RefreshToken', 'plan-r6', ${at}`,
      claim: `'RefreshToken', 'plan-r7', ${at}`,
      claimAndSave: `'{AccessToken,RefreshToken}', '{plan-a-code,plan-r-code}', ARRAY['{}','{}']::jsonb[], '{plan-g6,plan-g6}', '{NULL,NULL}', '{NULL,NULL}', ARRAY[${at}, ${at}], 'DeviceCode', 'plan-d9', ${at}`,
      destroy: `'RefreshToken', 'plan-r8'`,
    };
    // A prepared plan made with other statistics once joined the session of findWithGrant by
    // hashing every session of the table (the bench saw the rows read per login grow with each
    // login); its lookups must be keyed lookups whatever the planner's estimates.
    await assertKeyedPlans(knex, 'oidc_payloads', Object.entries(calls).map(([key, args]) => ({ statement: HOT_PATH_SQL[key as keyof typeof HOT_PATH_SQL], args })));
    await knex('oidc_payloads').where('id', 'like', 'plan-%').delete();
  });

  test("the login page is one statement: its interaction and the login's stored state are read together, and a reload mid-login still finds the state", async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const browser = new Browser(broker.issuer);
    const url = authorizeUrl('openid');
    const page = await browser.go(url);
    assert.match(page.html, /name="password"/);
    seen.length = 0;
    kinds.length = 0;
    const reload = await browser.go(page.url);
    assert.match(reload.html, /name="password"/, 'the login form again');
    assert.deepEqual(seen, ['kb_oidc_find'], `one lookup: ${seen.join(', ')}`);
    assert.match(kinds[0]!, /^kb_oidc_find (Interaction,UpstreamLogin|UpstreamLogin,Interaction)$/, 'the interaction and the login state in the same statement');

    // A login whose state is stored (a step showed a page): a reload of the page shows that
    // step, read in the same one statement.
    const uid = new URL(page.url).pathname.split('/')[2]!;
    const { createOidcAdapter } = await import('../../src/storage/oidc-adapter.ts');
    const Adapter = createOidcAdapter(broker.database.artifacts, { statements: broker.database.pg!.statements });
    const user = await broker.store.users.findByUsername('alice');
    const state = { uid, clientId: CLIENT.id, connectorId: 'local', login: { userId: user!.id, amr: ['pwd'], claims: {} }, facts: { enrolled: false, actions: [] }, mustEnrol: true, stored: true };
    await new Adapter('UpstreamLogin').upsert(`login.${uid}`, state as never, 600);
    seen.length = 0;
    const step = await browser.go(page.url);
    assert.doesNotMatch(step.html, /name="password"/, 'not the login form: the stored step');
    assert.match(step.html, /totp|authenticator|passkey/i, 'the enrolment step the stored state is at');
    assert.equal(seen[0], 'kb_oidc_find');
    assert.equal(seen.filter((s) => s === 'kb_oidc_find').length, 1, `the state was not looked up again: ${seen.join(', ')}`);
  });

  test("a password login's reads are prepared statements: the account with its groups and password hash in one, the MFA facts and policies, no knex", async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    seen.length = 0;
    await codeFlowTokens('openid groups', new Browser(broker.issuer), {});
    const login = [...seen];
    for (const name of ['kb_login_account_key', 'kb_mfa_login_facts_user']) {
      assert.equal(login.filter((s) => s === name).length, 1, `${name} once: ${login.join(', ')}`);
    }
    // The user read again once the password is verified comes with the login's facts.
    assert.deepEqual(login.filter((s) => s === 'kb_user_find' || s === 'kb_mfa_login_facts'), [], login.join(', '));
    // The second-factor policies come with the login's facts, not in a statement of their own.
    assert.equal(login.filter((s) => s === 'kb_mfa_policies_applicable').length, 0, login.join(', '));
    // The brute-force counters: the address and the account counted (and the backoff read) in one
    // statement before the password is checked, both forgotten after it was right, with the
    // interaction's result (one statement); none of rate-limiter-flexible's own statements (three
    // before, two after).
    assert.deepEqual(login.filter((s) => s.startsWith('kb_rate_') || s.startsWith('rate_limits:') || s === 'kb_oidc_upsert_forget'), ['kb_rate_login_attempt', 'kb_oidc_upsert_forget'], login.join(', '));
    assert.deepEqual(await broker.database.knex('rate_limits').where('key', 'like', 'kb:acct%').select('key'), [], "the account's counters are gone");
    // Which connector signed the session in: written with the session as the login resumes, not
    // in a statement of its own (nor a knex insert).
    assert.deepEqual(login.filter((s) => s.includes('login_session') || s === 'kb_oidc_destroy'), [], login.join(', '));
    assert.equal(login.filter((s) => s === 'kb_oidc_resume_save').length, 1, login.join(', '));
    // Before: the user, then its groups and its credential, each a knex query parsed and planned anew.
    const knexReads = login.filter((s) => /^knex: select/i.test(s) && /"?(users|credentials|memberships|mfa_factors|required_actions|mfa_policies)"?/.test(s));
    assert.deepEqual(knexReads, [], 'no knex query reads an account table during the login');
    // Its audit event (login.success): one prepared insert on the synchronous pool, no query building.
    assert.deepEqual(login.filter((s) => /audit_events|kb_audit/i.test(s)), ['knex, prepared: kb_audit_insert'], login.join(', '));
    // And an email finds the same account through its own statement.
    seen.length = 0;
    const url = authorizeUrl('openid');
    const callback = await signIn(new Browser(broker.issuer), url, { username: 'ALICE@example.org', password: 'alice-password-1' });
    assert.ok(new URL(callback).searchParams.get('code'), 'signed in by email');
    assert.equal(seen.filter((s) => s === 'kb_login_account_email').length, 1, seen.join(', '));

    // A user kept in the database (not declared in the config) has its password judged by the
    // policy at login: when it was set and the stamp it met come with the hash, in the same
    // statement. The first login stamps the password (an update); the next reads nothing more.
    const stored = await broker.store.users.create({ username: 'dora', email: 'dora@example.org', emailVerified: true });
    await broker.store.credentials.setPassword(stored.id, await hashPassword('Hot-path-Ruby#2931'));
    for (const round of ['first', 'second']) {
      seen.length = 0;
      const done = await signIn(new Browser(broker.issuer), url, { username: 'dora', password: 'Hot-path-Ruby#2931' });
      assert.ok(new URL(done).searchParams.get('code'), `the ${round} login of a stored user`);
      const credentials = seen.filter((s) => /credentials/.test(s));
      assert.deepEqual(credentials.filter((s) => /^knex: select/i.test(s)), [], `no read of the password's facts of its own (${round} login): ${seen.join(', ')}`);
      assert.equal(credentials.filter((s) => /^knex: update/i.test(s)).length, round === 'first' ? 1 : 0, `the policy stamp written once (${round} login): ${credentials.join(', ')}`);
    }
    const { rows: [stamped] } = await broker.database.knex.raw<{ rows: Array<{ policy_checked: string | null }> }>("SELECT policy_checked FROM credentials WHERE user_id = ? AND type = 'password'", [stored.id]);
    assert.ok(stamped?.policy_checked, 'the password was judged and stamped');
  });

  test('a local account disabled or deleted while its password is verified is not signed in: the user read again with the login facts says so', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const statements = broker.database.pg!.statements;
    const run = statements.run;
    for (const change of ['disabled', 'deleted'] as const) {
      const username = `racer-${change}`;
      const user = await broker.store.users.create({ username, email: `${username}@example.org` });
      await broker.store.credentials.setPassword(user.id, await hashPassword('racer-password-1'));
      // As the account's row is read (before its hash is verified), an administrator changes it.
      statements.run = (async (statement: Statement, values: readonly unknown[]) => {
        const result = await run.call(statements, statement, values);
        if (statement.name === 'kb_login_account_key' && values[0] === username) {
          if (change === 'disabled') await broker.database.knex('users').where({ id: user.id }).update({ enabled: false });
          else await broker.database.knex('users').where({ id: user.id }).delete();
        }
        return result;
      }) as typeof run;
      try {
        const url = authorizeUrl('openid');
        const browser = new Browser(broker.issuer);
        const page = await browser.submit(await browser.go(url), '/login', { username, password: 'racer-password-1' });
        assert.equal(page.status, 401, `${change}: refused, ${page.status} at ${page.url}`);
        if (change === 'deleted') assert.match(page.html, /This account no longer exists/);
        else {
          assert.match(page.html, /name="password"/, 'the login form again');
          const failure = (await broker.store.audit.list({ userId: user.id })).find((e) => e.type === 'login.failure');
          assert.equal(failure?.details.reason, 'account_disabled');
        }
        assert.equal(new URL(page.url).searchParams.get('code'), null, `${change}: no code`);
      } finally {
        statements.run = run;
      }
    }
  });

  test('the prepared statements of logins and accounts, as generic plans, read by index in large tables', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const { USER_SQL } = await import('../../src/storage/user-repository.ts');
    const { LOGIN_FACTS_SQL, LOGIN_FACTS_USER_SQL } = await import('../../src/storage/mfa-repository.ts');
    const { APPLICABLE_SQL } = await import('../../src/storage/mfa-policy-repository.ts');
    const knex = broker.database.knex;
    // Thousands of users, each with a password, a group, a factor and a required action.
    await knex.raw(`INSERT INTO users (id, username, username_key, email) SELECT 'plan-user-' || i, 'planuser' || i, 'planuser' || i, 'plan' || i || '@example.org' FROM generate_series(1, 3000) i`);
    await knex.raw(`INSERT INTO credentials (id, user_id, type, secret) SELECT 'plan-cred-' || i, 'plan-user-' || i, 'password', 'hash' || i FROM generate_series(1, 3000) i`);
    await knex.raw(`INSERT INTO groups (id, name) SELECT 'plan-group-' || i, 'plan-group-' || i FROM generate_series(1, 300) i`);
    await knex.raw(`INSERT INTO memberships (user_id, group_id) SELECT 'plan-user-' || i, 'plan-group-' || (i % 300 + 1) FROM generate_series(1, 3000) i`);
    // Nested groups: each of the first 150 groups sits in one of the other 150.
    await knex.raw(`INSERT INTO group_parents (group_id, parent_id) SELECT 'plan-group-' || i, 'plan-group-' || (i + 150) FROM generate_series(1, 150) i`);
    await knex.raw(`INSERT INTO mfa_factors (id, user_id, type, name, confirmed) SELECT 'plan-factor-' || i, 'plan-user-' || i, 'totp', 'phone', true FROM generate_series(1, 3000) i`);
    await knex.raw(`INSERT INTO required_actions (user_id, action) SELECT 'plan-user-' || i, 'update_password' FROM generate_series(1, 3000) i`);
    await knex.raw(`INSERT INTO mfa_policies (kind, target, mode) SELECT 'group', 'plan-group-' || i, 'optional' FROM generate_series(1, 300) i`);
    await knex.raw(`INSERT INTO clients (id, metadata) SELECT 'plan-client-' || i, jsonb_build_object('n', i) FROM generate_series(1, 3000) i`);
    const { CLIENT_FIND } = await import('../../src/storage/client-lookup.ts');
    await assertKeyedPlans(knex, 'users, credentials, memberships, groups, group_parents, mfa_factors, required_actions, mfa_policies, clients', [
      { statement: USER_SQL.findById, args: `'plan-user-7'`, check: (r) => assert.equal(r.username, 'planuser7') },
      { statement: USER_SQL.loginAccountByKey, args: `'planuser7'`, check: (r) => assert.deepEqual([r.id, r.groups, r.password_hash], ['plan-user-7', ['plan-group-158', 'plan-group-8'], 'hash7']) },
      { statement: USER_SQL.loginAccountByEmail, args: `'PLAN7@example.org'`, check: (r) => assert.equal(r.id, 'plan-user-7') },
      { statement: USER_SQL.loginAccountById, args: `'plan-user-7'`, check: (r) => assert.equal(r.password_hash, 'hash7') },
      { statement: LOGIN_FACTS_SQL, args: `'plan-user-7', 'rp', 'local'`, check: (r) => assert.deepEqual([r.enrolled, r.actions, r.groups, (r.policies as Array<{ target: string }>).map((p) => p.target).sort()], [true, ['update_password'], ['plan-group-158', 'plan-group-8'], ['plan-group-158', 'plan-group-8']]) },
      { statement: LOGIN_FACTS_USER_SQL, args: `'plan-user-7', 'rp', 'local'`, check: (r) => assert.deepEqual([r.username, r.enabled, r.enrolled, r.actions, r.groups], ['planuser7', true, true, ['update_password'], ['plan-group-158', 'plan-group-8']]) },
      { statement: APPLICABLE_SQL, args: `'plan-user-7', 'rp', 'local'`, check: (r) => assert.deepEqual([r.groups, (r.policies as Array<{ target: string }>).map((p) => p.target).sort()], [['plan-group-158', 'plan-group-8'], ['plan-group-158', 'plan-group-8']]) },
      { statement: USER_SQL.findWithGroups, args: `'plan-user-7'`, check: (r) => assert.deepEqual(r.groups, ['plan-group-158', 'plan-group-8']) },
      { statement: CLIENT_FIND, args: `'plan-client-7'`, check: (r) => assert.deepEqual(r.metadata, { n: 7 }) },
    ]);
    await knex('users').where('id', 'like', 'plan-user-%').delete();
    await knex('groups').where('id', 'like', 'plan-group-%').delete();
    await knex('mfa_policies').where('target', 'like', 'plan-group-%').delete();
    await knex('clients').where('id', 'like', 'plan-client-%').delete();
  });

  test('a first-party login is one interaction: what the client asks for is granted as the login resumes, with no consent round', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    kinds.length = 0;
    const browser = new Browser(broker.issuer);
    const tokens = await codeFlowTokens('openid email groups', browser, {});
    const interactionSaves = kinds.filter((k) => k === 'kb_oidc_upsert Interaction' || k === 'kb_oidc_upsert_forget Interaction').length;
    assert.equal(interactionSaves, 2, `the interaction is created and given its result, once each: ${kinds.join(', ')}`);
    assert.equal(kinds.filter((k) => /^kb_oidc_(upsert(_many)?|resume_save) (.*,)?Grant(,|$)/.test(k)).length, 1, `one grant saved: ${kinds.join(', ')}`);
    // As the login resumes, its grant and code are saved with its session, in one statement.
    assert.ok(kinds.includes('kb_oidc_resume_save Session,Grant,AuthorizationCode'), kinds.join(', '));
    assert.ok(!kinds.some((k) => /^kb_oidc_upsert (Grant|AuthorizationCode|Session)$/.test(k)), `no grant, code or session saved alone: ${kinds.join(', ')}`);
    const intro = await (await fetch(`${broker.url}/token/introspection`, { method: 'POST', headers: FORM, body: new URLSearchParams({ token: tokens.access_token }) })).json() as { active: boolean; scope: string };
    assert.equal(intro.active, true);
    assert.deepEqual(intro.scope.split(' ').sort(), ['email', 'groups', 'openid'], 'every scope asked for was granted');

    // Signed in already (single sign-on): the code is saved with the session's update, in one statement.
    kinds.length = 0;
    const url = authorizeUrl('openid', { state: 'sso' });
    const sso = await browser.go(url);
    const code = new URL(sso.url).searchParams.get('code');
    assert.ok(code, `a code without a login page: ${sso.url}`);
    assert.deepEqual(kinds.filter((k) => k.startsWith('kb_oidc_upsert')), ['kb_oidc_upsert_many Session,AuthorizationCode'], kinds.join(', '));
    assert.equal((await token({ grant_type: 'authorization_code', code, redirect_uri: RP })).status, 200, 'the code was stored before the answer left');
  });

  test('a resume is two statements: its interaction read, then its delete with the session, grant, code and login row, stored only if the delete removed it', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const browser = new Browser(broker.issuer);
    const url = authorizeUrl('openid groups');
    const page = await browser.go(url);
    const form = findForm(page.html, '/login');
    assert.ok(form, 'a login form');
    const posted = await browser.request(new URL(form.action, page.url).href, { form: { ...form.hidden, username: 'alice', password: 'alice-password-1' } });
    const resume = new URL(posted.headers.get('location') ?? '', broker.issuer);
    assert.match(resume.pathname, /^\/auth\/[^/]+$/, `the login redirects to its resume: ${posted.status}`);
    const uid = resume.pathname.split('/').pop()!;
    kinds.length = 0;
    seen.length = 0;
    const resumed = await browser.request(resume.href);
    const code = new URL(resumed.headers.get('location') ?? '', broker.issuer).searchParams.get('code');
    assert.ok(code, `a code: ${resumed.status}`);
    const statements = kinds.filter((k) => !k.startsWith('kb_account_find'));
    assert.deepEqual(statements, ['kb_oidc_find Interaction', 'kb_oidc_resume_save Session,Grant,AuthorizationCode'], kinds.join(', '));
    assert.equal(seen.filter((s) => s.startsWith('knex')).length, 0, seen.join(', '));
    // What it stored: the interaction is gone, and the login's row names the connector and the address.
    assert.equal((await broker.database.knex('oidc_payloads').where({ kind: 'Interaction', id: uid })).length, 0, 'the interaction was removed');
    const alice = (await broker.store.users.findByUsername('alice'))!;
    const sessionUid = (await broker.database.knex('oidc_payloads').where({ kind: 'Session' }).whereRaw("payload->>'accountId' = ?", [alice.id]).orderBy('expires_at', 'desc').first())?.uid;
    const row = await broker.database.knex('login_sessions').where({ session_uid: sessionUid }).first();
    assert.equal(row?.user_id, alice.id, `the login's row was stored with its session: ${JSON.stringify(row)}`);
    assert.equal(row.connector_id, 'local');
    assert.deepEqual(row.amr, ['pwd']);
    assert.equal(row.ip, '127.0.0.1');
    assert.equal((await token({ grant_type: 'authorization_code', code: code!, redirect_uri: RP })).status, 200, 'the code was stored');
    // The same resume again: its interaction is gone, an error page and nothing stored.
    const again = await browser.request(resume.href);
    assert.equal(again.status, 400);
    assert.equal(again.headers.get('location'), null);
  });

  test('concurrent requests under load: every token saved and found, lookups and saves beyond the free slots share statements', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const N = 24;
    const issued = await Promise.all(Array.from({ length: N }, () => token({ grant_type: 'client_credentials' }).then((r) => r.json() as Promise<{ access_token: string }>)));
    assert.ok(issued.every((b) => typeof b.access_token === 'string'));
    const answers = await Promise.all(issued.map((b) => fetch(`${broker.url}/token/introspection`, { method: 'POST', headers: FORM, body: new URLSearchParams({ token: b.access_token }) }).then((r) => r.json() as Promise<{ active: boolean }>)));
    assert.ok(answers.every((a) => a.active === true), 'every token is found');

    // The same at the adapter, where the concurrency is certain: more lookups than free slots.
    const { createOidcAdapter } = await import('../../src/storage/oidc-adapter.ts');
    const Adapter = createOidcAdapter(broker.database.artifacts, { statements: broker.database.pg!.statements });
    const a = new Adapter('AccessToken');
    await Promise.all(Array.from({ length: N }, (_, i) => a.upsert(`many-${i}`, { n: i }, 60)));
    seen.length = 0;
    const found = await Promise.all(Array.from({ length: N }, (_, i) => a.find(i % 5 === 4 ? `missing-${i}` : `many-${i}`)));
    assert.deepEqual(found.map((f) => (f as { n?: number } | undefined)?.n), Array.from({ length: N }, (_, i) => (i % 5 === 4 ? undefined : i)), 'each caller gets its own record (or none)');
    assert.ok(seen.length < N, `${N} lookups in ${seen.length} statements`);
  });

  test('a save that fails inside a shared statement fails alone', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const { createOidcAdapter } = await import('../../src/storage/oidc-adapter.ts');
    const Adapter = createOidcAdapter(broker.database.artifacts, { statements: broker.database.pg!.statements });
    const a = new Adapter('Interaction');
    seen.length = 0;
    // PostgreSQL's jsonb refuses the \u0000 escape: that row cannot be stored, the others can.
    // The first saves take the free slots alone; the rest, the bad one among them, wait and go together.
    const ids = Array.from({ length: 9 }, (_, i) => (i === 6 ? 'batch-bad' : `batch-good-${i}`));
    const results = await Promise.allSettled(ids.map((id, i) => a.upsert(id, id === 'batch-bad' ? { n: 'x\u0000y' } : { n: i }, 60)));
    assert.deepEqual(results.map((r) => r.status), ids.map((id) => (id === 'batch-bad' ? 'rejected' : 'fulfilled')));
    assert.ok(seen.includes('kb_oidc_upsert_many'), `they were tried together first: ${seen.join(', ')}`);
    for (const [i, id] of ids.entries()) if (id !== 'batch-bad') assert.equal(((await a.find(id)) as { n: number }).n, i);
    assert.equal(await a.find('batch-bad'), undefined);
  });

  test('two saves of one record in the same turn are applied in order', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const { createOidcAdapter } = await import('../../src/storage/oidc-adapter.ts');
    const Adapter = createOidcAdapter(broker.database.artifacts, { statements: broker.database.pg!.statements });
    const a = new Adapter('Interaction');
    await Promise.all([a.upsert('same-turn', { v: 'first' }, 60), a.upsert('other', { v: 'x' }, 60), a.upsert('same-turn', { v: 'second' }, 60)]);
    assert.equal(((await a.find('same-turn')) as { v: string }).v, 'second');
  });

  test('an account read while a transaction changes it is forgotten when that transaction commits', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const accounts = createAccountLookup(broker.database.pg!.statements, 60_000);
    const user = await broker.store.users.create({ username: 'in-flight' });
    await broker.store.transaction(async (store) => {
      await store.users.update(user.id, { enabled: false });
      // Another request reads (and would keep) the committed row while this one is open.
      assert.equal((await accounts(user.id))?.user.enabled, true);
    });
    assert.equal((await accounts(user.id))?.user.enabled, false, 'the commit forgot what was read before it');
  });

  test('the instance that disables a user or changes its groups answers with the change at once', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const tokens = await codeFlowTokens();
    const alice = (await broker.store.users.findByUsername('alice'))!;
    assert.equal((await userinfo(tokens.access_token)).status, 200, 'the account is now cached');
    await broker.store.groups.addMember(alice.id, 'auditors');
    assert.deepEqual(((await (await userinfo(tokens.access_token)).json()) as { groups: string[] }).groups, ['auditors', 'staff']);
    await broker.store.users.update(alice.id, { enabled: false });
    try {
      assert.equal((await userinfo(tokens.access_token)).status, 401, 'userinfo refuses the disabled user at once');
      const refused = await token({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token });
      assert.equal(refused.status, 400);
      assert.equal(((await refused.json()) as { error: string }).error, 'invalid_grant');
    } finally {
      await broker.store.users.update(alice.id, { enabled: true });
      await broker.store.groups.removeMember(alice.id, 'auditors');
    }
  });
});

interface PlanNode { 'Actual Rows'?: number; 'Actual Loops'?: number; 'Rows Removed by Filter'?: number; 'Rows Removed by Join Filter'?: number; 'Node Type': string; Plans?: PlanNode[] }

/** The most rows any one scan of the plan read (returned and filtered away), per loop. */
/**
 * Each statement as the raw pool plans it (src/storage/database.ts: generic plans, index scans
 * only), before the statistics exist (a new deployment), after ANALYZE of `tables` (autovacuum)
 * and with nested loops made dear (the plan then takes any other join it can): no plan node may
 * read more than 2 rows. `check` looks at the row a statement returns (run once more for it).
 */
async function assertKeyedPlans(knex: Knex, tables: string, calls: Array<{ statement: Statement; args: string; check?: (row: Record<string, unknown>) => void }>): Promise<void> {
  for (const stats of ['none', 'analyzed', 'analyzed, no nested loops']) {
    if (stats === 'analyzed') await knex.raw(`ANALYZE ${tables}`);
    await knex.transaction(async (trx) => {
      await trx.raw('SET LOCAL plan_cache_mode = force_generic_plan');
      await trx.raw('SET LOCAL enable_seqscan = off');
      if (stats.includes('no nested loops')) await trx.raw('SET LOCAL enable_nestloop = off');
      for (const { statement, args, check } of calls) {
        const name = `plan_${stats}_${statement.name}`;
        await trx.raw(`PREPARE "${name}" AS ${statement.text}`);
        if (check) {
          const [row] = (await trx.raw(`EXECUTE "${name}"(${args})`)).rows as Record<string, unknown>[];
          assert.ok(row, `${statement.name} finds its row`);
          check(row);
        }
        const plan = (await trx.raw(`EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE "${name}"(${args})`)).rows[0]['QUERY PLAN'][0].Plan as PlanNode;
        const read = maxRowsRead(plan);
        assert.ok(read <= 2, `${statement.name} (statistics: ${stats}) reads ${read} rows in one plan node (a scan of the table, not a keyed lookup)`);
      }
    });
  }
}

function maxRowsRead(node: PlanNode): number {
  const own = node['Node Type'].includes('Scan') && node['Node Type'] !== 'Function Scan' ? (node['Actual Rows'] ?? 0) + (node['Rows Removed by Filter'] ?? 0) : (node['Rows Removed by Join Filter'] ?? 0) / (node['Actual Loops'] || 1);
  return Math.max(own, ...(node.Plans ?? []).map(maxRowsRead));
}
