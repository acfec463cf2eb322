// Linking: an upstream identity (connector, subject) maps to exactly one local user whose id
// (the token `sub`) never changes. A first login follows the connector's policy (create a user,
// link by a trusted verified email, or ask the person to confirm); later logins refresh the
// stored upstream data and the memberships that connector asserts. Links and unlinks are audited.
import { AlreadyExists, KeybridgeError } from '../errors.ts';
import type { UpstreamIdentity } from '../connectors/contract.ts';
import type { Store } from '../storage/store.ts';
import type { User } from '../storage/types.ts';
import { applyMappers, mapsAnything, type MappedIdentity, type Mappers } from './identity-mappers.ts';
import { deriveUsername } from './normalize-username.ts';

export interface LinkedLogin {
  user: User;
  /** null for the `local` connector, whose identities are local users themselves. */
  federatedIdentityId: string | null;
  created: boolean;
}

/** What the federated identity keeps of what the upstream said (for refresh and mappers). */
export function upstreamData(identity: UpstreamIdentity): Record<string, unknown> {
  return {
    name: identity.name ?? null,
    givenName: identity.givenName ?? null,
    familyName: identity.familyName ?? null,
    emailVerified: identity.emailVerified ?? false,
    groups: identity.groups ?? [],
    attributes: identity.attributes ?? {},
  };
}

/**
 * The username an upstream identity asks for (before collisions are resolved), valid under the
 * local rules: an upstream's `Pia.Confirm@example.org` becomes `Pia.Confirm`, never a username
 * with `@` that would shadow someone's email at local login. Never refuses the login for it.
 */
export function wantedUsername(identity: UpstreamIdentity): string {
  return deriveUsername(identity.username) ?? deriveUsername(identity.email) ?? deriveUsername(identity.subject) ?? 'user';
}

/** A free username derived from what the upstream sent; never takes over someone else's. */
async function freeUsername(store: Store, base: string): Promise<string> {
  if (!(await store.users.findByUsername(base))) return base;
  for (let n = 2; n < 1000; n++) {
    const candidate = `${base}-${n}`;
    if (!(await store.users.findByUsername(candidate))) return candidate;
  }
  return `${base}-${crypto.randomUUID().slice(0, 8)}`;
}

/**
 * Users an upstream created (by first login or import) follow that upstream's profile: names and
 * email are refreshed from it. The email is only taken when no other user holds it.
 */
export async function followUpstreamProfile(store: Store, user: User, identity: UpstreamIdentity): Promise<User> {
  if (user.managedBy !== identity.connectorId) return user;
  const patch: Partial<User> = {};
  const set = <K extends 'name' | 'givenName' | 'familyName'>(key: K, value: string | undefined) => {
    if ((value ?? null) !== user[key]) patch[key] = value ?? null;
  };
  set('name', identity.name);
  set('givenName', identity.givenName);
  set('familyName', identity.familyName);
  const email = identity.email ?? null;
  if (email?.toLowerCase() !== user.email?.toLowerCase()) {
    const holder = email ? await store.users.findByEmail(email) : null;
    if (!holder || holder.id === user.id) {
      patch.email = email;
      patch.emailVerified = email ? Boolean(identity.emailVerified) : false;
    }
  } else if (email && Boolean(identity.emailVerified) !== user.emailVerified) {
    patch.emailVerified = Boolean(identity.emailVerified);
  }
  if (!Object.keys(patch).length) return user;
  return (await store.users.update(user.id, patch)) ?? user;
}

const userGone = () => new KeybridgeError('user_gone', 'This account no longer exists.', { status: 401, expose: true, text: { key: 'login.failure.user_gone' } });

export type FirstLoginPolicy = 'create' | 'link-verified-email' | 'confirm';

export interface LinkOptions {
  /** For a user created by this call (imports create blocked upstream accounts disabled). */
  enabled?: boolean;
  /** What the audit event says created the link. */
  via?: 'login' | 'sync' | 'refresh' | 'verified-email' | 'confirmed' | 'account-console';
  /** First-login policy of the connector (default `create`). */
  firstLogin?: FirstLoginPolicy;
  /** The connector is trusted to assert verified emails (for `link-verified-email`). */
  trustEmail?: boolean;
  /** The connector's mappers (default: upstream groups as they are, no extra claims). */
  mappers?: Mappers;
  /** Encrypted upstream tokens to keep on the identity (undefined: leave the stored ones). */
  tokens?: string | null;
  /** A local account's identity: its user as the caller has just read it (null: gone), instead of a read here. */
  localUser?: User | null;
}

