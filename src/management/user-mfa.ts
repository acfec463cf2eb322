// An administrator's view of a user's second factors, and the way out when a person has lost
// theirs: remove one factor, or reset everything (factors and recovery codes). The admin API and
// `keybridge users mfa` both come through here; the caller passes how to audit, so each records
// its own actor (an API principal, or the CLI's operating-system user).
import type { Store } from '../storage/store.ts';
import type { FactorInfo, FactorType } from '../storage/mfa-repository.ts';
import type { AdminChange } from '../admin-api/admin-route.ts';
import { notFound } from '../admin-api/problem.ts';

/** A factor as administrators see it: never its secret or key material. */
export interface FactorView {
  id: string;
  type: FactorType;
  name: string;
  /** False while a TOTP enrolment waits for its first code. */
  confirmed: boolean;
  createdAt: string;
  lastUsedAt: string | null;
}

export interface UserMfaView {
  factors: FactorView[];
  recoveryCodesLeft: number;
}

export type AuditChange = (change: AdminChange) => Promise<void>;

export const factorView = (f: FactorInfo): FactorView => ({
  id: f.id,
  type: f.type,
  name: f.name,
  confirmed: f.confirmed,
  createdAt: f.createdAt.toISOString(),
  lastUsedAt: f.lastUsedAt?.toISOString() ?? null,
});

const target = (userId: string) => ({ kind: 'user', id: userId });
const summary = (f: FactorView) => ({ factorId: f.id, type: f.type, name: f.name });

export function userMfaService(store: Store) {
  async function mustFindUser(userId: string): Promise<void> {
    if (!(await store.users.findById(userId))) throw notFound('The user');
  }

  return {
    async list(userId: string): Promise<UserMfaView> {
      await mustFindUser(userId);
      const [factors, recoveryCodesLeft] = await Promise.all([store.mfa.list(userId), store.mfa.recoveryCodesLeft(userId)]);
      return { factors: factors.map(factorView), recoveryCodesLeft };
    },

    /** Removes one factor of this user (404 for another user's factor id). */
    async removeFactor(userId: string, factorId: string, audit: AuditChange): Promise<FactorView> {
      await mustFindUser(userId);
      const factor = await store.mfa.find(userId, factorId);
      if (!factor || !(await store.mfa.remove(userId, factorId))) throw notFound('The factor');
      const removed = factorView(factor);
      await audit({ action: 'mfa.factor_removed', target: target(userId), details: summary(removed) });
      return removed;
    },

    /** Removes every factor and recovery code of the user; audited even when there was nothing to remove. */
    async reset(userId: string, audit: AuditChange): Promise<{ factors: FactorView[]; recoveryCodes: number }> {
      await mustFindUser(userId);
      const factors = (await store.mfa.list(userId)).map(factorView);
      const removed = await store.mfa.reset(userId);
      await audit({ action: 'mfa.reset', target: target(userId), details: { factors: factors.map(summary), factorsRemoved: removed.factors, recoveryCodesRemoved: removed.recoveryCodes } });
      return { factors, recoveryCodes: removed.recoveryCodes };
    },
  };
}

export type UserMfaService = ReturnType<typeof userMfaService>;
