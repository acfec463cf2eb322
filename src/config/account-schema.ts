// The account console at /account (src/account-console, src/account-api): where a person sees and
// changes their own profile, sign-in methods, sessions and apps, security log and data.
import { z } from 'zod';

const fromEnvInt = (v: unknown) => (typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : v);
const fromEnvBool = (v: unknown) => (v === 'true' ? true : v === 'false' ? false : v);

export const accountSchema = z
  .strictObject({
    /** Serve the console and its API; off: /account answers 404 and its client is not registered. */
    enabled: z.preprocess(fromEnvBool, z.boolean()).default(true),
    /** People may delete their own account (after re-authenticating and typing their username). */
    selfDeletion: z.preprocess(fromEnvBool, z.boolean()).default(false),
    /**
     * Seconds since the last sign-in within which sensitive changes (password, email, factors,
     * linking, unlinking, deletion) are allowed; older: the console signs the person in again.
     */
    reauthMaxAge: z.preprocess(fromEnvInt, z.number().int('must be a whole number').min(30, 'must be at least 30 seconds').max(86400, 'must be at most 86400 seconds (a day)')).default(300),
  })
  .prefault({});

export type AccountConfig = z.output<typeof accountSchema>;
