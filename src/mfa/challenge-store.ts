// Single-use, short-lived values (WebAuthn challenges) kept in the artifact table, so a challenge
// issued by one instance can be answered on another and is consumed exactly once.
import type { AdapterPayload } from 'oidc-provider';
import type { KeybridgeAdapter } from '../storage/oidc-adapter.ts';

export interface ChallengeStore {
  put(key: string, value: Record<string, unknown>, ttlSeconds: number): Promise<void>;
  /** The value, once: null when it never existed, expired, or was taken already. */
  take(key: string): Promise<Record<string, unknown> | null>;
}

// Keys come from our own pages (an interaction id, a random form key), but arrive in requests.
const KEY = /^[\x21-\x7e]{1,200}$/;

/** A ChallengeStore over an artifact adapter of its own kind, e.g. `new adapter('WebauthnChallenge')`. */
export function artifactChallengeStore(adapter: KeybridgeAdapter): ChallengeStore {
  return {
    async put(key, value, ttlSeconds) {
      if (typeof key !== 'string' || !KEY.test(key)) throw new TypeError('invalid challenge key');
      // A new ceremony under a key whose last challenge was taken: the taken mark must go too
      // (an upsert keeps it, and the new challenge would read as used).
      await adapter.destroy(key);
      await adapter.upsert(key, { value } as unknown as AdapterPayload, ttlSeconds);
    },
    async take(key) {
      if (typeof key !== 'string' || !KEY.test(key)) return null;
      // The claim is the single-use check; the read after it only fetches what was claimed.
      if (!(await adapter.claim(key))) return null;
      const record = (await adapter.find(key)) as { value?: Record<string, unknown> } | undefined;
      return record?.value ?? null;
    },
  };
}
