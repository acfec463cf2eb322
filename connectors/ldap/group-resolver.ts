// Which groups a directory entry belongs to, by the configured sources: member DN lists
// (groupOfNames / groupOfUniqueNames), posixGroup memberUid, the user's own memberOf, and AD's
// in-chain matching rule. Nested groups are followed breadth-first up to a depth limit; a set of
// visited DNs stops cycles.
import type { Client, Entry } from 'ldapts';
import type { GroupSource } from './ldap-config.ts';
import { escapeFilterValue, firstRdnValue, normalizeDn } from './ldap-escape.ts';

const IN_CHAIN = '1.2.840.113556.1.4.1941';
/** Values per OR-filter when asking for the parents of many groups at once. */
const BATCH = 50;

export interface GroupLookupOptions {
  sources: GroupSource[];
  nameAttribute: string;
  maxDepth: number;
  /** Parents and names of group DNs already looked up; a sync shares one across users. */
  cache?: GroupCache;
}

export interface GroupCache {
  names: Map<string, string>;
  /** normalized group DN -> its parent group DNs, per `member`-source key or `memberOf`. */
  parents: Map<string, string[]>;
}

export function newGroupCache(): GroupCache {
  return { names: new Map(), parents: new Map() };
}

export function firstValue(entry: Entry, attribute: string): string | undefined {
  const v = attributeValues(entry, attribute)[0];
  return v === undefined ? undefined : v;
}

/** Attribute values as strings; attribute names compare case-insensitively as LDAP says. */
export function attributeValues(entry: Entry, attribute: string): string[] {
  const wanted = attribute.toLowerCase();
  for (const key of Object.keys(entry)) {
    if (key.toLowerCase() !== wanted) continue;
    const raw = entry[key];
    const list = Array.isArray(raw) ? raw : [raw];
    return list.map((v) => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v)));
  }
  return [];
}

/** Group names (sorted, unique) for one user entry. */
export async function resolveGroups(client: Client, user: Entry, options: GroupLookupOptions): Promise<string[]> {
  const cache = options.cache ?? newGroupCache();
  const names = new Set<string>();
  for (const source of options.sources) {
    for (const name of await fromSource(client, user, source, options, cache)) names.add(name);
  }
  return [...names].sort((a, b) => a.localeCompare(b));
}

async function fromSource(client: Client, user: Entry, source: GroupSource, options: GroupLookupOptions, cache: GroupCache): Promise<string[]> {
  const nameAttr = options.nameAttribute;
  switch (source.type) {
    case 'posix': {
      const value = firstValue(user, source.userAttribute);
      if (!value) return [];
      const { searchEntries } = await client.search(source.baseDn, {
        filter: `(&${source.filter}(${source.attribute}=${escapeFilterValue(value)}))`,
        attributes: [nameAttr],
      });
      return searchEntries.map((e) => groupName(e, nameAttr));
    }
    case 'inChain': {
      const { searchEntries } = await client.search(source.baseDn, {
        filter: `(&${source.filter}(member:${IN_CHAIN}:=${escapeFilterValue(user.dn)}))`,
        attributes: [nameAttr],
        paged: { pageSize: 500 },
      });
      return searchEntries.map((e) => groupName(e, nameAttr));
    }
    case 'memberOf': {
      const direct = attributeValues(user, source.attribute);
      if (!source.nested) return direct.map(firstRdnValue);
      return walkUp(direct, options.maxDepth, async (dns) => {
        const out = new Map<string, string[]>();
        for (const dn of dns) {
          const key = `memberOf|${normalizeDn(dn)}`;
          let parents = cache.parents.get(key);
          if (!parents) {
            const { searchEntries } = await client.search(dn, { scope: 'base', attributes: [source.attribute, nameAttr] }).catch(noSuchObject);
            parents = searchEntries[0] ? attributeValues(searchEntries[0], source.attribute) : [];
            if (searchEntries[0]) cache.names.set(normalizeDn(dn), groupName(searchEntries[0], nameAttr));
            cache.parents.set(key, parents);
          }
          out.set(dn, parents);
        }
        return out;
      }, cache);
    }
    case 'member': {
      const memberFilter = (dns: string[]) =>
        `(&${source.filter}(|${dns.flatMap((dn) => source.attributes.map((a) => `(${a}=${escapeFilterValue(dn)})`)).join('')}))`;
      const { searchEntries } = await client.search(source.baseDn, { filter: memberFilter([user.dn]), attributes: [nameAttr], paged: { pageSize: 500 } });
      const direct = searchEntries.map((e) => {
        cache.names.set(normalizeDn(e.dn), groupName(e, nameAttr));
        return e.dn;
      });
      if (!source.nested) return direct.map((dn) => cache.names.get(normalizeDn(dn))!);
      const sourceKey = `member:${source.baseDn}|${source.filter}|${source.attributes.join(',')}`;
      return walkUp(direct, options.maxDepth, async (dns) => {
        const out = new Map<string, string[]>();
        const missing = dns.filter((dn) => {
          const hit = cache.parents.get(`${sourceKey}|${normalizeDn(dn)}`);
          if (hit) out.set(dn, hit);
          return !hit;
        });
        for (let i = 0; i < missing.length; i += BATCH) {
          const batch = missing.slice(i, i + BATCH);
          const attrs = [nameAttr, ...source.attributes];
          const { searchEntries: parents } = await client.search(source.baseDn, { filter: memberFilter(batch), attributes: attrs, paged: { pageSize: 500 } });
          const byChild = new Map<string, string[]>(batch.map((dn) => [normalizeDn(dn), []]));
          for (const parent of parents) {
            cache.names.set(normalizeDn(parent.dn), groupName(parent, nameAttr));
            for (const a of source.attributes) {
              for (const memberDn of attributeValues(parent, a)) byChild.get(normalizeDn(memberDn))?.push(parent.dn);
            }
          }
          for (const dn of batch) {
            const found = byChild.get(normalizeDn(dn)) ?? [];
            cache.parents.set(`${sourceKey}|${normalizeDn(dn)}`, found);
            out.set(dn, found);
          }
        }
        return out;
      }, cache);
    }
  }
}

/**
 * Breadth-first from the direct groups up through their parents. `parentsOf` answers one level
 * for many DNs at once. Returns the names of every group reached.
 */
async function walkUp(direct: string[], maxDepth: number, parentsOf: (dns: string[]) => Promise<Map<string, string[]>>, cache: GroupCache): Promise<string[]> {
  const seen = new Map<string, string>(); // normalized DN -> DN
  let frontier = direct.filter((dn) => !seen.has(normalizeDn(dn)) && seen.set(normalizeDn(dn), dn));
  for (let depth = 1; depth < maxDepth && frontier.length; depth++) {
    const parents = await parentsOf(frontier);
    const next: string[] = [];
    for (const list of parents.values()) {
      for (const dn of list) {
        const key = normalizeDn(dn);
        if (seen.has(key)) continue; // a cycle, or reached by another path
        seen.set(key, dn);
        next.push(dn);
      }
    }
    frontier = next;
  }
  return [...seen.entries()].map(([key, dn]) => cache.names.get(key) ?? firstRdnValue(dn));
}

function groupName(entry: Entry, nameAttribute: string): string {
  return firstValue(entry, nameAttribute) ?? firstRdnValue(entry.dn);
}

/** A group DN that no longer exists (stale memberOf) has no parents. */
function noSuchObject(err: unknown): { searchEntries: Entry[] } {
  if ((err as { code?: unknown }).code === 32) return { searchEntries: [] };
  throw err;
}
