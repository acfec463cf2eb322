// Signing keys live in the database so every instance signs with, and publishes, the same
// keys. Rotation retires the active keys (still published until tokens they signed expire)
// and activates new ones; instances notice through SigningKeyRepository.fingerprint().
import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair } from 'jose';
import type { Config } from '../config/schema.ts';
import type { Knex } from 'knex';
import type { Store } from '../storage/store.ts';
import type { SigningKey } from '../storage/types.ts';

export type SigningAlgorithm = 'ES256' | 'RS256' | 'PS256' | 'EdDSA';

export interface NewSigningKey {
  kid: string;
  alg: string;
  privateJwk: Record<string, unknown>;
}

export async function generateSigningKey(alg: SigningAlgorithm): Promise<NewSigningKey> {
  const options = alg === 'EdDSA' ? { extractable: true, crv: 'Ed25519' } : alg === 'ES256' ? { extractable: true } : { extractable: true, modulusLength: 2048 };
  const { privateKey } = await generateKeyPair(alg, options);
  const jwk = await exportJWK(privateKey);
  const kid = randomBytes(12).toString('base64url');
  return { kid, alg, privateJwk: { ...jwk, kid, alg, use: 'sig' } };
}

// One advisory lock id for "signing key changes", so two instances starting together on an
// empty database do not both create a key per algorithm.
const KEY_LOCK = 0x4b425f4b; // "KB_K"

async function withKeyLock<T>(store: Store, fn: (tx: Store) => Promise<T>): Promise<T> {
  return store.transaction(async (tx) => {
    await (tx.knex as Knex).raw('SELECT pg_advisory_xact_lock(?)', [KEY_LOCK]);
    return fn(tx);
  });
}

/** Creates an active key for every configured algorithm that has none. Returns what it created. */
export async function ensureSigningKeys(store: Store, algorithms: readonly SigningAlgorithm[]): Promise<string[]> {
  return withKeyLock(store, async (tx) => {
    const keys = await tx.signingKeys.listPublishable();
    const created: string[] = [];
    for (const alg of algorithms) {
      if (!keys.some((k) => k.alg === alg && k.status === 'active')) {
        const key = await generateSigningKey(alg);
        await tx.signingKeys.insert(key);
        created.push(key.kid);
      }
    }
    return created;
  });
}

/** Seconds a retired key stays published: a little longer than anything it signed can live. */
export function signingKeyGrace(config: Config): number {
  const ttls = [config.tokens.accessToken, config.tokens.idToken, config.tokens.clientCredentials, ...config.resources.map((r) => r.accessTokenTtl ?? 0)];
  return Math.max(...ttls) + 300;
}

/**
 * Replaces every active key with a fresh one per algorithm. The old keys stay published for
 * `graceSeconds` (the longest lifetime of anything they signed) and are then purged.
 */
export async function rotateSigningKeys(store: Store, algorithms: readonly SigningAlgorithm[], graceSeconds: number): Promise<NewSigningKey[]> {
  const fresh = await Promise.all(algorithms.map((alg) => generateSigningKey(alg)));
  await withKeyLock(store, (tx) => tx.signingKeys.rotate(fresh, new Date(Date.now() + graceSeconds * 1000)));
  return fresh;
}

/**
 * The JWKS handed to oidc-provider, in SigningKeyRepository.listPublishable's order: active keys
 * first (oidc-provider signs with the first key of an algorithm), then retired keys that are
 * still published for verification.
 */
export function providerJwks(keys: readonly SigningKey[]): { keys: Record<string, unknown>[] } {
  return { keys: keys.map((k) => ({ ...k.privateJwk, kid: k.kid, alg: k.alg, use: 'sig' })) };
}
