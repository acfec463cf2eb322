// Which upstream proofs of a second factor a connector accepts (`upstreamMfa`, used only with
// `trustUpstreamMfa: true`): the same schema in the config file, stored connectors and the admin API.
import { z } from 'zod';
import { ACR_MAX_LENGTH, AMR_MAX_LENGTH } from '../connectors/upstream-authentication.ts';

/**
 * RFC 8176 methods that are a factor beyond a password: `mfa` itself, keys (hardware, software),
 * one-time codes (app, SMS), biometrics, smart cards. `pwd`, `kba`, `pin` and `fed` are not here.
 */
export const DEFAULT_MFA_AMR = ['mfa', 'hwk', 'swk', 'otp', 'sms', 'face', 'fpt', 'iris', 'retina', 'vbm', 'sc'] as const;

// The same shape the connectors keep (upstream-authentication.ts), so a listed value can match.
const amrValue = z.string().regex(new RegExp(`^[^\\s\\u0000-\\u001f\\u007f-\\u009f]{1,${AMR_MAX_LENGTH}}$`), `must be an amr value: 1-${AMR_MAX_LENGTH} characters without spaces or control characters`);
const acrValue = z.string().regex(new RegExp(`^[^\\s\\u0000-\\u001f\\u007f-\\u009f]{1,${ACR_MAX_LENGTH}}$`), `must be an acr value: 1-${ACR_MAX_LENGTH} characters without spaces or control characters`);

export const upstreamMfaSchema = z
  .strictObject({
    /** `amr` values (OIDC; SAML classes map to them) any one of which proves a second factor. */
    amr: z.array(amrValue).max(32).default([...DEFAULT_MFA_AMR]).describe('amr values, any one of which proves a second factor at the upstream (default: mfa, hwk, swk, otp, sms, face, fpt, iris, retina, vbm, sc).'),
    /** `acr` values (OIDC) or AuthnContextClassRef URIs (SAML) that prove one, e.g. Entra's http://schemas.microsoft.com/claims/multipleauthn. */
    acr: z.array(acrValue).max(32).default([]).describe('acr values (OIDC) or AuthnContextClassRef URIs (SAML) that prove a second factor, e.g. http://schemas.microsoft.com/claims/multipleauthn.'),
  })
  .prefault({});

export type UpstreamMfa = z.output<typeof upstreamMfaSchema>;

export const DEFAULT_UPSTREAM_MFA: UpstreamMfa = upstreamMfaSchema.parse(undefined);

/** Trust without a value to accept would silently never apply. */
export const NOTHING_ACCEPTED = 'accepts no amr and no acr value, so trustUpstreamMfa could never apply; list one (or leave out upstreamMfa for the default amr list)';

/** Whether a policy trusts the upstream's MFA but accepts nothing (then `NOTHING_ACCEPTED` at `upstreamMfa`). */
export function acceptsNothing(trust: unknown, mfa: unknown): boolean {
  if (trust !== true || typeof mfa !== 'object' || mfa === null) return false;
  const { amr, acr } = mfa as { amr?: unknown; acr?: unknown };
  return Array.isArray(amr) && amr.length === 0 && (acr === undefined || (Array.isArray(acr) && acr.length === 0));
}
