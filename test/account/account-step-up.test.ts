// A step-up (only a second factor asked, or a new one added through kb_action=configure_mfa, on
// an existing session) proves a factor, not who is at the keyboard: it must not count as the
// recent sign-in that the account console requires before sensitive changes. Found in review: a
// stale session could add an authenticator app it scanned itself and then change the address.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as oidc from 'openid-client';
import * as OTPAuth from 'otpauth';
import { call, ageSignIn, consoleLogin, createLocalUser, RP_REDIRECT, startAccountWorld, type AccountWorld } from './account-support.ts';

describe('step-up and the recent sign-in', () => {
  let world: AccountWorld;
  before(async () => {
    world = await startAccountWorld({ upstreamUsers: [] });
  });
  after(async () => {
    await world?.close();
  });

  async function rpAuthorization(extra: Record<string, string>) {
    const verifier = oidc.randomPKCECodeVerifier();
    return oidc.buildAuthorizationUrl(world.rp, { redirect_uri: RP_REDIRECT, scope: 'openid', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state: 'st', ...extra }).href;
  }

  test('adding a first factor with kb_action=configure_mfa keeps the old sign-in time: sensitive changes still need a sign-in', async () => {
    const issuer = world.broker.issuer;
    const id = await createLocalUser(world.broker, 'stella');
    const { accessToken, browser } = await consoleLogin(issuer, { username: 'stella' });
    await ageSignIn(world.broker, id, 3600);
    const before = (await world.broker.store.knex('login_sessions').where('user_id', id).first('authenticated_at')).authenticated_at as Date;
    assert.equal((await call(issuer, accessToken, 'POST', '/me/email', { body: { email: 'stella.new@example.org' } })).body.code, 'reauthentication_required');

    // The same browser session adds an authenticator app: no password is asked for that.
    const enrol = await browser.go(await rpAuthorization({ kb_action: 'configure_mfa' }));
    assert.doesNotMatch(enrol.html, /name="password"/);
    const secret = /id="totp-secret">([A-Z2-7 ]+)</.exec(enrol.html)?.[1]?.replace(/\s/g, '');
    assert.ok(secret, enrol.html.slice(0, 500));
    const codes = await browser.submit(enrol, '/mfa/enrol/totp', { code: new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret) }).generate() });
    const done = await browser.submit(codes, '/continue');
    assert.ok(done.url.startsWith(RP_REDIRECT), `back at the app: ${done.url}`);
    assert.equal((await world.broker.store.mfa.list(id)).filter((f) => f.confirmed).length, 1, 'the factor was added');

    const after = (await world.broker.store.knex('login_sessions').where('user_id', id).first('authenticated_at')).authenticated_at as Date;
    assert.equal(new Date(after).getTime(), new Date(before).getTime(), 'the sign-in time did not move');
    assert.equal((await call(issuer, accessToken, 'POST', '/me/email', { body: { email: 'stella.new@example.org' } })).body.code, 'reauthentication_required');
    assert.equal((await call(issuer, accessToken, 'POST', '/identities/link', { body: { connectorId: 'acme' } })).body.code, 'reauthentication_required');

    // max_age=0 with the action: a whole sign-in (password, then the factor), which does count.
    const fresh = await browser.go(await rpAuthorization({ kb_action: 'configure_mfa', max_age: '0' }));
    assert.match(fresh.html, /name="password"/, 'max_age asks for the password, not only a factor');
  });
});
