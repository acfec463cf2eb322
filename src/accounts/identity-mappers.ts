// Per-connector mappers (config `connectors[].mappers`): which local groups an upstream identity
// lands in, and which upstream attributes become extra claims in Keybridge's tokens. Applied by
// the broker to every connector's identities (logins, refreshes and imports) alike.
import { z } from 'zod';
import type { UpstreamIdentity } from '../connectors/contract.ts';

/** Claims Keybridge sets itself or that carry protocol meaning; a mapper may not produce them. */
export const RESERVED_CLAIMS = new Set([
  'iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'nonce', 'auth_time', 'acr', 'amr', 'azp', 'sid', 'at_hash', 'c_hash', 's_hash',
  'scope', 'client_id', 'cnf', 'idp', 'groups', 'preferred_username', 'name', 'given_name', 'family_name', 'email', 'email_verified',
  'updated_at', 'act', 'may_act', 'events', 'txn',
]);

const groupName = z.string().trim().min(1, 'must not be empty').max(200);
const attributePath = z.string().regex(/^[^.\s][^\s]*$/, 'must be an attribute name or a dotted path such as "address.country"').max(200);

export const mappersSchema = z
  .strictObject({
    groups: z
      .strictObject({
        /** Keep the upstream's own group names (after `map`); false keeps only mapped groups. */
        keepUpstream: z.preprocess((v) => (v === 'true' ? true : v === 'false' ? false : v), z.boolean()).default(true),
        /** Prepended to kept upstream group names, e.g. "github:". */
        prefix: z.string().max(64).default(''),
        /** Upstream group name -> local group name(s). */
        map: z.record(z.string().min(1), z.union([groupName, z.array(groupName).nonempty()])).default({}),
        /** Local groups for identities whose attribute equals (or, for a list, contains) a value. */
        fromAttributes: z
          .array(z.strictObject({ attribute: attributePath, equals: z.union([z.string(), z.number(), z.boolean()]), groups: z.array(groupName).nonempty() }))
          .default([]),
        /** Local groups every identity of this connector belongs to. */
        always: z.array(groupName).default([]),
      })
      .prefault({}),
    /** Upstream attributes issued as extra token claims. */
    claims: z
      .array(
        z.strictObject({
          attribute: attributePath,
          claim: z
            .string()
            .regex(/^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$/, 'must be 1-64 characters: a letter or "_", then letters, digits, "_", ".", ":" or "-"')
            .refine((c) => !RESERVED_CLAIMS.has(c), 'is a claim Keybridge sets itself; choose another name'),
          /** The scope that releases the claim (ID token, userinfo, access token). */
          scope: z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'must be a valid scope token').default('profile'),
        }),
      )
      .default([]),
  })
  .prefault({});

export type Mappers = z.output<typeof mappersSchema>;

/** A value at a dotted path ("address.country", "roles.0"); undefined when absent. */
export function readPath(source: unknown, path: string): unknown {
  let value: unknown = source;
  for (const key of path.split('.')) {
    if (value === null || typeof value !== 'object' || !Object.hasOwn(value, key)) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

const matches = (value: unknown, expected: string | number | boolean): boolean =>
  Array.isArray(value) ? value.some((v) => v === expected) : value === expected;

export interface MappedIdentity {
  /** Local group names, deduplicated, in a stable order. */
  groups: string[];
  /** Extra token claims. */
  claims: Record<string, unknown>;
}

export function applyMappers(identity: UpstreamIdentity, mappers: Mappers): MappedIdentity {
  const { groups: rules } = mappers;
  const out = new Set<string>();
  for (const upstream of identity.groups ?? []) {
    const mapped = rules.map[upstream];
    if (mapped !== undefined) for (const g of typeof mapped === 'string' ? [mapped] : mapped) out.add(g);
    else if (rules.keepUpstream) out.add(`${rules.prefix}${upstream}`);
  }
  const attributes = identity.attributes ?? {};
  for (const rule of rules.fromAttributes) {
    if (matches(readPath(attributes, rule.attribute), rule.equals)) for (const g of rule.groups) out.add(g);
  }
  for (const g of rules.always) out.add(g);

  const claims: Record<string, unknown> = {};
  for (const rule of mappers.claims) {
    const value = readPath(attributes, rule.attribute);
    if (value !== undefined && value !== null) claims[rule.claim] = value;
  }
  return { groups: [...out], claims };
}

/** Whether the mappers change anything (so identities can skip the work). */
export function mapsAnything(mappers: Mappers): boolean {
  const g = mappers.groups;
  return !g.keepUpstream || g.prefix !== '' || Object.keys(g.map).length > 0 || g.fromAttributes.length > 0 || g.always.length > 0 || mappers.claims.length > 0;
}

/** Token claim names the mappers issue, by the scope that releases them. */
export function mappedClaimsByScope(all: readonly Mappers[]): Map<string, Set<string>> {
  const byScope = new Map<string, Set<string>>();
  for (const m of all) {
    for (const rule of m.claims) {
      let set = byScope.get(rule.scope);
      if (!set) byScope.set(rule.scope, (set = new Set()));
      set.add(rule.claim);
    }
  }
  return byScope;
}
