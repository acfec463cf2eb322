// Sign in with Apple has no static client secret: the secret is an ES256 JWT the team signs with
// its private key (kid = key id; iss = team id, sub = client id, aud = Apple; at most six months).
// Ours live one hour and are re-signed shortly before they expire, so a leaked one dies soon.
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SignJWT } from 'jose';

const AUDIENCE = 'https://appleid.apple.com';
const LIFETIME_SECONDS = 3600;
const RENEW_BEFORE_SECONDS = 300;

export interface AppleKey {
  teamId: string;
  keyId: string;
  clientId: string;
  privateKey?: string;
  privateKeyFile?: string;
}

/** Loads the key now (a bad key is a start-up problem) and returns a getter for a valid secret. */
export function appleClientSecret(key: AppleKey, now: () => number = () => Math.floor(Date.now() / 1000)): () => Promise<string> {
  const signingKey = loadKey(key);
  let current: { jwt: string; exp: number } | undefined;
  return async () => {
    const t = now();
    if (!current || current.exp - t < RENEW_BEFORE_SECONDS) {
      const exp = t + LIFETIME_SECONDS;
      const jwt = await new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid: key.keyId })
        .setIssuer(key.teamId)
        .setSubject(key.clientId)
        .setAudience(AUDIENCE)
        .setIssuedAt(t)
        .setExpirationTime(exp)
        .sign(signingKey);
      current = { jwt, exp };
    }
    return current.jwt;
  };
}

function loadKey(key: AppleKey): KeyObject {
  let pem = key.privateKey;
  if (pem === undefined && key.privateKeyFile !== undefined) {
    try {
      pem = readFileSync(key.privateKeyFile, 'utf8');
    } catch (err) {
      throw new Error(`privateKeyFile: cannot read ${key.privateKeyFile} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  if (pem === undefined) throw new Error('privateKey: is required (or privateKeyFile)');
  let k: KeyObject;
  try {
    k = createPrivateKey(pem);
  } catch {
    throw new Error(`${key.privateKey !== undefined ? 'privateKey' : 'privateKeyFile'}: is not a readable PEM private key`);
  }
  if (k.asymmetricKeyType !== 'ec' || k.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new Error(`${key.privateKey !== undefined ? 'privateKey' : 'privateKeyFile'}: must be an EC P-256 key (Apple's .p8 key)`);
  }
  return k;
}
