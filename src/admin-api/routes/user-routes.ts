// Users, their linked identities and groups (resource `users`), and their browser sessions and
// grants (resource `sessions`). Thin: the rules live in src/management/users.ts.
import { z } from 'zod';
import type { FederatedIdentity } from '../../storage/types.ts';
import type { UserGrant, UserSession } from '../../storage/user-session-repository.ts';
import type { EndedSession } from '../../oidc/end-sessions.ts';
import { USERNAME_MAX } from '../../accounts/normalize-username.ts';
import { PASSWORD_MAX, type AccessEnded, type UserService } from '../../management/users.ts';
import { defineRoute, type AdminRoute } from '../admin-route.ts';
import { decodeCursor, encodeCursor, pageOf, pageQuery } from '../admin-support.ts';

const id = z.string().min(1).max(128);
const userParams = z.object({ id: id.describe('The user id.') });
const text = (max: number) => z.string().max(max);
const date = z.iso.datetime();

export const userSchema = z.object({
  id: z.string(),
  username: z.string(),
  email: z.string().nullable(),
  emailVerified: z.boolean(),
  name: z.string().nullable(),
  givenName: z.string().nullable(),
  familyName: z.string().nullable(),
  enabled: z.boolean(),
  attributes: z.record(z.string(), z.unknown()),
  source: z.enum(['config', 'upstream', 'local']).describe('config: declared in the config file, read-only. upstream: the profile is owned by the connector in managedBy. local: managed here.'),
  managedBy: z.string().nullable().describe('The connector whose upstream owns the profile.'),
  hasPassword: z.boolean(),
  createdAt: date,
  updatedAt: date,
});

const attributes = z
  .record(text(128), z.unknown())
  .refine((a) => Object.keys(a).length <= 100, 'must have at most 100 attributes')
  .describe('Free-form attributes (at most 100), available to claim mappers.');

const profileFields = {
  email: z.email('must be an email address').max(320).nullable(),
  emailVerified: z.boolean(),
  name: text(200).nullable(),
  givenName: text(200).nullable(),
  familyName: text(200).nullable(),
  attributes,
};

const username = z.string().min(1).max(USERNAME_MAX * 4).describe(`At most ${USERNAME_MAX} characters, no "@", no whitespace; compared case- and width-insensitively (RFC 8265).`);
const password = z.string().min(1).max(PASSWORD_MAX).describe('Must meet the password policy (passwordPolicy: length, breached list, strength, history); a refusal is a 400 `password_rejected` problem whose errors[0].code says why.');

const createBody = z.strictObject({
  username,
  ...Object.fromEntries(Object.entries(profileFields).map(([k, v]) => [k, v.optional()])),
  enabled: z.boolean().optional(),
  password: password.optional().describe('Optional initial password (stored as an argon2id hash).'),
}) as z.ZodType<{ username: string; email?: string | null; emailVerified?: boolean; name?: string | null; givenName?: string | null; familyName?: string | null; attributes?: Record<string, unknown>; enabled?: boolean; password?: string }>;

const patchBody = z.strictObject({
  username: username.optional(),
  ...Object.fromEntries(Object.entries(profileFields).map(([k, v]) => [k, v.optional()])),
}) as z.ZodType<{ username?: string; email?: string | null; emailVerified?: boolean; name?: string | null; givenName?: string | null; familyName?: string | null; attributes?: Record<string, unknown> }>;

const identitySchema = z.object({
  id: z.string(),
  connectorId: z.string(),
  subject: z.string(),
  username: z.string().nullable(),
  email: z.string().nullable(),
  createdAt: date,
  lastLoginAt: date.nullable(),
  syncedAt: date.nullable().describe('When a directory import last saw it.'),
  removedAt: date.nullable().describe('When an import found it gone upstream.'),
});

const sessionSchema = z.object({
  uid: z.string().describe('The session uid (the `sid` base of its tokens).'),
  createdAt: date.nullable(),
  authenticatedAt: date.nullable(),
  lastUsedAt: date.nullable().describe('When a token was last issued in this session.'),
  expiresAt: date.nullable(),
  connectorId: z.string().nullable(),
  ip: z.string().nullable().describe('The address the person signed in from, when recorded.'),
  userAgent: z.string().nullable().describe('The browser\'s User-Agent when the person signed in (printable, at most 512 characters), when recorded.'),
  amr: z.array(z.string()),
  clients: z.array(z.string()),
});

