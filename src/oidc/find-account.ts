// oidc-provider's findAccount: the local user behind a `sub`, with the claims Keybridge issues.
// A deleted or disabled user has no account, which makes oidc-provider refuse refresh tokens,
// userinfo and code exchange for them. On refresh-token use the connector that signed the user
// in is asked whether the user still exists upstream.
import type { KoaContextWithOIDC, FindAccount } from 'oidc-provider';
import type { Logger } from 'pino';
import type { Store } from '../storage/store.ts';
import type { LoginSessionLookup } from './login-sessions.ts';
import type { RefreshCheck } from './refresh-check.ts';
import type { AccountLookup } from '../storage/account-cache.ts';

export interface AccountClaims {
  sub: string;
  [claim: string]: unknown;
}

export function createFindAccount(deps: { store: Store; logins: LoginSessionLookup; refreshCheck: RefreshCheck; logger: Logger; accounts?: AccountLookup }): FindAccount {
  const { store, logins, refreshCheck } = deps;
  // The cached lookup (src/storage/account-cache.ts) where the broker wires one.
  const accounts = deps.accounts ?? ((id: string) => store.users.findWithGroups(id));

  return async function findAccount(ctx: KoaContextWithOIDC, sub: string, token?: unknown) {
    const sessionUid = (token as { sessionUid?: string } | undefined)?.sessionUid;
    const isRefresh = ctx.oidc?.route === 'token' && (ctx.oidc.params as { grant_type?: string } | undefined)?.grant_type === 'refresh_token';

    const login = sessionUid ? await logins.find(sessionUid) : null;
    if (isRefresh && login) {
      const ok = await refreshCheck(login, ctx);
      if (!ok) return undefined;
    }

    // After the refresh check, which may have brought new groups from the upstream.
    const found = await accounts(sub);
    if (!found || !found.user.enabled) return undefined;
    const { user, groups } = found;

    return {
      accountId: sub,
      // Kept on the account so access-token claims need no second lookup in the same request.
      groups,
      idp: login?.connectorId,
      async claims(): Promise<AccountClaims> {
        return {
          sub,
          preferred_username: user.username,
          name: user.name ?? undefined,
          given_name: user.givenName ?? undefined,
          family_name: user.familyName ?? undefined,
          email: user.email ?? undefined,
          email_verified: user.email ? user.emailVerified : undefined,
          updated_at: Math.floor(user.updatedAt.getTime() / 1000),
          groups,
          idp: login?.connectorId,
          // Mapped upstream claims never shadow the ones Keybridge sets (mappers refuse those names).
          ...login?.claims,
        };
      },
    };
  };
}