/** The local groups and extra claims one identity maps to. */
function mapped(identity: UpstreamIdentity, mappers: Mappers | undefined): MappedIdentity {
  return mappers ? applyMappers(identity, mappers) : { groups: identity.groups ?? [], claims: {} };
}

/** Whether this identity says anything about group membership (else memberships stay as they are). */
const assertsGroups = (identity: UpstreamIdentity, mappers: Mappers | undefined) => identity.groups !== undefined || (mappers !== undefined && mapsAnything(mappers));

export type LinkOutcome =
  | (LinkedLogin & { kind: 'linked'; claims: Record<string, unknown> })
  /** A local user holds the identity's email; the person must prove they own it before linking. */
  | { kind: 'confirm'; candidate: User };

/**
 * Resolves an upstream identity to its local user, applying the connector's first-login policy
 * when the identity is new. Only `create` and an email-verified link write anything for a new
 * identity; `confirm` writes nothing and names the user to confirm against.
 */
export async function resolveIdentity(store: Store, identity: UpstreamIdentity, options: LinkOptions = {}): Promise<LinkOutcome> {
  if (identity.localUserId) {
    const user = options.localUser !== undefined ? options.localUser : await store.users.findById(identity.localUserId);
    if (!user) throw userGone();
    return { kind: 'linked', user, federatedIdentityId: null, created: false, claims: mapped(identity, options.mappers).claims };
  }
  const map = mapped(identity, options.mappers);
  const existing = await store.identities.find(identity.connectorId, identity.subject);
  if (existing) {
    // An import marked this identity blocked (or gone) upstream. The upstream has just let the
    // person sign in, so that is over: the marker goes, and a user the upstream manages and the
    // import disabled is enabled again (an administrator's own disable has no marker and stays).
    const wasBlocked = Boolean(existing.removedAt) || Boolean((existing.data as { blocked?: unknown }).blocked);
    const user = await store.transaction(async (tx) => {
      await tx.identities.recordLogin(existing.id, { username: identity.username ?? null, email: identity.email ?? null, data: upstreamData(identity), tokens: options.tokens, ...(wasBlocked ? { removedAt: null } : {}) });
      if (assertsGroups(identity, options.mappers)) await tx.groups.setMemberships(existing.userId, map.groups, identity.connectorId);
      let found = await tx.users.findById(existing.userId);
      if (!found) throw userGone();
      if (wasBlocked && !found.enabled && found.managedBy === identity.connectorId) {
        found = (await tx.users.update(found.id, { enabled: true })) ?? found;
        await tx.audit.record({ type: 'user.enabled', userId: found.id, connectorId: identity.connectorId, details: { reason: 'upstream_login', via: 'login' } });
      }
      return followUpstreamProfile(tx, found, identity);
    });
    return { kind: 'linked', user, federatedIdentityId: existing.id, created: false, claims: map.claims };
  }

  const policy = options.firstLogin ?? 'create';
  if (policy !== 'create' && identity.email) {
    const holder = await store.users.findByEmail(identity.email);
    if (holder) {
      const verified = policy === 'link-verified-email' && options.trustEmail === true && identity.emailVerified === true && holder.emailVerified;
      // A user already linked to another identity of this upstream is not linked silently to a
      // second one: that takes the person's own confirmation.
      const secondOfConnector = verified && (await store.identities.listForUser(holder.id)).some((f) => f.connectorId === identity.connectorId);
      if (verified && !secondOfConnector) {
        return { kind: 'linked', ...(await linkToUser(store, identity, holder.id, { ...options, via: 'verified-email' })), claims: map.claims };
      }
      return { kind: 'confirm', candidate: holder };
    }
  }
  return { kind: 'linked', ...(await createLinkedUser(store, identity, options)), claims: map.claims };
}

/** Links an identity to a local user, creating the user on first login (the `create` policy). */
export async function linkIdentity(store: Store, identity: UpstreamIdentity, options: LinkOptions = {}): Promise<LinkedLogin> {
  const outcome = await resolveIdentity(store, identity, { ...options, firstLogin: 'create' });
  if (outcome.kind !== 'linked') throw new Error('unreachable: the create policy always links');
  return outcome;
}

