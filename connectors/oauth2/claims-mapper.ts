// Maps a userinfo JSON document to identity fields by dotted paths ("data.user.id",
// "emails.0.value"). A path segment that meets an array maps over its elements, so
// "teams.name" on {teams: [{name: "a"}, {name: "b"}]} gives ["a", "b"].
import type { OAuth2Config } from './oauth2-config.ts';
import type { UpstreamProfile } from './oauth2-preset.ts';

export type ClaimsConfig = NonNullable<OAuth2Config['claims']>;

/** What an upstream without a preset is assumed to look like; each entry is tried in order. */
export const DEFAULT_CLAIMS = {
  subject: ['sub', 'id', 'user_id', 'uuid'],
  username: ['preferred_username', 'login', 'username', 'nickname'],
  email: ['email'],
  emailVerified: ['email_verified'],
  name: ['name', 'display_name'],
  givenName: ['given_name'],
  familyName: ['family_name'],
} as const;

export function resolvePath(doc: unknown, path: string): unknown {
  let values: unknown[] = [doc];
  let fannedOut = false;
  for (const segment of path.split('.')) {
    const next: unknown[] = [];
    for (const v of values) {
      if (!Array.isArray(v)) next.push(field(v, segment));
      else if (/^\d+$/.test(segment)) next.push(v[Number(segment)]);
      else {
        fannedOut = true;
        for (const item of v) next.push(field(item, segment));
      }
    }
    values = next.filter((x) => x !== undefined && x !== null);
    if (values.length === 0) return undefined;
  }
  return fannedOut ? values.flat() : values[0];
}

function field(v: unknown, key: string): unknown {
  return v && typeof v === 'object' && Object.hasOwn(v, key) ? (v as Record<string, unknown>)[key] : undefined;
}

function first(doc: unknown, paths: readonly string[] | string | undefined): unknown {
  for (const p of typeof paths === 'string' ? [paths] : (paths ?? [])) {
    const v = resolvePath(doc, p);
    if (v !== undefined) return v;
  }
  return undefined;
}

const text = (v: unknown) => (typeof v === 'string' && v !== '' ? v : typeof v === 'number' ? String(v) : undefined);

/** The mapped profile, or why the document cannot be used (no usable subject). */
export function mapClaims(doc: Record<string, unknown>, claims: ClaimsConfig | undefined): UpstreamProfile | string {
  const c = claims ?? {};
  const subject = first(doc, c.subject ?? DEFAULT_CLAIMS.subject);
  if (!((typeof subject === 'string' && subject !== '') || (typeof subject === 'number' && Number.isFinite(subject)))) {
    return 'the userinfo response has no string or number at the subject path';
  }
  const email = text(first(doc, c.email ?? DEFAULT_CLAIMS.email));
  // `emailVerified: true` trusts every address this upstream returns; a path must give true.
  const verifiedClaim = typeof c.emailVerified === 'boolean' ? c.emailVerified : first(doc, c.emailVerified ?? DEFAULT_CLAIMS.emailVerified);
  const groupsValue = c.groups === undefined ? undefined : first(doc, c.groups);
  const groups = groupsValue === undefined ? undefined : (Array.isArray(groupsValue) ? groupsValue : [groupsValue]).map(text).filter((g): g is string => g !== undefined);
  return {
    subject: String(subject),
    username: text(first(doc, c.username ?? DEFAULT_CLAIMS.username)),
    email,
    emailVerified: email ? verifiedClaim === true || verifiedClaim === 'true' : undefined,
    name: text(first(doc, c.name ?? DEFAULT_CLAIMS.name)),
    givenName: text(first(doc, c.givenName ?? DEFAULT_CLAIMS.givenName)),
    familyName: text(first(doc, c.familyName ?? DEFAULT_CLAIMS.familyName)),
    groups: c.groups === undefined ? undefined : [...new Set(groups ?? [])],
    attributes: doc,
  };
}
