// The password policy for local accounts, in one place: every way a password is set
// (registration, reset, account console, admin API, CLI, config seeding, the update_password
// required action) asks `problem` first and stores through `setPassword`.
//
// INTERFACE FIRST: this version applies the rules that existed before the policy issue
// (length and the static-user weakness checks); the policy work replaces the body, not the shape.
import { passwordProblem } from '../management/users.ts';
import { hashPassword } from './passwords.ts';
import type { Store } from '../storage/store.ts';

/** Who the password is for: the checks refuse passwords built from these. */
export interface PasswordSubject {
  userId?: string;
  username?: string;
  email?: string | null;
  name?: string | null;
}

/** Why a password is refused: a stable code, values for the message, and the English text. */
export interface PasswordProblem {
  /** `too_short`, `too_long`, `weak`, `common`, `breached`, `reused`, `like_identity`... */
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

export function createPasswordPolicy(): PasswordPolicy {
  return {
    async problem(password, subject) {
      const message = passwordProblem(password, subject.username ?? '\u0000');
      return message ? { code: 'weak', message } : null;
    },
    async setPassword(store, userId, password) {
      await store.credentials.setPassword(userId, await hashPassword(password));
    },
  };
}
