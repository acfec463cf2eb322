// Linking: an upstream identity (connector, subject) maps to exactly one local user whose id
// (the token `sub`) never changes. First login creates the user; later logins refresh the
// stored upstream data and the memberships that connector asserts.
import { AlreadyExists, KeybridgeError } from '../errors.ts';
import type { UpstreamIdentity } from '../connectors/contract.ts';
import type { Store } from '../storage/store.ts';
import type { User } from '../storage/types.ts';

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

/** The username an upstream identity asks for (before collisions are resolved). */
export function wantedUsername(identity: UpstreamIdentity): string {
  return (identity.username ?? identity.email?.split('@')[0] ?? identity.subject).trim().slice(0, 120) || 'user';
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

const userGone = () => new KeybridgeError('user_gone', 'This account no longer exists.', { status: 401, expose: true });

export interface LinkOptions {
  /** For a user created by this call (imports create blocked upstream accounts disabled). */
  enabled?: boolean;
  /** What the audit event says created the link. */
  via?: 'login' | 'sync';
}

export async function linkIdentity(store: Store, identity: UpstreamIdentity, options: LinkOptions = {}): Promise<LinkedLogin> {
  if (identity.localUserId) {
    const user = await store.users.findById(identity.localUserId);
    if (!user) throw userGone();
    return { user, federatedIdentityId: null, created: false };
  }

  const existing = await store.identities.find(identity.connectorId, identity.subject);
  if (existing) {
    return store.transaction(async (tx) => {
      await tx.identities.recordLogin(existing.id, { username: identity.username ?? null, email: identity.email ?? null, data: upstreamData(identity) });
      if (identity.groups) await tx.groups.setMemberships(existing.userId, identity.groups, identity.connectorId);
      const user = await tx.users.findById(existing.userId);
      if (!user) throw userGone();
      return { user: await followUpstreamProfile(tx, user, identity), federatedIdentityId: existing.id, created: false };
    });
  }

  // First login through this connector: create the local user. Two concurrent first logins of
  // the same identity race on the (connector, subject) unique key; the loser re-reads.
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
      const fed = await tx.identities.create({
        userId: user.id,
        connectorId: identity.connectorId,
        subject: identity.subject,
        username: identity.username ?? null,
        email: identity.email ?? null,
        data: upstreamData(identity),
      });
      await tx.identities.recordLogin(fed.id, {});
      if (identity.groups?.length) await tx.groups.setMemberships(user.id, identity.groups, identity.connectorId);
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