const grantSchema = z.object({
  id: z.string(),
  clientId: z.string(),
  scopes: z.array(z.string()),
  resources: z.record(z.string(), z.array(z.string())).describe('Scopes granted per resource server.'),
  createdAt: date.nullable(),
  expiresAt: date.nullable(),
});

const endedSchema = z.object({ sessionUid: z.string(), notified: z.array(z.string()).describe('Clients told by back-channel logout.'), failed: z.array(z.string()).describe('Clients whose back-channel logout endpoint failed.') });
const accessEndedSchema = z.object({ sessions: z.array(endedSchema), grantsRevoked: z.int().describe('Grant, code and token records deleted.') });

const iso = (d: Date | null) => d?.toISOString() ?? null;
const identityView = (f: FederatedIdentity): z.infer<typeof identitySchema> => ({
  id: f.id,
  connectorId: f.connectorId,
  subject: f.subject,
  username: f.username,
  email: f.email,
  createdAt: f.createdAt.toISOString(),
  lastLoginAt: iso(f.lastLoginAt),
  syncedAt: iso(f.syncedAt),
  removedAt: iso(f.removedAt),
});
const sessionView = (s: UserSession): z.infer<typeof sessionSchema> => ({ ...s, createdAt: iso(s.createdAt), authenticatedAt: iso(s.authenticatedAt), lastUsedAt: iso(s.lastUsedAt), expiresAt: iso(s.expiresAt) });
const grantView = (g: UserGrant): z.infer<typeof grantSchema> => ({ ...g, createdAt: iso(g.createdAt), expiresAt: iso(g.expiresAt) });
const endedView = (e: EndedSession) => ({ sessionUid: e.sessionUid, notified: e.notified, failed: e.failed });
const accessView = (a: AccessEnded) => ({ sessions: a.sessions.map(endedView), grantsRevoked: a.grantsRevoked });

const conflictDoc = { description: 'The user is declared in config (read-only), its profile is owned by an upstream, or the username or email is taken.' };
const readOnlyDoc = { description: 'The user is declared in config (read-only).' };
const staleDoc = { description: 'If-Match names an outdated ETag.' };

