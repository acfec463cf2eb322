// A guessed TOTP or recovery code is a guessed password: the same per-IP budget and per-account
// counter as the password forms, counted under the pseudo-connector `mfa` and the user's id.
import type { Context } from 'koa';
import { waitText, type LoginKit } from '../../login-kit.ts';
import { text, type PageText } from '../../../i18n/page-text.ts';

const MFA_COUNTER = 'mfa';

export interface FactorThrottle {
  /** The refusal to show (with its wait), or null to check the code. */
  check(ctx: Context, userId: string, clientId: string): Promise<{ error: PageText; retryAfter: number } | null>;
  failed(ctx: Context, userId: string, clientId: string): Promise<void>;
  passed(userId: string): Promise<void>;
}

export function createFactorThrottle(kit: LoginKit): FactorThrottle {
  const { limits, store, logger } = kit.deps;
  return {
    async check(ctx, userId, clientId) {
      const { ip, account } = await limits.loginAttempt(ctx.ip, { connectorId: MFA_COUNTER, username: userId });
      if (!ip.allowed) return { error: text('mfa.error.too_many_network', { wait: waitText(ip.retryAfterSeconds) }), retryAfter: ip.retryAfterSeconds };
      if (!account || account.allowed) return null;
      await store.audit.record({ type: 'mfa.throttled', outcome: 'failure', userId, clientId, ip: ctx.ip });
      return { error: text('mfa.error.too_many_codes', { wait: waitText(account.retryAfterSeconds) }), retryAfter: account.retryAfterSeconds };
    },
    async failed(ctx, userId, clientId) {
      const { locked, failures } = await limits.accountFailure(MFA_COUNTER, userId);
      if (locked) {
        logger.warn({ user: userId, failures }, 'second factor locked after repeated wrong codes');
        await store.audit.record({ type: 'account.locked', outcome: 'failure', userId, clientId, ip: ctx.ip, details: { factor: true, failures } });
      }
    },
    passed: (userId) => limits.accountSuccess(MFA_COUNTER, userId),
  };
}
