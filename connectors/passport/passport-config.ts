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
  /**
   * The strategy's npm module (`passport-github2`, `@scope/passport-x`), resolved from the
   * broker's working directory, or a local module path starting with `./` (relative to that
   * directory) or `/`.
   */
  strategy: z.string().min(1).max(512).regex(modulePattern, 'must be an npm module name or a path starting with ./ or /'),
  /** The module's export holding the Strategy class; default: `Strategy`, then the default export, then the module itself. */
  export: z.string().regex(/^[A-Za-z_$][\w$]*$/, 'must be an export name such as Strategy').optional(),
  /**
   * Passed to the Strategy constructor (clientID, clientSecret, scope, pkce, ...). The bridge
   * adds `callbackURL` and `passReqToCallback: false`; with `pkce`, `state` or `store` set it
   * supplies a state store that keeps the state and PKCE verifier with the broker's attempt.
   */
  options: optionsObject(RESERVED_OPTIONS).default({}),
  /** Passed to authenticate() on both legs (scope, prompt, ...); the bridge adds `state` and `callbackURL`. */
  authenticateOptions: optionsObject(RESERVED_AUTHENTICATE_OPTIONS).default({}),
  /** Where the identity's fields sit in passport's normalized profile (dotted paths). */
  profile: z
    .strictObject({
      /** A stable, never-reassigned upstream id; never a username or email. */
      subject: profilePath.default('id'),
      username: profilePath.default('username'),
      email: profilePath.default('emails.0.value'),
      /**
       * A path whose value must be `true` for the email to count as verified, or a fixed
       * `true`/`false` for upstreams that only ever hand out verified (or unverified) addresses.
       */
      emailVerified: z.union([profilePath, z.boolean()]).default('emails.0.verified'),
      name: profilePath.default('displayName'),
      givenName: profilePath.default('name.givenName'),
      familyName: profilePath.default('name.familyName'),
      /** A path to an array of group names; absent: no groups. */
      groups: profilePath.optional(),
    })
    .prefault({}),
  /**
   * The arity the bridge's verify callback declares; strategies choose which arguments they
   * pass by it. Default 5: `(accessToken, refreshToken, params, profile, done)` for OAuth 2.0
   * and OAuth 1.0a strategies; other families are read generically (the profile-like argument
   * and the trailing callback), whatever they pass.
   */
  verifyArity: z.number().int().min(0).max(9).default(5),
  /** Limit for each leg (start, callback) including every upstream request the strategy makes. */
  timeoutMs: z.number().int().min(100).max(120_000).default(10_000),
});

export type PassportConfigInput = z.input<typeof passportConfigSchema>;
export type PassportConfig = z.output<typeof passportConfigSchema>;
export type ProfileMap = PassportConfig['profile'];
