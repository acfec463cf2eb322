// OIDC clients: config and internal ones listed read-only, stored ones created, changed, given
// a new secret and deleted (src/management/clients.ts does the work; the CLI uses it too).
import { z } from 'zod';
import { defineRoute, type AdminRoute } from '../admin-route.ts';
import { pageOf, pageQuery, encodeCursor, decodeCursor } from '../admin-support.ts';
import { allows, type AdminPrincipal } from '../authenticate-admin.ts';
import { problemSchema } from '../problem.ts';
import { clientViewSchema, createClientSchema, updateClientSchema, DEFAULT_OVERLAP_SECONDS, MAX_OVERLAP_SECONDS, type ClientService } from '../../management/clients.ts';

const idParams = z.object({ id: z.string().min(1).max(512).describe('The client id (percent-encoded in the path).') });
const withSecret = clientViewSchema.extend({
  clientSecret: z.string().optional().describe('The client secret, shown this once (it is stored hashed). Absent for clients without one.'),
});

/** An admin scope the caller may hand to a client: one they hold themselves. */
function mayGrant(principal: AdminPrincipal) {
  return (scope: string): boolean => {
    if (scope === 'admin:write') return principal.scopes.has('admin:write');
    if (scope === 'admin:read') return principal.scopes.has('admin:write') || principal.scopes.has('admin:read');
    const m = /^admin:([a-z-]+):(read|write)$/.exec(scope);
    return m ? allows(principal, m[1], m[2] as 'read' | 'write') : false;
  };
}

const TAG = 'Clients';

export function clientRoutes(clients: ClientService): AdminRoute[] {
  return [
    defineRoute({
      method: 'get',
      path: '/clients',
      resource: 'clients',
      access: 'read',
      tag: TAG,
      operationId: 'listClients',
      summary: 'List OIDC clients',
      description: 'Clients from the config file (source: config) and Keybridge\'s own (source: internal) are listed read-only, with those stored in the database, by id.',
      query: z.strictObject(pageQuery),
      responses: { 200: { description: 'One page of clients.', schema: pageOf(clientViewSchema) } },
      async handler({ query }) {
        const [after] = (decodeCursor(query.cursor, ['string']) ?? []) as string[];
        const page = await clients.list({ limit: query.limit, after });
        return { body: { items: page.items, nextCursor: page.last === null ? null : encodeCursor([page.last]) } };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/clients/{id}',
      resource: 'clients',
      access: 'read',
      tag: TAG,
      operationId: 'getClient',
      summary: 'Read one client',
      params: idParams,
      responses: { 200: { description: 'The client, with its ETag.', schema: clientViewSchema } },
      async handler({ params }) {
        const { view, etag } = await clients.get(params.id);
        return { body: view, etag };
      },
    }),
    defineRoute({
      method: 'post',
      path: '/clients',
      resource: 'clients',
      access: 'write',
      tag: TAG,
      operationId: 'createClient',
      summary: 'Create a client',
      description: 'A client with client_secret_basic or client_secret_post gets a generated 256-bit secret, returned in this response only. Every instance serves the client within 2 s.',
      body: createClientSchema,
      responses: {
        201: { description: 'The client, and its secret (shown once).', schema: withSecret },
        403: { description: 'Missing scope, or admin scopes the caller does not hold.', schema: problemSchema },
        409: { description: 'The id is taken (by a stored, config or internal client).', schema: problemSchema },
      },
      async handler({ body, principal, audit }) {
        const made = await clients.create(body, { mayGrant: mayGrant(principal) });
        await audit({ action: 'client.create', target: { kind: 'client', id: made.view.id }, before: null, after: made.view, details: { secretIssued: made.secret !== null } });
        return { status: 201, body: { ...made.view, ...(made.secret ? { clientSecret: made.secret } : {}) }, etag: made.etag, headers: { Location: `/admin/api/v1/clients/${encodeURIComponent(made.view.id)}` } };
      },
    }),
    defineRoute({
      method: 'patch',
      path: '/clients/{id}',
      resource: 'clients',
      access: 'write',
      tag: TAG,
      operationId: 'updateClient',
      summary: 'Change a client',
      description: 'Only the fields given change; null clears a nullable one. Moving to a shared-secret method generates a secret (returned once); leaving one drops it. Disabling a client revokes its tokens, codes and grants; every instance refuses it within 2 s.',
      params: idParams,
      body: updateClientSchema,
      responses: {
        200: { description: 'The client after the change.', schema: withSecret },
        403: { description: 'Missing scope, or admin scopes the caller does not hold.', schema: problemSchema },
        409: { description: 'The client is declared in config or internal (read-only).', schema: problemSchema },
      },
      async handler({ params, body, principal, ifMatch, audit }) {
        const changed = await clients.update(params.id, body, { ifMatch, mayGrant: mayGrant(principal) });
        if (changed.changed !== false) await audit({ action: 'client.update', target: { kind: 'client', id: params.id }, before: changed.before, after: changed.view, ...(changed.secret || changed.revoked ? { details: { ...(changed.secret ? { secretIssued: true } : {}), ...(changed.revoked ? { revokedArtifacts: changed.revoked } : {}) } } : {}) });
        return { body: { ...changed.view, ...(changed.secret ? { clientSecret: changed.secret } : {}) }, etag: changed.etag };
      },
    }),
    defineRoute({
      method: 'post',
      path: '/clients/{id}/rotate-secret',
      resource: 'clients',
      access: 'write',
      tag: TAG,
      operationId: 'rotateClientSecret',
      summary: 'Give a client a new secret',
      description: 'The new secret is returned once. The previous one is still accepted for overlapSeconds, so the application can switch without downtime.',
      params: idParams,
      body: z.strictObject({
        overlapSeconds: z.int().min(0).max(MAX_OVERLAP_SECONDS).default(DEFAULT_OVERLAP_SECONDS).describe(`How long the previous secret stays valid (0: ends now; default ${DEFAULT_OVERLAP_SECONDS}).`),
      }),
      responses: {
        200: { description: 'The client and its new secret (shown once).', schema: withSecret.extend({ clientSecret: z.string() }) },
        409: { description: 'The client is read-only, or has no secret (private_key_jwt, none).', schema: problemSchema },
        412: { description: 'If-Match names an outdated ETag.', schema: problemSchema },
      },
      async handler({ params, body, ifMatch, audit }) {
        const rotated = await clients.rotateSecret(params.id, body.overlapSeconds, { ifMatch });
        await audit({ action: 'client.rotate_secret', target: { kind: 'client', id: params.id }, before: rotated.before, after: rotated.view, details: { overlapSeconds: body.overlapSeconds, previousValidUntil: rotated.previousValidUntil?.toISOString() ?? null } });
        return { body: { ...rotated.view, clientSecret: rotated.secret! }, etag: rotated.etag };
      },
    }),
    defineRoute({
      method: 'delete',
      path: '/clients/{id}',
      resource: 'clients',
      access: 'write',
      tag: TAG,
      operationId: 'deleteClient',
      summary: 'Delete a client',
      description: 'Its tokens, codes and grants are revoked with it. Deleting a client that does not exist (any more) answers 404.',
      params: idParams,
      responses: {
        204: { description: 'Deleted.' },
        409: { description: 'The client is declared in config or internal (read-only).', schema: problemSchema },
      },
      async handler({ params, ifMatch, audit }) {
        const { before, revoked } = await clients.remove(params.id, { ifMatch });
        await audit({ action: 'client.delete', target: { kind: 'client', id: params.id }, before, after: null, details: { revokedArtifacts: revoked } });
        return {};
      },
    }),
  ];
}
