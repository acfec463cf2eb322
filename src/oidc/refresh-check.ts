// On refresh-token use, ask the connector that signed the user in whether the upstream still
// knows and allows the user (the connector contract's `refresh`), with the upstream tokens the broker
// keeps for it, one refresh per identity at a time. Local accounts need no extra call:
// findAccount already refuses deleted and disabled local users.
import type { KoaContextWithOIDC } from 'oidc-provider';
import { errors } from 'oidc-provider';
import type { Logger } from 'pino';
import type { ConnectorRegistry } from '../connectors/registry.ts';
import type { UpstreamIdentity } from '../connectors/contract.ts';
import type { Store } from '../storage/store.ts';
import type { LoginSession } from '../storage/login-session-repository.ts';
import { randomUUID } from 'node:crypto';
import { resolveIdentity } from '../accounts/link-identity.ts';
import { tokenBinding, type TokenCipher } from '../accounts/token-cipher.ts';
import type { LoginSessionLookup } from './login-sessions.ts';

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

/** How long a refresh waits for another one of the same identity before giving up (503). */
const OWNER_WAIT_MS = 15_000;
/** A held refresh lease expires after this, should its holder die mid-call. */
const LEASE_MS = 60_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Seconds a client is asked to wait before retrying a refresh the upstream could not answer. */
const RETRY_AFTER_SECONDS = 30;

/**
 * The refresh cannot be decided now (the upstream is down, or another refresh of the same
 * identity holds it): 503 with Retry-After, where oidc-provider's TemporarilyUnavailable would
 * answer 400 and read as "this client's request is wrong". The refresh token stays usable.
 */
function temporarilyUnavailable(ctx: KoaContextWithOIDC, description: string): Error {
  ctx.set('Retry-After', String(RETRY_AFTER_SECONDS));
  return Object.assign(new errors.TemporarilyUnavailable(description), { status: 503, statusCode: 503 });
}

export interface RefreshCheckDependencies {
  store: Store;
  registry: () => ConnectorRegistry;
  logger: Logger;
  tokenCipher: TokenCipher | null;
  logins: LoginSessionLookup;
}

export function createRefreshCheck(deps: RefreshCheckDependencies): RefreshCheck {
  const { store, logger, tokenCipher } = deps;

  const deny = async (login: LoginSession, ctx: KoaContextWithOIDC, reason: string, revoke: boolean) => {
    await store.audit.record({
      type: 'token.refresh_denied',
      outcome: 'failure',
      userId: login.userId,
      clientId: ctx.oidc.client?.clientId ?? null,
      connectorId: login.connectorId,
      details: { reason },
    });
    if (revoke) await revokeGrantOf(ctx);
    return false;
  };

  /**
   * One refresh per identity at a time, across instances: rotating upstream refresh tokens are
   * single use, so a second concurrent refresh would present a spent token and make the
   * upstream revoke the whole grant. A waiter that finds the identity confirmed while it waited
   * takes that answer instead of asking the upstream again.
   */
  async function asOwner<T>(ctx: KoaContextWithOIDC, federatedIdentityId: string, run: (confirmedWhileWaiting: boolean) => Promise<T>): Promise<T> {
    const lease = `refresh:${federatedIdentityId}`;
    const holder = randomUUID();
    const since = new Date();
    let waited = false;
    for (let delay = 20; !(await store.leases.acquire(lease, holder, LEASE_MS)); delay = Math.min(delay * 2, 250)) {
      if (Date.now() - since.getTime() > OWNER_WAIT_MS) throw temporarilyUnavailable(ctx, 'another refresh of this sign-in is in progress; try again');
      waited = true;
      await sleep(delay);
    }
    try {
      const fed = waited ? await store.identities.findById(federatedIdentityId) : null;
      return await run(Boolean(fed?.checkedAt && fed.checkedAt >= since));
    } finally {
      await store.leases.release(lease, holder).catch((err) => logger.warn({ err }, 'refresh lease release failed'));
    }
  }

  return async function refreshCheck(login, ctx) {
    if (!login.federatedIdentityId) return true;
    const registered = deps.registry().get(login.connectorId);
    const known = await store.identities.findById(login.federatedIdentityId);
    // Unlinked since the login: tokens issued through that identity end with it.
    if (!known) return deny(login, ctx, 'identity_unlinked', true);
    // The connector was removed or disabled: its identities may no longer refresh.
    if (!registered) return deny(login, ctx, 'connector_disabled', false);
    const refresh = registered.connector.refresh;
    if (!refresh) return true;

    return asOwner(ctx, known.id, async (confirmedWhileWaiting) => {
      if (confirmedWhileWaiting) return true;
      // Re-read under the lease: a previous owner may have rotated the tokens.
      const fed = await store.identities.findById(known.id);
      if (!fed) return deny(login, ctx, 'identity_unlinked', true);
      const binding = tokenBinding(fed.connectorId, fed.subject);
      const tokens = fed.tokens && tokenCipher ? tokenCipher.decrypt(fed.tokens, binding) : null;
      if (fed.tokens && !tokens) {
        // Encrypted with a key no longer configured (or altered): the upstream cannot be asked.
        logger.warn({ connector: login.connectorId, identity: fed.id }, 'stored upstream tokens cannot be decrypted with the configured tokenKeys');
        return deny(login, ctx, 'upstream_tokens_unreadable', true);
      }

      const stored = fed.data as { attributes?: Record<string, unknown>; name?: string; groups?: string[] };
      const identity: UpstreamIdentity = {
        connectorId: fed.connectorId,
        subject: fed.subject,
        username: fed.username ?? undefined,
        email: fed.email ?? undefined,
        name: stored.name ?? undefined,
        groups: stored.groups,
        attributes: stored.attributes ?? {},
        ...(tokens ? { tokens } : {}),
      };
      let result;
      try {
        result = await refresh.call(registered.connector, identity, { authenticatedAt: login.authenticatedAt });
      } catch (err) {
        logger.warn({ err, connector: login.connectorId }, 'connector refresh failed');
        throw temporarilyUnavailable(ctx, `${registered.name} is unavailable; try again later`);
      }
      if (!result.ok) {
        logger.info({ connector: login.connectorId, reason: result.reason, detail: result.detail }, 'upstream refused the refresh');
        return deny(login, ctx, result.reason, true);
      }
      const fresh = result.identity.tokens;
      const sealed = registered.policy.storeTokens && fresh && tokenCipher ? tokenCipher.encrypt(fresh, binding) : undefined;
      const resolved = await resolveIdentity(store, { ...result.identity, connectorId: login.connectorId, subject: fed.subject, tokens: undefined }, { mappers: registered.policy.mappers, tokens: sealed, via: 'refresh' });
      if (resolved.kind === 'linked' && JSON.stringify(resolved.claims) !== JSON.stringify(login.claims ?? {})) {
        await deps.logins.updateClaims(fed.id, resolved.claims);
      }
      return true;
    });
  };
}
