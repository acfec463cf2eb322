// Self-registration over HTTP against a real broker and a real SMTP receiver: validation with
// reasons, no enumeration, no sign-in before the mailed link is followed, single-use links,
// hostile input, and the mode without verification.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Browser, type Page } from '../helpers/browser.ts';
import { MailCatcher, linkIn } from './mail-catcher.ts';
import { authorizationUrl, comparable, openLogin, RP_REDIRECT, startEmailBroker, type EmailBroker } from './email-broker.ts';

const GOOD = 'Tangerine-Lighthouse-47';

describe('self-registration', () => {
  const smtp = new MailCatcher();
  let broker: EmailBroker;

  before(async () => {
    await smtp.start();
    broker = await startEmailBroker(
      {
        email: { smtp: smtp.url, from: 'Keybridge <noreply@example.org>', pollSeconds: 1 },
        registration: { enabled: true, allowedEmailDomains: ['example.org', 'example.com'], fields: { username: 'required', name: 'required', givenName: 'optional' } },
        users: [{ username: 'taken', email: 'taken@example.org', password: 'Existing-Account-Pass-1' }],
        limits: { ip: { login: { points: 1000 } } },
      },
    );
  });
  after(async () => {
    await broker?.close();
    await smtp.stop();
  });

  async function registerPage(browser = new Browser(broker.url)) {
    const { uid } = await openLogin(browser, broker.issuer);
    const page = await browser.go(`${broker.url}/interaction/${uid}/register`);
    assert.equal(page.status, 200);
    return { browser, uid, page };
  }

  const form = (fields: Record<string, string> = {}) => ({ email: 'someone@example.org', username: 'someone', name: 'Some One', password: GOOD, confirm: GOOD, ...fields });

  async function signIn(browser: Browser, username: string, password: string): Promise<Page> {
    const { page } = await openLogin(browser, broker.issuer);
    let next = await browser.submit(page, '/login', { username, password });
    if (next.html && /\/confirm"/.test(next.html)) next = await browser.submit(next, '/confirm');
    return next;
  }

  test('the registration page belongs to the browser of its sign-in: another browser is refused, not served a 500', async () => {
    const { page, uid } = await openLogin(new Browser(broker.url), broker.issuer);
    assert.equal(page.status, 200);
    const form = await new Browser(broker.url).go(`${broker.url}/interaction/${uid}/register`);
    assert.equal(form.status, 400);
    const unknown = await new Browser(broker.url).go(`${broker.url}/interaction/not-an-interaction/register`);
    assert.equal(unknown.status, 400);
  });

  test('a new person registers, cannot sign in before following the link, then can; the link works once', async () => {
    const { browser, page } = await registerPage();
    const sent = await browser.submit(page, '/register', form({ email: 'Newcomer@Example.org', username: 'newcomer', name: 'New Comer', givenName: 'New' }));
    assert.equal(sent.status, 200);
    assert.match(sent.html, /Check your email/);

    const mail = await smtp.waitFor('newcomer@example.org');
    assert.match(mail.subject ?? '', /Confirm your email address/);
    const link = linkIn(mail, '/email/verify/');

    // Unverified: no account can sign in (it does not exist until the link is followed).
    const refused = await signIn(new Browser(broker.url), 'newcomer', GOOD);
    assert.equal(refused.status, 401);
    assert.equal(await broker.store.users.findByUsername('newcomer'), null);

    // A mail scanner's GET consumes nothing.
    const scanner = await new Browser(broker.url).go(link);
    assert.equal(scanner.status, 200);
    const confirm = await browser.go(link);
    assert.match(confirm.html, /Confirm your email address/);
    const done = await browser.submit(confirm, '/email/verify/');
    assert.equal(done.status, 200);
    assert.match(done.html, /Account created/);
    assert.match(done.html, /action="\/interaction\/[A-Za-z0-9_-]+"/, 'the page leads back to the sign-in');

    const user = await broker.store.users.findByUsername('newcomer');
    assert.ok(user);
    assert.equal(user.email, 'Newcomer@Example.org');
    assert.equal(user.emailVerified, true);
    assert.equal(user.name, 'New Comer');
    assert.equal(user.givenName, 'New');
    const events = await broker.store.audit.list({ type: 'user.registered' });
    assert.ok(events.some((e) => e.userId === user.id));

    const signedIn = await signIn(new Browser(broker.url), 'newcomer', GOOD);
    assert.ok(signedIn.url.startsWith(RP_REDIRECT), `expected the relying party, got ${signedIn.status} ${signedIn.url}`);
    assert.match(signedIn.url, /[?&]code=/);

    // Used: both the page and the confirmation refuse.
    const again = await new Browser(broker.url).go(link);
    assert.equal(again.status, 404);
    assert.match(again.html, /This link does not work/);
    const replay = await new Browser(broker.url).go(link, { method: 'POST', form: { csrf: /name="csrf" value="([^"]*)"/.exec(confirm.html)![1]! } });
    assert.equal(replay.status, 404);
    assert.equal((await broker.store.users.search({ q: 'newcomer', limit: 10 })).length, 1);
  });

  test('enumeration: a registered and a free address get the same status and page; the registered one gets a mail saying so', async () => {
    const a = await registerPage();
    const known = await a.browser.submit(a.page, '/register', form({ email: 'taken@example.org', username: 'probe-one' }));
    const b = await registerPage();
    const unknown = await b.browser.submit(b.page, '/register', form({ email: 'free-address@example.org', username: 'probe-two' }));
    assert.equal(known.status, unknown.status);
    assert.equal(comparable(known.html, 'taken@example.org'), comparable(unknown.html, 'free-address@example.org'));
    const told = await smtp.waitFor('taken@example.org');
    assert.match(told.text ?? '', /already has an account, with the username taken/);
    assert.match(told.text ?? '', /Forgot password\?/);
    assert.doesNotMatch(told.text ?? '', /\/email\/verify\//, 'no link that could create a second account');
    await smtp.waitFor('free-address@example.org', (m) => /\/email\/verify\//.test(m.text ?? ''));
  });

  test('each field is checked on the server, with the reason shown and the form kept', async () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ email: 'someone@elsewhere.net' }, /only be created with an address at example\.org, example\.com/],
      [{ email: 'not-an-address' }, /Enter a valid email address/],
      [{ email: '' }, /Enter your email address/],
      [{ username: '' }, /This field is required/],
      [{ name: '' }, /This field is required/],
      [{ username: 'has@sign' }, /Use a username of at most 128 characters/],
      [{ username: 'taken' }, /This username is taken/],
      [{ username: 'TAKEN' }, /This username is taken/],
      [{ confirm: 'Something-Else-99' }, /The two passwords do not match/],
      [{ password: 'password123', confirm: 'password123' }, /The password must be at least 12 characters long/],
      [{ password: 'qwertyuiop123', confirm: 'qwertyuiop123' }, /one of the most common passwords found in data breaches/],
      [{ password: 'someone-someone', confirm: 'someone-someone' }, /built from your name, username or email address/],
      [{ password: 'aaaaaaaaaaaaaaaaaaaa', confirm: 'aaaaaaaaaaaaaaaaaaaa' }, /too easy to guess\. Repeated characters like &quot;aaa&quot; are easy to guess/],
      [{ name: 'x'.repeat(201) }, /Use at most 200 characters/],
    ];
    for (const [fields, reason] of cases) {
      const { browser, page } = await registerPage();
      const res = await browser.submit(page, '/register', form(fields));
      assert.equal(res.status, 400, JSON.stringify(fields));
      assert.match(res.html, reason, JSON.stringify(fields));
      assert.doesNotMatch(res.html, new RegExp(GOOD), 'the password is never echoed');
    }
    assert.equal(smtp.to('someone@elsewhere.net').length, 0);
  });

  test('a password over 128 characters is refused with the reason, before anything is stored', async () => {
    const long = `Aa1-${'x7Qz'.repeat(32)}`; // 132 characters
    const { browser, page } = await registerPage();
    const res = await browser.submit(page, '/register', form({ email: 'longpass@example.org', username: 'longpass', password: long, confirm: long }));
    assert.equal(res.status, 400);
    assert.match(res.html, /The password must be at most 128 characters/);
    const huge = 'y'.repeat(5000);
    const second = await registerPage();
    const res2 = await second.browser.submit(second.page, '/register', form({ email: 'longpass@example.org', username: 'longpass', password: huge, confirm: huge }));
    assert.equal(res2.status, 400);
    assert.match(res2.html, /too long/);
    assert.equal(await broker.store.knex('action_tokens').where({ email: 'longpass@example.org' }).first(), undefined);
  });

  test('CR/LF, NUL and control characters in fields are refused; nothing is queued for them', async () => {
    const hostile: Record<string, string>[] = [
      { email: 'victim@example.org\r\nBcc: evil@example.org' },
      { email: 'victim@example.org\nX-Injected: 1' },
      { name: 'Line\r\nBreak' },
      { name: 'Bell\u0007' },
      { givenName: 'Zero\u200bWidth' },
    ];
    for (const fields of hostile) {
      const { browser, page } = await registerPage();
      const res = await browser.submit(page, '/register', form({ email: 'hostile@example.org', username: 'hostile', ...fields }));
      assert.ok(res.status === 400, `${JSON.stringify(fields)} -> ${res.status}`);
      assert.doesNotMatch(res.html, /Internal Server Error|\s+at \S+ \(/);
    }
    // NUL bytes are refused by the input guard before the form is read.
    const { browser, page } = await registerPage();
    const nul = await browser.submit(page, '/register', form({ email: 'nul@example.org\u0000', username: 'nul' }));
    assert.equal(nul.status, 400);
    assert.equal(smtp.to('evil@example.org').length, 0);
    assert.equal(await broker.store.knex('email_outbox').where('recipient', 'like', '%hostile%').orWhere('recipient', 'like', '%victim%').first(), undefined);
  });

  test('a form without the CSRF token, or for another interaction, is refused', async () => {
    const { browser, page, uid } = await registerPage();
    const res = await browser.go(`${broker.url}/interaction/${uid}/register`, { method: 'POST', form: form({ csrf: 'forged' }) });
    assert.equal(res.status, 400);
    const other = await openLogin(browser, broker.issuer);
    const csrf = /name="csrf" value="([^"]*)"/.exec(page.html)![1]!;
    const cross = await browser.go(`${broker.url}/interaction/${other.uid}/register`, { method: 'POST', form: form({ csrf }) });
    assert.equal(cross.status, 400);
  });

  test('two registrations of one address: the first link followed wins, the second says the address is taken', async () => {
    const one = await registerPage();
    await one.browser.submit(one.page, '/register', form({ email: 'twice@example.org', username: 'twice-one' }));
    const two = await registerPage();
    await two.browser.submit(two.page, '/register', form({ email: 'twice@example.org', username: 'twice-two' }));
    const mails = async () => {
      for (let i = 0; i < 200 && smtp.to('twice@example.org').length < 2; i++) await new Promise((r) => setTimeout(r, 50));
      return smtp.to('twice@example.org');
    };
    const [m1, m2] = await mails();
    const b = new Browser(broker.url);
    const first = await b.submit(await b.go(linkIn(m1!, '/email/verify/')), '/email/verify/');
    assert.equal(first.status, 200);
    const second = await b.submit(await b.go(linkIn(m2!, '/email/verify/')), '/email/verify/');
    assert.equal(second.status, 409);
    assert.match(second.html, /This address is taken/);
    assert.equal((await broker.store.users.findByEmail('twice@example.org'))?.username, 'twice-one');
  });

  test('ui_locales of the sign-in beats the browser\'s Accept-Language', async () => {
    const browser = new Browser(broker.url);
    const login = await browser.go(`${authorizationUrl(broker.issuer)}&ui_locales=de`);
    const uid = /\/interaction\/([^/?#]+)/.exec(login.url)![1];
    const res = await browser.request(`${broker.url}/interaction/${uid}/register`, { headers: { 'accept-language': 'en' } });
    assert.equal(res.headers.get('content-language'), 'de');
    assert.match(await res.text(), /Konto erstellen/);
  });

  test('German when the browser asks for it, in the page and in the mail', async () => {
    const browser = new Browser(broker.url);
    const { uid } = await openLogin(browser, broker.issuer);
    const res = await browser.request(`${broker.url}/interaction/${uid}/register`, { headers: { 'accept-language': 'de-DE,de;q=0.9' } });
    const html = await res.text();
    assert.equal(res.headers.get('content-language'), 'de');
    assert.match(html, /<html lang="de">/);
    assert.match(html, /Konto erstellen/);
    const csrf = /name="csrf" value="([^"]*)"/.exec(html)![1]!;
    const sent = await browser.request(`${broker.url}/interaction/${uid}/register`, { form: form({ csrf, email: 'deutsch@example.org', username: 'deutsch' }), headers: { 'accept-language': 'de' } });
    assert.match(await sent.text(), /Prüfen Sie Ihr Postfach/);
    const mail = await smtp.waitFor('deutsch@example.org');
    assert.equal(mail.subject, 'Bestätigen Sie Ihre E-Mail-Adresse für Keybridge');
  });
});

