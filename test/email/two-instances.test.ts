// Two instances on one PostgreSQL, both outbox workers running: every mail leaves exactly once,
// and a link mailed through one instance is confirmed on the other. A mail queued by an instance
// that stops while SMTP is down is delivered by the next one.
import { describe, test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { SuiteDatabase } from '../helpers/suite-database.ts';
import { Browser } from '../helpers/browser.ts';
import { MailCatcher, linkIn } from './mail-catcher.ts';
import { openLogin, startEmailBroker, type EmailBroker } from './email-broker.ts';

const PASSWORD = 'Copper-Meadow-Signal-5';

async function register(broker: EmailBroker, email: string, username: string) {
  const browser = new Browser(broker.url);
  const { uid } = await openLogin(browser, broker.issuer);
  const page = await browser.go(`${broker.url}/interaction/${uid}/register`);
  const sent = await browser.submit(page, '/register', { email, username, password: PASSWORD, confirm: PASSWORD });
  assert.equal(sent.status, 200);
}

describe('email across two instances on one PostgreSQL', () => {
  const smtp = new MailCatcher();
  let a: EmailBroker;
  let b: EmailBroker;
  const db = new SuiteDatabase();

  before(async () => {
    if (!(await db.open())) return;
    await smtp.start();
    const config = { email: { smtp: smtp.url, pollSeconds: 1 }, registration: { enabled: true }, limits: { ip: { login: { points: 1000 } } } };
    a = await startEmailBroker(config, { databaseUrl: db.url });
    b = await startEmailBroker(config, { databaseUrl: db.url });
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await smtp.stop();
    await db.drop();
  });

  test('registrations on both instances: each mail is sent once; a link from A is confirmed on B', async (t: TestContext) => {
    if (!db.live(t)) return;
    const people = Array.from({ length: 8 }, (_, i) => ({ email: `twin${i}@example.org`, username: `twin${i}` }));
    await Promise.all(people.map((p, i) => register(i % 2 ? b : a, p.email, p.username)));
    for (const p of people) await smtp.waitFor(p.email);
    // Both workers keep polling: give them a few rounds to send anything twice.
    await new Promise((r) => setTimeout(r, 2500));
    for (const p of people) assert.equal(smtp.to(p.email).length, 1, `${p.email} got ${smtp.to(p.email).length} mails`);
    const sent = await a.store.knex('audit_events').where({ type: 'email.sent' }).count({ n: '*' });
    assert.equal(Number(sent[0]!.n), people.length);

    // twin0 registered on A; its link is opened and confirmed on B.
    const link = linkIn(smtp.to('twin0@example.org')[0]!, '/email/verify/');
    assert.ok(link.startsWith(a.issuer));
    const onB = link.replace(a.issuer, b.url);
    const browser = new Browser(b.url);
    const done = await browser.submit(await browser.go(onB), '/email/verify/');
    assert.equal(done.status, 200);
    assert.match(done.html, /Account created/);
    assert.ok(await a.store.users.findByUsername('twin0'));
    // Used on B: refused on A.
    assert.equal((await new Browser(a.url).go(link)).status, 404);
  });
});

describe('a queued mail outlives its instance', () => {
  const smtp = new MailCatcher();
  const db = new SuiteDatabase();
  const brokers: EmailBroker[] = [];

  before(() => db.open());
  after(async () => {
    for (const b of brokers) await b.close();
    await smtp.stop();
    await db.drop();
  });

  test('SMTP down while the instance that queued the mail stops: the next instance delivers it', async (t: TestContext) => {
    if (!db.live(t)) return;
    // The receiver's port is chosen, then the receiver stays down.
    await smtp.start();
    await smtp.stop();
    const config = { email: { smtp: smtp.url, pollSeconds: 1, retry: { firstDelaySeconds: 1, maxDelaySeconds: 1 } }, registration: { enabled: true } };
    const first = await startEmailBroker(config, { databaseUrl: db.url });
    brokers.push(first);
    await register(first, 'durable@example.org', 'durable');
    for (let i = 0; i < 100; i++) {
      const row = await first.store.knex('email_outbox').where({ recipient: 'durable@example.org' }).first();
      if (row?.attempts >= 1 && row.status === 'pending') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await first.close();
    await smtp.start();
    const second = await startEmailBroker(config, { databaseUrl: db.url });
    brokers.push(second);
    const mail = await smtp.waitFor('durable@example.org');
    assert.match(mail.text ?? '', /\/email\/verify\//);
    const row = await second.store.knex('email_outbox').where({ recipient: 'durable@example.org' }).first();
    assert.equal(row.status, 'sent');
    assert.ok(row.attempts >= 2, `attempts ${row.attempts}`);
  });
});
