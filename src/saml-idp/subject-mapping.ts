// What a service provider learns about the person: the NameID in the format chosen for the
// sign-in (name-id-policy.ts), and the attributes its settings map from the local user, its groups and the claims a
// connector's mappers produced at sign-in.
import { createHmac, randomBytes } from 'node:crypto';
import type { User } from '../storage/types.ts';
import type { ServiceProvider } from './service-providers.ts';
import type { NameIdFormatName } from './saml-idp-config.ts';
import { ATTRIBUTE_NAME_FORMAT, NAME_ID_FORMAT } from './saml-urns.ts';

export interface Person {
  user: User;
  groups: string[];
  /** Mapped claims of the login (login_sessions.claims). */
  claims: Record<string, unknown>;
}

/**
 * The NameID for this SP in `format` (default: the SP's configured one), or null when the user
 * lacks the field the format needs (no email). `nameId.from` applies to the configured format
 * only; a format the request chose (name-id-policy.ts) takes its usual source.
 */
export function nameIdFor(sp: ServiceProvider, person: Person, pairwiseKey: Buffer, format: NameIdFormatName = sp.nameId.format): { value: string; format: string } | null {
  const from = format === sp.nameId.format ? sp.nameId.from : undefined;
  const { user } = person;
  if (format === 'transient') return { value: `_${randomBytes(20).toString('hex')}`, format: NAME_ID_FORMAT.transient };
  const source = from ?? (format === 'emailAddress' ? 'email' : format === 'unspecified' ? 'username' : null);
  let value: string | null;
  if (source === null) {
    // Persistent by default: opaque, stable for this user at this SP, unlinkable across SPs.
    value = createHmac('sha256', pairwiseKey).update(`${sp.entityId}\u0000${user.id}`).digest('base64url');
  } else {
    value = source === 'id' ? user.id : source === 'username' ? user.username : user.email;
  }
  return value ? { value, format: NAME_ID_FORMAT[format] } : null;
}

function values(value: unknown): string[] {
  if (value === null || value === undefined || value === '') return [];
  if (Array.isArray(value)) return value.flatMap(values);
  if (typeof value === 'string') return [value];
  if (typeof value === 'number' || typeof value === 'boolean') return [String(value)];
  return [];
}

export function attributesFor(sp: ServiceProvider, person: Person): { name: string; nameFormat: string; values: string[] }[] {
  const { user, groups, claims } = person;
  const fields: Record<string, unknown> = {
    id: user.id,
    username: user.username,
    email: user.email,
    emailVerified: user.email ? user.emailVerified : null,
    name: user.name,
    givenName: user.givenName,
    familyName: user.familyName,
    groups,
  };
  return sp.attributes
    .map((rule) => ({
      name: rule.name,
      nameFormat: ATTRIBUTE_NAME_FORMAT[rule.nameFormat],
      values: values(rule.from.startsWith('claim:') ? claims[rule.from.slice('claim:'.length)] : fields[rule.from]),
    }))
    .filter((a) => a.values.length > 0);
}
