// Upstream claims (ID token, userinfo, callback extras) into the broker's UpstreamIdentity, by
// the configured claim names. Upstreams disagree on types, so values are coerced carefully:
// "true" is true (Apple), one group is a list of one, and a missing subject is an error.
// How the person authenticated (amr, acr) is not read here: it comes from the ID token alone.
import type { UpstreamIdentity } from '../../src/connectors/contract.ts';
import type { Claims } from './oidc-preset.ts';
import type { ClaimNames } from './oidc-config.ts';

/** Claims that describe one token rather than the person; kept out of the identity's attributes. */
const TOKEN_MECHANICS = new Set(['nonce', 'at_hash', 'c_hash', 's_hash', 'exp', 'iat', 'nbf', 'jti']);

/** A claim by exact name first (Auth0's `https://example.com/roles` has dots), else by dotted path. */
export function claimAt(claims: Claims, path: string): unknown {
  if (Object.hasOwn(claims, path)) return claims[path];
  let value: unknown = claims;
  for (const part of path.split('.')) {
    if (typeof value !== 'object' || value === null || !Object.hasOwn(value, part)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

function text(value: unknown): string | undefined {
  if (typeof value === 'string') return value.trim() || undefined;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

function flag(value: unknown): boolean | undefined {
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  return undefined;
}

function list(value: unknown): string[] | undefined {
  if (Array.isArray(value)) return value.map(text).filter((v): v is string => v !== undefined);
  const one = text(value);
  return one === undefined ? undefined : [one];
}

export function identityFromClaims(connectorId: string, claims: Claims, names: ClaimNames): UpstreamIdentity | { error: string } {
  const subject = text(claimAt(claims, names.subject));
  if (!subject) return { error: `the upstream identity has no ${names.subject} claim` };
  const attributes: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(claims)) if (!TOKEN_MECHANICS.has(k) && v !== undefined) attributes[k] = v;
  const identity: UpstreamIdentity = {
    connectorId,
    subject,
    username: text(claimAt(claims, names.username)),
    email: text(claimAt(claims, names.email)),
    emailVerified: flag(claimAt(claims, names.emailVerified)),
    name: text(claimAt(claims, names.name)),
    givenName: text(claimAt(claims, names.givenName)),
    familyName: text(claimAt(claims, names.familyName)),
    groups: list(claimAt(claims, names.groups)) ?? [],
    attributes,
  };
  // Absent fields stay absent rather than present-and-undefined, for clean JSON and comparisons.
  for (const key of Object.keys(identity) as (keyof UpstreamIdentity)[]) if (identity[key] === undefined) delete identity[key];
  return identity;
}
