// Who is calling the admin API, from Keybridge's own opaque access tokens:
// - a service client's client_credentials token, whose granted scopes say what it may do
//   (`admin:read`, `admin:write`, or per resource `admin:<resource>:read|write`);
// - a user's token issued to one of `admin.consoleClients`, when the user is enabled and in one
//   of `admin.groups` (full rights; membership is read on every request, so removing someone
//   from the group takes effect at once).
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { Config } from '../config/schema.ts';
import type { Store } from '../storage/store.ts';
import { AdminProblem } from './problem.ts';

export interface AdminPrincipal {
  kind: 'client' | 'user';
  clientId: string;
  userId: string | null;
  username: string | null;
  scopes: ReadonlySet<string>;
}

/** What the API manages; each has its own `admin:<resource>:read|write` scopes. */
export const ADMIN_RESOURCES = ['users', 'groups', 'clients', 'connectors', 'saml-service-providers', 'sessions', 'audit', 'keys', 'stats', 'mfa-policies'] as const;

/** Not a scope: operations about the caller itself, open to every authenticated caller. */
export const SELF_RESOURCE = 'self';

/** Every scope a client may be granted for the admin API. */
export const ADMIN_SCOPES: readonly string[] = ['admin:read', 'admin:write', ...ADMIN_RESOURCES.flatMap((r) => [`admin:${r}:read`, `admin:${r}:write`])];

/** Whether the principal may do `access` on `resource`. Write implies read. */
export function allows(principal: AdminPrincipal, resource: string, access: 'read' | 'write'): boolean {
  // `self`: what a caller may learn about itself once authenticated (GET /me).
  if (resource === SELF_RESOURCE) return access === 'read';
  const s = principal.scopes;
  if (s.has('admin:write') || s.has(`admin:${resource}:write`)) return true;
  return access === 'read' && (s.has('admin:read') || s.has(`admin:${resource}:read`));
}

// Our opaque tokens are 43 base64url characters; anything far from that is not worth a lookup.
const TOKEN = /^[A-Za-z0-9._~+/-]{16,1024}=*$/;

const unauthorized = (message: string, error = 'invalid_token') =>
  new AdminProblem(401, 'unauthorized', message, { headers: { 'WWW-Authenticate': `Bearer realm="keybridge-admin", error="${error}"` } });

export interface AuthenticationFailure {
  reason: string;
  clientId?: string;
  userId?: string;
}

/** The caller, or throws 401 (no usable token) / 403 (a token without admin rights). */
export async function authenticateAdmin(ctx: Context, provider: Provider, deps: { config: Config; store: Store }): Promise<AdminPrincipal> {
  const header = ctx.get('authorization');
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  if (!header) throw Object.assign(unauthorized('An admin access token is required (Authorization: Bearer <token>).', 'invalid_request'), { failure: { reason: 'no_token' } });
  if (!match || !TOKEN.test(match[1])) throw Object.assign(unauthorized('The Authorization header must carry a Bearer access token.', 'invalid_request'), { failure: { reason: 'malformed_token' } });
  const value = match[1];

  const token = (await provider.ClientCredentials.find(value)) ?? (await provider.AccessToken.find(value));
  if (!token || token.isExpired) throw Object.assign(unauthorized('The access token is invalid, expired or revoked.'), { failure: { reason: 'invalid_token' } });
  const clientId = token.clientId as string;
  const client = await provider.Client.find(clientId);
  if (!client) throw Object.assign(unauthorized('The access token is invalid, expired or revoked.'), { failure: { reason: 'unknown_client', clientId } });

  const accountId = (token as { accountId?: string }).accountId;
  if (!accountId) {
    const scopes = new Set(String(token.scope ?? '').split(' ').filter((s) => s.startsWith('admin:')));
    if (!scopes.size) throw Object.assign(new AdminProblem(403, 'forbidden', 'The token carries no admin scope.'), { failure: { reason: 'no_admin_scope', clientId } });
    return { kind: 'client', clientId, userId: null, username: null, scopes };
  }

  const user = await deps.store.users.findById(accountId);
  if (!user || !user.enabled) throw Object.assign(unauthorized('The access token is invalid, expired or revoked.'), { failure: { reason: user ? 'user_disabled' : 'unknown_user', clientId, userId: accountId } });
  const forbidden = (message: string, reason: string) => Object.assign(new AdminProblem(403, 'forbidden', message), { failure: { reason, clientId, userId: user.id } });
  if (!deps.config.admin.consoleClients.includes(clientId)) throw forbidden('User tokens are accepted only when issued to the admin console.', 'not_console_client');
  const groups = new Set(await deps.store.groups.groupsOf(user.id));
  if (!deps.config.admin.groups.some((g) => groups.has(g))) throw forbidden('You are not an administrator.', 'not_admin');
  return { kind: 'user', clientId, userId: user.id, username: user.username, scopes: new Set(['admin:write']) };
}
