// A virtual WebAuthn authenticator in a Chromium page (Chrome DevTools Protocol, WebAuthn
// domain): by default a platform authenticator with passkeys and user verification that
// approves every request by itself, so a suite can register and use passkeys without a person.
import type { CDPSession, Page } from 'playwright-core';

// The protocol's types are not exported by playwright-core: the fields used here.
export interface AuthenticatorOptions {
  protocol: 'ctap2' | 'u2f';
  transport: 'usb' | 'nfc' | 'ble' | 'cable' | 'internal';
  hasResidentKey?: boolean;
  hasUserVerification?: boolean;
  isUserVerified?: boolean;
  automaticPresenceSimulation?: boolean;
  defaultBackupEligibility?: boolean;
  defaultBackupState?: boolean;
}

export interface VirtualCredential {
  /** base64 (not base64url). */
  credentialId: string;
  isResidentCredential: boolean;
  rpId?: string;
  /** base64 of the user handle the RP gave at registration. */
  userHandle?: string;
  signCount: number;
  backupState?: boolean;
}

export const PLATFORM_PASSKEYS: AuthenticatorOptions = {
  protocol: 'ctap2',
  transport: 'internal',
  hasResidentKey: true,
  hasUserVerification: true,
  isUserVerified: true,
  automaticPresenceSimulation: true,
};

export interface VirtualAuthenticator {
  readonly id: string;
  readonly session: CDPSession;
  /** The credentials it holds (private keys included), e.g. to check a passkey is resident. */
  credentials(): Promise<VirtualCredential[]>;
  /** Whether the next ceremonies report user verification (a PIN or fingerprint that succeeds). */
  setUserVerified(verified: boolean): Promise<void>;
  /** Removes the authenticator (and its credentials) from the page. */
  remove(): Promise<void>;
}

export async function addVirtualAuthenticator(page: Page, options: Partial<AuthenticatorOptions> = {}): Promise<VirtualAuthenticator> {
  const session = await page.context().newCDPSession(page);
  await session.send('WebAuthn.enable', { enableUI: false });
  const { authenticatorId } = await session.send('WebAuthn.addVirtualAuthenticator', { options: { ...PLATFORM_PASSKEYS, ...options } });
  return {
    id: authenticatorId,
    session,
    async credentials() {
      return (await session.send('WebAuthn.getCredentials', { authenticatorId })).credentials;
    },
    async setUserVerified(isUserVerified) {
      await session.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified });
    },
    async remove() {
      await session.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId });
      await session.detach();
    },
  };
}
