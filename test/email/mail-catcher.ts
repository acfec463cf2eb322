// A real SMTP receiver for the email suites (smtp-server), every mail parsed with mailparser.
// It can be stopped and started again on the same port, to play an SMTP outage.
import { SMTPServer } from 'smtp-server';
import { simpleParser, type ParsedMail } from 'mailparser';
import { freePort } from '../helpers/free-port.ts';

export class MailCatcher {
  readonly mails: ParsedMail[] = [];
  port = 0;
  #server: SMTPServer | null = null;

  get url(): string {
    return `smtp://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (!this.port) this.port = await freePort();
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      onData: (stream, _session, callback) => {
        simpleParser(stream)
          .then((mail) => {
            this.mails.push(mail);
            callback();
          })
          .catch((err: Error) => callback(err));
      },
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.#server = server;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Mails to `to` (case-insensitive). */
  to(address: string): ParsedMail[] {
    return this.mails.filter((m) => addresses(m).includes(address.toLowerCase()));
  }

  /** Waits until a mail to `to` matching `match` arrives (polling; the outbox sends in the background). */
  async waitFor(address: string, match: (mail: ParsedMail) => boolean = () => true, timeoutMs = 20_000): Promise<ParsedMail> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const found = this.to(address).find(match);
      if (found) return found;
      if (Date.now() > end) throw new Error(`no mail to ${address} within ${timeoutMs} ms (got: ${this.mails.map((m) => `${addresses(m).join(',')}: ${m.subject}`).join('; ') || 'none'})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

export function addresses(mail: ParsedMail): string[] {
  const to = Array.isArray(mail.to) ? mail.to : mail.to ? [mail.to] : [];
  return to.flatMap((a) => a.value.map((v) => (v.address ?? '').toLowerCase()));
}

/** The first link to the broker in a mail's text body. */
export function linkIn(mail: ParsedMail, path: string): string {
  const m = new RegExp(`https?://[^\\s]+${path.replace(/\//g, '\\/')}[A-Za-z0-9_-]+`).exec(mail.text ?? '');
  if (!m) throw new Error(`no ${path} link in mail "${mail.subject}":\n${mail.text}`);
  return m[0];
}
