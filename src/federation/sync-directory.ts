// User federation: import every user a directory connector lists into the local store. New
// entries become local users (managed by the connector; a page's new users in one transaction of
// multi-row statements), changed ones are updated (each in its own transaction), unchanged ones
// cost one batched timestamp write per page, and users whose entry is gone are disabled. A
// failure mid-run leaves every user either as before or fully updated, and the removal pass only
// runs after a complete listing.
import { createHash } from 'node:crypto';
import type { DirectorySync, SyncedUser, UpstreamIdentity } from '../connectors/contract.ts';
import { followUpstreamProfile, linkIdentity, upstreamData as storedUpstreamData, wantedUsername } from '../accounts/link-identity.ts';
import { AlreadyExists } from '../errors.ts';
import { applyMappers, mapsAnything, type Mappers } from '../accounts/identity-mappers.ts';
import { usernameKey } from '../accounts/normalize-username.ts';
import type { Store } from '../storage/store.ts';
import type { FederatedIdentity } from '../storage/types.ts';

export interface SyncProgress {
  /** Users the directory said it holds (null if it cannot tell). */
  total: number | null;
  processed: number;
  created: number;
  updated: number;
  unchanged: number;
  /** Users disabled because their entry is gone or the directory blocks them. */
  disabled: number;
  /** Users enabled again because their entry came back or was unblocked. */
  enabled: number;
  groups: number;
}

export interface SyncOptions {
  onProgress?: (progress: Readonly<SyncProgress>) => void;
  /** The connector's mappers: imported users land in the mapped local groups, as on login. */
  mappers?: Mappers;
}

/** What a login would store, plus the upstream's verdict; groups sorted so equal data digests equally. */
function upstreamData(user: SyncedUser): Record<string, unknown> {
  const groups = [...(user.identity.groups ?? [])].sort();
  return { ...storedUpstreamData({ ...user.identity, groups }), blocked: user.blocked };
}

function digestOf(user: SyncedUser): string {
  const id = user.identity;
  const canonical = JSON.stringify([id.username ?? null, id.email ?? null, upstreamData(user)]);
  return createHash('sha256').update(canonical).digest('base64url');
}

/** Runs one import; the audit trail gets `sync.completed` with the counts or `sync.failed` with the error. */
export async function syncDirectory(store: Store, connectorId: string, sync: DirectorySync, options: SyncOptions = {}): Promise<SyncProgress> {
  try {
    const progress = await runImport(store, connectorId, sync, options);
    await store.audit.record({ type: 'sync.completed', connectorId, details: { ...progress } });
    return progress;
  } catch (err) {
    await store.audit.record({ type: 'sync.failed', outcome: 'failure', connectorId, details: { error: (err as Error).message } }).catch(() => {});
    throw err;
  }
}

async function runImport(store: Store, connectorId: string, sync: DirectorySync, options: SyncOptions): Promise<SyncProgress> {
  const runStart = new Date();
  const progress: SyncProgress = { total: null, processed: 0, created: 0, updated: 0, unchanged: 0, disabled: 0, enabled: 0, groups: 0 };
  const report = () => options.onProgress?.({ ...progress });
  if (sync.countUsers) progress.total = await sync.countUsers();
  report();

  if (sync.listGroups) {
    const names = await sync.listGroups();
    for (let i = 0; i < names.length; i += 500) await store.groups.ensure(names.slice(i, i + 500), connectorId);
    progress.groups = names.length;
  }

  const mappers = options.mappers;
  const mapGroups = mappers && mapsAnything(mappers) ? (identity: UpstreamIdentity) => applyMappers(identity, mappers).groups : null;
  for await (const page of sync.listUsers()) {
    const known = await store.identities.findMany(connectorId, page.map((u) => u.identity.subject));
    const unchanged: string[] = [];
    const fresh: NewEntry[] = [];
    for (const listed of page) {
      // Memberships are what the mappers make of the upstream groups; the digest covers the
      // mapped result, so a changed mapper config re-applies on the next import.
      const user = mapGroups ? { ...listed, identity: { ...listed.identity, groups: mapGroups(listed.identity) } } : listed;
      const identity: UpstreamIdentity = { ...user.identity, connectorId };
      const digest = digestOf(user);
      const existing = known.get(identity.subject);
      if (existing && existing.digest === digest && !existing.removedAt) {
        unchanged.push(existing.id);
      } else if (existing) {
        await applyChange(store, existing, identity, user, digest, runStart, progress);
        progress.updated += 1;
      } else {
        fresh.push({ identity, user, digest });
      }
      progress.processed += 1;
    }
    await importNewPage(store, connectorId, fresh, runStart);
    progress.created += fresh.length;
    progress.disabled += fresh.filter((f) => f.user.blocked).length;
    await store.identities.touchSynced(unchanged, runStart);
    progress.unchanged += unchanged.length;
    report();
  }

  if (progress.processed === 0 && (await store.identities.listUnseen(connectorId, runStart, 1)).length > 0) {
    // An empty listing with users known from before is far likelier a wrong base DN or filter
    // than a directory emptied overnight: disabling everyone would lock the whole company out.
    throw new Error('the directory listed no users although users were imported before; nothing was disabled (check users.baseDn and users.filter)');
  }
  await markRemoved(store, connectorId, sync.disableRemoved, runStart, progress);
  report();
  return progress;
}

interface NewEntry {
  identity: UpstreamIdentity;
  user: SyncedUser;
  digest: string;
}

