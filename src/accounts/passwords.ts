// argon2id with the OWASP Password Storage Cheat Sheet parameters (19 MiB, t=2, p=1). Passwords
// are prepared as RFC 8265 OpaqueString first (non-ASCII spaces to U+0020, NFC), so a password
// typed on a keyboard that sends decomposed `ë` matches the one set with a composed `ë`.
import { hash, verify } from '@node-rs/argon2';

const OWASP = { memoryCost: 19456, timeCost: 2, parallelism: 1 } as const;

/** RFC 8265 section 4.2 (OpaqueString) preparation and enforcement, as far as it maps text. */
export function preparePassword(password: string): string {
  return password.replace(/[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]/g, ' ').normalize('NFC');
}

export function hashPassword(password: string): Promise<string> {
  return hash(preparePassword(password), OWASP);
}

export async function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  try {
    if (await verify(passwordHash, preparePassword(password))) return true;
    // Hashes made before passwords were normalized hold the bytes as typed then.
    return preparePassword(password) !== password && (await verify(passwordHash, password));
  } catch {
    // A malformed stored hash is a failed check, never a crash on the login path.
    return false;
  }
}
