// After a password reset: every browser session of the user ends (back-channel logout to the
// clients) and every grant goes with its refresh and access tokens, as an administrator's
// disable does (src/management/users.ts), so a stolen session or refresh token dies with the
// old password on every instance.
import type Provider from 'oidc-provider';
import type { Logger } from 'pino';
import type { Store } from '../storage/store.ts';
import { endSessions } from '../oidc/end-sessions.ts';

export async function endUserAccess(deps: { provider: Provider; store: Store; logger: Logger }, userId: string, reason: string): Promise<{ sessions: number; grants: number }> {
  const uids = await deps.store.userSessions.sessionUidsOf(userId);
  const ended = uids.length ? await endSessions(deps, uids, reason) : [];
  const grants = await deps.store.userSessions.revokeGrants(await deps.store.userSessions.grantIdsOf(userId));
  return { sessions: ended.length, grants };
}
