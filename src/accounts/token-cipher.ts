// Upstream OAuth tokens are credentials to someone else's API: they are encrypted before they
// reach the database (AES-256-GCM, keys from config `secrets.tokenKeys`), and each ciphertext is
// bound to its federated identity, so a row's tokens cannot be swapped onto another row.
// The first key encrypts; every key decrypts, so keys can be rotated by prepending a new one.
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import type { UpstreamTokens } from '../connectors/contract.ts';

const VERSION = 'v1';

interface Key {
  id: string;
  key: Buffer;
}

function deriveKey(secret: string): Key {
  const key = Buffer.from(hkdfSync('sha256', secret, 'keybridge', 'upstream-tokens v1', 32));
  // The id names the key without revealing it: a hash of the derived key, not of the secret.
  return { id: createHash('sha256').update(key).digest('base64url').slice(0, 8), key };
}

export class TokenCipher {
  readonly #keys: Key[];

  constructor(secrets: readonly string[]) {
    if (!secrets.length) throw new Error('a token cipher needs at least one key');
    this.#keys = secrets.map(deriveKey);
  }

  /** `binding`: what the ciphertext belongs to (connector and upstream subject). */
  encrypt(tokens: UpstreamTokens, binding: string): string {
    return this.seal(tokens, binding);
  }

  /** null when the value was not made by one of our keys for this binding (or was altered). */
  decrypt(value: string, binding: string): UpstreamTokens | null {
    return this.open(value, binding) as UpstreamTokens | null;
  }

  /** Any JSON value, encrypted and bound to `binding` (connector config secrets use it too). */
  seal(value: unknown, binding: string): string {
    const { id, key } = this.#keys[0];
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(Buffer.from(`${VERSION}.${id}.${binding}`));
    const body = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `${VERSION}.${id}.${iv.toString('base64url')}.${body.toString('base64url')}`;
  }

  open(value: string, binding: string): unknown {
    const [version, id, iv, body] = value.split('.');
    const key = this.#keys.find((k) => k.id === id);
    if (version !== VERSION || !key || !iv || !body) return null;
    try {
      const raw = Buffer.from(body, 'base64url');
      const decipher = createDecipheriv('aes-256-gcm', key.key, Buffer.from(iv, 'base64url'));
      decipher.setAAD(Buffer.from(`${VERSION}.${id}.${binding}`));
      decipher.setAuthTag(raw.subarray(raw.length - 16));
      const plain = Buffer.concat([decipher.update(raw.subarray(0, raw.length - 16)), decipher.final()]).toString('utf8');
      return JSON.parse(plain) as unknown;
    } catch {
      return null;
    }
  }
}

/** What a stored connector's secret config fields are bound to (no NUL: never a tokenBinding). */
export const connectorSecretsBinding = (connectorId: string) => `connector-secrets:${connectorId}`;

/** What a federated identity's tokens are bound to. */
export const tokenBinding = (connectorId: string, subject: string) => `${connectorId}\u0000${subject}`;
