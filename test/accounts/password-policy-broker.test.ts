// The password policy through a running broker, on PGlite and PostgreSQL: the admin API refuses
// a weak password with its reason (400 problem JSON) and stores nothing; a weak static password
// stops the start; a login whose local password has expired, or no longer meets the policy, goes
// through the update-password page (persisted: abandoning it does not skip it), which says why
// and shows the policy's reason for a bad choice, in English or German.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as oidc from 'openid-client';
import { decodeJwt } from 'jose';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { Browser, findForm, type Page } from '../helpers/browser.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { STORES as stores, SuiteDatabase } from '../helpers/suite-database.ts';
import { AdminApiClient, adminClientConfig, clientToken } from '../helpers/admin-api.ts';
import { freshPostgresDatabase } from '../helpers/postgres.ts';
import { hashPassword, verifyPassword } from '../../src/accounts/passwords.ts';
import { ConfigError } from '../../src/errors.ts';
import { openDatabase } from '../../src/storage/database.ts';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const RP = 'http://127.0.0.1:9/cb';
const SECRET = 'rp-secret-0123456789abcdef';
const GOOD = 'tangerine-orbit-lantern-7';
const NEXT = 'violet-harbour-quartz-9';

for (const backend of stores) {
  describe(`password policy in the broker on ${backend.name}`, () => {
    let broker: TestBroker;
    const db = new SuiteDatabase(backend.url);
    let api: AdminApiClient;
    let rp: oidc.Configuration;

    before(async () => {
      if (!(await db.open())) return;
      broker = await startTestBroker({
        databaseUrl: db.url,
        config: {
          clients: [adminClientConfig('ops'), { id: 'rp', secret: SECRET, name: 'Relying Party', redirectUris: [RP], firstParty: true }],
          users: [{ username: 'static-sam', password: 'static-sam-password-1' }],
          passwordPolicy: { expiryDays: 30, history: 3 },
        },
      });
      api = new AdminApiClient(broker.issuer, await clientToken(broker.issuer, 'ops', 'admin:read admin:write'));
      rp = await oidc.discovery(new URL(broker.issuer), 'rp', SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
    });
    after(async () => {
      await broker?.close();
      await db.drop();
    });
    const live = (t: { skip(msg: string): void }) => db.live(t);

    /** A user created through the admin API with a good password. */
    async function apiUser(username: string, extra: Record<string, unknown> = {}): Promise<string> {
      const res = await api.post('/users', { username, password: GOOD, ...extra });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      return res.body.id;
    }

    async function start(browser: Browser) {
      const verifier = oidc.randomPKCECodeVerifier();
      const state = oidc.randomState();
      const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: RP, scope: 'openid', state, code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
      const page = await browser.go(url.href);
      return {
        page,
        finish: async (last: Page) => {
          assert.equal(last.html, '', `expected the relying party, got ${last.status} at ${last.url}: ${last.html.slice(0, 600)}`);
          const tokens = await oidc.authorizationCodeGrant(rp, new URL(last.url), { pkceCodeVerifier: verifier, expectedState: state });
          return decodeJwt(tokens.id_token!);
        },
      };
    }

    const reasonOf = (page: Page) => /data-reason="([a-z]+)"/.exec(page.html)?.[1];

    test('admin API: a weak, breached or reused password is a 400 problem naming the reason, and nothing changes', async (t) => {
      if (!live(t)) return;
      // Create with a breached password: refused, no user made.
      const refused = await api.post('/users', { username: 'weak-wendy', password: 'ChickenWing101' });
      assert.equal(refused.status, 400);
      assert.match(refused.headers.get('content-type') ?? '', /application\/problem\+json/);
      assert.equal(refused.body.code, 'password_rejected');
      assert.deepEqual(refused.body.errors, [{ path: 'body.password', code: 'breached', message: 'is one of the most common passwords in data breaches' }]);
      assert.doesNotMatch(refused.text, /ChickenWing101/i);
      assert.equal(await broker.store.users.findByUsername('weak-wendy'), null);

      const id = await apiUser('policy-pat', { email: 'pat@example.org', name: 'Pat Jones' });
      const before = await broker.store.credentials.getPasswordHash(id);
      for (const [password, code] of [
        ['short-1', 'too_short'],
        ['y'.repeat(129), 'too_long'],
        ['abcdefghijklmnop', 'weak'],
        ['pat-jones-2024', 'like_identity'],
        [GOOD, 'reused'],
      ] as const) {
        const res = await api.put(`/users/${id}/password`, { password });
        assert.equal(res.status, 400, password);
        assert.equal(res.body.code, 'password_rejected');
        assert.equal(res.body.errors[0].code, code, password);
        assert.equal(res.body.errors[0].path, 'body.password');
        assert.match(res.body.detail, /^The password /);
      }
      assert.equal(await broker.store.credentials.getPasswordHash(id), before);
      assert.equal((await broker.store.passwords.recentHashes(id, 10)).length, 1);
      // A good one goes through and joins the history.
      assert.equal((await api.put(`/users/${id}/password`, { password: NEXT })).status, 200);
      assert.equal((await broker.store.passwords.recentHashes(id, 10)).length, 2);
    });

    test('a login with an expired password must choose a new one first; leaving the page does not skip it', async (t) => {
      if (!live(t)) return;
      const id = await apiUser('expired-eve', { email: 'eve@example.org' });
      await broker.store.knex.raw("UPDATE credentials SET password_changed_at = now() - interval '45 days' WHERE user_id = ?", [id]);

      const first = new Browser(broker.issuer);
      const flow = await start(first);
      const form = await first.submit(flow.page, '/login', { username: 'expired-eve', password: GOOD });
      assert.equal(form.status, 200);
      assert.equal(reasonOf(form), 'expired');
      assert.match(form.html, /Your password has expired/);
      assert.deepEqual(await broker.store.mfa.requiredActions(id), ['update_password']);
      assert.equal((await broker.store.audit.list({ type: 'user.password_change_required', userId: id }))[0]?.details.reason, 'expired');

      // Walk away and sign in again elsewhere: asked again.
      const second = new Browser(broker.issuer);
      const again = await start(second);
      const asked = await second.submit(again.page, '/login', { username: 'expired-eve', password: GOOD });
      assert.equal(reasonOf(asked), 'expired');

      // In German when the browser asks for it (the same page, reloaded).
      const interactionUrl = asked.url.replace(/\/login$/, '');
      const german = await second.request(interactionUrl, { headers: { 'accept-language': 'de-DE,de;q=0.9' } });
      const germanHtml = await german.text();
      assert.match(germanHtml, /lang="de"/);
      assert.match(germanHtml, /Ihr Passwort ist abgelaufen/);
      const action = findForm(asked.html, '/password')!;
      const refusedDe = await second.request(new URL(action.action, asked.url).href, { form: { ...action.hidden, password: 'abcdefghijklmnop', confirm: 'abcdefghijklmnop' }, headers: { 'accept-language': 'de' } });
      assert.equal(refusedDe.status, 400);
      assert.match(await refusedDe.text(), /Dieses Passwort ist zu leicht zu erraten\. Häufige Zeichenfolgen wie „abc“ sind leicht zu erraten\./);

      // Bad choices say why (English), the current password is refused as reused.
      const weak = await second.submit(asked, '/password', { password: 'qwertyuiop12', confirm: 'qwertyuiop12' });
      assert.equal(weak.status, 400);
      assert.match(weak.html, /one of the most common passwords found in data breaches/);
      const same = await second.submit(weak, '/password', { password: GOOD, confirm: GOOD });
      assert.equal(same.status, 400);
      assert.match(same.html, /You used this password recently/);
      const mismatch = await second.submit(same, '/password', { password: NEXT, confirm: `${NEXT}x` });
      assert.equal(mismatch.status, 400);
      assert.match(mismatch.html, /do not match/);
      assert.ok(await verifyPassword((await broker.store.credentials.getPasswordHash(id))!, GOOD), 'refused choices change nothing');

      const claims = await again.finish(await second.submit(mismatch, '/password', { password: NEXT, confirm: NEXT }));
      assert.equal(claims.sub, id);
      assert.deepEqual(await broker.store.mfa.requiredActions(id), []);
      const changed = await broker.store.audit.list({ type: 'user.password_changed', userId: id });
      assert.equal(changed.length, 1);
      assert.deepEqual(changed[0]!.details, { by: 'required_action', reason: 'expired' });
      assert.ok(Date.now() - (await broker.store.passwords.changedAt(id))!.getTime() < 600_000);

      // The first, abandoned page cannot set another password now that it is settled.
      const stale = await first.submit(form, '/password', { password: 'marble-canyon-whistle-8', confirm: 'marble-canyon-whistle-8' });
      assert.ok(stale.status >= 400 && stale.status < 500, `status ${stale.status}`);
      assert.ok(await verifyPassword((await broker.store.credentials.getPasswordHash(id))!, NEXT));

      // The new password signs in straight through; the old one no longer does.
      const third = new Browser(broker.issuer);
      const direct = await start(third);
      const done = await direct.finish(await third.submit(direct.page, '/login', { username: 'expired-eve', password: NEXT }));
      assert.equal(done.sub, id);
      const fourth = new Browser(broker.issuer);
      const old = await fourth.submit((await start(fourth)).page, '/login', { username: 'expired-eve', password: GOOD });
      assert.equal(old.status, 401);
    });

    test('a login with a password that no longer meets the policy asks for a new one, and says so', async (t) => {
      if (!live(t)) return;
      // Set before the policy existed (straight into the store, unchecked).
      const user = await broker.store.users.create({ username: 'legacy-lou' });
      await broker.store.credentials.setPassword(user.id, await hashPassword('qwertyuiop12'));
      const browser = new Browser(broker.issuer);
      const flow = await start(browser);
      const form = await browser.submit(flow.page, '/login', { username: 'legacy-lou', password: 'qwertyuiop12' });
      assert.equal(reasonOf(form), 'policy');
      assert.match(form.html, /no longer meets the password rules/);
      assert.equal(await broker.store.passwords.changeReason(user.id), 'policy');
      const claims = await flow.finish(await browser.submit(form, '/password', { password: GOOD, confirm: GOOD }));
      assert.equal(claims.sub, user.id);
      assert.equal(await broker.store.passwords.changeReason(user.id), undefined);
      // The new password was checked when set: the next login does no policy work and asks nothing.
      const next = new Browser(broker.issuer);
      const again = await start(next);
      assert.equal((await again.finish(await next.submit(again.page, '/login', { username: 'legacy-lou', password: GOOD }))).sub, user.id);
    });

    test('an administrator reset: the page says the password is temporary; config users are never asked', async (t) => {
      if (!live(t)) return;
      const id = await apiUser('reset-rita');
      const reset = await api.post(`/users/${id}/password/reset`);
      assert.equal(reset.status, 200);
      assert.equal(await broker.store.passwords.changeReason(id), 'temporary');
      const browser = new Browser(broker.issuer);
      const flow = await start(browser);
      const form = await browser.submit(flow.page, '/login', { username: 'reset-rita', password: reset.body.password });
      assert.equal(reasonOf(form), 'temporary');
      assert.match(form.html, /Your administrator set a temporary password/);
      // The earlier password is in the history (limit 3): refused.
      const reused = await browser.submit(form, '/password', { password: GOOD, confirm: GOOD });
      assert.equal(reused.status, 400);
      assert.equal((await flow.finish(await browser.submit(reused, '/password', { password: NEXT, confirm: NEXT }))).sub, id);

      // A static user whose password is old: config owns it, no page.
      const sam = (await broker.store.users.findByUsername('static-sam'))!;
      await broker.store.knex.raw("UPDATE credentials SET password_changed_at = now() - interval '400 days' WHERE user_id = ?", [sam.id]);
      const other = new Browser(broker.issuer);
      const samFlow = await start(other);
      assert.equal((await samFlow.finish(await other.submit(samFlow.page, '/login', { username: 'static-sam', password: 'static-sam-password-1' }))).sub, sam.id);
    });

    test('hostile input on the update-password form: 1 MB, NUL, lone surrogates, forged posts: never a 500', async (t) => {
      if (!live(t)) return;
      const id = await apiUser('hostile-hal');
      await broker.store.passwords.requireChange(id, null);
      const browser = new Browser(broker.issuer);
      const flow = await start(browser);
      const form = await browser.submit(flow.page, '/login', { username: 'hostile-hal', password: GOOD });
      assert.match(form.html, /Your administrator asks you to choose a new password/);
      const action = findForm(form.html, '/password')!;
      const url = new URL(action.action, form.url).href;
      const huge = await browser.request(url, { form: { ...action.hidden, password: 'p'.repeat(1 << 20), confirm: 'p'.repeat(1 << 20) } });
      assert.equal(huge.status, 413);
      const long = await browser.submit(form, '/password', { password: 'q'.repeat(5000), confirm: 'q'.repeat(5000) });
      assert.equal(long.status, 400);
      assert.match(long.html, /at most 128 characters/);
      const nul = await browser.submit(long, '/password', { password: '\u0000'.repeat(16), confirm: '\u0000'.repeat(16) });
      assert.equal(nul.status, 400);
      const forged = await browser.request(url, { form: { csrf: 'forged', password: NEXT, confirm: NEXT } });
      assert.ok(forged.status >= 400 && forged.status < 500, `status ${forged.status}`);
      assert.ok(await verifyPassword((await broker.store.credentials.getPasswordHash(id))!, GOOD), 'nothing refused changed the password');
      // A lone surrogate arrives as U+FFFD (form encoding is UTF-8): an ordinary character then.
      const surrogate = await browser.request(url, { form: { ...action.hidden, password: 'orbit-\ud800-lantern-quartz', confirm: 'orbit-\ud800-lantern-quartz' } });
      assert.equal(surrogate.status, 303);
      assert.ok(await verifyPassword((await broker.store.credentials.getPasswordHash(id))!, 'orbit-\ufffd-lantern-quartz'));
    });
  });
}

describe('password policy at start-up', () => {
  test('a static user whose plain-text password breaks the policy stops the start, naming the user and why; nothing is written', async (t) => {
    const fresh = await freshPostgresDatabase();
    if ('skip' in fresh) return skipLoudly(t as never, fresh.skip);
    try {
      await assert.rejects(
        startTestBroker({
          databaseUrl: fresh.url,
          config: {
            users: [
              { username: 'fine-fay', password: 'fine-fay-password-1' },
              { username: 'weak-will', password: 'password1234' },
              { username: 'named-nina', email: 'nina@example.org', password: 'nina-example-1' },
              { username: 'hashed-hugo', passwordHash: await hashPassword('x') },
            ],
          },
        }),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError, String(err));
          assert.deepEqual(err.issues.map((i) => i.path), ['users.1.password', 'users.2.password']);
          assert.match(err.issues[0]!.message, /user "weak-will" is one of the most common passwords in data breaches .*breached/);
          assert.match(err.issues[1]!.message, /user "named-nina" .*like_identity/);
          assert.doesNotMatch(err.message, /password1234|nina-example-1/);
          return true;
        },
      );
      const db = await openDatabase({ url: fresh.url });
      try {
        assert.equal(Number((await db.knex('users').count({ n: '*' }))[0]!.n), 0);
      } finally {
        await db.close();
      }
      // A stricter policy in the same config applies too; a looser one lets them in.
      const loose = await startTestBroker({ databaseUrl: fresh.url, config: { users: [{ username: 'weak-will', password: 'password1234' }], passwordPolicy: { breachedList: false, minScore: 0 } } });
      await loose.close();
    } finally {
      await fresh.drop();
    }
  });
});

describe('password policy in check-config', () => {
  test('check-config reports a static password that breaks the policy, with the user and reason, and passes a good one', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kb-policy-'));
    try {
      const main = path.join(import.meta.dirname, '../../src/cli/main.ts');
      const check = (users: string) => {
        const file = path.join(dir, 'c.yaml');
        writeFileSync(file, `issuer: http://127.0.0.1:5556\ndatabase: { dataDir: ${JSON.stringify(path.join(dir, 'data'))} }\nusers:\n${users}`);
        return new Promise<{ code: number; stderr: string; stdout: string }>((resolve) => {
          execFile(process.execPath, [main, 'check-config', '-c', file], { env: { PATH: process.env.PATH ?? '' } }, (err, stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, stdout, stderr }));
        });
      };
      const bad = await check('  - { username: walt, password: Password1234 }\n  - { username: fine-fay, password: fine-fay-password-1 }\n');
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /users\.0\.password: the password of user "walt" is one of the most common passwords in data breaches \(passwordPolicy; reason: breached\)/);
      assert.doesNotMatch(bad.stderr, /users\.1|Password1234/);
      const good = await check('  - { username: fine-fay, password: fine-fay-password-1 }\n');
      assert.equal(good.code, 0, good.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
