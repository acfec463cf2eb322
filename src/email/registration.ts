// Self-registration. The account is created only when the mailed link is followed (with
// requireEmailVerification): until then the registration is a pending action token holding the
// chosen profile and the password's argon2id hash, so an unverified address never has an account
// that could sign in, and nobody can squat an address they cannot read. Without verification
// the account is created at once and a verify-email link is mailed.
// The answer never says whether an address was free: an address that already has an account
// gets a mail saying so (with a pointer to "Forgot password?") instead of a link.
import type { PasswordProblem } from '../accounts/password-policy.ts';
import { hashPassword } from '../accounts/passwords.ts';
import { usernameProblem, deriveUsername } from '../accounts/normalize-username.ts';
import { AlreadyExists } from '../errors.ts';
import type { Store } from '../storage/store.ts';
import type { EmailServices } from './email-services.ts';
import { isMailableAddress } from './outbox.ts';

export const PROFILE_FIELDS = ['username', 'name', 'givenName', 'familyName'] as const;
export type ProfileField = (typeof PROFILE_FIELDS)[number];

/** The longest password a form accepts before the policy looks at it (the policy's own maximum is lower). */
export const PASSWORD_INPUT_MAX = 1024;
const NAME_MAX = 200;

export interface RegistrationForm {
  email: string;
  password: string;
  confirm: string;
  username?: string;
  name?: string;
  givenName?: string;
  familyName?: string;
}

/** One problem with the form: the field and a message key of the `register` area with its values. */
export interface FieldProblem {
  field: 'email' | 'password' | 'confirm' | ProfileField;
  key: string;
  values?: Record<string, string | number>;
  /** The password policy's refusal (shown with describePasswordProblem). */
  refused?: PasswordProblem;
}

export interface RegistrationContext {
  locale: string;
  ip: string;
  /** The interaction the form belongs to (the confirmation page leads back to it). */
  uid?: string;
  clientId?: string;
}

