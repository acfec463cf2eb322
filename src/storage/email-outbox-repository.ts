// The email outbox (migration 0015): a mail is a row before it is a send. Workers on any number
// of instances claim due rows atomically (FOR UPDATE SKIP LOCKED inside one UPDATE ... RETURNING),
// so no two send the same mail; a claim that runs out (the instance died mid-send) is taken over.
// Once a mail is sent or given up, its bodies are cleared: they may hold a live link.
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';

export type OutboxStatus = 'pending' | 'sending' | 'sent' | 'failed';

export interface NewOutboxMail {
  recipient: string;
  subject: string;
  text: string;
  html: string | null;
  kind: string;
  userId?: string | null;
}

export interface OutboxMail {
  id: string;
  recipient: string;
  subject: string;
  text: string;
  html: string | null;
  kind: string;
  userId: string | null;
  status: OutboxStatus;
  attempts: number;
  nextAttemptAt: Date;
  lastError: string | null;
  createdAt: Date;
  sentAt: Date | null;
}

interface Row {
  id: string;
  recipient: string;
  subject: string;
  text_body: string;
  html_body: string | null;
  kind: string;
  user_id: string | null;
  status: OutboxStatus;
  attempts: number;
  next_attempt_at: Date;
  claimed_until: Date | null;
  last_error: string | null;
  created_at: Date;
  sent_at: Date | null;
}

const fromRow = (r: Row): OutboxMail => ({
  id: r.id,
  recipient: r.recipient,
  subject: r.subject,
  text: r.text_body,
  html: r.html_body,
  kind: r.kind,
  userId: r.user_id,
  status: r.status,
  attempts: Number(r.attempts),
  nextAttemptAt: new Date(r.next_attempt_at),
  lastError: r.last_error,
  createdAt: new Date(r.created_at),
  sentAt: r.sent_at ? new Date(r.sent_at) : null,
});

/** Errors are stored for operators; a long SMTP transcript is cut. */
const clip = (message: string) => message.slice(0, 1000);

export class EmailOutboxRepository {
  readonly #knex: Knex;

  constructor(knex: Knex) {
    this.#knex = knex;
  }

  async enqueue(mail: NewOutboxMail): Promise<string> {
    const id = randomUUID();
    await this.#knex('email_outbox').insert({ id, recipient: mail.recipient, subject: mail.subject, text_body: mail.text, html_body: mail.html, kind: mail.kind, user_id: mail.userId ?? null });
    return id;
  }

  async find(id: string): Promise<OutboxMail | null> {
    const row = await this.#knex<Row>('email_outbox').where({ id }).first();
    return row ? fromRow(row) : null;
  }

  /** Mails of this kind queued for this address since `since` (any status). */
  async countRecent(recipient: string, kind: string, since: Date): Promise<number> {
    const [row] = await this.#knex('email_outbox').whereRaw('lower(recipient) = lower(?)', [recipient]).andWhere('kind', kind).andWhere('created_at', '>=', since).count({ n: '*' });
    return Number((row as { n: string | number }).n);
  }

  /**
   * Claims up to `limit` due mails for `claimSeconds`: pending ones whose time has come, and
   * sending ones whose claim ran out. Each claim counts as an attempt.
   */
  async claimDue(limit: number, claimSeconds: number): Promise<OutboxMail[]> {
    const result = await this.#knex.raw<{ rows: Row[] }>(
      `UPDATE email_outbox SET status = 'sending', attempts = attempts + 1, claimed_until = now() + make_interval(secs => ?)
       WHERE id IN (
         SELECT id FROM email_outbox
         WHERE (status = 'pending' AND next_attempt_at <= now()) OR (status = 'sending' AND claimed_until < now())
         ORDER BY next_attempt_at LIMIT ? FOR UPDATE SKIP LOCKED)
       RETURNING *`,
      [claimSeconds, limit],
    );
    return result.rows.map(fromRow);
  }

  /** The mail left: its bodies are cleared. False when this claim no longer held it. */
  async markSent(id: string): Promise<boolean> {
    const n = await this.#knex('email_outbox').where({ id, status: 'sending' }).update({ status: 'sent', sent_at: this.#knex.fn.now(), claimed_until: null, last_error: null, text_body: '', html_body: null });
    return n > 0;
  }

  /** The send failed; it is tried again at `next`. */
  async markRetry(id: string, error: string, next: Date): Promise<void> {
    await this.#knex('email_outbox').where({ id, status: 'sending' }).update({ status: 'pending', next_attempt_at: next, claimed_until: null, last_error: clip(error) });
  }

  /** Given up: kept (without bodies) for the operator to see. */
  async markFailed(id: string, error: string): Promise<void> {
    await this.#knex('email_outbox').where({ id, status: 'sending' }).update({ status: 'failed', claimed_until: null, last_error: clip(error), text_body: '', html_body: null });
  }

  /** Sent and failed mails older than `before` (the record of them is the audit trail). */
  async deleteFinishedBefore(before: Date): Promise<number> {
    return this.#knex('email_outbox').whereIn('status', ['sent', 'failed']).andWhere('created_at', '<', before).delete();
  }
}
