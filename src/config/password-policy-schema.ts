// `passwordPolicy`: the rules every local password must meet wherever it is set
// (src/accounts/password-policy.ts applies them; README "Password policy").
import { z } from 'zod';

// Numbers and booleans may come from `${ENV}` substitution, which always yields strings.
const fromEnvInt = (v: unknown) => (typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : v);
const fromEnvBool = (v: unknown) => (v === 'true' ? true : v === 'false' ? false : v);
const whole = (n: number) => Number.isInteger(n);
const int = (min: number, max: number) => z.preprocess(fromEnvInt, z.number().min(min).max(max).refine(whole, 'must be a whole number'));

/** No password longer than this is ever hashed, whatever the config says (argon2 cost grows with input). */
export const PASSWORD_HARD_MAX = 1024;

export const passwordPolicySchema = z
  .strictObject({
    /** Fewest characters (Unicode code points). NIST SP 800-63B asks for at least 8; 12 with the checks below. */
    minLength: int(1, PASSWORD_HARD_MAX).default(12),
    /** Most characters; longer input is refused before any other check or any hashing. */
    maxLength: int(8, PASSWORD_HARD_MAX).default(128),
    /**
     * Lowest zxcvbn score accepted (0-4). 3 ("safely unguessable", about 10^8 guesses or more)
     * refuses dictionary words with decorations and keyboard walks while still accepting a
     * three-word passphrase; 4 refuses many passwords people can remember.
     */
    minScore: int(0, 4).default(3),
    /** Refuse the 100,000 most common passwords of public breach corpora (offline list, no network). */
    breachedList: z.preprocess(fromEnvBool, z.boolean()).default(true),
    /**
     * The last N passwords of a user cannot be chosen again (their hashes are kept); 0: off. At
     * most 24 (as Windows): each choice costs up to N argon2 verifications.
     */
    history: int(0, 24).default(5),
    /** Days after which a password must be changed at the next login; 0: never. */
    expiryDays: int(0, 36500).default(0),
  })
  .refine((p) => typeof p.minLength !== 'number' || typeof p.maxLength !== 'number' || p.minLength <= p.maxLength, { message: 'minLength must not be greater than maxLength', path: ['minLength'] })
  .prefault({});

export type PasswordPolicyConfig = z.output<typeof passwordPolicySchema>;
