// The email change service the account console calls (createAccountEmails), driven directly:
// a link to the new address and a notice to the old one; the link sets the new address as
// verified, unless another account took it meanwhile; a taken address gets no link.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Browser } from '../helpers/browser.ts';
import { MailCatcher, linkIn } from './mail-catcher.ts';
import { startEmailBroker, type EmailBroker } from './email-broker.ts';
import { createEmailServices } from '../../src/email/email-services.ts';
import { createAccountEmails, type AccountEmails } from '../../src/email/account-emails.ts';
import { createPasswordPolicy } from '../../src/accounts/password-policy.ts';
import { MessageCatalogs } from '../../src/i18n/messages.ts';
import { InvalidInput, KeybridgeError, NotFound } from '../../src/errors.ts';

describe('email change (account console service)', () => {
  const smtp = new MailCatcher();
  let broker: EmailBroker;
  let emails: AccountEmails;

  before(async () => {
    await smtp.start();
    broker = await startEmailBroker({
      email: { smtp: smtp.url, pollSeconds: 1 },
      users: [{ username: 'cfg', email: 'cfg@example.org', password: 'Config-Declared-Pass-1' }],
    });
    await broker.store.users.create({ username: 'erin', email: 'erin@example.org', emailVerified: true });
    await broker.store.users.create({ username: 'frank', email: 'frank@example.org', emailVerified: true });
    // The service as the console helper will build it: from the broker's store and config.
    const services = createEmailServices({ config: broker.config, store: broker.store, logger: pino({ level: 'silent' }), catalogs: new MessageCatalogs(), policy: createPasswordPolicy(broker.config.passwordPolicy, broker.store), connectorName: (id) => id });
    services.mailer.start();
    emails = createAccountEmails(services);
    after(() => services.mailer.stop());
  });
  after(async () => {
    await broker?.close();
    await smtp.stop();
  });

  const id = async (username: string) => (await broker.store.users.findByUsername(username))!.id;

  async function confirm(link: string) {
    const b = new Browser(broker.url);
    const page = await b.go(link);
    assert.equal(page.status, 200);
    return b.submit(page, '/email/verify/');
  }

  test('a link to the new address, a notice to the old one; the link makes the new address the verified one', async () => {
    const erin = await id('erin');
    await emails.requestEmailChange({ userId: erin, newEmail: 'erin.new@example.org', locale: 'en', ip: '203.0.113.9' });
    assert.equal((await broker.store.users.findById(erin))?.email, 'erin@example.org', 'nothing changes before the link is followed');
    const verify = await smtp.waitFor('erin.new@example.org');
    const notice = await smtp.waitFor('erin@example.org');
    assert.match(notice.text ?? '', /to erin\.new@example\.org/);
    assert.doesNotMatch(notice.text ?? '', /\/email\/verify\//, 'the old address gets no link');
    const page = await new Browser(broker.url).go(linkIn(verify, '/email/verify/'));
    assert.match(page.html, /Confirm erin\.new@example\.org as the new address/);
    const done = await confirm(linkIn(verify, '/email/verify/'));
    assert.equal(done.status, 200);
    assert.match(done.html, /Email address changed/);
    const user = await broker.store.users.findById(erin);
    assert.equal(user?.email, 'erin.new@example.org');
    assert.equal(user?.emailVerified, true);
    const events = await broker.store.audit.list({ type: 'user.email_changed', userId: erin });
    assert.equal(events.length, 1);
    // Once only.
    assert.equal((await new Browser(broker.url).go(linkIn(verify, '/email/verify/'))).status, 404);
  });

  test('refused when another account took the address meanwhile', async () => {
    const erin = await id('erin');
    await emails.requestEmailChange({ userId: erin, newEmail: 'contested@example.org', locale: 'de' });
    const verify = await smtp.waitFor('contested@example.org');
    assert.equal(verify.subject, 'Bestätigen Sie Ihre neue E-Mail-Adresse für Keybridge');
    // The link's page is in the mail's language, whatever the browser prefers.
    const german = await new Browser(broker.url).go(linkIn(verify, '/email/verify/'));
    assert.match(german.html, /<html lang="de">/);
    assert.match(german.html, /als neue Adresse Ihres Kontos/);
    await broker.store.users.update(await id('frank'), { email: 'Contested@example.org' });
    const done = await confirm(linkIn(verify, '/email/verify/'));
    assert.equal(done.status, 409);
    assert.match(done.html, /Diese Adresse ist vergeben/);
    assert.equal((await broker.store.users.findById(erin))?.email, 'erin.new@example.org');
  });

  test('an address another account has: no link, a mail to its owner, and the caller sees no difference', async () => {
    const erin = await id('erin');
    const before = smtp.to('contested@example.org').length;
    await emails.requestEmailChange({ userId: erin, newEmail: 'contested@example.org', locale: 'en' });
    const mail = await smtp.waitFor('contested@example.org', (m) => smtp.to('contested@example.org').indexOf(m) >= before);
    assert.match(mail.text ?? '', /already belongs to an account/);
    assert.doesNotMatch(mail.text ?? '', /\/email\/verify\//);
  });

  test('bad input is refused with a reason: hostile or invalid addresses, the same address, unknown, config-declared or upstream users', async () => {
    const erin = await id('erin');
    for (const bad of ['erin@example.org\r\nBcc: x@example.org', 'not-an-address', '', 'a\u0000@example.org']) {
      await assert.rejects(emails.requestEmailChange({ userId: erin, newEmail: bad, locale: 'en' }), InvalidInput);
    }
    await assert.rejects(emails.requestEmailChange({ userId: erin, newEmail: 'ERIN.NEW@example.org', locale: 'en' }), /already your email address/);
    await assert.rejects(emails.requestEmailChange({ userId: '00000000-0000-0000-0000-000000000000', newEmail: 'ghost@example.org', locale: 'en' }), NotFound);
    await assert.rejects(emails.requestEmailChange({ userId: await id('cfg'), newEmail: 'cfg2@example.org', locale: 'en' }), (err: KeybridgeError) => err.status === 409 && /configuration file/.test(err.message));
    const upstream = await broker.store.users.create({ username: 'ursula', email: 'ursula@example.org', managedBy: 'corp-directory' });
    await assert.rejects(emails.requestEmailChange({ userId: upstream.id, newEmail: 'u2@example.org', locale: 'en' }), (err: KeybridgeError) => err.status === 409 && /managed by corp-directory/.test(err.message));
  });

  test('requestVerification mails a link that verifies the current address; a link for an old address verifies nothing', async () => {
    const frank = await id('frank');
    await broker.store.users.update(frank, { email: 'frank2@example.org', emailVerified: false });
    await emails.requestVerification({ userId: frank, locale: 'en' });
    const mail = await smtp.waitFor('frank2@example.org');
    await broker.store.users.update(frank, { email: 'frank3@example.org' });
    const stale = await confirm(linkIn(mail, '/email/verify/'));
    assert.equal(stale.status, 404);
    assert.equal((await broker.store.users.findById(frank))?.emailVerified, false);
    await emails.requestVerification({ userId: frank, locale: 'en' });
    const fresh = await smtp.waitFor('frank3@example.org');
    assert.equal((await confirm(linkIn(fresh, '/email/verify/'))).status, 200);
    assert.equal((await broker.store.users.findById(frank))?.emailVerified, true);
  });
});
