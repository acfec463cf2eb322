// The brute-force limits around every password form (login and link proof): the per-IP budget,
// then the account's own counter (the same for accounts that do not exist).
import type { Context } from 'koa';
import type { LoginResult } from '../../../connectors/contract.ts';
import type { Verdict } from '../../../limits/rate-limits.ts';
import { waitText, type LoginKit } from '../../login-kit.ts';
import { text, type PageText } from '../../../i18n/page-text.ts';

export interface PasswordThrottle {
  /** The refusal to show, or null to go on and check the password. */
  check(ctx: Context, connectorId: string, login: string, clientId: string): Promise<{ error: PageText; verdict: Verdict } | null>;
  /** After the connector answered: count a wrong password, forget the failures on success. */
  record(ctx: Context, connectorId: string, login: string, clientId: string, result: LoginResult | null): Promise<void>;
}

export function createPasswordThrottle(kit: LoginKit): PasswordThrottle {
  const { limits, store, logger } = kit.deps;
  return {
    async check(ctx, connectorId, login, clientId) {
      const { ip, account } = await limits.loginAttempt(ctx.ip, login ? { connectorId, username: login } : undefined);
      if (!ip.allowed) {
        if (ip.firstRefusal) await store.audit.record({ type: 'login.throttled', outcome: 'failure', clientId, connectorId, ip: ctx.ip, details: { scope: 'ip', budget: 'login' } });
        return { error: text('login.error.too_many_network', { wait: waitText(ip.retryAfterSeconds) }), verdict: ip };
      }
      if (!account || account.allowed) return null;
      if (account.firstRefusal) await store.audit.record({ type: 'account.locked', outcome: 'failure', clientId, connectorId, ip: ctx.ip, details: { username: login.slice(0, 256) } });
      await store.audit.record({ type: 'login.throttled', outcome: 'failure', clientId, connectorId, ip: ctx.ip, details: { scope: 'account', username: login.slice(0, 256) } });
      logger.info({ connector: connectorId, retryAfter: account.retryAfterSeconds }, 'login throttled');
      return { error: text('login.error.too_many_account', { wait: waitText(account.retryAfterSeconds) }), verdict: account };
    },

    async record(ctx, connectorId, login, clientId, result) {
      if (result?.ok) return limits.accountSuccess(connectorId, login);
      if (!result || result.reason !== 'invalid_credentials') return limits.accountNeutral(connectorId, login);
      const { locked, failures } = await limits.accountFailure(connectorId, login);
      if (locked) {
        logger.warn({ connector: connectorId, failures }, 'account locked after repeated failed sign-ins');
        await store.audit.record({ type: 'account.locked', outcome: 'failure', clientId, connectorId, ip: ctx.ip, details: { username: login.slice(0, 256), failures } });
      }
    },
  };
}
