// Who the caller is: what the admin console shows in its header, and how a script checks its token.
import { z } from 'zod';
import { SELF_RESOURCE } from '../authenticate-admin.ts';
import { defineRoute, type AdminRoute } from '../admin-route.ts';

export const principalSchema = z.object({
  kind: z.enum(['client', 'user']).describe('client: a service client (client_credentials); user: an administrator signed in to the console.'),
  clientId: z.string(),
  userId: z.string().nullable(),
  username: z.string().nullable(),
  scopes: z.array(z.string()).describe('The admin scopes the caller holds (a console administrator holds admin:write).'),
});

export function selfRoutes(): AdminRoute[] {
  return [
    defineRoute({
      method: 'get',
      path: '/me',
      resource: SELF_RESOURCE,
      access: 'read',
      tag: 'Caller',
      operationId: 'whoAmI',
      summary: 'The authenticated caller',
      description: 'Any token the API accepts may call this. A signed-in user who is not an administrator gets 403 with detail "You are not an administrator."',
      responses: { 200: { description: 'The caller.', schema: principalSchema } },
      async handler({ principal }) {
        return { body: { kind: principal.kind, clientId: principal.clientId, userId: principal.userId, username: principal.username, scopes: [...principal.scopes].sort() } };
      },
    }),
  ];
}
