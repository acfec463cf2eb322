// The password policy for local accounts, in one place: every way a password is set
// (registration, reset, account console, admin API, CLI, config seeding, the update_password
// required action) asks `problem` first and stores through `setPassword`; a login with a local
// password asks `loginProblem` (README "Password policy").
//
// Checks run cheapest first and stop at the first refusal: too long (counted in code points,
// before anything else, so no oversized input reaches zxcvbn or argon2), too short, on the
// breached list, too easy to guess (zxcvbn, with the person's own names as known words), and
// reuse of one of the last N passwords (argon2 verify against the kept hashes).
import type { Store } from '../storage/store.ts';
import type { PasswordChangeReason } from '../storage/password-repository.ts';
import type { PasswordPolicyConfig } from '../config/password-policy-schema.ts';
import type { Translate } from '../i18n/messages.ts';
import type { StoredPasswordFacts } from '../connectors/contract.ts';
import { hashPassword, preparePassword, verifyPassword } from './passwords.ts';
import { isCommonPassword } from './breached-passwords.ts';
import { estimateStrength } from './password-strength.ts';
import { createHash } from 'node:crypto';

/** Bumped when the checks themselves change (a new list, another estimator), so stored verdicts are redone. */
const CHECKS_VERSION = 1;

/** Who the password is for: the checks refuse passwords built from these. */
export interface PasswordSubject {
  userId?: string;
  username?: string;
  email?: string | null;
  name?: string | null;
}

/** Why a password is refused: a stable code, values for the message, and the English text. */
export interface PasswordProblem {
  /** `too_short`, `too_long`, `breached`, `weak`, `like_identity`, `reused`. */
  code: string;
  values?: Record<string, string | number>;
  /** English, completes "The password ..." (e.g. "must be at least 12 characters"). */
  message: string;
}

export interface PasswordPolicy {
  /** Why this password cannot be set for this person, or null. Too-long input is refused before any hashing. */
  problem(password: string, subject: PasswordSubject): Promise<PasswordProblem | null>;
  /** Hashes and stores a password that passed `problem` (in the given store or transaction). */
  setPassword(store: Store, userId: string, password: string): Promise<void>;
}

/** The policy as the broker uses it: the interface above, and what a login asks of it. */
export interface PasswordPolicyService extends PasswordPolicy {
  readonly settings: PasswordPolicyConfig;
  /** Names the rules a password alone is judged by: stored with a password found to meet them. */
  readonly stamp: string;
  /**
   * After a local password was accepted at login: why the person must choose a new one before
   * the login finishes (expired, or no longer meets the policy, history aside), or null.
   */
  loginProblem(password: string, subject: PasswordSubject & { userId: string }, stored?: StoredPasswordFacts): Promise<PasswordChangeReason | null>;
  /** `setPassword` for a hash made beforehand (outside a transaction, so no lock is held while argon2 runs). */
  setPasswordHash(store: Store, userId: string, hash: string): Promise<void>;
}

/** zxcvbn's warnings with an English text; anything else reads as the generic one. */
const WARNINGS: Record<string, string> = {
  straightRow: 'Straight rows of keys on your keyboard are easy to guess.',
  keyPattern: 'Short keyboard patterns are easy to guess.',
  simpleRepeat: 'Repeated characters like "aaa" are easy to guess.',
  extendedRepeat: 'Repeated character patterns like "abcabcabc" are easy to guess.',
  sequences: 'Common character sequences like "abc" are easy to guess.',
  recentYears: 'Recent years are easy to guess.',
  dates: 'Dates are easy to guess.',
  topTen: 'This is a heavily used password.',
  topHundred: 'This is a frequently used password.',
  common: 'This is a commonly used password.',
  similarToCommon: 'This is similar to a commonly used password.',
  wordByItself: 'Single words are easy to guess.',
  namesByThemselves: 'Single names or surnames are easy to guess.',
  commonNames: 'Common names and surnames are easy to guess.',
  userInputs: 'It should not contain personal data.',
  generic: 'Add more words or characters that are not easy to guess.',
};

/** The parts of a person's identity an attacker who targets them would try first. */
export function identityWords(subject: PasswordSubject): string[] {
  const words = new Set<string>();
  const add = (value: string | null | undefined) => {
    if (!value) return;
    const folded = value.toLowerCase().normalize('NFC');
    if (folded.length >= 3) words.add(folded);
    for (const part of folded.split(/[^\p{L}\p{N}]+/u)) if (part.length >= 3) words.add(part);
  };
  add(subject.username);
  add(subject.email);
  add(subject.name);
  return [...words].slice(0, 20);
}

/** The number of code points in `s`, counting no further than `limit` (a 1 MB input costs nothing more). */
export function codePointsUpTo(s: string, limit: number): number {
  // Every code point is one or two UTF-16 units.
  if (s.length >= limit * 2) return limit;
  let count = 0;
  for (let i = 0; i < s.length && count < limit; i++, count++) {
    const unit = s.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < s.length) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
  }
  return count;
}

function problemOf(code: string, message: string, values?: Record<string, string | number>): PasswordProblem {
  return values ? { code, values, message } : { code, message };
}

/**
 * `store` is where the history and the change stamps are read; without one (check-config) only
 * `problem` without a userId works. `declared`: whether a username is declared in the config
 * file; such a password lives there (checked at start by seeding, changed by editing the file),
 * so a login never asks for a new one.
 */
