// "Forgot password?": the answer never says whether an address has an account. A local
// account gets a single-use link (passwordReset.linkMinutes, default 30); an account that signs
// in only through a directory or upstream gets "reset your password at <connector>"; an unknown
// address gets a neutral mail saying no account uses it; an account declared in the config file
// (its password comes from there) gets "ask your administrator". Each case queues exactly one mail and
// the request never waits for SMTP, so known and unknown addresses cost the same.
// A completed reset stores the password through the policy, clears update_password, voids the
// user's other reset links, ends every session and grant, and mails a notice.
import type { PasswordProblem } from '../accounts/password-policy.ts';
import type Provider from 'oidc-provider';
import type { User } from '../storage/types.ts';
import type { EmailServices } from './email-services.ts';
import { endUserAccess } from './end-user-access.ts';
import { PASSWORD_INPUT_MAX } from './registration.ts';
import { declaredInConfig } from '../accounts/config-users.ts';

export interface ResetRequestContext {
  locale: string;
  ip: string;
  uid?: string;
  clientId?: string;
}

export type ResetOutcome =
  | { ok: true; userId: string; username: string; email: string | null; uid: string | null; sessions: number; grants: number }
  | { ok: false; reason: 'invalid_link' }
  | { ok: false; reason: 'password'; key: string; values?: Record<string, string | number>; refused?: PasswordProblem };

export function createPasswordReset(services: EmailServices) {
  const { config, store, mailer, links, policy, logger } = services;
  const minutes = config.passwordReset.linkMinutes;
  // Users declared in the config file get their password from it at every start: a reset would not last.
  const declared = declaredInConfig(config);
  const fromConfig = (user: User) => declared(user.username);

  /** The connectors an account without a local password signs in with. */
  async function upstreamsOf(user: User): Promise<string[]> {
    const ids = new Set<string>();
    if (user.managedBy) ids.add(user.managedBy);
    for (const identity of await store.identities.listForUser(user.id)) if (identity.connectorId !== 'local') ids.add(identity.connectorId);
    return [...ids];
  }

  /** Queues the one mail this address gets; the caller answers the same whatever happened. */
  async function request(email: string, context: ResetRequestContext): Promise<void> {
    const found = await store.users.findByEmail(email);
    // The database's case-insensitive match may pair a look-alike (`alİce@…` with `alice@…`):
    // mail only an account whose stored address is the one typed, and always to the stored one.
    const user = found?.email && sameAddress(found.email, email) ? found : null;
    const audit = (outcome: string, userId: string | null) =>
      store.audit.record({ type: 'password.reset_requested', outcome: outcome === 'link' ? 'success' : 'failure', userId, clientId: context.clientId ?? null, ip: context.ip, details: { result: outcome } });
    if (!user) {
      await mailer.queue({ to: email, template: 'password-reset-unknown', locale: context.locale, values: {}, kind: 'password_reset' });
      return audit('unknown_address', null);
    }
    if (!user.enabled) return audit('account_disabled', user.id);
    if (fromConfig(user)) {
      await mailer.queue({ to: user.email!, template: 'password-reset-managed', locale: context.locale, values: { username: user.username }, kind: 'password_reset', userId: user.id });
      return audit('config_account', user.id);
    }
    const hasPassword = (await store.credentials.getPasswordHash(user.id)) !== null;
    const upstreams = hasPassword ? [] : await upstreamsOf(user);
    if (upstreams.length) {
      const names = upstreams.map((id) => services.connectorName(id));
      await mailer.queue({ to: user.email!, template: 'password-reset-upstream', locale: context.locale, values: { username: user.username, connectors: names.join(', ') }, kind: 'password_reset', userId: user.id });
      return audit('upstream_account', user.id);
    }
    await store.transaction(async (tx) => {
      const link = await links.issue('reset_password', { userId: user.id, email: user.email, data: { uid: context.uid ?? null, locale: context.locale }, minutes }, tx);
      await mailer.queue({ to: user.email!, template: 'password-reset', locale: context.locale, values: { url: link.url, username: user.username, minutes }, kind: 'password_reset', userId: user.id }, tx);
    });
    mailer.kick();
    return audit('link', user.id);
  }

  /** The user a reset link is for, and the link's data, while it is usable (nothing consumed). */
  async function linkOf(token: string): Promise<{ user: User; data: Record<string, unknown> } | null> {
    const found = await links.look(token, ['reset_password']);
    if (!found?.userId) return null;
    const user = await store.users.findById(found.userId);
    // A link mailed to an address the account no longer has is void (the address changed since).
    if (!user?.email || !found.email || !sameAddress(user.email, found.email)) return null;
    return user.enabled && !fromConfig(user) ? { user, data: found.data } : null;
  }

  /** The reset form's POST: the policy first (a refused password keeps the link), then one transaction. */
  async function complete(token: string, password: string, confirm: string, context: { ip: string; provider: Provider; locale: string }): Promise<ResetOutcome> {
    const user = (await linkOf(token))?.user;
    if (!user) return { ok: false, reason: 'invalid_link' };
    if (!password) return { ok: false, reason: 'password', key: 'reset.error.password_missing' };
    if (password.length > PASSWORD_INPUT_MAX) return { ok: false, reason: 'password', key: 'reset.error.password_too_long', values: { max: PASSWORD_INPUT_MAX } };
    if (password !== confirm) return { ok: false, reason: 'password', key: 'reset.error.password_mismatch' };
    const refused = await policy.problem(password, { userId: user.id, username: user.username, email: user.email, name: user.name });
    if (refused) return { ok: false, reason: 'password', key: `password.problem.${refused.code}`, refused };

    const done = await store.transaction(async (tx) => {
      const used = await links.consume(token, ['reset_password'], tx);
      if (!used || used.userId !== user.id) return null;
      await policy.setPassword(tx, user.id, password);
      await links.revokeForUser(user.id, 'reset_password', tx);
      // Following the link proved the mailbox is theirs.
      if (user.email && used.email && sameAddress(user.email, used.email) && !user.emailVerified) await tx.users.update(user.id, { emailVerified: true });
      return used;
    });
    if (!done) return { ok: false, reason: 'invalid_link' };
    const ended = await endUserAccess({ provider: context.provider, store, logger }, user.id, 'password_reset');
    await store.audit.record({ type: 'user.password_reset', userId: user.id, ip: context.ip, details: { sessionsEnded: ended.sessions, grantsRevoked: ended.grants } });
    if (user.email) await mailer.queue({ to: user.email, template: 'password-changed', locale: context.locale, values: { username: user.username }, kind: 'password_changed', userId: user.id }).catch((err) => logger.warn({ err, userId: user.id }, 'password-changed notice not queued'));
    const uid = typeof done.data.uid === 'string' ? done.data.uid : null;
    return { ok: true, userId: user.id, username: user.username, email: user.email, uid, ...ended };
  }

  return { request, linkOf, complete, enabled: services.passwordResetEnabled };
}

export type PasswordReset = ReturnType<typeof createPasswordReset>;

/** Two addresses are the same mailbox for us: equal once lower-cased by JavaScript (not by the database's rules). */
export function sameAddress(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}
