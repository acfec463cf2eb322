// On refresh-token use, ask the connector that signed the user in whether the upstream still
// knows and allows the user (DESIGN.md: connector refresh). Local accounts need no extra call:
// findAccount already refuses deleted and disabled local users.
import type { KoaContextWithOIDC } from 'oidc-provider';
import { errors } from 'oidc-provider';
import type { Logger } from 'pino';
import type { ConnectorRegistry } from '../connectors/registry.ts';
import type { UpstreamIdentity } from '../connectors/contract.ts';
import type { Store } from '../storage/store.ts';
import type { LoginSession } from '../storage/login-session-repository.ts';
import { linkIdentity } from '../accounts/link-identity.ts';

/** Ends the whole grant (every token issued under it), not just the refresh token presented. */
async function revokeGrantOf(ctx: KoaContextWithOIDC): Promise<void> {
  const grantId = ctx.oidc.entities.RefreshToken?.grantId;
  if (!grantId) return;
  const { provider } = ctx.oidc;
  await Promise.all([
    provider.AccessToken.revokeByGrantId(grantId),
    provider.RefreshToken.revokeByGrantId(grantId),
    provider.AuthorizationCode.revokeByGrantId(grantId),
    provider.Grant.adapter.destroy(grantId),
  ]);
}

export type RefreshCheck = (login: LoginSession, ctx: KoaContextWithOIDC) => Promise<boolean>;

export function createRefreshCheck(deps: { store: Store; registry: () => ConnectorRegistry; logger: Logger }): RefreshCheck {
  const { store, logger } = deps;

  return async function refreshCheck(login, ctx) {
    if (!login.federatedIdentityId) return true;
    const registered = deps.registry().get(login.connectorId);
    const fed = await store.identities.findById(login.federatedIdentityId);
    if (!fed) return false;
    if (!registered) {
      // The connector was removed or disabled: its identities may no longer refresh.
      await store.audit.record({ type: 'token.refresh_denied', outcome: 'failure', userId: login.userId, connectorId: login.connectorId, details: { reason: 'connector_disabled' } });
      return false;
    }
    const refresh = registered.connector.refresh;
    if (!refresh) return true;

    const stored = fed.data as { attributes?: Record<string, unknown>; name?: string };
    const identity: UpstreamIdentity = {
      connectorId: fed.connectorId,
      subject: fed.subject,
      username: fed.username ?? undefined,
      email: fed.email ?? undefined,
      name: stored.name ?? undefined,
      attributes: stored.attributes ?? {},
    };
    let result;
    try {
      result = await refresh.call(registered.connector, identity);
    } catch (err) {
      logger.warn({ err, connector: login.connectorId }, 'connector refresh failed');
      throw new errors.TemporarilyUnavailable(`${registered.name} is unavailable; try again later`);
    }
    if (!result.ok) {
      await store.audit.record({
        type: 'token.refresh_denied',
        outcome: 'failure',
        userId: login.userId,
        clientId: ctx.oidc.client?.clientId ?? null,
        connectorId: login.connectorId,
        details: { reason: result.reason },
      });
      await revokeGrantOf(ctx);
      return false;
    }
    await linkIdentity(store, { ...result.identity, connectorId: login.connectorId, subject: fed.subject });
    return true;
  };
}
