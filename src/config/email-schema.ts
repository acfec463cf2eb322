// The `email` section: how mails leave (SMTP, or the log when none is configured) and how a
// failed send is retried. Mails are queued in the database first (src/email/outbox.ts).
import { z } from 'zod';

const fromEnvInt = (v: unknown) => (typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : v);
const whole = (n: number) => Number.isInteger(n);
const count = (min: number, max: number) => z.preprocess(fromEnvInt, z.number().min(min).max(max).refine(whole, 'must be a whole number'));

/** CR, LF or NUL would let a value add mail headers of its own. */
export const HEADER_BREAK = /[\r\n\0]/;

/** An address as a mail header may carry it: one address, no header breaks, at most 254 characters. */
export const mailAddress = () => z.string().max(254).refine((v) => !HEADER_BREAK.test(v), 'must not contain line breaks or NUL').pipe(z.email('must be an email address'));

const smtpUrl = z
  .string()
  .refine((v) => !/\s/.test(v) && URL.canParse(v) && /^smtps?:$/.test(new URL(v).protocol) && new URL(v).hostname !== '', 'must be an smtp:// or smtps:// URL (smtp://user:password@host:587)');

export const emailSchema = z
  .strictObject({
    /**
     * The SMTP server: `smtp://user:password@host:587` (STARTTLS when offered) or
     * `smtps://...:465` (TLS from the start). Absent or empty: mails are written to the log
     * (level info, with their text), for development.
     */
    smtp: z.preprocess((v) => (v === '' ? undefined : v), smtpUrl.optional()),
    /** The From header: an address, optionally with a name (`Keybridge <noreply@example.org>`). */
    from: z
      .string()
      .min(3)
      .max(300)
      .refine((v) => !HEADER_BREAK.test(v), 'must not contain line breaks or NUL')
      .refine((v) => /^[^<>]*<[^<>@\s]+@[^<>@\s]+>$|^[^<>@\s]+@[^<>@\s]+$/.test(v.trim()), 'must be an address or "Name <address>"')
      .default('Keybridge <noreply@localhost>'),
    /** Sends after the first failure wait firstDelaySeconds, doubling up to maxDelaySeconds; after maxAttempts the mail is marked failed. */
    retry: z
      .strictObject({
        maxAttempts: count(1, 100).default(8),
        firstDelaySeconds: count(1, 86400).default(30),
        maxDelaySeconds: count(1, 86400).default(3600),
      })
      .prefault({}),
    /** How often each instance looks for due mails (a new mail is also sent at once). */
    pollSeconds: count(1, 3600).default(30),
    /** At most this many mails of one kind to one address per hour (more are dropped and audited): no mail bombing through the forms. */
    perAddressHourly: count(1, 1000).default(5),
  })
  .prefault({});

export type EmailConfig = z.output<typeof emailSchema>;
