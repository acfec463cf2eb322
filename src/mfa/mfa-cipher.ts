// The cipher that seals TOTP secrets at rest. With `secrets.tokenKeys` configured it is that
// cipher (keys rotate the same way). Without them a key is generated once and kept in the
// database, so every instance shares it: that still keeps secrets out of logs and of plain
// `SELECT *` output, but a full database dump holds key and secrets together, which is why
// deployments that care configure tokenKeys.
import { randomBytes } from 'node:crypto';
import type { Config } from '../config/schema.ts';
import type { Store } from '../storage/store.ts';
import { TokenCipher } from '../accounts/token-cipher.ts';

export async function mfaCipher(config: Pick<Config, 'secrets'>, store: Store): Promise<TokenCipher> {
  const keys = config.secrets.tokenKeys;
  if (keys?.length) return new TokenCipher(keys);
  const stored = await store.secrets.getOrCreate('mfa-key', () => randomBytes(32).toString('base64url'));
  return new TokenCipher([stored]);
}
