// argon2id with the OWASP Password Storage Cheat Sheet parameters (19 MiB, t=2, p=1).
import { hash, verify } from '@node-rs/argon2';

const OWASP = { memoryCost: 19456, timeCost: 2, parallelism: 1 } as const;

export function hashPassword(password: string): Promise<string> {
  return hash(password, OWASP);
}

export async function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  try {
    return await verify(passwordHash, password);
  } catch {
    // A malformed stored hash is a failed check, never a crash on the login path.
    return false;
  }
}