export function createRegistration(services: EmailServices) {
  const { config, store, mailer, links, policy, logger } = services;
  const settings = config.registration;

  /** Every problem of the form at once; the cleaned values when there are none. */
  async function validate(form: RegistrationForm): Promise<{ problems: FieldProblem[]; clean: Required<Omit<RegistrationForm, 'confirm'>> }> {
    const problems: FieldProblem[] = [];
    const email = form.email.trim();
    if (!email) problems.push({ field: 'email', key: 'register.error.email_missing' });
    else if (!isMailableAddress(email)) problems.push({ field: 'email', key: 'register.error.email_invalid' });
    else if (settings.allowedEmailDomains.length && !settings.allowedEmailDomains.includes(email.slice(email.lastIndexOf('@') + 1).toLowerCase())) {
      problems.push({ field: 'email', key: 'register.error.email_domain', values: { domains: settings.allowedEmailDomains.join(', ') } });
    }

    const clean = { email, password: form.password, username: '', name: '', givenName: '', familyName: '' };
    for (const field of ['name', 'givenName', 'familyName'] as const) {
      const mode = settings.fields[field];
      const value = mode === 'off' ? '' : (form[field] ?? '').normalize('NFC').trim();
      if (mode === 'required' && !value) problems.push({ field, key: 'register.error.field_missing' });
      else if ([...value].length > NAME_MAX) problems.push({ field, key: 'register.error.field_too_long', values: { max: NAME_MAX } });
      else if (/\p{Cc}|\p{Cf}|\p{Co}|\p{Cn}/u.test(value)) problems.push({ field, key: 'register.error.field_invalid' });
      clean[field] = value;
    }

    if (settings.fields.username !== 'off') {
      const raw = (form.username ?? '').trim();
      if (!raw) {
        if (settings.fields.username === 'required') problems.push({ field: 'username', key: 'register.error.field_missing' });
      } else {
        const problem = usernameProblem(raw);
        if (problem) problems.push({ field: 'username', key: 'register.error.username_invalid', values: { reason: problem } });
        else if (await store.users.findByUsername(raw)) problems.push({ field: 'username', key: 'register.error.username_taken' });
        else clean.username = raw;
      }
    }

    const password = form.password;
    if (!password) problems.push({ field: 'password', key: 'register.error.password_missing' });
    else if (password.length > PASSWORD_INPUT_MAX) problems.push({ field: 'password', key: 'register.error.password_too_long', values: { max: PASSWORD_INPUT_MAX } });
    else if (password !== form.confirm) problems.push({ field: 'confirm', key: 'register.error.password_mismatch' });
    else {
      const refused = await policy.problem(password, { username: clean.username || undefined, email: email || null, name: clean.name || null });
      if (refused) problems.push({ field: 'password', key: `password.problem.${refused.code}`, refused });
    }
    return { problems, clean };
  }

  /** A free username made from the address when the form does not ask for one. */
  async function usernameFromEmail(email: string): Promise<string> {
    const base = deriveUsername(email) ?? 'user';
    for (let i = 0; i < 50; i++) {
      const candidate = i === 0 ? base : `${base}-${i + 1}`;
      if (!(await store.users.findByUsername(candidate))) return candidate;
    }
    return `${base}-${Date.now().toString(36)}`;
  }

  /**
   * A valid form's registration: whatever the address, the caller answers the same. Work is alike
   * for known and unknown addresses (the password is hashed either way; one mail is queued).
   */
  async function submit(clean: Required<Omit<RegistrationForm, 'confirm'>>, context: RegistrationContext): Promise<void> {
    const passwordHash = await hashPassword(clean.password);
    const existing = await store.users.findByEmail(clean.email);
    const hours = Math.round(settings.linkMinutes / 60);
    if (existing) {
      // To the address the account has (the database may have matched a look-alike of it).
      await mailer.queue({ to: existing.email ?? clean.email, template: 'already-registered', locale: context.locale, values: { username: existing.username }, kind: 'registration', userId: existing.id });
      await store.audit.record({ type: 'registration.requested', outcome: 'failure', userId: existing.id, clientId: context.clientId ?? null, ip: context.ip, details: { reason: 'email_registered' } });
      return;
    }
    const username = clean.username || (await usernameFromEmail(clean.email));
    const profile = { username, name: clean.name || null, givenName: clean.givenName || null, familyName: clean.familyName || null };
    if (settings.requireEmailVerification) {
      await store.transaction(async (tx) => {
        const link = await links.issue('register', { email: clean.email, data: { ...profile, passwordHash, uid: context.uid ?? null, clientId: context.clientId ?? null, locale: context.locale }, minutes: settings.linkMinutes }, tx);
        await mailer.queue({ to: clean.email, template: 'verify-registration', locale: context.locale, values: { url: link.url, username, hours }, kind: 'registration' }, tx);
        await tx.audit.record({ type: 'registration.requested', clientId: context.clientId ?? null, ip: context.ip, details: { username } });
      });
      mailer.kick();
      return;
    }
    try {
      await store.transaction(async (tx) => {
        const user = await createAccount(tx, { ...profile, email: clean.email, emailVerified: false, passwordHash }, context);
        const link = await links.issue('verify_email', { userId: user.id, email: clean.email, data: { locale: context.locale, uid: context.uid ?? null }, minutes: settings.linkMinutes }, tx);
        await mailer.queue({ to: clean.email, template: 'verify-email', locale: context.locale, values: { url: link.url, username, hours }, kind: 'registration', userId: user.id }, tx);
      });
      mailer.kick();
    } catch (err) {
      // Taken between the check and the insert (a race): the same neutral answer.
      if (!(err instanceof AlreadyExists)) throw err;
      logger.info({ ip: context.ip }, 'registration lost a race for its username or address');
    }
  }

  async function createAccount(tx: Store, input: { username: string; email: string; emailVerified: boolean; name: string | null; givenName: string | null; familyName: string | null; passwordHash: string }, context: { ip: string; clientId?: string | null }) {
    const user = await tx.users.create({ username: input.username, email: input.email, emailVerified: input.emailVerified, name: input.name, givenName: input.givenName, familyName: input.familyName });
    // The hash was made when the form passed the policy; the plain password is long gone (history
    // and the change stamp are recorded from the hash).
    await policy.setPasswordHash(tx, user.id, input.passwordHash);
    await tx.audit.record({ type: 'user.registered', userId: user.id, clientId: context.clientId ?? null, ip: context.ip, details: { username: user.username, emailVerified: input.emailVerified } });
    return user;
  }

  /** The link of a registration mail was followed (POST): the account is created, its address verified. */
  async function complete(token: string, ip: string): Promise<{ ok: true; username: string; uid: string | null } | { ok: false; reason: 'invalid_link' | 'email_taken' | 'username_taken' }> {
    let email: string | null = null;
    try {
      return await store.transaction(async (tx) => {
        const used = await links.consume(token, ['register'], tx);
        if (!used?.email) return { ok: false, reason: 'invalid_link' } as const;
        email = used.email;
        const d = used.data as { username: string; name: string | null; givenName: string | null; familyName: string | null; passwordHash: string; uid: string | null; clientId: string | null };
        if (await tx.users.findByEmail(used.email)) return { ok: false, reason: 'email_taken' } as const;
        if (await tx.users.findByUsername(d.username)) return { ok: false, reason: 'username_taken' } as const;
        const user = await createAccount(tx, { username: d.username, email: used.email, emailVerified: true, name: d.name, givenName: d.givenName, familyName: d.familyName, passwordHash: d.passwordHash }, { ip, clientId: d.clientId });
        return { ok: true, username: user.username, uid: d.uid } as const;
      });
    } catch (err) {
      if (!(err instanceof AlreadyExists)) throw err;
      // Taken between the check and the insert: which one, from outside the rolled-back transaction.
      return { ok: false, reason: email && (await store.users.findByEmail(email)) ? 'email_taken' : 'username_taken' };
    }
  }

  return { validate, submit, complete, enabled: settings.enabled };
}

export type Registration = ReturnType<typeof createRegistration>;
