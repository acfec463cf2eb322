// The account API (/account/api) with real sign-ins: the console's own client through the login
// pages, a real upstream OpenID provider for linking, a first-party app with refresh tokens for
// revocation, on PGlite and PostgreSQL. Each person reaches only their own data; sensitive
// changes need a recent sign-in; hostile input is a 400, never a 500.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as oidc from 'openid-client';
import * as OTPAuth from 'otpauth';
import { Browser } from '../helpers/browser.ts';
import { STORES, SuiteDatabase } from '../helpers/suite-database.ts';
import { startTestBroker } from '../helpers/test-broker.ts';
import { ageSignIn, call, consoleLogin, createLocalUser, PASSWORD, rpLogin, startAccountWorld, upstreamUser, type AccountWorld } from './account-support.ts';


const invalidGrant = (err: oidc.ResponseBodyError) => err.error === 'invalid_grant';
const totpFor = (secret: string) => new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), algorithm: 'SHA1', digits: 6, period: 30 });

for (const store of STORES) {
  describe(`account API on ${store.name}`, () => {
    let world: AccountWorld;
    let issuer = '';
    const db = new SuiteDatabase(store.url);
    const ups = {
      ann: upstreamUser('ann'),
      ben: upstreamUser('ben'),
      cat: upstreamUser('cat'),
      dan: upstreamUser('dan'),
    };

    before(async () => {
      if (!(await db.open())) return;
      world = await startAccountWorld({
        databaseUrl: db.url,
        upstreamUsers: Object.values(ups),
        account: { selfDeletion: true },
        config: { users: [{ username: 'cfg-user', email: 'cfg@example.org', password: 'Config-user-password-1' }] },
      });
      issuer = world.broker.issuer;
    });

    after(async () => {
      await world?.close();
      await db.drop();
    });

    const live = (t: { skip(msg: string): void }) => db.live(t);
    const events = async (userId: string, type: string) => (await world.broker.store.audit.list({ userId, type, limit: 100 }));

    test('no token, a malformed or unknown token, or another client\'s token: 401 problem, never data', async (t) => {
      if (!live(t)) return;
      await createLocalUser(world.broker, 'una');
      const none = await call(issuer, null, 'GET', '/me');
      assert.equal(none.status, 401);
      assert.equal(none.headers.get('content-type'), 'application/problem+json');
      assert.equal(none.body.code, 'unauthorized');
      assert.match(none.headers.get('www-authenticate') ?? '', /Bearer realm="keybridge-account"/);
      assert.equal((await call(issuer, 'not a token', 'GET', '/me')).status, 401);
      assert.equal((await call(issuer, 'A'.repeat(43), 'GET', '/me')).status, 401);
      assert.equal((await call(issuer, null, 'GET', '/nothing-here')).status, 401, 'the API\'s shape is not told to strangers');
      // A first-party app's own token is not the console's: refused.
      const rpTokens = await rpLogin(world, new Browser(issuer), 'una');
      const foreign = await call(issuer, rpTokens.access_token, 'GET', '/me');
      assert.equal(foreign.status, 401);
      assert.equal((await events((await world.broker.store.users.findByUsername('una'))!.id, 'account.unauthenticated')).at(0)?.details.reason, 'not_console_client');
      // The built-in client serves the console's redirect only.
      const shell = await fetch(`${issuer}/account/`);
      assert.equal(shell.status, 200);
      assert.match(shell.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    });

    test('profile: read and update own names and username; config users and upstream-managed users are read-only with their source', async (t) => {
      if (!live(t)) return;
      const id = await createLocalUser(world.broker, 'pia');
      const { accessToken } = await consoleLogin(issuer, { username: 'pia' });
      const me = await call(issuer, accessToken, 'GET', '/me');
      assert.equal(me.status, 200);
      assert.equal(me.body.id, id);
      assert.equal(me.body.username, 'pia');
      assert.equal(me.body.readOnly, null);
      assert.equal(me.body.hasPassword, true);
      assert.equal(me.body.features.selfDeletion, true);
      assert.deepEqual(me.body.features.linkableConnectors, [{ id: 'acme', name: 'Acme ID' }]);
      assert.doesNotMatch(me.text, /argon2|\$2[aby]\$/);

      const updated = await call(issuer, accessToken, 'PATCH', '/me', { body: { name: '  Pia Example ', givenName: 'Pia', familyName: '' } });
      assert.equal(updated.status, 200, updated.text);
      assert.equal(updated.body.name, 'Pia Example');
      assert.equal(updated.body.familyName, null);
      const renamed = await call(issuer, accessToken, 'PATCH', '/me', { body: { username: 'pia-renamed' } });
      assert.equal(renamed.status, 200, renamed.text);
      assert.equal((await world.broker.store.users.findById(id))!.username, 'pia-renamed');
      assert.equal((await call(issuer, accessToken, 'PATCH', '/me', { body: { username: 'cfg-user' } })).body.code, 'already_exists');
      await createLocalUser(world.broker, 'taken-name');
      const taken = await call(issuer, accessToken, 'PATCH', '/me', { body: { username: 'Taken-Name' } });
      assert.equal(taken.status, 409);
      assert.equal(taken.body.errors[0].path, 'body.username');
      const bad = await call(issuer, accessToken, 'PATCH', '/me', { body: { email: 'x@example.org' } });
      assert.equal(bad.status, 400, 'email is not a profile field: it changes through verification');
      assert.equal((await events(id, 'account.profile_updated')).length, 2);

      // Declared in the config file: read-only, and the API says so.
      const cfg = await consoleLogin(issuer, { username: 'cfg-user', password: 'Config-user-password-1' });
      const cfgMe = await call(issuer, cfg.accessToken, 'GET', '/me');
      assert.equal(cfgMe.body.readOnly.source.kind, 'config');
      const refused = await call(issuer, cfg.accessToken, 'PATCH', '/me', { body: { name: 'Nope' } });
      assert.equal(refused.status, 409);
      assert.equal(refused.body.code, 'read_only');
      assert.equal((await call(issuer, cfg.accessToken, 'POST', '/me/password', { body: { currentPassword: 'Config-user-password-1', newPassword: 'another long passphrase 42' } })).body.code, 'read_only');

      // Created by an upstream sign-in: its profile follows the upstream.
      const up = await consoleLogin(issuer, { username: 'ann', upstream: { op: world.op, user: ups.ann } });
      const upMe = await call(issuer, up.accessToken, 'GET', '/me');
      assert.deepEqual(upMe.body.readOnly.source, { kind: 'connector', id: 'acme', name: 'Acme ID' });
      const upRefused = await call(issuer, up.accessToken, 'PATCH', '/me', { body: { givenName: 'Changed' } });
      assert.equal(upRefused.status, 409);
      assert.match(upRefused.body.detail, /Acme ID/);
      assert.equal((await world.broker.store.users.findById(upMe.body.id))!.givenName, null);
      // Email change without SMTP (development): accepted, the verification mail goes to the log;
      // the address changes only when its link is followed (test/account/account-email.test.ts).
      const email = await call(issuer, accessToken, 'POST', '/me/email', { body: { email: 'new@example.org' } });
      assert.equal(email.status, 202, email.text);
      assert.equal((await world.broker.store.users.findById(me.body.id))!.email, me.body.email);
    });

    test('password change: current password required and checked, policy refusal with its reason, then the new password signs in', async (t) => {
      if (!live(t)) return;
      const id = await createLocalUser(world.broker, 'quinn');
      const { accessToken } = await consoleLogin(issuer, { username: 'quinn' });
      const missing = await call(issuer, accessToken, 'POST', '/me/password', { body: { newPassword: 'a brand new passphrase 7' } });
      assert.equal(missing.status, 400);
      assert.equal(missing.body.errors[0].path, 'body.currentPassword');
      const wrong = await call(issuer, accessToken, 'POST', '/me/password', { body: { currentPassword: 'not it at all', newPassword: 'a brand new passphrase 7' } });
      assert.equal(wrong.status, 400);
      assert.equal(wrong.body.code, 'wrong_password');
      assert.equal((await events(id, 'user.password_change_failed')).length, 1);
      const weak = await call(issuer, accessToken, 'POST', '/me/password', { body: { currentPassword: PASSWORD, newPassword: 'short' } });
      assert.equal(weak.status, 400);
      assert.equal(weak.body.code, 'password_rejected');
      assert.ok(weak.body.passwordProblem.code, 'the policy\'s code travels for the console to translate');
      assert.match(weak.body.detail, /^The new password /);
      const huge = await call(issuer, accessToken, 'POST', '/me/password', { body: { currentPassword: PASSWORD, newPassword: 'x'.repeat(5000) } });
      assert.equal(huge.status, 400);
      const ok = await call(issuer, accessToken, 'POST', '/me/password', { body: { currentPassword: PASSWORD, newPassword: 'a brand new passphrase 7' } });
      assert.equal(ok.status, 200, ok.text);
      assert.equal((await events(id, 'user.password_changed')).length, 1);
      await consoleLogin(issuer, { username: 'quinn', password: 'a brand new passphrase 7' });
      await assert.rejects(consoleLogin(issuer, { username: 'quinn', password: PASSWORD }));
    });

    test('guessing the current password meets the login\'s own per-account throttle (shared counters), not an unlimited oracle', async (t) => {
      if (!live(t)) return;
      const id = await createLocalUser(world.broker, 'gus');
      const { accessToken } = await consoleLogin(issuer, { username: 'gus' });
      const statuses: number[] = [];
      let refused: Awaited<ReturnType<typeof call<{ code: string }>>> | undefined;
      for (let i = 0; i < 8 && !refused; i++) {
        const res = await call(issuer, accessToken, 'POST', '/me/password', { body: { currentPassword: `guess number ${i}`, newPassword: 'a brand new passphrase 8' } });
        statuses.push(res.status);
        if (res.status === 429) refused = res;
      }
      assert.ok(refused, `statuses: ${statuses.join(',')}`);
      assert.equal(refused.body.code, 'too_many_attempts');
      assert.ok(Number(refused.headers.get('retry-after')) >= 1);
      // Even the right password waits now, and the stored one is unchanged.
      assert.equal((await call(issuer, accessToken, 'POST', '/me/password', { body: { currentPassword: PASSWORD, newPassword: 'a brand new passphrase 8' } })).status, 429);
      assert.ok((await events(id, 'user.password_change_failed')).length >= 3);
      await assert.rejects(consoleLogin(issuer, { username: 'gus', password: 'a brand new passphrase 8' }));
      // The counters are the login's own: the login page now refuses even the right password.
      await assert.rejects(consoleLogin(issuer, { username: 'gus' }), /expected the console callback/);
    });

    test('sensitive changes need a recent sign-in: 403 reauthentication_required, and prompt=login with max_age=0 makes them possible again', async (t) => {
      if (!live(t)) return;
      const id = await createLocalUser(world.broker, 'rosa');
      const first = await consoleLogin(issuer, { username: 'rosa' });
      await ageSignIn(world.broker, id, 3600);
      const stale = await call(issuer, first.accessToken, 'POST', '/me/password', { body: { currentPassword: PASSWORD, newPassword: 'a different long passphrase 9' } });
      assert.equal(stale.status, 403);
      assert.equal(stale.body.code, 'reauthentication_required');
      assert.match(stale.headers.get('www-authenticate') ?? '', /insufficient_user_authentication.*max_age=300/);
      for (const [method, path, body] of [['POST', '/mfa/totp'], ['POST', '/mfa/recovery-codes'], ['POST', '/identities/link', { connectorId: 'acme' }], ['DELETE', '/me', { confirm: 'rosa' }], ['PATCH', '/me', { username: 'rosa2' }]] as const) {
        const res = await call(issuer, first.accessToken, method, path, body ? { body } : {});
        assert.equal(res.status, 403, `${method} ${path}`);
        assert.equal(res.body.code, 'reauthentication_required', `${method} ${path}`);
      }
      // Reading stays possible with an old sign-in.
      assert.equal((await call(issuer, first.accessToken, 'GET', '/me')).status, 200);
      assert.ok(await world.broker.store.users.findById(id));
      // The console signs in again (the browser still has its session, but must show the login page).
      const again = await consoleLogin(issuer, { username: 'rosa' }, { browser: first.browser, reauthenticate: true });
      const ok = await call(issuer, again.accessToken, 'POST', '/me/password', { body: { currentPassword: PASSWORD, newPassword: 'a different long passphrase 9' } });
      assert.equal(ok.status, 200, ok.text);
    });

    test('linking another sign-in method with the real upstream: linked to this account, single-use ticket, bound to the browser session; unlink works while another way in remains', async (t) => {
      if (!live(t)) return;
      const id = await createLocalUser(world.broker, 'lena');
      const { accessToken, browser } = await consoleLogin(issuer, { username: 'lena' });
      const ticket = await call(issuer, accessToken, 'POST', '/identities/link', { body: { connectorId: 'acme' } });
      assert.equal(ticket.status, 201);
      assert.match(ticket.body.url, /^\/account\/link\/acme\?ticket=[A-Za-z0-9_-]{43}$/);

      // The ticket in another browser: with no session, or signed in as someone else: refused, nothing started.
      await createLocalUser(world.broker, 'lena-thief');
      const thief = await consoleLogin(issuer, { username: 'lena-thief' });
      const stolen = await thief.browser.go(`${issuer}${ticket.body.url}`);
      assert.equal(new URL(stolen.url).searchParams.get('link'), 'wrong_browser');
      assert.ok(!stolen.url.startsWith(world.op.origin));
      // ...and it was used up: lena's own browser needs a new one.
      const replay = await browser.go(`${issuer}${ticket.body.url}`);
      assert.equal(new URL(replay.url).searchParams.get('link'), 'expired');

      const another = await call(issuer, accessToken, 'POST', '/identities/link', { body: { connectorId: 'acme' } });
      const noSession = await new Browser(issuer).go(`${issuer}${another.body.url}`);
      assert.equal(new URL(noSession.url).searchParams.get('link'), 'signed_out');
      assert.ok((await events(id, 'identity.link_refused')).some((e) => e.details.reason === 'no_session'));

      const fresh = await call(issuer, accessToken, 'POST', '/identities/link', { body: { connectorId: 'acme' } });
      const away = await browser.go(`${issuer}${fresh.body.url}`);
      assert.ok(away.url.startsWith(world.op.origin), `sent upstream: ${away.url}`);
      const back = await world.op.authorize(away.url, { username: ups.ben.username, password: ups.ben.password });
      // The upstream's answer carried to another browser links nothing.
      const hijack = await new Browser(issuer).go(back.url);
      assert.equal(new URL(hijack.url).searchParams.get('link'), 'wrong_browser');
      assert.equal(await world.broker.store.identities.find('acme', ups.ben.id), null);
      assert.ok((await events(id, 'identity.link_refused')).some((e) => e.details.reason === 'other_browser'));

      // Once more, completed in lena's browser.
      const third = await call(issuer, accessToken, 'POST', '/identities/link', { body: { connectorId: 'acme' } });
      const away3 = await browser.go(`${issuer}${third.body.url}`);
      const back3 = await world.op.authorize(away3.url, { username: ups.ben.username, password: ups.ben.password });
      const done = await browser.go(back3.url);
      assert.equal(new URL(done.url).pathname, '/account/sign-in');
      assert.equal(new URL(done.url).searchParams.get('link'), 'linked');
      const linked = await world.broker.store.identities.find('acme', ups.ben.id);
      assert.equal(linked?.userId, id, 'linked to the signed-in account');
      assert.equal((await world.broker.store.users.findById(id))!.managedBy, null, 'the profile stays lena\'s own');
      assert.equal((await events(id, 'identity.linked')).at(0)?.details.via, 'account-console');
      // The callback cannot be replayed.
      assert.equal((await browser.go(back3.url)).status, 400);
      // Signing in through the upstream now reaches lena's account.
      const viaUpstream = await consoleLogin(issuer, { username: 'ben', upstream: { op: world.op, user: ups.ben } });
      assert.equal((await call(issuer, viaUpstream.accessToken, 'GET', '/me')).body.id, id);

      const list = await call(issuer, accessToken, 'GET', '/identities');
      assert.equal(list.body.items.length, 1);
      assert.deepEqual(list.body.items[0].connector, { id: 'acme', name: 'Acme ID' });
      assert.doesNotMatch(list.text, /tokens|subject/);
      assert.equal((await call(issuer, accessToken, 'POST', '/identities/link', { body: { connectorId: 'acme' } })).body.code, 'already_linked');
      assert.equal((await call(issuer, accessToken, 'POST', '/identities/link', { body: { connectorId: 'local' } })).status, 400);
      assert.equal((await call(issuer, accessToken, 'POST', '/identities/link', { body: { connectorId: 'nope' } })).status, 400);

      const unlinked = await call(issuer, accessToken, 'DELETE', `/identities/${list.body.items[0].id}`);
      assert.equal(unlinked.status, 204);
      assert.equal(await world.broker.store.identities.find('acme', ups.ben.id), null);
      assert.equal((await events(id, 'identity.unlinked')).at(0)?.details.by, 'self');
    });

    test('an upstream identity that belongs to another account is refused with a clear result, and nothing moves', async (t) => {
      if (!live(t)) return;
      const catFirst = await consoleLogin(issuer, { username: 'cat', upstream: { op: world.op, user: ups.cat } });
      const catId = (await call(issuer, catFirst.accessToken, 'GET', '/me')).body.id;
      const id = await createLocalUser(world.broker, 'mona');
      const { accessToken, browser } = await consoleLogin(issuer, { username: 'mona' });
      const ticket = await call(issuer, accessToken, 'POST', '/identities/link', { body: { connectorId: 'acme' } });
      const away = await browser.go(`${issuer}${ticket.body.url}`);
      // The upstream still has cat signed in? No: a fresh browser there; cat signs in again.
      const back = await world.op.authorize(away.url, { username: ups.cat.username, password: ups.cat.password });
      const done = await browser.go(back.url);
      assert.equal(new URL(done.url).searchParams.get('link'), 'linked_elsewhere');
      assert.equal((await world.broker.store.identities.find('acme', ups.cat.id))!.userId, catId);
      assert.equal((await world.broker.store.identities.listForUser(id)).length, 0);
      assert.ok((await events(id, 'identity.link_refused')).some((e) => e.details.reason === 'linked_to_another_account'));
    });

    test('unlinking the last way to sign in is refused (no password, no passkey, no other identity)', async (t) => {
      if (!live(t)) return;
      const { accessToken } = await consoleLogin(issuer, { username: 'dan', upstream: { op: world.op, user: ups.dan } });
      const me = (await call(issuer, accessToken, 'GET', '/me')).body;
      assert.equal(me.hasPassword, false);
      const [identity] = (await call(issuer, accessToken, 'GET', '/identities')).body.items;
      const refused = await call(issuer, accessToken, 'DELETE', `/identities/${identity.id}`);
      assert.equal(refused.status, 409);
      assert.equal(refused.body.code, 'last_sign_in_method');
      assert.ok(await world.broker.store.identities.find('acme', ups.dan.id), 'still linked');
    });

    test('second factors: TOTP enrolled with a code (recovery codes shown once), new recovery codes, remove; no secrets in listings', async (t) => {
      if (!live(t)) return;
      const id = await createLocalUser(world.broker, 'tess');
      const { accessToken } = await consoleLogin(issuer, { username: 'tess' });
      assert.equal((await call(issuer, accessToken, 'POST', '/mfa/recovery-codes')).body.code, 'no_factor');
      const started = await call(issuer, accessToken, 'POST', '/mfa/totp');
      assert.equal(started.status, 201);
      assert.match(started.body.qrSvg, /^<svg/);
      assert.equal((await call(issuer, accessToken, 'GET', '/mfa')).body.factors.length, 0, 'unconfirmed factors are not listed');
      const wrong = await call(issuer, accessToken, 'POST', `/mfa/totp/${started.body.factorId}/confirm`, { body: { code: '000000' } });
      assert.equal(wrong.status, 400);
      const confirmed = await call(issuer, accessToken, 'POST', `/mfa/totp/${started.body.factorId}/confirm`, { body: { code: totpFor(started.body.secret).generate() } });
      assert.equal(confirmed.status, 201, confirmed.text);
      assert.equal(confirmed.body.recoveryCodes.length, 10);
      const listed = await call(issuer, accessToken, 'GET', '/mfa');
      assert.equal(listed.body.factors.length, 1);
      assert.equal(listed.body.recoveryCodesLeft, 10);
      assert.ok(!listed.text.includes(started.body.secret));
      const regenerated = await call(issuer, accessToken, 'POST', '/mfa/recovery-codes');
      assert.equal(regenerated.status, 201);
      assert.notDeepEqual(regenerated.body.codes, confirmed.body.recoveryCodes);
      assert.equal((await events(id, 'mfa.enrolled')).length, 1);
      assert.equal((await events(id, 'mfa.recovery_codes_issued')).length, 2);
      const removed = await call(issuer, accessToken, 'DELETE', `/mfa/factors/${listed.body.factors[0].id}`);
      assert.equal(removed.status, 204);
      assert.equal((await call(issuer, accessToken, 'GET', '/mfa')).body.factors.length, 0);
      assert.equal((await events(id, 'mfa.factor_removed')).length, 1);
      assert.equal((await call(issuer, accessToken, 'POST', '/mfa/passkeys/options')).body.code, 'passkeys_unavailable', 'an IP issuer cannot be a WebAuthn RP ID');
    });

    test('sessions: listed with the current one marked; sign out one and everywhere else (their refresh tokens fail), the current one keeps working', async (t) => {
      if (!live(t)) return;
      await createLocalUser(world.broker, 'sam');
      const phone = new Browser(issuer);
      const laptop = new Browser(issuer);
      // Without offline_access: the app's grant ends with the browser session (offline grants outlive
      // a sign-out by design, and are ended under "apps" instead).
      const phoneTokens = await rpLogin(world, phone, 'sam', 'openid profile');
      const laptopTokens = await rpLogin(world, laptop, 'sam', 'openid profile');
      const { accessToken } = await consoleLogin(issuer, { username: 'sam' });
      const sessions = await call(issuer, accessToken, 'GET', '/sessions');
      assert.equal(sessions.body.items.length, 3);
      const current = sessions.body.items.filter((s: { current: boolean }) => s.current);
      assert.equal(current.length, 1);
      const other = sessions.body.items.find((s: { current: boolean }) => !s.current);
      assert.deepEqual(other.applications, [{ id: 'rp', name: 'rp' }]);
      assert.deepEqual(current[0].applications, [{ id: 'keybridge-account-console', name: 'Keybridge account' }]);
      assert.equal(other.ip, '127.0.0.1');
      assert.deepEqual(other.connector, { id: 'local', name: 'Username and password' });
      assert.ok(other.signedInAt && other.lastSeenAt);
      assert.equal(other.userAgent, 'node', 'the user agent the browser signed in with (fetch says "node")');
      const one = await call(issuer, accessToken, 'DELETE', `/sessions/${other.id}`);
      assert.equal(one.status, 204);
      assert.equal((await call(issuer, accessToken, 'GET', '/sessions')).body.items.length, 2);
      const ended = await call(issuer, accessToken, 'POST', '/sessions/end-others');
      assert.equal(ended.status, 200);
      assert.ok(ended.body.ended >= 1);
      const left = (await call(issuer, accessToken, 'GET', '/sessions')).body.items;
      assert.equal(left.length, 1);
      assert.equal(left[0].current, true);
      await assert.rejects(oidc.refreshTokenGrant(world.rp, phoneTokens.refresh_token!), invalidGrant);
      await assert.rejects(oidc.refreshTokenGrant(world.rp, laptopTokens.refresh_token!), invalidGrant);
      assert.equal((await call(issuer, accessToken, 'GET', '/me')).status, 200);
    });

    test('apps: a granted app is listed with its scopes; revoke ends the grant, and its refresh token then fails at /token', async (t) => {
      if (!live(t)) return;
      const id = await createLocalUser(world.broker, 'ada');
      const tokens = await rpLogin(world, new Browser(issuer), 'ada');
      const { accessToken } = await consoleLogin(issuer, { username: 'ada' });
      const apps = await call(issuer, accessToken, 'GET', '/apps');
      const rpApp = apps.body.items.find((a: { clientId: string }) => a.clientId === 'rp');
      assert.ok(rpApp, apps.text);
      assert.deepEqual([...rpApp.scopes].sort(), ['offline_access', 'openid', 'profile']);
      assert.ok(apps.body.items.some((a: { clientId: string; current: boolean }) => a.clientId === 'keybridge-account-console' && a.current));
      assert.ok((await oidc.refreshTokenGrant(world.rp, tokens.refresh_token!)).access_token, 'works before');
      const revoked = await call(issuer, accessToken, 'DELETE', `/apps/${rpApp.id}`);
      assert.equal(revoked.status, 204);
      await assert.rejects(oidc.refreshTokenGrant(world.rp, tokens.refresh_token!), invalidGrant);
      assert.ok(!(await call(issuer, accessToken, 'GET', '/apps')).body.items.some((a: { clientId: string }) => a.clientId === 'rp'));
      assert.equal((await events(id, 'grant.revoked')).at(0)?.clientId, 'rp');
    });

    test('another person\'s sessions, apps, identities and factors are 404, and stay untouched', async (t) => {
      if (!live(t)) return;
      const victimId = await createLocalUser(world.broker, 'vic');
      const victimTokens = await rpLogin(world, new Browser(issuer), 'vic');
      const victim = await consoleLogin(issuer, { username: 'vic' });
      const totp = await call(issuer, victim.accessToken, 'POST', '/mfa/totp');
      await call(issuer, victim.accessToken, 'POST', `/mfa/totp/${totp.body.factorId}/confirm`, { body: { code: totpFor(totp.body.secret).generate() } });
      const victimSession = (await call(issuer, victim.accessToken, 'GET', '/sessions')).body.items[0].id;
      const victimGrant = (await call(issuer, victim.accessToken, 'GET', '/apps')).body.items.find((a: { clientId: string }) => a.clientId === 'rp').id;
      const victimFactor = (await call(issuer, victim.accessToken, 'GET', '/mfa')).body.factors[0].id;
      const fed = await world.broker.store.identities.create({ userId: victimId, connectorId: 'acme', subject: 'vic-upstream' });

      await createLocalUser(world.broker, 'mallory');
      const { accessToken } = await consoleLogin(issuer, { username: 'mallory' });
      for (const [method, path] of [['DELETE', `/sessions/${victimSession}`], ['DELETE', `/apps/${victimGrant}`], ['DELETE', `/mfa/factors/${victimFactor}`], ['DELETE', `/identities/${fed.id}`], ['POST', `/mfa/totp/${victimFactor}/confirm`]] as const) {
        const res = await call(issuer, accessToken, method, path, method === 'POST' ? { body: { code: '123456' } } : {});
        assert.equal(res.status, 404, `${method} ${path}: ${res.text}`);
        assert.equal(res.body.code, 'not_found');
      }
      assert.equal((await call(issuer, accessToken, 'DELETE', '/sessions/..%2F..%2Fx')).status, 404);
      assert.ok((await oidc.refreshTokenGrant(world.rp, victimTokens.refresh_token!)).access_token, 'the victim\'s app still works');
      assert.equal((await call(issuer, victim.accessToken, 'GET', '/mfa')).body.factors.length, 1);
      assert.ok(await world.broker.store.identities.findById(fed.id));
      const mine = await call(issuer, accessToken, 'GET', '/sessions');
      assert.ok(!mine.text.includes(victimSession));
    });

    test('security log: own events of the last 90 days, newest first, paged; no one else\'s', async (t) => {
      if (!live(t)) return;
      const id = await createLocalUser(world.broker, 'lou');
      const { accessToken } = await consoleLogin(issuer, { username: 'lou' });
      await call(issuer, accessToken, 'POST', '/me/password', { body: { currentPassword: 'wrong password here', newPassword: 'a quite different passphrase 3' } });
      await call(issuer, accessToken, 'POST', '/me/password', { body: { currentPassword: PASSWORD, newPassword: 'a quite different passphrase 3' } });
      await world.broker.store.knex('audit_events').insert({ type: 'login.success', outcome: 'success', user_id: id, details: '{}', at: new Date(Date.now() - 100 * 86400_000) });
      const log = await call(issuer, accessToken, 'GET', '/security-log');
      assert.equal(log.status, 200);
      const types = log.body.items.map((e: { type: string }) => e.type);
      assert.deepEqual(types.slice(0, 2), ['user.password_changed', 'user.password_change_failed']);
      assert.ok(types.includes('login.success'));
      assert.equal(log.body.items.filter((e: { at: string }) => Date.parse(e.at) < Date.now() - 90 * 86400_000).length, 0, 'older than 90 days left out');
      const page1 = await call(issuer, accessToken, 'GET', '/security-log?limit=1');
      assert.equal(page1.body.items.length, 1);
      const page2 = await call(issuer, accessToken, 'GET', `/security-log?limit=1&cursor=${page1.body.nextCursor}`);
      assert.notEqual(page2.body.items[0].id, page1.body.items[0].id);
      assert.equal((await call(issuer, accessToken, 'GET', '/security-log?limit=0')).status, 400);
      assert.equal((await call(issuer, accessToken, 'GET', '/security-log?cursor=nonsense')).status, 400);
      assert.equal((await call(issuer, accessToken, 'GET', '/security-log?limit=1&limit=2')).status, 400);
      assert.ok(log.body.items.every((e: { type: string }) => e.type !== 'admin.unauthenticated'));
    });

    test('export: everything stored about the person as a JSON download, without secrets', async (t) => {
      if (!live(t)) return;
      const id = await createLocalUser(world.broker, 'eli');
      await world.broker.store.groups.setMemberships(id, ['readers'], 'local');
      await world.broker.store.identities.create({ userId: id, connectorId: 'acme', subject: 'eli-upstream', data: { department: 'R&D' } });
      const fed = (await world.broker.store.identities.find('acme', 'eli-upstream'))!;
      await world.broker.store.identities.recordLogin(fed.id, { tokens: 'SEALED-UPSTREAM-TOKENS' });
      await rpLogin(world, new Browser(issuer), 'eli');
      const { accessToken } = await consoleLogin(issuer, { username: 'eli' });
      const totp = await call(issuer, accessToken, 'POST', '/mfa/totp');
      await call(issuer, accessToken, 'POST', `/mfa/totp/${totp.body.factorId}/confirm`, { body: { code: totpFor(totp.body.secret).generate() } });
      const res = await call(issuer, accessToken, 'GET', '/export');
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-disposition') ?? '', /^attachment; filename="keybridge-account-\d{4}-\d{2}-\d{2}\.json"$/);
      assert.equal(res.headers.get('cache-control'), 'no-store');
      const data = res.body;
      assert.equal(data.profile.id, id);
      assert.equal(data.profile.email, 'eli@example.org');
      assert.ok(data.groups.some((g: { name?: string } | string) => JSON.stringify(g).includes('readers')));
      assert.equal(data.linkedIdentities[0].subject, 'eli-upstream');
      assert.equal(data.linkedIdentities[0].data.department, 'R&D');
      assert.equal(data.secondFactors.length, 1);
      assert.ok(data.sessions.length >= 2);
      assert.ok(data.applications.some((a: { clientId: string }) => a.clientId === 'rp'));
      assert.ok(data.securityLog.some((e: { type: string }) => e.type === 'mfa.enrolled'));
      assert.doesNotMatch(res.text, /SEALED-UPSTREAM-TOKENS|argon2|sealedSecret|publicKey/);
      assert.ok(!res.text.includes(totp.body.secret));
      assert.ok((await events(id, 'account.exported')).length === 1);
    });

    test('delete: a typed confirmation and a recent sign-in; sessions and apps end, the account is gone', async (t) => {
      if (!live(t)) return;
      const id = await createLocalUser(world.broker, 'dora');
      const tokens = await rpLogin(world, new Browser(issuer), 'dora');
      const { accessToken } = await consoleLogin(issuer, { username: 'dora' });
      const wrong = await call(issuer, accessToken, 'DELETE', '/me', { body: { confirm: 'Dora' } });
      assert.equal(wrong.status, 400);
      assert.equal(wrong.body.errors[0].path, 'body.confirm');
      assert.equal((await call(issuer, accessToken, 'DELETE', '/me')).status, 415, 'a body is required');
      await ageSignIn(world.broker, id, 3600);
      assert.equal((await call(issuer, accessToken, 'DELETE', '/me', { body: { confirm: 'dora' } })).body.code, 'reauthentication_required');
      assert.ok(await world.broker.store.users.findById(id));
      await ageSignIn(world.broker, id, 0);
      const gone = await call(issuer, accessToken, 'DELETE', '/me', { body: { confirm: 'dora' } });
      assert.equal(gone.status, 204, gone.text);
      assert.equal(await world.broker.store.users.findById(id), null);
      await assert.rejects(oidc.refreshTokenGrant(world.rp, tokens.refresh_token!), invalidGrant);
      assert.equal((await call(issuer, accessToken, 'GET', '/me')).status, 401);
      assert.equal((await events(id, 'user.deleted')).at(0)?.details.by, 'self');
      // Config users cannot delete themselves (the config would bring them back).
      const cfg = await consoleLogin(issuer, { username: 'cfg-user', password: 'Config-user-password-1' });
      assert.equal((await call(issuer, cfg.accessToken, 'DELETE', '/me', { body: { confirm: 'cfg-user' } })).body.code, 'read_only');
    });

    test('hostile input: NUL, unpaired surrogates, invalid UTF-8, huge and non-JSON bodies, odd methods and paths are 4xx problems, never 500', async (t) => {
      if (!live(t)) return;
      const id = await createLocalUser(world.broker, 'hank');
      const { accessToken } = await consoleLogin(issuer, { username: 'hank' });
      const cases: Array<[string, string, Parameters<typeof call>[4], number]> = [
        ['PATCH', '/me', { raw: '{"name":"a\\u0000b"}', headers: { 'content-type': 'application/json' } }, 400],
        ['PATCH', '/me', { raw: '{"name":"\\ud800"}', headers: { 'content-type': 'application/json' } }, 400],
        ['PATCH', '/me', { raw: new Uint8Array([0x7b, 0x22, 0x6e, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]), headers: { 'content-type': 'application/json' } }, 400],
        ['PATCH', '/me', { raw: '{"name":', headers: { 'content-type': 'application/json' } }, 400],
        ['PATCH', '/me', { raw: 'name=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, 415],
        ['PATCH', '/me', { body: { name: 'x'.repeat(300) } }, 400],
        ['PATCH', '/me', { body: { name: 'tab\there' } }, 400],
        ['PATCH', '/me', { body: { name: 5 } }, 400],
        ['PATCH', '/me', { body: [1, 2] }, 400],
        ['PATCH', '/me', { raw: JSON.stringify({ name: 'x'.repeat(200_000) }), headers: { 'content-type': 'application/json' } }, 413],
        ['POST', '/me/password', { body: { currentPassword: PASSWORD, newPassword: 'ok\u0000passphrase long' } }, 400],
        ['POST', '/mfa/totp/abc/confirm', { body: { code: { $ne: 1 } } }, 400],
        ['PUT', '/me', {}, 405],
        ['HEAD', '/export', {}, 405],
        ['GET', '/me/%00', {}, 400],
        ['GET', '/sessions/%E0%A4%A', {}, 400],
        ['DELETE', '/sessions/' + 'a'.repeat(300), {}, 404],
        ['GET', '/me', { headers: { 'x-forwarded-host': 'evil.example', 'x-forwarded-for': '6.6.6.6', host: 'evil.example' } }, 200],
      ];
      for (const [method, path, options, status] of cases) {
        const res = await call(issuer, accessToken, method, path, options);
        assert.equal(res.status, status, `${method} ${path} ${JSON.stringify(options).slice(0, 80)}: ${res.text.slice(0, 200)}`);
        assert.doesNotMatch(res.text, /at .*\.ts:\d+|stack/i);
      }
      const user = await world.broker.store.users.findById(id);
      assert.equal(user!.name, 'hank Local', 'nothing was stored by the refused requests');
      // Unauthenticated hostile input: 401 or 400, never 500.
      for (const header of ['Bearer \u00ff\u00fe', 'Bearer ' + 'a'.repeat(5000), 'Basic abc', 'Bearer a b']) {
        const res = await fetch(`${issuer}/account/api/me`, { headers: { authorization: header } }).catch(() => null);
        if (res) assert.ok(res.status === 400 || res.status === 401, `${header.slice(0, 20)}: ${res.status}`);
      }
      for (const path of ['/account/link/acme?ticket=%00', '/account/link/..%2Facme', '/account/link/return/%ff', '/account/link/return/' + 'a'.repeat(500), '/account/link/acme']) {
        const res = await fetch(`${issuer}${path}`, { redirect: 'manual' });
        assert.ok(res.status < 500, `${path}: ${res.status}`);
      }
      assert.equal((await fetch(`${issuer}/account/link/acme`, { method: 'POST', redirect: 'manual' })).status, 405);
    });
  });
}

describe('account console defaults', () => {
  test('self-deletion is off by default; account.enabled: false removes the console, its API and its client', async () => {
    const on = await startTestBroker({ config: { connectors: [{ id: 'local', type: 'local', name: 'Local' }] } });
    try {
      const id = await createLocalUser(on, 'ivy');
      const { accessToken } = await consoleLogin(on.issuer, { username: 'ivy' });
      const refused = await call(on.issuer, accessToken, 'DELETE', '/me', { body: { confirm: 'ivy' } });
      assert.equal(refused.status, 403);
      assert.equal(refused.body.code, 'self_deletion_disabled');
      assert.ok(await on.store.users.findById(id));
      assert.equal((await call(on.issuer, accessToken, 'GET', '/me')).body.features.selfDeletion, false);
    } finally {
      await on.close();
    }
    const off = await startTestBroker({ config: { account: { enabled: false } } });
    try {
      assert.equal((await fetch(`${off.issuer}/account/`)).status, 404);
      assert.equal((await fetch(`${off.issuer}/account/api/me`)).status, 404);
      assert.equal(await off.provider().Client.find('keybridge-account-console'), undefined);
    } finally {
      await off.close();
    }
  });
});
