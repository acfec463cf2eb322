// Who is calling the account API: a person's own opaque access token, issued by this Keybridge
// to the account console's client, still live, for a user who still exists and is enabled. The
// token's session says when the person last signed in (for re-authentication) and which browser
// session is "this one".
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { Store } from '../storage/store.ts';
import type { User } from '../storage/types.ts';
import { AdminProblem } from '../admin-api/problem.ts';

export interface AccountPrincipal {
  user: User;
  clientId: string;
  /** The browser session the console's token was issued in (null if the token names none). */
  sessionUid: string | null;
  /** The console's own grant (its tokens end when it is revoked). */
  grantId: string | null;
  /** When the person last signed in within that session (null: unknown, treated as stale). */
  authenticatedAt: Date | null;
}

export interface AccountAuthFailure {
  reason: string;
  clientId?: string;
  userId?: string;
}

// Our opaque tokens are 43 base64url characters; anything far from that is not worth a lookup.
const TOKEN = /^[A-Za-z0-9._~+/-]{16,1024}=*$/;

const unauthorized = (message: string, failure: AccountAuthFailure, error = 'invalid_token') =>
  Object.assign(new AdminProblem(401, 'unauthorized', message, { headers: { 'WWW-Authenticate': `Bearer realm="keybridge-account", error="${error}"` } }), { failure });

/** The signed-in person, or throws 401. */
export async function authenticateAccount(ctx: Context, provider: Provider, deps: { store: Store; clientId: string }): Promise<AccountPrincipal> {
  const header = ctx.get('authorization');
  if (!header) throw unauthorized('Sign in first: an access token is required (Authorization: Bearer <token>).', { reason: 'no_token' }, 'invalid_request');
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  if (!match || !TOKEN.test(match[1]!)) throw unauthorized('The Authorization header must carry a Bearer access token.', { reason: 'malformed_token' }, 'invalid_request');
  const token = await provider.AccessToken.find(match[1]!);
  const invalid = (reason: string, more: Partial<AccountAuthFailure> = {}) => unauthorized('The access token is invalid, expired or revoked. Sign in again.', { reason, ...more });
  if (!token || token.isExpired) throw invalid('invalid_token');
  const clientId = String(token.clientId ?? '');
  const accountId = (token as { accountId?: string }).accountId;
  // Only the console's tokens: a token another application received cannot change the account.
  if (clientId !== deps.clientId) throw invalid('not_console_client', { clientId, ...(accountId ? { userId: accountId } : {}) });
  if (!accountId) throw invalid('no_account', { clientId });
  const user = await deps.store.users.findById(accountId);
  if (!user || !user.enabled) throw invalid(user ? 'user_disabled' : 'unknown_user', { clientId, userId: accountId });
  const sessionUid = (token as { sessionUid?: string }).sessionUid ?? null;
  const login = sessionUid ? await deps.store.loginSessions.find(sessionUid) : null;
  return {
    user,
    clientId,
    sessionUid,
    grantId: (token as { grantId?: string }).grantId ?? null,
    authenticatedAt: login && login.userId === user.id ? login.authenticatedAt : null,
  };
}

/** 403 reauthentication_required unless the person signed in within `maxAge` seconds; `what` names the change. */
export function requireRecentLogin(principal: AccountPrincipal, maxAge: number, what = 'This change', now = Date.now()): void {
  const at = principal.authenticatedAt?.getTime();
  if (at !== undefined && now - at <= maxAge * 1000) return;
  throw new AdminProblem(403, 'reauthentication_required', `${what} needs a recent sign-in (within ${maxAge} seconds). Sign in again and retry.`, {
    // RFC 9470 step-up: what the client must ask for.
    headers: { 'WWW-Authenticate': `Bearer realm="keybridge-account", error="insufficient_user_authentication", max_age=${maxAge}` },
  });
}
