// The second-factor services the login steps use, built once per broker.
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import type { Store } from '../storage/store.ts';
import type { KeybridgeAdapter } from '../storage/oidc-adapter.ts';
import type { TokenCipher } from '../accounts/token-cipher.ts';
import type { UpstreamIdentity } from '../connectors/contract.ts';
import type { RegisteredConnector } from '../connectors/registry.ts';
import { mfaCipher } from '../mfa/mfa-cipher.ts';
import { TotpService } from '../mfa/totp.ts';
import { WebauthnService, type WebauthnError } from '../mfa/webauthn.ts';
import { text, type PageText } from '../i18n/page-text.ts';
import { artifactChallengeStore } from '../mfa/challenge-store.ts';
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
  /** Whether browsers can use passkeys here at all: WebAuthn refuses an IP address as the RP ID. */
  passkeys: boolean;
  /** Days a "remember this device" cookie spares the second factor; 0: the option is off. */
  rememberDays: number;
}

export async function createMfaServices(options: { config: Config; store: Store; artifacts: KeybridgeAdapter; logger: Logger }): Promise<MfaServices> {
  const { config, store } = options;
  const cipher = await mfaCipher(config, store);
  return {
    totp: new TotpService({ store, cipher, issuerName: config.ui.title, logger: options.logger }),
    webauthn: new WebauthnService({ store, issuer: config.issuer, rpName: config.mfa.webauthn.rpName, userVerification: config.mfa.webauthn.userVerification, challenges: artifactChallengeStore(options.artifacts) }),
    cipher,
    policy: createMfaPolicy({ config, store }),
    recovery: { issue: (userId) => issueRecoveryCodes(store, userId), use: (userId, input) => useRecoveryCode(store, userId, input) },
    upstreamProof: upstreamMfaProof,
    passkeys: !isIP(new URL(config.issuer).hostname.replace(/^\[|\]$/g, '')),
    rememberDays: config.mfa.rememberDevice.days,
  };
}

/** What the person is told when a passkey or security key is refused (the detail goes to the log). */
export const WEBAUTHN_MESSAGES: Record<WebauthnError, PageText> = {
  malformed_response: text('mfa.passkey.malformed_response'),
  challenge_expired: text('mfa.passkey.challenge_expired'),
  verification_failed: text('mfa.passkey.verification_failed'),
  unknown_credential: text('mfa.passkey.unknown_credential'),
  wrong_user: text('mfa.passkey.wrong_user'),
  user_verification_required: text('mfa.passkey.user_verification_required'),
  counter_not_increased: text('mfa.passkey.counter_not_increased'),
  duplicate_credential: text('mfa.passkey.duplicate_credential'),
  invalid_name: text('mfa.passkey.invalid_name'),
};
