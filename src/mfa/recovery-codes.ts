// Single-use recovery codes: the way back in when the authenticator is lost. Ten at a time, each
// 10 characters from an alphabet without look-alikes (no 0/o, 1/l/i), about 49 bits, shown as
// `xxxxx-xxxxx`. Only their SHA-256 is stored: the codes are random enough that a slow hash
// adds nothing, and a lookup by hash keeps using one a single indexed update.
import { createHash, randomInt } from 'node:crypto';
import type { Store } from '../storage/store.ts';

const ALPHABET = '23456789abcdefghjkmnpqrstuvwxyz';
const COUNT = 10;
const LENGTH = 10;

/** Lower case, without spaces and dashes; null when it cannot be a code. */
export function normalizeRecoveryCode(input: unknown): string | null {
  if (typeof input !== 'string' || input.length > 64) return null;
  const code = input.toLowerCase().replace(/[\s-]+/g, '');
  if (code.length !== LENGTH || [...code].some((c) => !ALPHABET.includes(c))) return null;
  return code;
}

const hashOf = (normalized: string) => createHash('sha256').update(normalized).digest('hex');

function newCode(): string {
  let code = '';
  for (let i = 0; i < LENGTH; i++) code += ALPHABET[randomInt(ALPHABET.length)];
  return `${code.slice(0, 5)}-${code.slice(5)}`;
}

/** A new set of codes, replacing the user's earlier ones; shown once, stored hashed. */
export async function issueRecoveryCodes(store: Store, userId: string): Promise<string[]> {
  const codes = new Set<string>();
  while (codes.size < COUNT) codes.add(newCode());
  await store.mfa.replaceRecoveryCodes(userId, [...codes].map((c) => hashOf(normalizeRecoveryCode(c)!)));
  return [...codes];
}

/** Uses one code: how many are left, or null when it is not one of the user's unused codes. */
export async function useRecoveryCode(store: Store, userId: string, input: unknown): Promise<number | null> {
  const normalized = normalizeRecoveryCode(input);
  return normalized ? store.mfa.useRecoveryCode(userId, hashOf(normalized)) : null;
}
