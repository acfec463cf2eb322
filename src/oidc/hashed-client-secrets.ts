// Client secrets of clients stored in the database are kept only as SHA-256 hashes.
//
// oidc-provider authenticates client_secret_basic and client_secret_post by calling
// `client.compareClientSecret(presented)` (lib/shared/client_auth.js), which compares the
// presented value with the client's `client_secret` metadata in constant time
// (lib/models/client.js). It needs `client_secret` to be set for those methods, so a stored
// client's metadata carries a fixed marker there (HASHED_SECRET) and its hashes in the extra
// metadata `secret_hashes` (the current one, and the previous one with the end of its rotation
// overlap). `installHashedSecrets` replaces compareClientSecret on the provider's Client class:
// for such a client the presented secret is hashed and compared with each live hash; the marker
// itself never matches. Config clients keep their clear secret from the config file and are
// compared as before.
//
// The marker would also be the key of HMAC (HS*) algorithms derived from client_secret; stored
// clients may use none (their ID token algorithm is one of the broker's keys, client_secret_jwt
// is not offered and request objects are disabled).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type Provider from 'oidc-provider';

export const HASHED_SECRET = 'keybridge:hashed-client-secret';

export interface SecretHash {
  /** base64url SHA-256 of the secret. */
  hash: string;
  /** Unix seconds after which it no longer matches (the previous secret's overlap); null: never. */
  until: number | null;
}

/** A fresh 256-bit secret, printable and safe in HTTP Basic and form encoding. */
export function generateClientSecret(): string {
  return randomBytes(32).toString('base64url');
}

export function hashClientSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('base64url');
}

/** Whether `presented` matches a hash still live at `now` (ms). */
export function matchesSecretHash(hashes: readonly SecretHash[], presented: string, now = Date.now()): boolean {
  const digest = Buffer.from(hashClientSecret(presented), 'base64url');
  let match = false;
  // Every live hash is compared, so the time taken says nothing about which one matched.
  for (const h of hashes) {
    if (h.until !== null && h.until * 1000 <= now) continue;
    const stored = Buffer.from(h.hash, 'base64url');
    if (stored.length === digest.length && timingSafeEqual(stored, digest)) match = true;
  }
  return match;
}

/** Makes the provider's client authentication compare hashed secrets of stored clients. */
export function installHashedSecrets(provider: Provider): void {
  type ClientLike = { clientSecret?: string; secret_hashes?: unknown; compareClientSecret(actual: string): unknown };
  const prototype = (provider.Client as unknown as { prototype: ClientLike }).prototype;
  const compare = prototype.compareClientSecret;
  prototype.compareClientSecret = function compareClientSecret(this: ClientLike, actual: string) {
    if (this.clientSecret === HASHED_SECRET || this.secret_hashes !== undefined) {
      return typeof actual === 'string' && Array.isArray(this.secret_hashes) && matchesSecretHash(this.secret_hashes as SecretHash[], actual);
    }
    return compare.call(this, actual);
  };
}