/**
 * New entries of one page in one transaction and a handful of multi-row statements. Entries whose
 * wanted username is taken (or repeated within the page) go through the one-by-one path, which
 * finds a free variant. If anything collides underneath (a concurrent login linked one of these
 * users meanwhile), the page falls back to one by one.
 */
async function importNewPage(store: Store, connectorId: string, entries: NewEntry[], runStart: Date): Promise<void> {
  if (!entries.length) return;
  let slow: NewEntry[] = [];
  try {
    slow = await store.transaction(async (tx) => {
      const taken = await tx.users.takenUsernames(entries.map((e) => wantedUsername(e.identity)));
      const emails = entries.map((e) => e.identity.email).filter((e): e is string => Boolean(e));
      const takenEmails = await tx.users.takenEmails(emails);
      const fast: NewEntry[] = [];
      const deferred: NewEntry[] = [];
      for (const entry of entries) {
        const name = usernameKey(wantedUsername(entry.identity));
        const email = entry.identity.email?.toLowerCase();
        if (taken.has(name) || (email && takenEmails.has(email))) {
          deferred.push(entry);
          continue;
        }
        taken.add(name);
        if (email) takenEmails.add(email);
        fast.push(entry);
      }
      const users = await tx.users.createMany(fast.map(({ identity, user }) => ({
        username: wantedUsername(identity),
        email: identity.email ?? null,
        emailVerified: Boolean(identity.email && identity.emailVerified),
        name: identity.name ?? null,
        givenName: identity.givenName ?? null,
        familyName: identity.familyName ?? null,
        managedBy: connectorId,
        enabled: !user.blocked,
      })));
      const byUsername = new Map(users.map((u) => [usernameKey(u.username), u]));
      const created = fast.map((entry) => ({ entry, user: byUsername.get(usernameKey(wantedUsername(entry.identity)))! }));
      await tx.identities.createMany(created.map(({ entry, user }) => ({ userId: user.id, connectorId, subject: entry.identity.subject, ...fields(entry.identity, entry.user, entry.digest, runStart) })));
      await tx.groups.addMemberships(created.flatMap(({ entry, user }) => (entry.identity.groups ?? []).map((group) => ({ userId: user.id, group }))), connectorId);
      await tx.audit.recordMany(created.map(({ entry, user }) => ({ type: 'identity.linked', userId: user.id, connectorId, details: { subject: entry.identity.subject, created: true, via: 'sync' } })));
      return deferred;
    });
  } catch (err) {
    if (!(err instanceof AlreadyExists)) throw err;
    slow = entries;
  }
  for (const entry of slow) await importNew(store, entry.identity, entry.user, entry.digest, runStart);
}

async function importNew(store: Store, identity: UpstreamIdentity, user: SyncedUser, digest: string, runStart: Date): Promise<void> {
  await store.transaction(async (tx) => {
    const linked = await linkIdentity(tx, identity, { enabled: !user.blocked, via: 'sync' });
    await tx.identities.recordSync(linked.federatedIdentityId!, fields(identity, user, digest, runStart));
  });
}

async function applyChange(store: Store, existing: FederatedIdentity, identity: UpstreamIdentity, user: SyncedUser, digest: string, runStart: Date, progress: SyncProgress): Promise<void> {
  await store.transaction(async (tx) => {
    await tx.identities.recordSync(existing.id, fields(identity, user, digest, runStart));
    await tx.groups.setMemberships(existing.userId, identity.groups ?? [], identity.connectorId);
    const current = await tx.users.findById(existing.userId);
    if (!current) return;
    const local = await followUpstreamProfile(tx, current, identity);
    if (local.managedBy !== identity.connectorId) return;
    // The directory decides whether users it manages may sign in: blocked upstream means
    // disabled here; back (or unblocked) upstream means enabled again.
    const wasBlocked = Boolean(existing.removedAt) || Boolean((existing.data as { blocked?: unknown }).blocked);
    if (user.blocked && local.enabled) {
      await tx.users.update(local.id, { enabled: false });
      await tx.audit.record({ type: 'user.disabled', userId: local.id, connectorId: identity.connectorId, details: { reason: user.blocked, via: 'sync' } });
      progress.disabled += 1;
    } else if (!user.blocked && wasBlocked && !local.enabled) {
      await tx.users.update(local.id, { enabled: true });
      await tx.audit.record({ type: 'user.enabled', userId: local.id, connectorId: identity.connectorId, details: { reason: 'back_upstream', via: 'sync' } });
      progress.enabled += 1;
    }
  });
}

function fields(identity: UpstreamIdentity, user: SyncedUser, digest: string, syncedAt: Date) {
  return { username: identity.username ?? null, email: identity.email ?? null, data: upstreamData(user), digest, syncedAt };
}

/** Identities this run did not see are gone upstream: mark them, and disable users the connector manages. */
async function markRemoved(store: Store, connectorId: string, disable: boolean, runStart: Date, progress: SyncProgress): Promise<void> {
  for (;;) {
    const gone = await store.identities.listUnseen(connectorId, runStart, 200);
    if (!gone.length) return;
    for (const fed of gone) {
      await store.transaction(async (tx) => {
        await tx.identities.markRemoved(fed.id, runStart);
        const user = await tx.users.findById(fed.userId);
        if (!disable || !user || user.managedBy !== connectorId || !user.enabled) return;
        await tx.users.update(user.id, { enabled: false });
        await tx.audit.record({ type: 'user.disabled', userId: user.id, connectorId, details: { reason: 'removed_upstream', via: 'sync' } });
        progress.disabled += 1;
      });
    }
  }
}
