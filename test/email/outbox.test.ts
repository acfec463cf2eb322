// The outbox against a real SMTP receiver: delivery with audit (no link in it), an SMTP outage
// ridden out by retries, giving up after the last attempt, two instances sending each mail
// once, header injection refused, the per-address limit, and the log transport of development.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { openDatabase, type Database } from '../../src/storage/database.ts';
import { migrateLatest } from '../../src/storage/migrate.ts';
import { Store } from '../../src/storage/store.ts';
import { emailSchema } from '../../src/config/email-schema.ts';
import { MessageCatalogs } from '../../src/i18n/messages.ts';
import { MailRenderer } from '../../src/email/mail-renderer.ts';
import { createMailTransport } from '../../src/email/mail-transport.ts';
import { createMailer, type Mailer } from '../../src/email/outbox.ts';
import { EmailOutboxRepository } from '../../src/storage/email-outbox-repository.ts';
import { InvalidInput } from '../../src/errors.ts';
import { MailCatcher } from './mail-catcher.ts';

const silent = pino({ level: 'silent' });
const catalogs = new MessageCatalogs();

describe('email outbox (real SMTP receiver)', () => {
  let db: Database;
  let store: Store;
  const smtp = new MailCatcher();
  const mailers: Mailer[] = [];

  before(async () => {
    db = await openDatabase({ dataDir: ':memory:' });
    await migrateLatest(db.knex);
    store = new Store(db.knex);
    await smtp.start();
  });
  after(async () => {
    for (const m of mailers) await m.stop();
    await smtp.stop();
    await db.close();
  });

  function mailer(overrides: Record<string, unknown> = {}, brand = 'Keybridge', logger = silent): Mailer {
    const config = emailSchema.parse({ smtp: smtp.url, from: 'Keybridge <noreply@example.org>', ...overrides });
    const m = createMailer({ config, store, renderer: new MailRenderer({ catalogs, brand }), transport: createMailTransport(config, logger), logger });
    mailers.push(m);
    return m;
  }

  const resetMail = (to: string) => ({ to, template: 'password-reset', locale: 'en', values: { url: 'http://127.0.0.1/password/reset/SECRETTOKEN', username: 'ann', minutes: 30 }, kind: 'password_reset' });

  test('a queued mail is delivered in the recipient\'s language, audited without its link, and its body cleared', async () => {
    const m = mailer();
    assert.equal(await m.queue({ ...resetMail('ann@example.org'), locale: 'de' }), true);
    await m.drain();
    const mail = await smtp.waitFor('ann@example.org');
    assert.equal(mail.subject, 'Setzen Sie Ihr Passwort für Keybridge zurück');
    assert.match(mail.text ?? '', /Hallo ann,/);
    assert.match(mail.text ?? '', /http:\/\/127\.0\.0\.1\/password\/reset\/SECRETTOKEN/);
    assert.match(String(mail.html), /href="http:\/\/127\.0\.0\.1\/password\/reset\/SECRETTOKEN"/);
    assert.equal(mail.from?.value[0]?.address, 'noreply@example.org');
    const sent = await store.audit.list({ type: 'email.sent' });
    const event = sent.find((e) => e.details.to === 'ann@example.org');
    assert.ok(event, 'email.sent audited');
    assert.equal(event.details.kind, 'password_reset');
    assert.doesNotMatch(JSON.stringify(event), /SECRETTOKEN/);
    const row = await db.knex('email_outbox').where({ recipient: 'ann@example.org' }).first();
    assert.equal(row.status, 'sent');
    assert.doesNotMatch(JSON.stringify(row), /SECRETTOKEN/, 'the sent mail\'s link stays in the database');
  });

  test('values are escaped in the HTML body and kept as written in the text body', async () => {
    const m = mailer();
    await m.queue({ ...resetMail('escape@example.org'), values: { url: 'http://127.0.0.1/password/reset/X?a=1&b=2', username: '<img src=x onerror=alert(1)>', minutes: 30 } });
    await m.drain();
    const mail = await smtp.waitFor('escape@example.org');
    assert.match(String(mail.html), /&lt;img src=x onerror=alert\(1\)&gt;/);
    assert.doesNotMatch(String(mail.html), /<img src=x/);
    assert.match(mail.text ?? '', /Hello <img src=x onerror=alert\(1\)>,/);
    assert.match(mail.text ?? '', /reset\/X\?a=1&b=2/, 'a link in the text body is not HTML-escaped');
  });

  test('SMTP down: the mail is retried with backoff and delivered once the server is back', async () => {
    const m = mailer({ retry: { maxAttempts: 10, firstDelaySeconds: 1, maxDelaySeconds: 1 }, pollSeconds: 1 });
    await smtp.stop();
    await m.queue(resetMail('outage@example.org'));
    await m.drain();
    const row = await db.knex('email_outbox').where({ recipient: 'outage@example.org' }).first();
    assert.equal(row.status, 'pending', 'a failed send stays queued');
    assert.equal(row.attempts, 1);
    assert.match(row.last_error, /ECONNREFUSED|connect/i);
    assert.ok(new Date(row.next_attempt_at).getTime() > Date.now() - 100, 'the retry waits');
    await smtp.start();
    m.start();
    const mail = await smtp.waitFor('outage@example.org');
    assert.match(mail.text ?? '', /SECRETTOKEN/);
    await m.stop();
    const after = await db.knex('email_outbox').where({ recipient: 'outage@example.org' }).first();
    assert.equal(after.status, 'sent');
    assert.ok(after.attempts >= 2);
    assert.equal(smtp.to('outage@example.org').length, 1, 'delivered once');
  });

  test('after the last attempt the mail is marked failed and audited email.failed', async () => {
    const m = mailer({ smtp: 'smtp://127.0.0.1:1', retry: { maxAttempts: 2, firstDelaySeconds: 1, maxDelaySeconds: 1 } });
    await m.queue(resetMail('never@example.org'));
    await m.drain();
    await db.knex('email_outbox').where({ recipient: 'never@example.org' }).update({ next_attempt_at: new Date(Date.now() - 1000) });
    await m.drain();
    const row = await db.knex('email_outbox').where({ recipient: 'never@example.org' }).first();
    assert.equal(row.status, 'failed');
    assert.equal(row.attempts, 2);
    assert.equal(row.text_body, '');
    const failed = await db.knex('audit_events').where({ type: 'email.failed' }).select('*');
    const event = failed.find((e: { details: unknown }) => JSON.stringify(e.details).includes('never@example.org'));
    assert.ok(event, 'email.failed audited');
    assert.equal(event.outcome, 'failure');
    assert.doesNotMatch(JSON.stringify(event), /SECRETTOKEN/);
  });

  test('two instances draining at once send every mail exactly once', async () => {
    const a = mailer();
    const b = mailer();
    const addresses = Array.from({ length: 16 }, (_, i) => `twice${i}@example.org`);
    const outbox = new EmailOutboxRepository(db.knex);
    for (const to of addresses) await outbox.enqueue({ recipient: to, subject: 'x', text: 'y', html: null, kind: 'test' });
    await Promise.all([a.drain(), b.drain(), a.drain(), b.drain()]);
    for (const to of addresses) await smtp.waitFor(to);
    for (const to of addresses) assert.equal(smtp.to(to).length, 1, `${to} got ${smtp.to(to).length} copies`);
  });

  test('CR, LF or NUL in a recipient is refused; a line break in a subject value never becomes a header', async () => {
    const m = mailer({}, 'Evil\r\nBcc: victim@example.org');
    for (const to of ['a@example.org\r\nBcc: victim@example.org', 'a@example.org\nX: y', 'a@example.org\0', 'Name <a@example.org>', 'a@example.org, b@example.org']) {
      await assert.rejects(m.queue(resetMail(to)), InvalidInput, JSON.stringify(to));
    }
    assert.equal(await db.knex('email_outbox').where('recipient', 'like', 'a@example.org%').first(), undefined, 'nothing queued');
    await m.queue(resetMail('header@example.org'));
    await m.drain();
    const mail = await smtp.waitFor('header@example.org');
    assert.doesNotMatch(mail.subject ?? '', /[\r\n]/);
    assert.equal(mail.bcc, undefined);
    assert.equal(smtp.to('victim@example.org').length, 0);
    assert.equal(mail.headers.get('bcc'), undefined);
  });

  test('more than perAddressHourly mails of one kind to one address are dropped and audited', async () => {
    const m = mailer({ perAddressHourly: 2 });
    assert.equal(await m.queue(resetMail('flood@example.org')), true);
    assert.equal(await m.queue(resetMail('FLOOD@example.org')), true);
    assert.equal(await m.queue(resetMail('flood@example.org')), false);
    assert.equal(await m.queue({ ...resetMail('flood@example.org'), kind: 'registration' }), true, 'another kind has its own count');
    const suppressed = await db.knex('audit_events').where({ type: 'email.suppressed' }).select('*');
    assert.equal(suppressed.length, 1);
  });

  test('without SMTP the mail goes to the log at level info, with its text', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb(); } }));
    const m = mailer({ smtp: '' }, 'Keybridge', logger);
    await m.queue(resetMail('dev@example.org'));
    await m.drain();
    const entry = lines.map((l) => JSON.parse(l) as { level: number; msg: string; mail?: { to: string; text: string } }).find((e) => e.mail?.to === 'dev@example.org');
    assert.ok(entry, 'the mail is logged');
    assert.equal(entry.level, 30);
    assert.match(entry.mail!.text, /password\/reset\/SECRETTOKEN/);
    assert.equal((await db.knex('email_outbox').where({ recipient: 'dev@example.org' }).first()).status, 'sent');
  });
});