describe('self-registration without required verification', () => {
  const smtp = new MailCatcher();
  let broker: EmailBroker;

  before(async () => {
    await smtp.start();
    broker = await startEmailBroker({
      email: { smtp: smtp.url, pollSeconds: 1 },
      registration: { enabled: true, requireEmailVerification: false, fields: { username: 'off', name: 'off' } },
    });
  });
  after(async () => {
    await broker?.close();
    await smtp.stop();
  });

  test('the account exists at once (username made from the address), unverified, and the mailed link verifies it', async () => {
    const browser = new Browser(broker.url);
    const { uid } = await openLogin(browser, broker.issuer);
    const page = await browser.go(`${broker.url}/interaction/${uid}/register`);
    assert.doesNotMatch(page.html, /name="username"/);
    const sent = await browser.submit(page, '/register', { email: 'quick.start@example.net', password: GOOD, confirm: GOOD });
    assert.equal(sent.status, 200);
    assert.match(sent.html, /your account has been created/);
    const user = await broker.store.users.findByEmail('quick.start@example.net');
    assert.ok(user);
    assert.equal(user.username, 'quick.start');
    assert.equal(user.emailVerified, false);
    const mail = await smtp.waitFor('quick.start@example.net');
    const b = new Browser(broker.url);
    const done = await b.submit(await b.go(linkIn(mail, '/email/verify/')), '/email/verify/');
    assert.equal(done.status, 200);
    assert.match(done.html, /Email address confirmed/);
    assert.equal((await broker.store.users.findById(user.id))?.emailVerified, true);
  });
});
