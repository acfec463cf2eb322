// Groups as an administrator manages them: local groups are created, renamed, nested and given
// members here; groups and memberships that an upstream (a connector's sync or mappers) or the
// config file asserts are shown with their source and left alone, since that source would put
// them back on its next run. A group inside a group passes its members up: a member of a child is
// a member of every ancestor in the `groups` claim.
import type { Store } from '../storage/store.ts';
import type { Group, GroupMember } from '../storage/types.ts';
import { GroupCycle } from '../storage/group-repository.ts';
import { KeybridgeError, NotFound } from '../errors.ts';
import { checkIfMatch, etagOf } from '../admin-api/admin-support.ts';

export const LOCAL = 'local';

export interface GroupRef {
  id: string;
  name: string;
}

export interface GroupView {
  id: string;
  name: string;
  description: string | null;
  source: string;
  readOnly: boolean;
  createdAt: string;
  updatedAt: string;
}

export interface GroupDetail extends GroupView {
  parents: GroupRef[];
  subgroups: GroupRef[];
}

export interface MemberView {
  userId: string;
  username: string;
  sources: string[];
  readOnly: boolean;
}

/** Something a source other than the admin owns (409). */
const sourceNames = (sources: readonly string[]) => sources.map((s) => (s === 'config' ? 'the config file' : `connector "${s}"`)).join(', ');

export class ReadOnly extends KeybridgeError {
  constructor(what: string, sources: readonly string[], message = `${what} is managed by ${sourceNames(sources)} and cannot be changed through the API.`) {
    super('read_only', message, { status: 409, expose: true });
  }
}

export class Cycle extends KeybridgeError {
  readonly path: GroupRef[];

  constructor(cycle: GroupCycle) {
    super('cycle', `Refused: ${cycle.message}.`, { status: 409, expose: true });
    this.path = cycle.path.map((g) => ({ id: g.id, name: g.name }));
  }
}

/** NFKC and trimmed, as usernames are; control and invisible characters are refused by the schema. */
export const normalizeGroupName = (name: string) => name.normalize('NFKC').trim();

export function groupView(g: Group): GroupView {
  return { id: g.id, name: g.name, description: g.description, source: g.source, readOnly: g.source !== LOCAL, createdAt: g.createdAt.toISOString(), updatedAt: g.updatedAt.toISOString() };
}

const ref = (g: Group): GroupRef => ({ id: g.id, name: g.name });

async function detail(store: Store, group: Group): Promise<GroupDetail> {
  const { parents, children } = await store.groups.neighbours(group.id);
  return { ...groupView(group), parents: parents.map(ref), subgroups: children.map(ref) };
}

async function existing(store: Store, id: string, lock = false): Promise<Group> {
  const group = lock ? await store.groups.lock(id) : await store.groups.findById(id);
  if (!group) throw new NotFound(`group "${id}"`);
  return group;
}

function writable(group: Group): void {
  if (group.source !== LOCAL) throw new ReadOnly(`Group "${group.name}"`, [group.source]);
}

/** A name that differs from an existing group's only by case or Unicode compatibility form is refused. */
async function nameFree(store: Store, name: string, except?: string): Promise<void> {
  const clash = await store.knex('groups').whereRaw('lower(name) = lower(?)', [name]).modify((q) => (except ? q.whereNot('id', except) : q)).first('name');
  if (clash) throw new KeybridgeError('already_exists', `A group named "${clash.name as string}" already exists.`, { status: 409, expose: true });
}

/** A local group that an upstream or the config file also asserts members of keeps its name and existence. */
async function noOtherSources(store: Store, group: GroupView, what: 'renamed' | 'deleted'): Promise<void> {
  const others = (await store.groups.sourcesIn(group.id)).filter((s) => s !== LOCAL);
  if (others.length) throw new ReadOnly(group.name, others, `Group "${group.name}" cannot be ${what} through the API: ${sourceNames(others)} also asserts members of it (by its name).`);
}

export async function listGroups(store: Store, options: { q?: string; afterName?: string; limit: number }): Promise<GroupView[]> {
  return (await store.groups.page(options)).map(groupView);
}

/** Every nesting (child inside parent), so a client can draw the whole tree with one request. */
export async function listNesting(store: Store): Promise<{ parentId: string; childId: string }[]> {
  const rows = await store.knex('group_parents').select('parent_id', 'group_id').orderBy([{ column: 'parent_id' }, { column: 'group_id' }]);
  return rows.map((r: { parent_id: string; group_id: string }) => ({ parentId: r.parent_id, childId: r.group_id }));
}

export async function getGroup(store: Store, id: string): Promise<{ group: GroupDetail; etag: string }> {
  const group = await detail(store, await existing(store, id));
  return { group, etag: etagOf(group) };
}

