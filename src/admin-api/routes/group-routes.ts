// Groups: CRUD, members and nesting (src/management/groups.ts). Groups and memberships asserted by
// an upstream or the config file are listed with their source and refused (409) for changes.
import { z } from 'zod';
import type { Store } from '../../storage/store.ts';
import { defineRoute, type AdminRoute } from '../admin-route.ts';
import { decodeCursor, encodeCursor, pageOf, pageQuery } from '../admin-support.ts';
import * as groups from '../../management/groups.ts';

const NAME_MAX = 200;

const id = (what: string) => z.string().min(1).max(128).describe(`The ${what}'s id.`);
const groupName = z
  .string()
  .max(NAME_MAX * 2)
  .transform(groups.normalizeGroupName)
  .pipe(
    z
      .string()
      .min(1, 'must not be empty')
      .max(NAME_MAX, `must be at most ${NAME_MAX} characters`)
      .refine((v) => !/\p{C}/u.test(v), 'must not contain control or invisible format characters'),
  )
  .describe('Unique (case-insensitively, after NFKC); shown in the groups claim.');
const description = z.string().max(1000).nullable().describe('Free text for administrators.');

const groupRef = z.object({ id: z.string(), name: z.string() });
const groupSchema = z.object({
  id: z.string(),
  name: z.string(),
  description: z.string().nullable(),
  source: z.string().describe("'local' (managed here), 'config', or the id of the connector that brought the group in."),
  readOnly: z.boolean().describe('True when the group belongs to the config file or an upstream: it cannot be renamed, deleted or given members here.'),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});
const groupDetailSchema = groupSchema.extend({
  parents: z.array(groupRef).describe('The groups this group is inside (its members are members of these too).'),
  subgroups: z.array(groupRef).describe('The groups inside this one.'),
});
const memberSchema = z.object({
  userId: z.string(),
  username: z.string(),
  sources: z.array(z.string()).describe("Who asserts the membership: 'local', 'config' or a connector id."),
  readOnly: z.boolean().describe('True when no local membership exists (only its sources can remove it).'),
});

const groupParams = z.object({ id: id('group') });
const memberParams = z.object({ id: id('group'), userId: id('user') });
const nestParams = z.object({ id: id('parent group'), childId: id('child group') });