export function userRoutes(deps: { users: UserService }): AdminRoute[] {
  const { users } = deps;
  const target = (userId: string) => ({ kind: 'user', id: userId });
  const actor = (principal: { clientId: string; username: string | null }) => `admin:${principal.username ?? principal.clientId}`;

  return [
    defineRoute({
      method: 'get',
      path: '/users',
      resource: 'users',
      access: 'read',
      tag: 'Users',
      operationId: 'listUsers',
      summary: 'List and search users',
      description: 'Ordered by username (case-folded), then id. `q` is a case-insensitive prefix of the username, email or name.',
      query: z.object({
        q: z.string().trim().min(1).max(256).optional().describe('Prefix of the username, email or name (case-insensitive).'),
        group: z.string().min(1).max(200).optional().describe('Only members of this group (by name).'),
        connector: z.string().min(1).max(100).optional().describe('Only users linked to an identity of this connector, or managed by it.'),
        enabled: z.enum(['true', 'false']).optional().describe('Only enabled (true) or disabled (false) users.'),
        ...pageQuery,
      }),
      responses: { 200: { description: 'One page of users.', schema: pageOf(userSchema) } },
      async handler({ query }) {
        const after = decodeCursor(query.cursor, ['string', 'string']) as [string, string] | null;
        const page = await users.list({ q: query.q, group: query.group, connector: query.connector, enabled: query.enabled === undefined ? undefined : query.enabled === 'true', after: after ?? undefined, limit: query.limit });
        return { body: { items: page.items, nextCursor: page.next ? encodeCursor(page.next) : null } };
      },
    }),
    defineRoute({
      method: 'post',
      path: '/users',
      resource: 'users',
      access: 'write',
      tag: 'Users',
      operationId: 'createUser',
      summary: 'Create a local user',
      description: 'A username whose comparison key (case- and width-folded) matches an existing user is refused (409), so `Ａlice` cannot be created next to `alice`.',
      body: createBody,
      responses: { 201: { description: 'The user created.', schema: userSchema }, 409: { description: 'The username or email is taken.' } },
      async handler({ body, audit }) {
        const created = await users.create(body);
        await audit({ action: 'user.create', target: target(created.id), before: null, after: { ...created }, details: { initialPassword: body.password !== undefined } });
        return { status: 201, body: created, etag: users.etagOf(created), headers: { Location: `/admin/api/v1/users/${encodeURIComponent(created.id)}` } };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/users/{id}',
      resource: 'users',
      access: 'read',
      tag: 'Users',
      operationId: 'getUser',
      summary: 'Read one user',
      params: userParams,
      responses: { 200: { description: 'The user; its ETag goes back in If-Match.', schema: userSchema } },
      async handler({ params }) {
        const user = await users.get(params.id);
        return { body: user, etag: users.etagOf(user) };
      },
    }),
    defineRoute({
      method: 'patch',
      path: '/users/{id}',
      resource: 'users',
      access: 'write',
      tag: 'Users',
      operationId: 'updateUser',
      summary: "Update a user's profile",
      description: 'Fields given replace the stored ones; null clears. Refused (409) for users declared in config and for users whose profile an upstream owns.',
      params: userParams,
      body: patchBody,
      responses: { 200: { description: 'The user after the change.', schema: userSchema }, 409: conflictDoc },
      async handler({ params, body, ifMatch, audit }) {
        const { before, after } = await users.update(params.id, body, ifMatch);
        if (JSON.stringify(before) !== JSON.stringify(after)) await audit({ action: 'user.update', target: target(params.id), before: { ...before }, after: { ...after } });
        return { body: after, etag: users.etagOf(after) };
      },
    }),
    ...(['disable', 'enable'] as const).map((action) =>
      defineRoute({
        method: 'post',
        path: `/users/{id}/${action}`,
        resource: 'users',
        access: 'write',
        tag: 'Users',
        operationId: `${action}User`,
        summary: action === 'disable' ? 'Disable a user (ends their sessions and grants at once)' : 'Enable a user',
        description:
          action === 'disable'
            ? 'The user can no longer sign in; every browser session ends (with back-channel logout to the clients) and every grant is revoked with its tokens, so refresh, userinfo and introspection fail at once on every instance. Idempotent. Accepts If-Match.'
            : 'Idempotent. Accepts If-Match.',
        params: userParams,
        responses: {
          200: { description: 'The user after the change, and what was ended.', schema: z.object({ user: userSchema, ended: accessEndedSchema.nullable() }) },
          409: readOnlyDoc,
          412: staleDoc,
        },
        async handler({ params, ifMatch, audit }) {
          const { before, after, ended } = await users.setEnabled(params.id, action === 'enable', ifMatch);
          await audit({ action: `user.${action}`, target: target(params.id), before: { enabled: before.enabled }, after: { enabled: after.enabled }, ...(ended ? { details: { sessionsEnded: ended.sessions.length, grantsRevoked: ended.grantsRevoked } } : {}) });
          return { body: { user: after, ended: ended ? accessView(ended) : null }, etag: users.etagOf(after) };
        },
      }),
    ),
    defineRoute({
      method: 'delete',
      path: '/users/{id}',
      resource: 'users',
      access: 'write',
      tag: 'Users',
      operationId: 'deleteUser',
      summary: 'Delete a user',
      description: 'Ends their sessions and grants as a disable does, then deletes the user with its linked identities, credentials and memberships. A repeated delete answers 404.',
      params: userParams,
      responses: { 200: { description: 'The user is gone; what was ended.', schema: z.object({ ended: accessEndedSchema }) }, 409: readOnlyDoc },
      async handler({ params, ifMatch, audit }) {
        const { before, ended } = await users.remove(params.id, ifMatch);
        await audit({ action: 'user.delete', target: target(params.id), before: { ...before }, after: null, details: { sessionsEnded: ended.sessions.length, grantsRevoked: ended.grantsRevoked } });
        return { body: { ended: accessView(ended) } };
      },
    }),
    defineRoute({
      method: 'put',
      path: '/users/{id}/password',
      resource: 'users',
      access: 'write',
      tag: 'Users',
      operationId: 'setUserPassword',
      summary: "Set a user's password",
      description: 'Stored as an argon2id hash; never returned or audited. `endSessions: true` also signs the user out everywhere.',
      params: userParams,
      body: z.strictObject({ password, endSessions: z.boolean().default(false).describe('Also end every session and grant of the user.') }),
      responses: { 200: { description: 'The password is set.', schema: z.object({ user: userSchema, ended: accessEndedSchema.nullable() }) }, 409: { description: 'The user is declared in config or its profile is owned by an upstream.' } },
      async handler({ params, body, audit }) {
        const { user, ended } = await users.setPassword(params.id, body.password, { endSessions: body.endSessions });
        await audit({ action: 'user.set_password', target: target(params.id), details: { endSessions: body.endSessions } });
        return { body: { user, ended: ended ? accessView(ended) : null } };
      },
    }),
    defineRoute({
      method: 'post',
      path: '/users/{id}/password/reset',
      resource: 'users',
      access: 'write',
      tag: 'Users',
      operationId: 'resetUserPassword',
      summary: "Reset a user's password to a random one",
      description: 'The generated password is in this response only; it is stored as an argon2id hash and never audited. Also ends every session and grant of the user, and sets the required action update_password: the user chooses a new password at the next login.',
      params: userParams,
      responses: {
        200: { description: 'The new password, shown once.', schema: z.object({ user: userSchema, password: z.string().describe('Shown once; give it to the user over a safe channel.'), ended: accessEndedSchema.nullable() }) },
        409: { description: 'The user is declared in config or its profile is owned by an upstream.' },
      },
      async handler({ params, audit }) {
        const { user, password: generated, ended } = await users.resetPassword(params.id, { endSessions: true });
        await audit({ action: 'user.reset_password', target: target(params.id), details: { sessionsEnded: ended?.sessions.length ?? 0, grantsRevoked: ended?.grantsRevoked ?? 0 } });
        return { body: { user, password: generated, ended: ended ? accessView(ended) : null } };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/users/{id}/identities',
      resource: 'users',
      access: 'read',
      tag: 'Users',
      operationId: 'listUserIdentities',
      summary: 'List the upstream identities linked to a user',
      params: userParams,
      responses: { 200: { description: 'The linked identities, oldest first (no upstream tokens or raw attributes).', schema: z.object({ items: z.array(identitySchema) }) } },
      async handler({ params }) {
        return { body: { items: (await users.identities(params.id)).map(identityView) } };
      },
    }),
    defineRoute({
      method: 'delete',
      path: '/users/{id}/identities/{identityId}',
      resource: 'users',
      access: 'write',
      tag: 'Users',
      operationId: 'unlinkUserIdentity',
      summary: 'Unlink an upstream identity from a user',
      description: 'As `keybridge users unlink`: the user (and its sub) stays; memberships that connector asserted go. Allowed even for the last way to sign in; `canSignIn` then says false.',
      params: z.object({ id: id.describe('The user id.'), identityId: id.describe('The linked identity id.') }),
      responses: { 200: { description: 'Unlinked.', schema: z.object({ identity: identitySchema, canSignIn: z.boolean().describe('Whether the user still has a password or another linked identity.') }) } },
      async handler({ params, principal, audit }) {
        const { identity, canSignIn } = await users.unlink(params.id, params.identityId, actor(principal));
        await audit({ action: 'user.unlink_identity', target: target(params.id), details: { identityId: identity.id, connectorId: identity.connectorId, subject: identity.subject, canSignIn } });
        return { body: { identity: identityView(identity), canSignIn } };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/users/{id}/groups',
      resource: 'users',
      access: 'read',
      tag: 'Users',
      operationId: 'listUserGroups',
      summary: "List a user's groups",
      params: userParams,
      responses: {
        200: {
          description: 'The groups, by name, each with the sources asserting the membership.',
          schema: z.object({ items: z.array(z.object({ name: z.string(), sources: z.array(z.string()).describe("'local' (managed here), 'config', or the connector id that asserted it.") })) }),
        },
      },
      async handler({ params }) {
        return { body: { items: await users.groups(params.id) } };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/users/{id}/sessions',
      resource: 'sessions',
      access: 'read',
      tag: 'Sessions',
      operationId: 'listUserSessions',
      summary: "List a user's browser sessions",
      params: userParams,
      responses: { 200: { description: 'Live sessions, most recent sign-in first.', schema: z.object({ items: z.array(sessionSchema) }) } },
      async handler({ params }) {
        return { body: { items: (await users.sessions(params.id)).map(sessionView) } };
      },
    }),
    defineRoute({
      method: 'delete',
      path: '/users/{id}/sessions/{sessionUid}',
      resource: 'sessions',
      access: 'write',
      tag: 'Sessions',
      operationId: 'endUserSession',
      summary: 'End one browser session',
      description: "Back-channel logout to the session's clients; their grants are revoked unless they persist logout (offline_access).",
      params: z.object({ id: id.describe('The user id.'), sessionUid: id.describe('The session uid.') }),
      responses: { 200: { description: 'Ended.', schema: endedSchema } },
      async handler({ params, audit }) {
        const ended = await users.endSession(params.id, params.sessionUid);
        await audit({ action: 'session.revoke', target: target(params.id), details: endedView(ended) });
        return { body: endedView(ended) };
      },
    }),
    defineRoute({
      method: 'delete',
      path: '/users/{id}/sessions',
      resource: 'sessions',
      access: 'write',
      tag: 'Sessions',
      operationId: 'endUserSessions',
      summary: "End all of a user's browser sessions",
      params: userParams,
      responses: { 200: { description: 'The sessions ended.', schema: z.object({ items: z.array(endedSchema) }) } },
      async handler({ params, audit }) {
        const ended = await users.endAllSessions(params.id);
        if (ended.length) await audit({ action: 'session.revoke_all', target: target(params.id), details: { sessions: ended.map(endedView) } });
        return { body: { items: ended.map(endedView) } };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/users/{id}/grants',
      resource: 'sessions',
      access: 'read',
      tag: 'Sessions',
      operationId: 'listUserGrants',
      summary: "List a user's grants (what each client may do on their behalf)",
      params: userParams,
      responses: { 200: { description: 'Live grants, newest first.', schema: z.object({ items: z.array(grantSchema) }) } },
      async handler({ params }) {
        return { body: { items: (await users.grants(params.id)).map(grantView) } };
      },
    }),
    defineRoute({
      method: 'delete',
      path: '/users/{id}/grants/{grantId}',
      resource: 'sessions',
      access: 'write',
      tag: 'Sessions',
      operationId: 'revokeUserGrant',
      summary: 'Revoke one grant with its tokens',
      params: z.object({ id: id.describe('The user id.'), grantId: id.describe('The grant id.') }),
      responses: { 200: { description: 'Revoked.', schema: grantSchema } },
      async handler({ params, audit }) {
        const grant = await users.revokeGrant(params.id, params.grantId);
        await audit({ action: 'grant.revoke', target: target(params.id), details: { grantId: grant.id, clientId: grant.clientId } });
        return { body: grantView(grant) };
      },
    }),
    defineRoute({
      method: 'delete',
      path: '/users/{id}/grants',
      resource: 'sessions',
      access: 'write',
      tag: 'Sessions',
      operationId: 'revokeUserGrants',
      summary: "Revoke all of a user's grants with their tokens",
      params: userParams,
      responses: { 200: { description: 'The grants revoked.', schema: z.object({ items: z.array(grantSchema) }) } },
      async handler({ params, audit }) {
        const { grants, rows } = await users.revokeAllGrants(params.id);
        if (rows) await audit({ action: 'grant.revoke_all', target: target(params.id), details: { grants: grants.map((g) => ({ grantId: g.id, clientId: g.clientId })) } });
        return { body: { items: grants.map(grantView) } };
      },
    }),
  ];
}