export async function createGroup(store: Store, input: { name: string; description?: string | null }): Promise<{ group: GroupDetail; etag: string }> {
  return store.transaction(async (tx) => {
    const name = normalizeGroupName(input.name);
    await nameFree(tx, name);
    const group = await detail(tx, await tx.groups.create(name, input.description ?? null, LOCAL));
    return { group, etag: etagOf(group) };
  });
}

/** Renames or redescribes a local group; `ifMatch` is checked against its current ETag under a row lock. */
export async function updateGroup(store: Store, id: string, patch: { name?: string; description?: string | null }, ifMatch: string[] | null): Promise<{ before: GroupDetail; group: GroupDetail; etag: string }> {
  return store.transaction(async (tx) => {
    const before = await detail(tx, await existing(tx, id, true));
    checkIfMatch(ifMatch, etagOf(before));
    if (before.readOnly) throw new ReadOnly(`Group "${before.name}"`, [before.source]);
    const changes: { name?: string; description?: string | null } = {};
    if (patch.name !== undefined && normalizeGroupName(patch.name) !== before.name) {
      changes.name = normalizeGroupName(patch.name);
      // Upstreams assert memberships by group name: renamed, the group would lose them at their next run.
      await noOtherSources(tx, before, 'renamed');
      await nameFree(tx, changes.name, id);
    }
    if (patch.description !== undefined && patch.description !== before.description) changes.description = patch.description;
    const updated = Object.keys(changes).length ? await tx.groups.update(id, changes) : await existing(tx, id);
    const group = await detail(tx, updated!);
    return { before, group, etag: etagOf(group) };
  });
}

/** Deletes a local group with its memberships and nesting; its members lose it (and its ancestors) at once. */
export async function deleteGroup(store: Store, id: string, ifMatch: string[] | null): Promise<GroupDetail> {
  return store.transaction(async (tx) => {
    const before = await detail(tx, await existing(tx, id, true));
    checkIfMatch(ifMatch, etagOf(before));
    if (before.readOnly) throw new ReadOnly(`Group "${before.name}"`, [before.source]);
    await noOtherSources(tx, before, 'deleted');
    await tx.groups.delete(id);
    return before;
  });
}

export function memberView(m: GroupMember): MemberView {
  return { userId: m.userId, username: m.username, sources: m.sources, readOnly: !m.sources.includes(LOCAL) };
}

export async function listMembers(store: Store, id: string, options: { after?: [string, string]; limit: number }): Promise<MemberView[]> {
  await existing(store, id);
  return (await store.groups.members(id, options)).map(memberView);
}

/** Adds a local membership; false when the user already had one. */
export async function addMember(store: Store, groupId: string, userId: string): Promise<{ group: Group; changed: boolean; username: string }> {
  return store.transaction(async (tx) => {
    const group = await existing(tx, groupId, true);
    writable(group);
    const user = await tx.users.findById(userId).catch(() => null);
    if (!user) throw new NotFound(`user "${userId}"`);
    return { group, changed: await tx.groups.setMember(groupId, userId, true, LOCAL), username: user.username };
  });
}

/** Removes a local membership; one another source asserts is read-only. */
export async function removeMember(store: Store, groupId: string, userId: string): Promise<{ group: Group }> {
  return store.transaction(async (tx) => {
    const group = await existing(tx, groupId, true);
    const sources = await tx.groups.membershipSources(groupId, userId);
    if (!sources.length) throw new NotFound(`membership of user "${userId}" in group "${group.name}"`);
    const others = sources.filter((s) => s !== LOCAL);
    if (others.length) throw new ReadOnly(`This membership of group "${group.name}"`, others);
    await tx.groups.setMember(groupId, userId, false, LOCAL);
    return { group };
  });
}

/**
 * Puts `childId` inside `parentId`. Nesting is local data, so an upstream's group may be put
 * inside a local one (or hold one): the upstream's own groups and memberships stay untouched.
 */
export async function nestGroup(store: Store, parentId: string, childId: string): Promise<{ parent: Group; child: Group; changed: boolean }> {
  return store.transaction(async (tx) => {
    const parent = await existing(tx, parentId);
    const child = await existing(tx, childId);
    try {
      return { parent, child, changed: await tx.groups.nest(childId, parentId) };
    } catch (err) {
      if (err instanceof GroupCycle) throw new Cycle(err);
      throw err;
    }
  });
}

export async function unnestGroup(store: Store, parentId: string, childId: string): Promise<{ parent: Group; child: Group }> {
  return store.transaction(async (tx) => {
    const parent = await existing(tx, parentId);
    const child = await existing(tx, childId);
    if (!(await tx.groups.unnest(childId, parentId))) throw new NotFound(`group "${child.name}" inside group "${parent.name}"`);
    return { parent, child };
  });
}
