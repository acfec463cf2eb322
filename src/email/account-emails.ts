// Email address changes and verification, for the account console and the links in mails.
// requestEmailChange mails a link to the new address and a notice to the old one; following the
// link (confirmAddress) sets the new address as verified, unless another account took it
// meanwhile. An address another account already has gets a mail saying so instead, and the
// caller sees no difference: the console must not reveal which addresses have accounts.
import type { Store } from '../storage/store.ts';
import { InvalidInput, KeybridgeError, NotFound, AlreadyExists } from '../errors.ts';
import type { ActionToken } from '../storage/action-token-repository.ts';
import type { EmailServices } from './email-services.ts';
import { isMailableAddress } from './outbox.ts';
import { declaredInConfig } from '../accounts/config-users.ts';

export interface EmailChangeRequest {
  userId: string;
  newEmail: string;
  /** The language of the mails (a catalog's language tag; others fall back to English). */
  locale: string;
  ip?: string;
}

/** What following a verify link did. */
export type ConfirmOutcome =
  | { ok: true; purpose: 'verify_email' | 'change_email'; userId: string; email: string }
  | { ok: false; reason: 'invalid_link' | 'email_taken' | 'user_gone' };

export interface AccountEmails {
  requestEmailChange(input: EmailChangeRequest): Promise<void>;
  /** Mails a link that marks the user's current address verified. */
  requestVerification(input: { userId: string; locale: string; ip?: string }): Promise<void>;
  /** Consumes a verify_email or change_email link (the POST of its page). */
  confirmAddress(token: string, ip?: string): Promise<ConfirmOutcome>;
}

/** How long an address-verification link works: registration.linkMinutes (default a day). */
const linkMinutes = (services: EmailServices) => services.config.registration.linkMinutes;

/** An address as typed, trimmed; refused (InvalidInput) when it is not one plain address. */
export function normalizeAddress(raw: string): string {
  const email = raw.trim();
  if (!isMailableAddress(email)) throw new InvalidInput('Enter a valid email address.');
  return email;
}

export function createAccountEmails(services: EmailServices): AccountEmails {
  const { store, mailer, links, logger } = services;
  const configured = declaredInConfig(services.config);

  async function mustFindUser(userId: string) {
    const user = await store.users.findById(userId);
    if (!user) throw new NotFound('The user');
    // The config file is authoritative for its users' profiles: the next start would undo a change.
    if (configured(user.username)) throw new KeybridgeError('read_only', 'The email address of this account is set in the configuration file.', { status: 409, expose: true });
    if (user.managedBy) throw new KeybridgeError('read_only', `The email address is managed by ${services.connectorName(user.managedBy)}.`, { status: 409, expose: true });
    return user;
  }

  return {
    async requestEmailChange({ userId, newEmail, locale, ip }) {
      const email = normalizeAddress(newEmail);
      const user = await mustFindUser(userId);
      if (user.email && user.email.toLowerCase() === email.toLowerCase()) throw new InvalidInput('This is already your email address.');
      const holder = await store.users.findByEmail(email);
      if (holder) {
        // Same answer as for a free address; the address's owner learns someone tried.
        await mailer.queue({ to: holder.email ?? email, template: 'email-change-taken', locale, values: {}, kind: 'email_change' });
        await store.audit.record({ type: 'user.email_change_requested', outcome: 'failure', userId, ip: ip ?? null, details: { reason: 'email_taken' } });
        return;
      }
      await store.transaction(async (tx) => {
        const link = await links.issue('change_email', { userId, email, data: { locale }, minutes: linkMinutes(services) }, tx);
        await mailer.queue({ to: email, template: 'email-change-verify', locale, values: { url: link.url, username: user.username, hours: Math.round(linkMinutes(services) / 60) }, kind: 'email_change', userId }, tx);
        if (user.email) await mailer.queue({ to: user.email, template: 'email-change-notice', locale, values: { username: user.username, newEmail: email }, kind: 'email_change_notice', userId }, tx);
        await tx.audit.record({ type: 'user.email_change_requested', userId, ip: ip ?? null, details: { to: email } });
      });
      mailer.kick();
    },

    async requestVerification({ userId, locale, ip }) {
      const user = await mustFindUser(userId);
      if (!user.email) throw new InvalidInput('There is no email address to verify.');
      if (user.emailVerified) return;
      const email = user.email;
      await store.transaction(async (tx) => {
        const link = await links.issue('verify_email', { userId, email, data: { locale }, minutes: linkMinutes(services) }, tx);
        await mailer.queue({ to: email, template: 'verify-email', locale, values: { url: link.url, username: user.username, hours: Math.round(linkMinutes(services) / 60) }, kind: 'verify_email', userId }, tx);
        await tx.audit.record({ type: 'user.email_verification_requested', userId, ip: ip ?? null });
      });
      mailer.kick();
    },

    async confirmAddress(token, ip) {
      try {
        return await store.transaction(async (tx) => {
          const used = await links.consume(token, ['verify_email', 'change_email'], tx);
          if (!used?.userId || !used.email) return { ok: false, reason: 'invalid_link' } as const;
          return applyAddress(tx, used, ip);
        });
      } catch (err) {
        // The unique index on lower(email): another account took the address between the check and the write.
        if (err instanceof AlreadyExists) return { ok: false, reason: 'email_taken' };
        throw err;
      }
    },
  };

  async function applyAddress(tx: Store, used: ActionToken, ip: string | undefined): Promise<ConfirmOutcome> {
    const userId = used.userId!;
    const email = used.email!;
    const user = await tx.users.findByIdForUpdate(userId);
    if (!user) return { ok: false, reason: 'user_gone' };
    if (used.purpose === 'verify_email') {
      // The address changed since the link was sent: it verifies nothing any more.
      if (!user.email || user.email.toLowerCase() !== email.toLowerCase()) return { ok: false, reason: 'invalid_link' };
      await tx.users.update(userId, { emailVerified: true });
      await tx.audit.record({ type: 'user.email_verified', userId, ip: ip ?? null });
      return { ok: true, purpose: 'verify_email', userId, email };
    }
    const holder = await tx.users.findByEmail(email);
    if (holder && holder.id !== userId) {
      await tx.audit.record({ type: 'user.email_changed', outcome: 'failure', userId, ip: ip ?? null, details: { reason: 'email_taken' } });
      return { ok: false, reason: 'email_taken' };
    }
    await tx.users.update(userId, { email, emailVerified: true });
    // Reset links mailed to the old address no longer work (they also check the address they were sent to).
    await links.revokeForUser(userId, 'reset_password', tx);
    await tx.audit.record({ type: 'user.email_changed', userId, ip: ip ?? null, details: { from: user.email, to: email } });
    logger.info({ userId }, 'email address changed');
    return { ok: true, purpose: 'change_email', userId, email };
  }
}
