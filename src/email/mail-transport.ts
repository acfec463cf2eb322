// How a mail leaves: SMTP through nodemailer, or, with no SMTP configured (development), the log
// at level info with the text body, so a developer can follow the links.
import type nodemailer from 'nodemailer';
import type { Logger } from 'pino';
import type { EmailConfig } from '../config/email-schema.ts';

export interface OutgoingMail {
  from: string;
  to: string;
  subject: string;
  text: string;
  html: string | null;
}

export interface MailTransport {
  readonly kind: 'smtp' | 'log';
  /** Resolves once the server accepted the mail; rejects with the reason otherwise. */
  send(mail: OutgoingMail): Promise<void>;
  close(): void;
}

export function createMailTransport(config: EmailConfig, logger: Logger): MailTransport {
  if (!config.smtp) {
    return {
      kind: 'log',
      async send(mail) {
        logger.info({ mail: { to: mail.to, subject: mail.subject, text: mail.text } }, 'mail not sent: no SMTP server configured (email.smtp), written here instead');
      },
      close() {},
    };
  }
  // nodemailer is loaded with the first mail, not at every start of a broker that never sends one.
  type Transporter = ReturnType<typeof nodemailer.createTransport>;
  let transporter: Promise<Transporter> | undefined;
  const open = () =>
    (transporter ??= import('nodemailer').then(({ default: mailer }) =>
      mailer.createTransport({
        url: config.smtp,
        // Short waits: the outbox retries later rather than holding a worker on a dead server.
        connectionTimeout: 10_000,
        greetingTimeout: 10_000,
        socketTimeout: 30_000,
        // Our bodies are strings: never let a value make nodemailer read a file or fetch a URL.
        disableFileAccess: true,
        disableUrlAccess: true,
      } as Parameters<typeof nodemailer.createTransport>[0]),
    ));
  return {
    kind: 'smtp',
    async send(mail) {
      await (await open()).sendMail({ from: mail.from, to: mail.to, subject: mail.subject, text: mail.text, ...(mail.html ? { html: mail.html } : {}), disableFileAccess: true, disableUrlAccess: true });
    },
    close() {
      void transporter?.then((t) => t.close(), () => {});
    },
  };
}