export function createPasswordPolicy(settings: PasswordPolicyConfig, maybeStore: Store | null, options: { declared?: (username: string) => boolean } = {}): PasswordPolicyService {
  const storeOrThrow = (): Store => {
    if (!maybeStore) throw new Error('this password policy has no store: history and login checks need one');
    return maybeStore;
  };
  const declared = options.declared ?? (() => false);
  // The rules a password alone is judged by (history aside): a stored password found to meet
  // them is not checked again at every login until they change.
  const stamp = createHash('sha256')
    .update(JSON.stringify([CHECKS_VERSION, settings.minLength, settings.maxLength, settings.minScore, settings.breachedList]))
    .digest('base64url')
    .slice(0, 16);

  /** Length, breached list and strength: what a password alone (with its owner's names) is judged by. */
  async function intrinsicProblem(password: string, subject: PasswordSubject): Promise<PasswordProblem | null> {
    const length = codePointsUpTo(password, settings.maxLength + 1);
    if (length > settings.maxLength) return problemOf('too_long', `must be at most ${settings.maxLength} characters`, { max: settings.maxLength });
    if (length < settings.minLength) return problemOf('too_short', `must be at least ${settings.minLength} characters`, { min: settings.minLength });
    const prepared = preparePassword(password);
    if (settings.breachedList && (await isCommonPassword(prepared))) return problemOf('breached', 'is one of the most common passwords in data breaches');
    if (settings.minScore > 0) {
      const inputs = identityWords(subject);
      const estimate = await estimateStrength(prepared, inputs);
      if (estimate.score < settings.minScore) {
        if (estimate.fromUserInputs) return problemOf('like_identity', 'is built from your name, username or email address');
        const warning = estimate.warning && WARNINGS[estimate.warning] ? estimate.warning : 'generic';
        return problemOf('weak', `is too easy to guess: ${WARNINGS[warning]}`, { warning: WARNINGS[warning]!, warningKey: warning });
      }
      // The identity adds nothing against someone who targets this person: what is left once
      // it is taken out must be strong on its own.
      const lower = prepared.toLowerCase();
      const found = inputs.filter((w) => lower.includes(w));
      if (found.length) {
        let rest = lower;
        for (const w of found.sort((a, b) => b.length - a.length)) rest = rest.split(w).join('');
        if ((await estimateStrength(rest, [])).score < settings.minScore) return problemOf('like_identity', 'is built from your name, username or email address');
      }
    }
    return null;
  }

  async function reused(password: string, userId: string): Promise<boolean> {
    if (settings.history <= 0) return false;
    const store = storeOrThrow();
    const [current, recent] = await Promise.all([store.credentials.getPasswordHash(userId), store.passwords.recentHashes(userId, settings.history)]);
    // The current password counts as one of the last N even when it predates the history.
    const hashes = [...new Set([...(current ? [current] : []), ...recent])].slice(0, settings.history);
    for (const hash of hashes) if (await verifyPassword(hash, password)) return true;
    return false;
  }

  async function setPasswordHash(target: Store, userId: string, hash: string): Promise<void> {
    await target.transaction(async (tx) => {
      await tx.credentials.setPassword(userId, hash);
      await tx.passwords.remember(userId, hash, settings.history);
      // Callers set only passwords that passed `problem` (or random temporary ones).
      await tx.passwords.markChecked(userId, stamp);
      // A new password settles a pending update_password (a caller that wants another change
      // at the next login, like an administrator's temporary password, asks again after this).
      await tx.mfa.removeRequiredAction(userId, 'update_password');
    });
  }

  return {
    settings,
    stamp,

    async problem(password, subject) {
      const intrinsic = await intrinsicProblem(password, subject);
      if (intrinsic) return intrinsic;
      if (subject.userId && (await reused(password, subject.userId))) {
        return problemOf('reused', `must not be one of your last ${settings.history} passwords`, { count: settings.history });
      }
      return null;
    },

    async setPassword(target, userId, password) {
      await setPasswordHash(target, userId, await hashPassword(password));
    },

    setPasswordHash,

    async loginProblem(password, subject, stored) {
      if (subject.username !== undefined && declared(subject.username)) return null;
      const store = storeOrThrow();
      // Given by the local connector, read with the hash it verified; else read now.
      const facts = stored ?? (await store.passwords.loginFacts(subject.userId));
      if (!facts) return null;
      const changedAt = typeof facts.changedAt === 'number' ? facts.changedAt : facts.changedAt.getTime();
      if (settings.expiryDays > 0 && Date.now() - changedAt >= settings.expiryDays * 86_400_000) return 'expired';
      if (facts.policyChecked === stamp) return null;
      if (await intrinsicProblem(password, subject)) return 'policy';
      await store.passwords.markChecked(subject.userId, stamp);
      return null;
    },
  };
}

/**
 * A refusal in the reader's language: `password.problem.<code>` with its values, zxcvbn's
 * warning translated too (`password.warning.<key>`). Outside a page, use `problem.message`.
 */
export function describePasswordProblem(t: Translate, problem: PasswordProblem): string {
  const values: Record<string, string | number> = { ...problem.values };
  if (typeof values.warningKey === 'string') values.warning = t(`password.warning.${values.warningKey}`);
  return t(`password.problem.${problem.code}`, values);
}
