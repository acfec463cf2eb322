// The second-factor services the login steps use, built once per broker.
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import type { Store } from '../storage/store.ts';
import type { KeybridgeAdapter } from '../storage/oidc-adapter.ts';
import type { TokenCipher } from '../accounts/token-cipher.ts';
import type { UpstreamIdentity } from '../connectors/contract.ts';
import type { RegisteredConnector } from '../connectors/registry.ts';
import { mfaCipher } from '../mfa/mfa-cipher.ts';
import { TotpService } from '../mfa/totp.ts';
import { WebauthnService, artifactChallengeStore } from '../mfa/webauthn.ts';
import { createMfaPolicy } from '../mfa/mfa-policy.ts';
import { upstreamMfaProof } from '../mfa/upstream-mfa.ts';
import { issueRecoveryCodes, useRecoveryCode } from '../mfa/recovery-codes.ts';

export type MfaMode = 'required' | 'optional' | 'off';

export interface MfaServices {
  totp: TotpService;
  webauthn: WebauthnService;
  /** Seals what the login keeps of an enrolment in progress. */
  cipher: TokenCipher;
  policy: ReturnType<typeof createMfaPolicy>;
  recovery: { issue(userId: string): Promise<string[]>; use(userId: string, input: string): Promise<number | null> };
  upstreamProof(identity: UpstreamIdentity, policy: RegisteredConnector['policy']): { proved: boolean; amr: string[] };
  /** Days a "remember this device" cookie spares the second factor; 0: the option is off. */
  rememberDays: number;
}

export async function createMfaServices(options: { config: Config; store: Store; artifacts: KeybridgeAdapter; logger: Logger; knex?: Knex }): Promise<MfaServices> {
  const { config, store } = options;
  const cipher = await mfaCipher(config, store);
  return {
    totp: new TotpService({ store, cipher, issuerName: config.ui.title }),
    webauthn: new WebauthnService({ store, issuer: config.issuer, rpName: config.mfa.webauthn.rpName, userVerification: config.mfa.webauthn.userVerification, challenges: artifactChallengeStore(options.artifacts) }),
    cipher,
    policy: createMfaPolicy({ config, store }),
    recovery: { issue: (userId) => issueRecoveryCodes(store, userId), use: (userId, input) => useRecoveryCode(store, userId, input) },
    upstreamProof: upstreamMfaProof,
    rememberDays: config.mfa.rememberDevice.days,
  };
}
