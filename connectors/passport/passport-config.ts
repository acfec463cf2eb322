// The `config:` block of a `passport` connector: which passport strategy to run, what to give
// its constructor and authenticate(), and where the identity's fields sit in its profile.
// Every field is documented where it is defined.
import { z } from 'zod';

/** An npm package name (optionally scoped, optionally a subpath) or a local module path. */
const modulePattern = /^(?:\.{1,2}\/|\/)\S+$|^(?:@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*(?:\/[\w.-]+)*$/i;

/** A dotted path into the profile, e.g. `emails.0.value`. */
const profilePath = z.string().regex(/^[\w$-]+(?:\.[\w$-]+)*$/, 'must be a dotted path such as emails.0.value');

/** Set by the bridge itself; an operator's value would break the flow or be silently lost. */
const RESERVED_OPTIONS = ['callbackURL', 'passReqToCallback'];
const RESERVED_AUTHENTICATE_OPTIONS = ['state', 'callbackURL'];

const optionsObject = (reserved: string[]) =>
  z.record(z.string(), z.unknown()).superRefine((value, ctx) => {
    for (const key of reserved) {
      if (key in value) ctx.addIssue({ code: 'custom', path: [key], message: `${key} is set by the passport connector itself; leave it out` });
    }
  });

export const passportConfigSchema = z.strictObject({
  // A local path is relative to the broker's working directory.
  strategy: z
    .string()
    .min(1)
    .max(512)
    .regex(modulePattern, 'must be an npm module name or a path starting with ./ or /')
    .describe("The strategy's npm module (e.g. passport-github2), resolved from the broker's working directory, or a local module path starting with ./ or /."),
  export: z
    .string()
    .regex(/^[A-Za-z_$][\w$]*$/, 'must be an export name such as Strategy')
    .optional()
    .describe("The module's export holding the Strategy class; default: Strategy, then the default export, then the module itself."),
  // With `pkce`, `state` or `store` set, the bridge supplies a state store that keeps the state
  // and PKCE verifier with the broker's login attempt.
  options: optionsObject(RESERVED_OPTIONS)
    .default({})
    .describe('Options for the Strategy constructor (clientID, clientSecret, scope...); the broker sets callbackURL and passReqToCallback itself.'),
  authenticateOptions: optionsObject(RESERVED_AUTHENTICATE_OPTIONS)
    .default({})
    .describe('Options passed to authenticate() on both legs (scope, prompt...); the broker sets state and callbackURL itself.'),
  profile: z
    .strictObject({
      subject: profilePath.default('id').describe('Path to a stable, never-reassigned upstream id; never a username or email.'),
      username: profilePath.default('username').describe('Path to the username.'),
      email: profilePath.default('emails.0.value').describe('Path to the email address.'),
      emailVerified: z
        .union([profilePath, z.boolean()])
        .default('emails.0.verified')
        .describe('Path to a value that must be true for the email to count as verified, or a fixed true/false for upstreams whose addresses are always (or never) verified.'),
      name: profilePath.default('displayName').describe('Path to the full name.'),
      givenName: profilePath.default('name.givenName').describe('Path to the given name.'),
      familyName: profilePath.default('name.familyName').describe('Path to the family name.'),
      groups: profilePath.optional().describe('Path to an array of group names; absent: no groups.'),
    })
    .prefault({})
    .describe("Where the identity's fields sit in passport's normalized profile, as dotted paths such as emails.0.value."),
  /*
   * Strategies choose which arguments they pass by this arity. 5 is `(accessToken, refreshToken,
   * params, profile, done)` for OAuth 2.0 and OAuth 1.0a strategies; other families are read
   * generically (the profile-like argument and the trailing callback), whatever they pass.
   */
  verifyArity: z
    .number()
    .int()
    .min(0)
    .max(9)
    .default(5)
    .describe("The number of parameters the broker's verify callback declares; keep 5 for OAuth 2.0 and OAuth 1.0a strategies."),
  timeoutMs: z
    .number()
    .int()
    .min(100)
    .max(120_000)
    .default(10_000)
    .describe('Time limit in milliseconds for each leg (start, callback), including every upstream request the strategy makes.'),
});

export type PassportConfigInput = z.input<typeof passportConfigSchema>;
export type PassportConfig = z.output<typeof passportConfigSchema>;
export type ProfileMap = PassportConfig['profile'];
