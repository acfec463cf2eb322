// "Forgot password?" over HTTP against a real broker and a real SMTP receiver: the reset ends
// every session and refresh grant (held by openid-client), links are single-use and expire, the
// policy's reason is shown, and the answer is the same for known, unknown and upstream addresses.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as oidc from 'openid-client';
import { Browser, type Page } from '../helpers/browser.ts';
import { MailCatcher, linkIn } from './mail-catcher.ts';
import { authorizationUrl, comparable, linksTheme, openLogin, PKCE_VERIFIER, RP_REDIRECT, RP_SECRET, startEmailBroker, type EmailBroker } from './email-broker.ts';
import { hashToken } from '../../src/email/action-links.ts';
import { hashPassword } from '../../src/accounts/passwords.ts';

const OLD = 'Original-Secret-Pass-1';
const NEW = 'Brand-New-Harbour-Light-8';

describe('password reset', () => {
  const smtp = new MailCatcher();
  let broker: EmailBroker;
  let rp: oidc.Configuration;

  before(async () => {
    await smtp.start();
    broker = await startEmailBroker(
      {
        email: { smtp: smtp.url, pollSeconds: 1 },
        users: [{ username: 'cfg', email: 'cfg@example.org', password: 'Config-Declared-Pass-1' }],
        limits: { ip: { login: { points: 1000 } } },
        ui: { themeDir: linksTheme() },
      },
    );
    // Local accounts as registration or the admin API create them.
    for (const [username, enabled] of [['alice', true], ['bob', true], ['carol', true], ['dave', false]] as const) {
      const user = await broker.store.users.create({ username, email: `${username}@example.org`, enabled });
      await broker.store.credentials.setPassword(user.id, await hashPassword(OLD));
    }
    // An account whose profile a directory owns, with no password here.
    await broker.store.users.create({ username: 'dirk', email: 'dirk@example.org', managedBy: 'corp-directory' });
    rp = await oidc.discovery(new URL(broker.issuer), 'rp', RP_SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
  });
  after(async () => {
    await broker?.close();
    await smtp.stop();
  });

  async function signIn(browser: Browser, username: string, password: string): Promise<Page> {
    const { page } = await openLogin(browser, broker.issuer);
    let next = await browser.submit(page, '/login', { username, password });
    if (next.html && /\/confirm"/.test(next.html)) next = await browser.submit(next, '/confirm');
    return next;
  }

  async function forgot(email: string, browser = new Browser(broker.url)): Promise<Page> {
    const { uid } = await openLogin(browser, broker.issuer);
    const page = await browser.go(`${broker.url}/interaction/${uid}/forgot`);
    assert.equal(page.status, 200);
    return browser.submit(page, '/forgot', { email });
  }

  async function resetLink(email: string, before = smtp.to(email).length): Promise<string> {
    const mail = await smtp.waitFor(email, (m) => smtp.to(email).indexOf(m) >= before && /\/password\/reset\//.test(m.text ?? ''));
    return linkIn(mail, '/password/reset/');
  }

  test('forgot -> mail -> reset: the new password works, the old one not, every session and refresh token is dead', async () => {
    const alice = (await broker.store.users.findByUsername('alice'))!;
    await broker.store.mfa.addRequiredAction(alice.id, 'update_password');

    // A signed-in browser and a relying party holding a refresh token.
    const session = new Browser(broker.url);
    const callback = await signIn(session, 'alice', OLD);
    // update_password runs first: the login asks for a new password (the reset must clear it later).
    assert.match(callback.html, /Choose a new password/);
    await broker.store.mfa.removeRequiredAction(alice.id, 'update_password');
    const signed = await signIn(new Browser(broker.url), 'alice', OLD);
    assert.ok(signed.url.startsWith(RP_REDIRECT), `signed in: ${signed.status} ${signed.url}`);
    const held = new Browser(broker.url);
    const heldCallback = await signIn(held, 'alice', OLD);
    const tokens = await oidc.authorizationCodeGrant(rp, new URL(heldCallback.url), { pkceCodeVerifier: PKCE_VERIFIER, expectedState: 's1234567' });
    assert.ok(tokens.refresh_token, 'a refresh token is held');
    const rotated = await oidc.refreshTokenGrant(rp, tokens.refresh_token);
    assert.ok(rotated.refresh_token);
    // The held session signs in without a form (so the test below can fail).
    const silent = await held.go(authorizationUrl(broker.issuer));
    assert.ok(silent.url.startsWith(RP_REDIRECT), 'the session is live before the reset');
    await broker.store.mfa.addRequiredAction(alice.id, 'update_password');

    const answer = await forgot('alice@example.org');
    assert.equal(answer.status, 200);
    assert.match(answer.html, /If an account uses alice@example\.org/);
    const link = await resetLink('alice@example.org');
    const form = await new Browser(broker.url).go(link);
    assert.equal(form.status, 200);
    assert.match(form.html, /Choose a new password for alice/);
    const done = await new Browser(broker.url).submit(form, '/password/reset/', { password: NEW, confirm: NEW });
    assert.equal(done.status, 200, done.html.slice(0, 500));
    assert.match(done.html, /Password changed/);

    await assert.rejects(oidc.refreshTokenGrant(rp, rotated.refresh_token!), (err: { error?: string }) => err.error === 'invalid_grant');
    const afterReset = await held.go(authorizationUrl(broker.issuer));
    assert.equal(afterReset.status, 200, 'the old session no longer signs in');
    assert.match(afterReset.html, /name="password"/);
    assert.equal((await signIn(new Browser(broker.url), 'alice', OLD)).status, 401);
    const fresh = await signIn(new Browser(broker.url), 'alice', NEW);
    assert.ok(fresh.url.startsWith(RP_REDIRECT), 'the new password signs in, without update_password');
    assert.deepEqual(await broker.store.mfa.requiredActions(alice.id), []);

    const events = await broker.store.audit.list({ type: 'user.password_reset', userId: alice.id });
    assert.equal(events.length, 1);
    assert.ok(Number(events[0]!.details.grantsRevoked) >= 1);
    const notice = await smtp.waitFor('alice@example.org', (m) => /was changed/.test(m.subject ?? ''));
    assert.doesNotMatch(notice.text ?? '', /\/password\/reset\//);
  });

  test('a used link works no more; a second link of the same user is voided by the reset', async () => {
    const first = await forgot('bob@example.org');
    assert.equal(first.status, 200);
    const one = await resetLink('bob@example.org', 0);
    const count = smtp.to('bob@example.org').length;
    await forgot('bob@example.org');
    const two = await resetLink('bob@example.org', count);
    assert.notEqual(one, two);
    const b = new Browser(broker.url);
    const page = await b.go(two);
    const done = await b.submit(page, '/password/reset/', { password: NEW, confirm: NEW });
    assert.equal(done.status, 200);
    // Reused.
    const reused = await b.go(two);
    assert.equal(reused.status, 404);
    assert.match(reused.html, /This link does not work/);
    const replay = await b.go(two, { method: 'POST', form: { csrf: /name="csrf" value="([^"]*)"/.exec(page.html)![1]!, password: 'Another-Fresh-Pass-77', confirm: 'Another-Fresh-Pass-77' } });
    assert.equal(replay.status, 404);
    // The other link was voided by the completed reset.
    assert.equal((await b.go(one)).status, 404);
    const refused = await broker.store.audit.list({ type: 'email.link_refused' });
    assert.ok(refused.some((e) => e.details.link === 'reset_password'), 'the replayed link is audited');
    assert.ok((await signIn(new Browser(broker.url), 'bob', NEW)).url.startsWith(RP_REDIRECT));
  });

  test('a reset lifts the backoff that wrong guesses of the forgotten password built up', async () => {
    const user = await broker.store.users.create({ username: 'gina', email: 'gina@example.org' });
    await broker.store.credentials.setPassword(user.id, await hashPassword(OLD));
    for (let i = 0; i < 5; i++) await signIn(new Browser(broker.url), 'gina', `Wrong-Guess-${i}-xyz`);
    assert.equal((await signIn(new Browser(broker.url), 'gina', OLD)).status, 429, 'the account waits after repeated failures');
    await forgot('gina@example.org');
    const b = new Browser(broker.url);
    const done = await b.submit(await b.go(await resetLink('gina@example.org', 0)), '/password/reset/', { password: NEW, confirm: NEW });
    assert.equal(done.status, 200);
    assert.ok((await signIn(new Browser(broker.url), 'gina', NEW)).url.startsWith(RP_REDIRECT), 'signs in at once with the new password');
  });

  test('an expired link is refused and changes nothing', async () => {
    await forgot('carol@example.org');
    const link = await resetLink('carol@example.org', 0);
    const b = new Browser(broker.url);
    const page = await b.go(link);
    assert.equal(page.status, 200);
    const token = link.slice(link.lastIndexOf('/') + 1);
    await broker.store.knex('action_tokens').where({ token_hash: hashToken(token) }).update({ expires_at: new Date(Date.now() - 1000) });
    assert.equal((await b.go(link)).status, 404);
    const late = await b.submit(page, '/password/reset/', { password: NEW, confirm: NEW });
    assert.equal(late.status, 404);
    assert.ok((await signIn(new Browser(broker.url), 'carol', OLD)).url.startsWith(RP_REDIRECT), 'the old password still works');
  });

  test('a look-alike address (alİce for alice) gets no reset link, and nothing is mailed to it about alice', async () => {
    const alice = (await broker.store.users.findByUsername('alice'))!;
    const tokensBefore = await broker.store.knex('action_tokens').where({ user_id: alice.id, purpose: 'reset_password' }).count({ n: '*' });
    const aliceMails = smtp.to('alice@example.org').length;
    const page = await forgot('al\u0130ce@example.org');
    assert.equal(page.status, 200);
    // The neutral "no account uses this address" mail, if any, to the typed address: never a link.
    const sent = await smtp.waitFor('al\u0130ce@example.org').catch(() => null);
    if (sent) assert.doesNotMatch(sent.text ?? '', /\/password\/reset\//);
    const tokensAfter = await broker.store.knex('action_tokens').where({ user_id: alice.id, purpose: 'reset_password' }).count({ n: '*' });
    assert.deepEqual(tokensAfter, tokensBefore, 'no reset link was made for alice');
    assert.equal(smtp.to('alice@example.org').length, aliceMails);
    const toLookAlike = await broker.store.knex('email_outbox').where({ recipient: 'al\u0130ce@example.org' }).select('user_id');
    assert.deepEqual(toLookAlike.map((r) => r.user_id), toLookAlike.map(() => null), 'a mail to the look-alike is about no account');
  });

  test('a link form that fails its CSRF check says so in the reader\'s language', async () => {
    const before = smtp.to('carol@example.org').length;
    await forgot('carol@example.org');
    const link = await resetLink('carol@example.org', before);
    const res = await fetch(link, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'accept-language': 'de', accept: 'text/html' }, body: new URLSearchParams({ csrf: 'forged', password: NEW, confirm: NEW }) });
    assert.equal(res.status, 400);
    const html = await res.text();
    assert.match(html, /Das Formular ist abgelaufen oder wurde verändert/);
    assert.doesNotMatch(html, /The form expired/);
  });

  test('a reset link mailed before the account\'s address changed no longer works', async () => {
    const bob = (await broker.store.users.findByUsername('bob'))!;
    const before = smtp.to('bob@example.org').length;
    await forgot('bob@example.org');
    const link = await resetLink('bob@example.org', before);
    assert.equal((await new Browser(broker.url).go(link)).status, 200, 'usable while the address is the same');
    await broker.store.users.update(bob.id, { email: 'bob.elsewhere@example.org' });
    try {
      assert.equal((await new Browser(broker.url).go(link)).status, 404);
      const b = new Browser(broker.url);
      const res = await b.go(link);
      assert.equal(res.status, 404);
    } finally {
      await broker.store.users.update(bob.id, { email: 'bob@example.org' });
    }
  });

  test('weak, mismatched and over-128-character passwords are refused with the reason; the link stays usable', async () => {
    const before = smtp.to('carol@example.org').length;
    await forgot('carol@example.org');
    const link = await resetLink('carol@example.org', before);
    const b = new Browser(broker.url);
    const cases: Array<[string, string, RegExp]> = [
      ['short1', 'short1', /The password must be at least 12 characters long/],
      ['qwertyuiop123', 'qwertyuiop123', /one of the most common passwords found in data breaches/],
      ['Password123456', 'Password123456', /too easy to guess\. This is similar to a commonly used password/],
      ['carol@example.org', 'carol@example.org', /built from your name, username or email address/],
      [NEW, `${NEW}x`, /The two passwords do not match/],
      [`Aa1-${'x7Qz'.repeat(32)}`, `Aa1-${'x7Qz'.repeat(32)}`, /must be at most 128 characters/],
      ['z'.repeat(3000), 'z'.repeat(3000), /too long/],
      ['', '', /Choose a password/],
    ];
    for (const [password, confirm, reason] of cases) {
      const res = await b.submit(await b.go(link), '/password/reset/', { password, confirm });
      assert.equal(res.status, 400, password.slice(0, 20));
      assert.match(res.html, reason);
    }
    const ok = await b.submit(await b.go(link), '/password/reset/', { password: NEW, confirm: NEW });
    assert.equal(ok.status, 200);
  });

  test('enumeration: known, unknown, directory, config-declared and disabled addresses get the same status and page', async () => {
    const pages = await Promise.all(['bob@example.org', 'nobody@example.org', 'dirk@example.org', 'cfg@example.org', 'dave@example.org'].map(async (email) => ({ email, page: await forgot(email) })));
    const [first, ...rest] = pages;
    for (const other of rest) {
      assert.equal(other.page.status, first!.page.status);
      assert.equal(comparable(other.page.html, other.email), comparable(first!.page.html, first!.email), other.email);
    }
    const unknown = await smtp.waitFor('nobody@example.org');
    assert.match(unknown.text ?? '', /no account uses it/);
    assert.doesNotMatch(unknown.text ?? '', /\/password\/reset\//);
    const directory = await smtp.waitFor('dirk@example.org');
    assert.match(directory.text ?? '', /you sign in with corp-directory\. Reset your password there/);
    assert.doesNotMatch(directory.text ?? '', /\/password\/reset\//);
    const managed = await smtp.waitFor('cfg@example.org');
    assert.match(managed.text ?? '', /set by the administrator in the configuration/);
    assert.doesNotMatch(managed.text ?? '', /\/password\/reset\//);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(smtp.to('dave@example.org').length, 0, 'a disabled account gets nothing');
  });

  test('a hostile address is refused with a message, never queued, never a 500', async () => {
    for (const email of ['victim@example.org\r\nBcc: evil@example.org', 'a\nb@example.org', 'x'.repeat(300) + '@example.org', 'no-at-sign', '']) {
      const res = await forgot(email);
      assert.equal(res.status, 400, JSON.stringify(email.slice(0, 40)));
      assert.match(res.html, /Enter a valid email address/);
    }
    const nul = await forgot('nul@example.org\u0000');
    assert.equal(nul.status, 400);
    assert.equal(smtp.to('evil@example.org').length, 0);
    // Tokens of the wrong shape, and spoofed hosts, get the invalid-link page.
    for (const path of ['/password/reset/short', `/password/reset/${'A'.repeat(43)}`, '/email/verify/%FF%FE', `/email/verify/${'../'.repeat(20)}`]) {
      const res = await fetch(`${broker.url}${path}`, { headers: { host: 'evil.example', 'x-forwarded-host': 'evil.example', accept: 'text/html' } });
      assert.ok(res.status === 404 || res.status === 400, `${path} -> ${res.status}`);
      assert.doesNotMatch(await res.text(), /evil\.example|\s+at \S+ \(/);
    }
  });

  test('the mailed link uses the configured issuer, not the request\'s Host or X-Forwarded-Host', async () => {
    const browser = new Browser(broker.url);
    const { uid } = await openLogin(browser, broker.issuer);
    const page = await browser.go(`${broker.url}/interaction/${uid}/forgot`);
    const csrf = /name="csrf" value="([^"]*)"/.exec(page.html)![1]!;
    const before = smtp.to('bob@example.org').length;
    await browser.request(`${broker.url}/interaction/${uid}/forgot`, { form: { csrf, email: 'bob@example.org' }, headers: { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' } });
    const link = await resetLink('bob@example.org', before);
    assert.ok(link.startsWith(`${broker.issuer}/password/reset/`), link);
  });

  test('registration is off by default: its pages are 404; the login page offers "Forgot password?" only', async () => {
    const browser = new Browser(broker.url);
    const { page, uid } = await openLogin(browser, broker.issuer);
    assert.match(page.html, new RegExp(`register=\\[\\] forgot=\\[/interaction/${uid}/forgot\\]`));
    assert.equal((await browser.go(`${broker.url}/interaction/${uid}/register`)).status, 404);
    const csrf = /name="csrf" value="([^"]*)"/.exec(page.html)![1]!;
    const post = await browser.go(`${broker.url}/interaction/${uid}/register`, { method: 'POST', form: { csrf, email: 'x@example.org', password: NEW, confirm: NEW } });
    assert.equal(post.status, 404);
  });
});

describe('password reset and registration limits', () => {
  let broker: EmailBroker;

  before(async () => {
    // No SMTP: mails go to the log, and "Forgot password?" is off unless enabled.
    broker = await startEmailBroker({ registration: { enabled: true }, limits: { ip: { login: { points: 3, durationSeconds: 60, blockSeconds: 60 } } }, ui: { themeDir: linksTheme() } });
  });
  after(async () => {
    await broker?.close();
  });

  test('without SMTP, "Forgot password?" is off by default (404); the login page offers "Create account" only', async () => {
    const browser = new Browser(broker.url);
    const { uid, page } = await openLogin(browser, broker.issuer);
    assert.match(page.html, new RegExp(`register=\\[/interaction/${uid}/register\\] forgot=\\[\\]`));
    assert.equal((await browser.go(`${broker.url}/interaction/${uid}/forgot`)).status, 404);
  });

  test('registration requests are throttled per IP (429 with Retry-After), before any mail', async () => {
    const browser = new Browser(broker.url);
    const { uid } = await openLogin(browser, broker.issuer);
    const page = await browser.go(`${broker.url}/interaction/${uid}/register`);
    const statuses: number[] = [];
    let last: Page | undefined;
    for (let i = 0; i < 5; i++) {
      last = await browser.submit(page, '/register', { email: `flood${i}@example.org`, username: `flood${i}`, password: NEW, confirm: NEW });
      statuses.push(last.status);
    }
    assert.deepEqual(statuses.slice(0, 3), [200, 200, 200]);
    assert.equal(statuses[4], 429);
    assert.ok(Number(last!.headers.get('retry-after')) >= 1);
    assert.match(last!.html, /Too many attempts/);
    assert.equal(await broker.store.knex('email_outbox').where({ recipient: 'flood4@example.org' }).first(), undefined);
  });
});
