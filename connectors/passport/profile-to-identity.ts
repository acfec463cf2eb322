// Maps a passport profile (http://www.passportjs.org/docs/profile) onto an UpstreamIdentity
// through the configured dotted paths; strategies differ in what they fill in, so every field
// but the subject is optional.
import type { UpstreamIdentity, UpstreamTokens } from '../../src/connectors/contract.ts';
import type { ProfileMap } from './passport-config.ts';

/** Own properties only, so a path never reaches into prototypes (`constructor`, `__proto__`). */
function readPath(source: unknown, dotted: string): unknown {
  let current = source;
  for (const segment of dotted.split('.')) {
    if (current === null || typeof current !== 'object' || !Object.hasOwn(current, segment)) return undefined;
    current = (current as Record<string, unknown>)[segment];
  }
  return current;
}

function text(value: unknown): string | undefined {
  if (typeof value === 'string') return value.trim() || undefined;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

/** The provider's raw JSON when the strategy kept it, else the profile without its raw text; JSON-safe. */
function attributesOf(profile: Record<string, unknown>): Record<string, unknown> | undefined {
  const json = profile._json;
  const source = json && typeof json === 'object' && !Array.isArray(json) ? json : Object.fromEntries(Object.entries(profile).filter(([k]) => k !== '_raw' && k !== '_json'));
  try {
    return JSON.parse(JSON.stringify(source)) as Record<string, unknown>;
  } catch {
    return undefined; // cycles or BigInts: no attributes rather than no login
  }
}

export type MappedProfile = { ok: true; identity: UpstreamIdentity } | { ok: false; detail: string };

export function profileToIdentity(connectorId: string, profile: Record<string, unknown>, map: ProfileMap, tokens?: UpstreamTokens): MappedProfile {
  const subject = text(readPath(profile, map.subject));
  if (!subject) return { ok: false, detail: `the strategy's profile has no usable subject at "${map.subject}"` };
  const email = text(readPath(profile, map.email));
  const verified = typeof map.emailVerified === 'boolean' ? map.emailVerified : readPath(profile, map.emailVerified) === true;
  const groupsValue = map.groups ? readPath(profile, map.groups) : undefined;
  const identity: UpstreamIdentity = {
    connectorId,
    subject,
    username: text(readPath(profile, map.username)),
    email,
    emailVerified: email ? verified : undefined,
    name: text(readPath(profile, map.name)),
    givenName: text(readPath(profile, map.givenName)),
    familyName: text(readPath(profile, map.familyName)),
    groups: Array.isArray(groupsValue) ? groupsValue.map(text).filter((g): g is string => g !== undefined) : undefined,
    attributes: attributesOf(profile),
    tokens,
  };
  for (const key of Object.keys(identity) as (keyof UpstreamIdentity)[]) {
    if (identity[key] === undefined) delete identity[key];
  }
  return { ok: true, identity };
}