export function groupRoutes(deps: { store: Store }): AdminRoute[] {
  const { store } = deps;
  const common = { resource: 'groups', tag: 'Groups' } as const;
  return [
    defineRoute({
      ...common,
      method: 'get',
      path: '/groups',
      access: 'read',
      operationId: 'listGroups',
      summary: 'List groups',
      description: 'By name; `q` matches a part of the name or description (case-insensitive).',
      query: z.object({ ...pageQuery, q: z.string().min(1).max(200).optional().describe('Part of a name or description.') }),
      responses: { 200: { description: 'A page of groups.', schema: pageOf(groupSchema) } },
      async handler({ query }) {
        const after = decodeCursor(query.cursor, ['string']);
        const items = await groups.listGroups(store, { q: query.q, afterName: after?.[0] as string | undefined, limit: query.limit + 1 });
        const page = items.slice(0, query.limit);
        return { body: { items: page, nextCursor: items.length > query.limit ? encodeCursor([page.at(-1)!.name]) : null } };
      },
    }),
    defineRoute({
      ...common,
      method: 'get',
      path: '/group-nesting',
      access: 'read',
      operationId: 'listGroupNesting',
      summary: 'List every nesting of groups',
      description: 'Every (parent, child) pair in one answer, ordered by parent id then child id, so a client can draw the tree of groups without reading each group.',
      responses: { 200: { description: 'All nestings.', schema: z.object({ items: z.array(z.object({ parentId: z.string().describe('The group the child is inside.'), childId: z.string() })) }) } },
      async handler() {
        return { body: { items: await groups.listNesting(store) } };
      },
    }),
    defineRoute({
      ...common,
      method: 'get',
      path: '/groups/{id}',
      access: 'read',
      operationId: 'getGroup',
      summary: 'Get a group',
      params: groupParams,
      responses: { 200: { description: 'The group, with its parents and subgroups.', schema: groupDetailSchema } },
      async handler({ params }) {
        const { group, etag } = await groups.getGroup(store, params.id);
        return { body: group, etag };
      },
    }),
    defineRoute({
      ...common,
      method: 'post',
      path: '/groups',
      access: 'write',
      operationId: 'createGroup',
      summary: 'Create a local group',
      body: z.strictObject({ name: groupName, description: description.optional() }),
      responses: {
        201: { description: 'Created.', schema: groupDetailSchema },
        409: { description: 'A group with this name exists.' },
      },
      async handler({ body, audit }) {
        const { group, etag } = await groups.createGroup(store, body);
        await audit({ action: 'group.create', target: { kind: 'group', id: group.id }, before: null, after: { name: group.name, description: group.description } });
        return { status: 201, body: group, etag, headers: { Location: `/admin/api/v1/groups/${encodeURIComponent(group.id)}` } };
      },
    }),
    defineRoute({
      ...common,
      method: 'patch',
      path: '/groups/{id}',
      access: 'write',
      operationId: 'updateGroup',
      summary: 'Rename or describe a local group',
      description: 'Send If-Match with the ETag last read; a rename changes the groups claim of every member (and of members of its subgroups).',
      params: groupParams,
      body: z.strictObject({ name: groupName.optional(), description: description.optional() }),
      responses: {
        200: { description: 'The group after the change.', schema: groupDetailSchema },
        409: { description: 'The group is read-only (config or upstream), or the new name is taken.' },
      },
      async handler({ params, body, ifMatch, audit }) {
        const { before, group, etag } = await groups.updateGroup(store, params.id, body, ifMatch);
        if (before.name !== group.name || before.description !== group.description) {
          await audit({ action: 'group.update', target: { kind: 'group', id: group.id }, before: { name: before.name, description: before.description }, after: { name: group.name, description: group.description } });
        }
        return { body: group, etag };
      },
    }),
    defineRoute({
      ...common,
      method: 'delete',
      path: '/groups/{id}',
      access: 'write',
      operationId: 'deleteGroup',
      summary: 'Delete a local group',
      description: 'Its memberships and nesting go with it. Deleting it again answers 404.',
      params: groupParams,
      responses: { 204: { description: 'Deleted.' }, 409: { description: 'The group is read-only (config or upstream).' } },
      async handler({ params, ifMatch, audit }) {
        const before = await groups.deleteGroup(store, params.id, ifMatch);
        await audit({ action: 'group.delete', target: { kind: 'group', id: before.id }, before: { name: before.name, description: before.description }, after: null });
        return {};
      },
    }),
    defineRoute({
      ...common,
      method: 'get',
      path: '/groups/{id}/members',
      access: 'read',
      operationId: 'listGroupMembers',
      summary: "List a group's direct members",
      description: 'By username, each with the sources that assert the membership. Members of subgroups are not listed here.',
      params: groupParams,
      query: z.object(pageQuery),
      responses: { 200: { description: 'A page of members.', schema: pageOf(memberSchema) } },
      async handler({ params, query }) {
        const after = decodeCursor(query.cursor, ['string', 'string']) as [string, string] | null;
        const items = await groups.listMembers(store, params.id, { after: after ?? undefined, limit: query.limit + 1 });
        const page = items.slice(0, query.limit);
        const last = page.at(-1);
        return { body: { items: page, nextCursor: items.length > query.limit && last ? encodeCursor([last.username, last.userId]) : null } };
      },
    }),
    defineRoute({
      ...common,
      method: 'put',
      path: '/groups/{id}/members/{userId}',
      access: 'write',
      operationId: 'addGroupMember',
      summary: 'Add a user to a local group',
      description: 'Idempotent: adding a member again changes nothing.',
      params: memberParams,
      responses: { 204: { description: 'The user is a (local) member.' }, 409: { description: 'The group is read-only (config or upstream).' } },
      async handler({ params, audit }) {
        const { group, changed, username } = await groups.addMember(store, params.id, params.userId);
        if (changed) await audit({ action: 'group.member_add', target: { kind: 'user', id: params.userId }, details: { groupId: group.id, group: group.name, username } });
        return {};
      },
    }),
    defineRoute({
      ...common,
      method: 'delete',
      path: '/groups/{id}/members/{userId}',
      access: 'write',
      operationId: 'removeGroupMember',
      summary: 'Remove a user from a local group',
      params: memberParams,
      responses: { 204: { description: 'Removed.' }, 409: { description: 'The membership is asserted by an upstream or the config file.' } },
      async handler({ params, audit }) {
        const { group } = await groups.removeMember(store, params.id, params.userId);
        await audit({ action: 'group.member_remove', target: { kind: 'user', id: params.userId }, details: { groupId: group.id, group: group.name } });
        return {};
      },
    }),
    defineRoute({
      ...common,
      method: 'put',
      path: '/groups/{id}/subgroups/{childId}',
      access: 'write',
      operationId: 'addSubgroup',
      summary: 'Put a group inside this group',
      description: "The child's members become members of this group and of its ancestors in the groups claim. A nesting that would make a cycle is refused (409 naming it), also when two requests race.",
      params: nestParams,
      responses: { 204: { description: 'The child is inside this group.' }, 409: { description: 'The nesting would make a cycle.' } },
      async handler({ params, audit }) {
        const { parent, child, changed } = await groups.nestGroup(store, params.id, params.childId);
        if (changed) await audit({ action: 'group.subgroup_add', target: { kind: 'group', id: parent.id }, details: { parent: parent.name, childId: child.id, child: child.name } });
        return {};
      },
    }),
    defineRoute({
      ...common,
      method: 'delete',
      path: '/groups/{id}/subgroups/{childId}',
      access: 'write',
      operationId: 'removeSubgroup',
      summary: 'Take a group out of this group',
      params: nestParams,
      responses: { 204: { description: 'Removed.' } },
      async handler({ params, audit }) {
        const { parent, child } = await groups.unnestGroup(store, params.id, params.childId);
        await audit({ action: 'group.subgroup_remove', target: { kind: 'group', id: parent.id }, details: { parent: parent.name, childId: child.id, child: child.name } });
        return {};
      },
    }),
  ];
}
