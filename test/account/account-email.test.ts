// Changing the email address from the account console, end to end: the account API hands the
// request to the broker's own email service, a real SMTP receiver catches the verification mail
// (to the new address, in the person's language) and the notice (to the old one), and following
// the link makes the new address the verified one. A recent sign-in and an own, locally owned
// profile are required, and the answer is the same whatever the address.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load-config.ts';
import { startBroker } from '../../src/server/start-broker.ts';
import { freePort } from '../helpers/free-port.ts';
import { Browser } from '../helpers/browser.ts';
import type { TestBroker } from '../helpers/test-broker.ts';
import { MailCatcher, linkIn } from '../email/mail-catcher.ts';
import { ageSignIn, call, consoleLogin, createLocalUser } from './account-support.ts';

test('email change from the account API: a German verification mail to the new address, a notice to the old one, the link sets the address', async () => {
  const smtp = new MailCatcher();
  await smtp.start();
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const config = parseConfig(
    stringify({
      issuer,
      http: { listen: `127.0.0.1:${port}` },
      database: { dataDir: ':memory:' },
      log: { level: 'silent' },
      email: { smtp: smtp.url, pollSeconds: 1 },
      connectors: [{ id: 'local', type: 'local', name: 'Local' }],
      users: [{ username: 'cfg-mail', email: 'cfg@example.org', password: 'Config-user-password-1' }],
    }),
    { env: {} },
  );
  const broker = Object.assign(await startBroker(config), { issuer }) as TestBroker;
  try {
    const id = await createLocalUser(broker, 'mia');
    await createLocalUser(broker, 'noah');
    const { accessToken } = await consoleLogin(issuer, { username: 'mia' });
    assert.equal((await call(issuer, accessToken, 'GET', '/me')).body.features.emailChange, true);

    const sent = await call(issuer, accessToken, 'POST', '/me/email', { body: { email: 'mia.new@example.org' }, headers: { 'accept-language': 'de-CH, en;q=0.5' } });
    assert.equal(sent.status, 202, sent.text);
    assert.deepEqual(sent.body, { status: 'verification_sent' });
    assert.equal((await broker.store.users.findById(id))!.email, 'mia@example.org', 'unchanged until the link is followed');
    const verify = await smtp.waitFor('mia.new@example.org');
    assert.equal(verify.subject, 'Bestätigen Sie Ihre neue E-Mail-Adresse für Keybridge');
    const notice = await smtp.waitFor('mia@example.org');
    assert.doesNotMatch(notice.text ?? '', /\/email\/verify\//, 'the old address gets no link');

    // An address another account uses: the same answer, and that address is told instead of sent a link.
    const taken = await call(issuer, accessToken, 'POST', '/me/email', { body: { email: 'noah@example.org' } });
    assert.equal(taken.status, 202);
    assert.deepEqual(taken.body, sent.body);
    const toNoah = await smtp.waitFor('noah@example.org');
    assert.doesNotMatch(toNoah.text ?? '', /\/email\/verify\//);

    // Following the link (GET shows a page, the button confirms).
    const browser = new Browser(issuer);
    const link = linkIn(verify, '/email/verify/');
    const page = await browser.go(link);
    assert.equal(page.status, 200);
    assert.match(page.html, /<html lang="de">/);
    const done = await browser.submit(page, '/email/verify/');
    assert.equal(done.status, 200, done.html.slice(0, 300));
    const me = (await call(issuer, accessToken, 'GET', '/me')).body;
    assert.equal(me.profile?.email ?? me.email, 'mia.new@example.org');
    const user = await broker.store.users.findById(id);
    assert.equal(user!.email, 'mia.new@example.org');
    assert.equal(user!.emailVerified, true);
    assert.equal((await new Browser(issuer).go(link)).status, 404, 'the link works once');

    for (const email of ['not-an-address', '', 'a@b', `${'x'.repeat(250)}@example.org`, 'nul\u0000@example.org', 'crlf@example.org\r\nBcc: x@example.org']) {
      assert.equal((await call(issuer, accessToken, 'POST', '/me/email', { body: { email } })).status, 400, JSON.stringify(email.slice(0, 20)));
    }
    await ageSignIn(broker, id, 3600);
    assert.equal((await call(issuer, accessToken, 'POST', '/me/email', { body: { email: 'mia.late@example.org' } })).body.code, 'reauthentication_required');
    const cfg = await consoleLogin(issuer, { username: 'cfg-mail', password: 'Config-user-password-1' });
    assert.equal((await call(issuer, cfg.accessToken, 'POST', '/me/email', { body: { email: 'x@example.org' } })).body.code, 'read_only');
    assert.equal((await broker.store.audit.list({ userId: id, type: 'account.email_change_requested' })).length, 2);
    assert.equal((await broker.store.audit.list({ userId: id, type: 'user.email_changed' })).length, 1);
  } finally {
    await broker.close();
    await smtp.stop();
  }
});
