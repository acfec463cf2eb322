// The cipher that seals TOTP secrets at rest. With `secrets.tokenKeys` configured it is that
// cipher (keys rotate the same way). Without them a key is generated once and kept in the
// database, so every instance shares it: that still keeps secrets out of logs and of plain
// `SELECT *` output, but a full database dump holds key and secrets together, which is why
// deployments that care configure tokenKeys. A stored key made before tokenKeys were configured
// still opens what it sealed (new seals use tokenKeys), so adding tokenKeys locks nobody out.
import { randomBytes } from 'node:crypto';
import type { Config } from '../config/schema.ts';
import type { Store } from '../storage/store.ts';
import { TokenCipher } from '../accounts/token-cipher.ts';

const STORED_KEY = 'mfa-key';

export async function mfaCipher(config: Pick<Config, 'secrets'>, store: Store): Promise<TokenCipher> {
  const keys = config.secrets.tokenKeys;
  if (keys?.length) {
    const earlier = await store.secrets.get<string>(STORED_KEY);
    return new TokenCipher(earlier ? [...keys, earlier] : keys);
  }
  return new TokenCipher([await store.secrets.getOrCreate(STORED_KEY, () => randomBytes(32).toString('base64url'))]);
}
