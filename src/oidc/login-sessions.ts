// A small read-through cache over LoginSessionRepository: the same session is looked up for
// every token and userinfo call, and the row only changes when the person signs in again.
import type { LoginSession, LoginSessionRepository } from '../storage/login-session-repository.ts';

export interface LoginSessionLookup {
  find(sessionUid: string): Promise<LoginSession | null>;
  record(login: Parameters<LoginSessionRepository['upsert']>[0]): Promise<void>;
  /** New mapped claims for every session signed in through one federated identity. */
  updateClaims(federatedIdentityId: string, claims: Record<string, unknown>): Promise<void>;
}

const MAX_ENTRIES = 10_000;
const TTL_MS = 60_000;

export function createLoginSessionLookup(repo: LoginSessionRepository): LoginSessionLookup {
  // Only hits are kept: a miss may be a login another instance is recording right now.
  const cache = new Map<string, { value: LoginSession; at: number }>();
  return {
    async find(sessionUid) {
      const hit = cache.get(sessionUid);
      if (hit && Date.now() - hit.at < TTL_MS) return hit.value;
      const value = await repo.find(sessionUid);
      if (!value) return null;
      if (cache.size >= MAX_ENTRIES) cache.delete(cache.keys().next().value!);
      cache.set(sessionUid, { value, at: Date.now() });
      return value;
    },
    async record(login) {
      cache.delete(login.sessionUid);
      const keep = (value: LoginSession) => {
        if (cache.size >= MAX_ENTRIES) cache.delete(cache.keys().next().value!);
        cache.set(login.sessionUid, { value, at: Date.now() });
      };
      // In a resume the row goes with the session's save (held-writes.ts): the resume's own
      // checks read it from here meanwhile, and once stored, the stored row replaces it; should
      // it not be stored, it is forgotten.
      const held = repo.hold(login, (stored) => (stored ? keep(stored) : cache.delete(login.sessionUid)));
      // The stored row answers the lookups that follow (token claims, refresh) without a read.
      keep(held ?? (await repo.upsert(login)));
    },
    async updateClaims(federatedIdentityId, claims) {
      await repo.updateClaims(federatedIdentityId, claims);
      // This instance's cache; other instances' entries age out within TTL_MS.
      for (const [uid, entry] of cache) if (entry.value.federatedIdentityId === federatedIdentityId) cache.delete(uid);
    },
  };
}