async function createLinkedUser(store: Store, identity: UpstreamIdentity, options: LinkOptions): Promise<LinkedLogin> {
  // Two concurrent first logins of the same identity race on the (connector, subject) unique
  // key; the loser re-reads.
  try {
    return await store.transaction(async (tx) => {
      const username = await freeUsername(tx, wantedUsername(identity));
      // An email already held by another local user is not taken over (linking by email is a
      // per-connector policy decision); the upstream email stays on the federated identity.
      const emailFree = identity.email ? !(await tx.users.findByEmail(identity.email)) : false;
      const user = await tx.users.create({
        username,
        email: emailFree ? identity.email : null,
        emailVerified: emailFree ? Boolean(identity.emailVerified) : false,
        name: identity.name ?? null,
        givenName: identity.givenName ?? null,
        familyName: identity.familyName ?? null,
        managedBy: identity.connectorId,
        enabled: options.enabled ?? true,
      });
      const fed = await createIdentity(tx, identity, user.id, options);
      await tx.audit.record({ type: 'identity.linked', userId: user.id, connectorId: identity.connectorId, details: { subject: identity.subject, created: true, via: options.via ?? 'login' } });
      return { user, federatedIdentityId: fed.id, created: true };
    });
  } catch (err) {
    if (err instanceof AlreadyExists && (await store.identities.find(identity.connectorId, identity.subject))) {
      return linkIdentity(store, identity, options);
    }
    throw err;
  }
}

async function createIdentity(tx: Store, identity: UpstreamIdentity, userId: string, options: LinkOptions) {
  const fed = await tx.identities.create({
    userId,
    connectorId: identity.connectorId,
    subject: identity.subject,
    username: identity.username ?? null,
    email: identity.email ?? null,
    data: upstreamData(identity),
  });
  await tx.identities.recordLogin(fed.id, { tokens: options.tokens ?? null });
  const map = mapped(identity, options.mappers);
  if (map.groups.length) await tx.groups.setMemberships(userId, map.groups, identity.connectorId);
  return fed;
}

/**
 * Links a new upstream identity to an existing local user (verified email, or the person proved
 * they own the account). The user's profile stays theirs: it is not taken over by this upstream.
 */
export async function linkToUser(store: Store, identity: UpstreamIdentity, userId: string, options: LinkOptions & { via: 'verified-email' | 'confirmed' | 'account-console' }): Promise<LinkedLogin> {
  try {
    return await store.transaction(async (tx) => {
      const user = await tx.users.findById(userId);
      if (!user) throw userGone();
      const fed = await createIdentity(tx, identity, user.id, options);
      await tx.audit.record({ type: 'identity.linked', userId: user.id, connectorId: identity.connectorId, details: { subject: identity.subject, created: false, via: options.via } });
      return { user, federatedIdentityId: fed.id, created: false };
    });
  } catch (err) {
    // The same identity was linked meanwhile (a concurrent callback): use that link.
    const existing = err instanceof AlreadyExists ? await store.identities.find(identity.connectorId, identity.subject) : null;
    if (existing && existing.userId === userId) {
      const user = await store.users.findById(userId);
      if (user) return { user, federatedIdentityId: existing.id, created: false };
    }
    throw err;
  }
}

/**
 * Removes one upstream identity from its local user. The user (and its `sub`) stays; the groups
 * that upstream asserted go, its profile is no longer refreshed from it, and tokens issued
 * through it can no longer be refreshed.
 */
export async function unlinkIdentity(store: Store, federatedIdentityId: string, actor: { by: string; ip?: string | null }): Promise<boolean> {
  return store.transaction(async (tx) => {
    const fed = await tx.identities.findById(federatedIdentityId);
    if (!fed) return false;
    await tx.identities.delete(fed.id);
    await tx.groups.setMemberships(fed.userId, [], fed.connectorId);
    const user = await tx.users.findById(fed.userId);
    if (user?.managedBy === fed.connectorId) await tx.users.update(user.id, { managedBy: null });
    await tx.audit.record({ type: 'identity.unlinked', userId: fed.userId, connectorId: fed.connectorId, ip: actor.ip ?? null, details: { subject: fed.subject, by: actor.by } });
    return true;
  });
}
