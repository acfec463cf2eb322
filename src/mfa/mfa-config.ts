// The `mfa` config section: the second-factor policy per level (src/mfa/mfa-policy.ts), how long
// a remembered device skips the factor, and the WebAuthn relying party's settings. Config ids
// that name nothing yet are allowed: groups in particular often arrive later from an upstream.
import { z } from 'zod';

/** Strictest first: the effective mode is the first of these that any applying level sets. */
export const MFA_MODES = ['required', 'optional', 'off'] as const;
export type MfaMode = (typeof MFA_MODES)[number];

export const mfaModeSchema = z.enum(MFA_MODES, { error: 'must be "required", "optional" or "off"' });

// Numbers may come from `${ENV}` substitution, which always yields strings.
const fromEnvInt = (v: unknown) => (typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : v);

/** Group names as the groups claim carries them (NFKC, trimmed: as the admin API stores them). */
export const normalizeMfaGroup = (name: string) => name.normalize('NFKC').trim();

const CLIENT_ID = /^[A-Za-z0-9._~-]{1,128}$/;
const CONNECTOR_ID = /^[a-z0-9][a-z0-9-]{0,63}$/;

/** A map of id -> mode whose ids `problem` checks (zod's own record key error says only "Invalid key"). */
const levels = (problem: (id: string) => string | null, normalize = (id: string) => id) =>
  z
    .record(z.string(), mfaModeSchema)
    .default({})
    // Also when a mode failed, so every problem is reported in one pass.
    .superRefine(
      (map, ctx) => {
        for (const id of Object.keys(map)) {
          const message = problem(id);
          if (message) ctx.addIssue({ code: 'custom', path: [id], message });
        }
      },
      { when: (payload) => typeof payload.value === 'object' && payload.value !== null },
    )
    .transform((map) => Object.fromEntries(Object.entries(map).map(([id, mode]) => [normalize(id), mode])) as Record<string, MfaMode>);

export const mfaConfigSchema = z
  .strictObject({
    /** The global mode; a mode stored through the admin API replaces it. */
    mode: mfaModeSchema.default('optional'),
    /** By group name; the user's nested (parent) groups count too. */
    groups: levels((id) => (normalizeMfaGroup(id) === '' ? 'must name a group' : normalizeMfaGroup(id).length > 200 ? 'must be at most 200 characters' : null), normalizeMfaGroup),
    /** By client id. */
    clients: levels((id) => (CLIENT_ID.test(id) ? null : 'is not a client id (1-128 characters of A-Z a-z 0-9 . _ ~ -)')),
    /** By connector id. */
    connectors: levels((id) => (CONNECTOR_ID.test(id) ? null : 'is not a connector id (1-64 lowercase letters, digits and "-")')),
    rememberDevice: z
      .strictObject({
        /** How long "remember this device" skips the second factor; 0 turns the option off. */
        days: z.preprocess(fromEnvInt, z.number().refine(Number.isInteger, 'must be a whole number').refine((n) => n >= 0 && n <= 365, 'must be from 0 (off) to 365 days')).default(0),
      })
      .prefault({}),
    webauthn: z
      .strictObject({
        userVerification: z.enum(['required', 'preferred', 'discouraged'], { error: 'must be "required", "preferred" or "discouraged"' }).default('preferred'),
        /** The name authenticators show for this relying party. */
        rpName: z.string().min(1).max(100).default('Keybridge'),
      })
      .prefault({}),
  })
  .prefault({});

export type MfaConfig = z.output<typeof mfaConfigSchema>;
