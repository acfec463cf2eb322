// Sending mail without ever blocking a request or losing a mail silently: `queue` renders the
// mail and stores it (in the caller's transaction when given); a worker on every instance claims
// due mails atomically and sends them; a failed send waits firstDelaySeconds, doubling up to
// maxDelaySeconds, and after maxAttempts is marked failed and audited `email.failed`. A sent
// mail is audited `email.sent` (address and kind, never the body: it may hold a live link).
import type { Logger } from 'pino';
import type { EmailConfig } from '../config/email-schema.ts';
import { HEADER_BREAK } from '../config/email-schema.ts';
import type { Store } from '../storage/store.ts';
import type { OutboxMail } from '../storage/email-outbox-repository.ts';
import { InvalidInput } from '../errors.ts';
import { isDatabaseUnavailable } from '../storage/database-unavailable.ts';
import type { MailRenderer } from './mail-renderer.ts';
import type { MailTransport } from './mail-transport.ts';

export interface QueuedMail {
  to: string;
  /** The template under templates/email/ (and the catalog key email.<template>.*). */
  template: string;
  locale: string;
  values: Record<string, unknown>;
  /** What the mail is for (audit, per-address limit); default: the template. */
  kind?: string;
  userId?: string | null;
}

export interface Mailer {
  /**
   * Renders and stores a mail for sending. False when the address already got `perAddressHourly`
   * mails of this kind in the last hour (dropped and audited). Refuses (InvalidInput) an address
   * or subject carrying a line break or NUL: they would inject mail headers.
   * With `store` (a transaction), call `kick()` after it commits.
   */
  queue(mail: QueuedMail, store?: Store): Promise<boolean>;
  /** Looks for due mails now (after a transaction that queued some committed). */
  kick(): void;
  /** Sends what is due until nothing is; resolves with how many were attempted (tests, shutdown). */
  drain(): Promise<number>;
  /** Deletes sent and failed mails older than a week (the audit trail keeps their record). */
  purge(): Promise<number>;
  start(): void;
  stop(): Promise<void>;
}

const EMAIL_SHAPE = /^[^\s@<>(),;:"\[\]\\]+@[^\s@<>(),;:"\[\]\\]+\.[^\s@<>(),;:"\[\]\\]+$/;

/** Whether a string is one plain address a mail may go to (no display name, no list, no header breaks). */
export function isMailableAddress(value: string): boolean {
  return value.length <= 254 && !HEADER_BREAK.test(value) && EMAIL_SHAPE.test(value);
}

export interface MailerDependencies {
  config: EmailConfig;
  store: Store;
  renderer: MailRenderer;
  transport: MailTransport;
  logger: Logger;
}

const BATCH = 10;
/** A claimed mail not finished in this time is taken over by another worker. */
const CLAIM_SECONDS = 120;

export function createMailer(deps: MailerDependencies): Mailer {
  const { config, store, renderer, transport } = deps;
  const logger = deps.logger.child({ component: 'email' });
  const { outbox } = store;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<number> | null = null;
  let again = false;
  let stopped = false;
  // The database down or hung is a known state (readyz says so): the mails wait, nothing to trace.
  const passFailed = (err: unknown) => (isDatabaseUnavailable(err) ? logger.debug('mail outbox pass skipped: database unavailable') : logger.warn({ err }, 'mail outbox pass failed'));

  const delayMs = (attempts: number) => Math.min(config.retry.firstDelaySeconds * 2 ** Math.max(0, attempts - 1), config.retry.maxDelaySeconds) * 1000;

  async function sendOne(mail: OutboxMail): Promise<void> {
    try {
      await transport.send({ from: config.from, to: mail.recipient, subject: mail.subject, text: mail.text, html: mail.html });
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      if (mail.attempts >= config.retry.maxAttempts) {
        await outbox.markFailed(mail.id, reason);
        logger.error({ mailId: mail.id, kind: mail.kind, attempts: mail.attempts, err: reason }, 'mail could not be sent: given up');
        await store.audit.record({ type: 'email.failed', outcome: 'failure', userId: mail.userId, details: { mailId: mail.id, kind: mail.kind, to: mail.recipient, attempts: mail.attempts, error: reason.slice(0, 200) } });
      } else {
        const next = new Date(Date.now() + delayMs(mail.attempts));
        await outbox.markRetry(mail.id, reason, next);
        logger.warn({ mailId: mail.id, kind: mail.kind, attempts: mail.attempts, retryAt: next.toISOString(), err: reason }, 'mail not sent: will retry');
      }
      return;
    }
    if (!(await outbox.markSent(mail.id))) logger.warn({ mailId: mail.id }, 'mail sent after its claim ran out (another worker may send it again)');
    await store.audit.record({ type: 'email.sent', userId: mail.userId, details: { mailId: mail.id, kind: mail.kind, to: mail.recipient, attempts: mail.attempts, via: transport.kind } });
  }

  async function runUntilIdle(): Promise<number> {
    let attempted = 0;
    for (;;) {
      const due = await outbox.claimDue(BATCH, CLAIM_SECONDS);
      for (const mail of due) await sendOne(mail);
      attempted += due.length;
      if (due.length < BATCH) return attempted;
    }
  }

  /** One pass at a time per instance; a kick during a pass runs one more pass after it. */
  function pass(): Promise<number> {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      let total = 0;
      try {
        do {
          again = false;
          total += await runUntilIdle();
        } while (again && !stopped);
      } finally {
        running = null;
      }
      return total;
    })();
    return running;
  }

  const kick = () => {
    if (stopped) return;
    setImmediate(() => pass().catch(passFailed));
  };

  return {
    async queue(mail, tx) {
      if (!isMailableAddress(mail.to)) throw new InvalidInput('The email address is not valid.');
      const kind = mail.kind ?? mail.template;
      const target = tx ?? store;
      const recent = await target.outbox.countRecent(mail.to, kind, new Date(Date.now() - 3600_000));
      if (recent >= config.perAddressHourly) {
        logger.warn({ kind, userId: mail.userId ?? null }, 'mail dropped: too many of this kind to one address in the last hour');
        await target.audit.record({ type: 'email.suppressed', outcome: 'failure', userId: mail.userId ?? null, details: { kind, to: mail.to, reason: 'per_address_limit' } });
        return false;
      }
      const rendered = renderer.render(mail.template, mail.locale, mail.values);
      if (HEADER_BREAK.test(rendered.subject)) throw new InvalidInput('The mail subject must not contain line breaks.');
      await target.outbox.enqueue({ recipient: mail.to, subject: rendered.subject, text: rendered.text, html: rendered.html, kind, userId: mail.userId ?? null });
      if (!tx) kick();
      return true;
    },
    kick,
    drain: () => pass(),
    purge: () => outbox.deleteFinishedBefore(new Date(Date.now() - 7 * 86400_000)),
    start() {
      stopped = false;
      timer = setInterval(() => pass().catch(passFailed), config.pollSeconds * 1000);
      timer.unref();
      kick();
    },
    async stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      await running?.catch(() => {});
      transport.close();
    },
  };
}
