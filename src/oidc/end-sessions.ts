// Ends browser sessions from outside oidc-provider's own logout endpoint: when an upstream IdP
// logs a person out (SAML IdP-initiated logout) or a SAML service provider of ours does. Does
// what oidc-provider's end_session does for a confirmed "log out of everything": tells every
// client with a back-channel logout URI (OIDC Back-Channel Logout 1.0), revokes each client's
// grant unless it persists logout (offline_access), destroys the session, and drops our login row.
import type Provider from 'oidc-provider';
import type { Logger } from 'pino';
import type { Store } from '../storage/store.ts';

/** oidc-provider's Client has this method; its published types do not declare it. */
interface BackchannelClient {
  backchannelLogoutUri?: string;
  backchannelLogout(sub: string, sid: string): Promise<void>;
}

export interface EndedSession {
  sessionUid: string;
  accountId: string | null;
  /** Clients told by back-channel logout, and those whose endpoint failed. */
  notified: string[];
  failed: string[];
}

export interface EndSessionsDependencies {
  provider: Provider;
  store: Store;
  logger: Logger;
}

/** Ends each session (by oidc-provider session uid); a uid with no live session just loses its login row. */
export async function endSessions(deps: EndSessionsDependencies, sessionUids: readonly string[], reason: string): Promise<EndedSession[]> {
  const ended: EndedSession[] = [];
  for (const uid of new Set(sessionUids)) ended.push(await endOne(deps, uid, reason));
  return ended;
}

async function endOne({ provider, store, logger }: EndSessionsDependencies, sessionUid: string, reason: string): Promise<EndedSession> {
  const result: EndedSession = { sessionUid, accountId: null, notified: [], failed: [] };
  const session = await provider.Session.findByUid(sessionUid);
  if (session) {
    const accountId = session.accountId ?? null;
    result.accountId = accountId;
    const authorizations = (session.authorizations ?? {}) as Record<string, { grantId?: string; persistsLogout?: boolean; sid?: string }>;
    await Promise.all(
      Object.entries(authorizations).map(async ([clientId, authorization]) => {
        const client = (await provider.Client.find(clientId).catch(() => undefined)) as BackchannelClient | undefined;
        if (client?.backchannelLogoutUri && accountId) {
          try {
            await client.backchannelLogout(accountId, authorization.sid ?? '');
            result.notified.push(clientId);
          } catch (err) {
            result.failed.push(clientId);
            logger.warn({ err, client: clientId }, 'back-channel logout failed');
          }
        }
        if (authorization.grantId && !authorization.persistsLogout) await revokeGrant(provider, authorization.grantId);
      }),
    );
    await session.destroy();
  }
  await store.loginSessions.delete(sessionUid);
  await store.audit.record({
    type: 'session.ended',
    userId: result.accountId,
    details: { reason, notified: result.notified, ...(result.failed.length ? { backchannelFailed: result.failed } : {}) },
  });
  return result;
}

async function revokeGrant(provider: Provider, grantId: string): Promise<void> {
  await Promise.all([
    provider.AccessToken.revokeByGrantId(grantId),
    provider.RefreshToken.revokeByGrantId(grantId),
    provider.AuthorizationCode.revokeByGrantId(grantId),
    provider.DeviceCode.revokeByGrantId(grantId),
    provider.Grant.adapter.destroy(grantId),
  ]);
}
