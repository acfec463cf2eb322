// The `registration` section (self-registration from the login page) and the `passwordReset`
// section ("Forgot password?"): src/email/registration.ts, src/email/password-reset.ts and their pages in src/email/email-routes.ts.
import { z } from 'zod';

const fromEnvInt = (v: unknown) => (typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : v);
const fromEnvBool = (v: unknown) => (v === 'true' ? true : v === 'false' ? false : v);
const whole = (n: number) => Number.isInteger(n);
const minutes = (max: number) => z.preprocess(fromEnvInt, z.number().min(1).max(max).refine(whole, 'must be a whole number'));
const bool = () => z.preprocess(fromEnvBool, z.boolean());

/** Whether the registration form asks for a field: not at all, optionally, or as required. */
const fieldMode = z.enum(['off', 'optional', 'required']);

export const registrationSchema = z
  .strictObject({
    /** A "Create account" link on the login page and the form behind it. */
    enabled: bool().default(false),
    /** The account is created only when the link mailed to the address is followed. */
    requireEmailVerification: bool().default(true),
    /** Domains an address may have (`example.org` matches exactly, not subdomains); empty: any. */
    allowedEmailDomains: z
      .array(z.string().min(1).max(253).regex(/^(?=.*\.)[a-z0-9.-]+$/i, 'must be a domain name like example.org').transform((d) => d.toLowerCase()))
      .default([]),
    /** Which profile fields the form asks. `username: off` makes one from the address. */
    fields: z
      .strictObject({
        username: fieldMode.default('required'),
        name: fieldMode.default('optional'),
        givenName: fieldMode.default('off'),
        familyName: fieldMode.default('off'),
      })
      .prefault({}),
    /** How long the link of a registration mail works. */
    linkMinutes: minutes(10080).default(1440),
  })
  .prefault({});

export const passwordResetSchema = z
  .strictObject({
    /** A "Forgot password?" link on the login page. Default: on when `email.smtp` is set. */
    enabled: bool().optional(),
    /** How long a reset link works. */
    linkMinutes: minutes(1440).default(30),
  })
  .prefault({});

export type RegistrationConfig = z.output<typeof registrationSchema>;
export type PasswordResetConfig = z.output<typeof passwordResetSchema>;
