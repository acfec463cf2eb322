// WebAuthn / passkeys: registration of named authenticators, their use as a second factor, and
// passwordless sign-in with a discoverable credential. The relying party is the issuer: its host
// name is the RP ID and its origin the only origin accepted. Challenges live in a single-use
// store (src/mfa/challenge-store.ts) under a key the caller chooses (e.g. the interaction id),
// so one ceremony's answer is accepted once, on any instance.
//
// A wrong or replayed answer is a result ({ ok: false, error, detail }), not an exception: the
// error is a stable code a page can translate, the detail is for the log. Only storage failures
// throw.
import type { PublicKeyCredentialCreationOptionsJSON, PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import type { Store } from '../storage/store.ts';
import { AlreadyExists } from '../errors.ts';
import { uniquely } from '../storage/unique-violation.ts';
import type { ChallengeStore } from './challenge-store.ts';
import { parseAuthenticationResponse, parseRegistrationResponse } from './webauthn-response.ts';

// Loaded on the first ceremony, not at start: the library and its certificate parsers take about
// 200 ms to load, which every start paid whether or not anyone uses a passkey.
let library: Promise<typeof import('@simplewebauthn/server')> | undefined;
const webauthnLibrary = () => (library ??= import('@simplewebauthn/server'));

export type UserVerificationPolicy = 'required' | 'preferred' | 'discouraged';

export interface WebauthnServiceOptions {
  store: Pick<Store, 'mfa'>;
  /** Keybridge's issuer URL: RP ID = its host name, expected origin = its origin. */
  issuer: string;
  /** Shown by the authenticator when a passkey is created. */
  rpName: string;
  /** Whether the authenticator must verify the person (PIN, biometrics). Passwordless sign-in always requires it. */
  userVerification?: UserVerificationPolicy;
  challenges: ChallengeStore;
}

export type WebauthnError =
  /** The posted credential is not a WebAuthn response (not JSON, too large, wrong fields). */
  | 'malformed_response'
  /** No live challenge under that key: expired, never issued, or already answered (a replay). */
  | 'challenge_expired'
  /** The authenticator answered, but the signature, origin, RP ID or challenge do not match. */
  | 'verification_failed'
  /** The credential is registered to nobody here. */
  | 'unknown_credential'
  /** The credential belongs to another user than the one signing in. */
  | 'wrong_user'
  /** The policy (or passwordless sign-in) requires user verification and the authenticator did not do it. */
  | 'user_verification_required'
  /** The signature counter did not increase: the authenticator may have been cloned. */
  | 'counter_not_increased'
  /** The credential is already registered (to this user or another). */
  | 'duplicate_credential'
  /** The authenticator's name is empty, longer than 64 characters, or has control characters. */
  | 'invalid_name';

export type WebauthnFailure = { ok: false; error: WebauthnError; detail: string };
/** `method`: the RFC 8176 amr of the new credential (see methodOf). */
export type RegistrationResult = { ok: true; factorId: string; method: KeyMethod } | WebauthnFailure;
export type AuthenticationResult = { ok: true; userId: string; factorId: string; userVerified: boolean; amr: string[] } | WebauthnFailure;

/** How long a ceremony may take, in seconds (also the browser's timeout). */
export const CEREMONY_SECONDS = 300;
export const MAX_NAME_LENGTH = 64;
const NAME = new RegExp(`^[^\\p{Cc}\\p{Cs}\\p{Zl}\\p{Zp}]{1,${MAX_NAME_LENGTH}}$`, 'u');

interface Challenge {
  purpose: 'register' | 'authenticate';
  challenge: string;
  /** Registration: whose credential. Authentication: the user it must belong to; absent for passwordless. */
  userId?: string;
}

const fail = (error: WebauthnError, detail: string): WebauthnFailure => ({ ok: false, error, detail });

type KeyMethod = 'hwk' | 'swk';
/**
 * RFC 8176: a key that may be synced off the device (backup eligible, whether or not it is
 * backed up yet) is not a hardware-bound key.
 */
const methodOf = (deviceType: 'singleDevice' | 'multiDevice'): KeyMethod => (deviceType === 'multiDevice' ? 'swk' : 'hwk');
const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * A user's WebAuthn user handle: the bytes of their user id (a random UUID, no personal data),
 * the same for every credential of theirs, so an authenticator keeps one passkey per account
 * and passwordless sign-in maps the handle back to the user.
 */
export const userHandleOf = (userId: string): Uint8Array<ArrayBuffer> => new Uint8Array(Buffer.from(userId, 'utf8'));

export class WebauthnService {
  readonly #store: Pick<Store, 'mfa'>;
  readonly #rpName: string;
  readonly #rpId: string;
  readonly #origin: string;
  readonly #policy: UserVerificationPolicy;
  readonly #challenges: ChallengeStore;

  constructor(options: WebauthnServiceOptions) {
    const issuer = new URL(options.issuer);
    this.#store = options.store;
    this.#rpName = options.rpName;
    this.#rpId = issuer.hostname;
    this.#origin = issuer.origin;
    this.#policy = options.userVerification ?? 'preferred';
    this.#challenges = options.challenges;
  }

  /** Options for navigator.credentials.create(); the challenge is kept under `key` for one answer. */
  async registrationOptions(user: { id: string; username: string; name?: string | null }, key: string): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const existing = await this.#store.mfa.webauthnFactors(user.id);
    const options = await (await webauthnLibrary()).generateRegistrationOptions({
      rpName: this.#rpName,
      rpID: this.#rpId,
      userID: userHandleOf(user.id),
      userName: user.username,
      userDisplayName: user.name || user.username,
      timeout: CEREMONY_SECONDS * 1000,
      attestationType: 'none',
      excludeCredentials: existing.map((f) => ({ id: f.credentialId, transports: transportsOf(f.data) })),
      // A passkey (discoverable) when the authenticator can; a plain second factor otherwise.
      authenticatorSelection: { residentKey: 'preferred', userVerification: this.#policy },
    });
    await this.#challenges.put(key, { purpose: 'register', challenge: options.challenge, userId: user.id } satisfies Challenge, CEREMONY_SECONDS);
    return options;
  }

  /** Checks the browser's answer to registrationOptions(user, key) and stores the authenticator under `name`. */
  async verifyRegistration(userId: string, key: string, response: unknown, name: string): Promise<RegistrationResult> {
    const label = typeof name === 'string' ? name.trim() : '';
    if (!NAME.test(label)) return fail('invalid_name', `name must be 1 to ${MAX_NAME_LENGTH} characters without control characters`);
    const parsed = parseRegistrationResponse(response);
    if (!parsed.ok) return fail('malformed_response', parsed.detail);
    const challenge = await this.#take(key, 'register');
    if (!challenge) return fail('challenge_expired', 'no pending registration under this key');
    if (challenge.userId !== userId) return fail('wrong_user', 'the registration was started for another user');
    let verified;
    try {
      verified = await (await webauthnLibrary()).verifyRegistrationResponse({
        response: parsed.response,
        expectedChallenge: challenge.challenge,
        expectedOrigin: this.#origin,
        expectedRPID: this.#rpId,
        // Checked below, so that the refusal says what is missing.
        requireUserVerification: false,
      });
    } catch (err) {
      return fail('verification_failed', message(err));
    }
    if (!verified.verified) return fail('verification_failed', 'registration response not verified');
    const info = verified.registrationInfo;
    if (!info.userVerified && this.#policy === 'required') return fail('user_verification_required', 'the policy requires user verification');
    if (await this.#store.mfa.findWebauthnByCredentialId(info.credential.id)) return fail('duplicate_credential', 'credential already registered');
    try {
      const factorId = await uniquely('WebAuthn credential', () =>
        this.#store.mfa.addWebauthn(userId, {
          name: label,
          credentialId: info.credential.id,
          publicKey: Buffer.from(info.credential.publicKey).toString('base64url'),
          signCount: info.credential.counter,
          data: {
            transports: info.credential.transports ?? [],
            aaguid: info.aaguid,
            backedUp: info.credentialBackedUp,
            deviceType: info.credentialDeviceType,
            userVerified: info.userVerified,
          },
        }),
      );
      return { ok: true, factorId, method: methodOf(info.credentialDeviceType) };
    } catch (err) {
      // Registered by a concurrent request between the lookup and the insert.
      if (err instanceof AlreadyExists) return fail('duplicate_credential', 'credential already registered');
      throw err;
    }
  }

  /**
   * Options for navigator.credentials.get(). With a user: a second factor, limited to that
   * user's credentials. Without: passwordless sign-in, any discoverable credential for this RP,
   * with user verification required.
   */
  async authenticationOptions(key: string, userId?: string): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const factors = userId === undefined ? [] : await this.#store.mfa.webauthnFactors(userId);
    const options = await (await webauthnLibrary()).generateAuthenticationOptions({
      rpID: this.#rpId,
      timeout: CEREMONY_SECONDS * 1000,
      allowCredentials: factors.map((f) => ({ id: f.credentialId, transports: transportsOf(f.data) })),
      userVerification: userId === undefined ? 'required' : this.#policy,
    });
    await this.#challenges.put(key, { purpose: 'authenticate', challenge: options.challenge, ...(userId === undefined ? {} : { userId }) } satisfies Challenge, CEREMONY_SECONDS);
    return options;
  }

  /**
   * Checks the browser's answer to authenticationOptions(key, userId?). `expectedUserId` (or the
   * user the options were made for) must own the credential; without either this is a
   * passwordless sign-in and the result names the user.
   */
  async verifyAuthentication(key: string, response: unknown, expectedUserId?: string): Promise<AuthenticationResult> {
    const parsed = parseAuthenticationResponse(response);
    if (!parsed.ok) return fail('malformed_response', parsed.detail);
    const challenge = await this.#take(key, 'authenticate');
    if (!challenge) return fail('challenge_expired', 'no pending authentication under this key');
    if (challenge.userId !== undefined && expectedUserId !== undefined && challenge.userId !== expectedUserId) {
      return fail('wrong_user', 'the authentication was started for another user');
    }
    const expected = expectedUserId ?? challenge.userId;
    const factor = await this.#store.mfa.findWebauthnByCredentialId(parsed.response.id);
    if (!factor) return fail('unknown_credential', 'no such credential');
    if (expected !== undefined && factor.userId !== expected) return fail('wrong_user', 'the credential belongs to another user');
    const handle = parsed.response.response.userHandle;
    if (handle && Buffer.from(handle, 'base64url').toString('utf8') !== factor.userId) return fail('wrong_user', "the user handle does not name the credential's owner");
    let verified;
    try {
      verified = await (await webauthnLibrary()).verifyAuthenticationResponse({
        response: parsed.response,
        expectedChallenge: challenge.challenge,
        expectedOrigin: this.#origin,
        expectedRPID: this.#rpId,
        // Counter and user verification are checked below, after the signature, so that only a
        // genuinely signed assertion is ever called a clone, and each refusal says which it is.
        credential: { id: factor.credentialId, publicKey: new Uint8Array(Buffer.from(factor.publicKey, 'base64url')), counter: 0, transports: transportsOf(factor.data) },
        requireUserVerification: false,
      });
    } catch (err) {
      return fail('verification_failed', message(err));
    }
    if (!verified.verified) return fail('verification_failed', 'signature not verified');
    const { newCounter, userVerified, credentialDeviceType } = verified.authenticationInfo;
    const passwordless = expected === undefined;
    if (!userVerified && (passwordless || this.#policy === 'required')) {
      return fail('user_verification_required', passwordless ? 'passwordless sign-in requires user verification' : 'the policy requires user verification');
    }
    // Authenticators without a counter (most passkeys) always send 0; once either side counts,
    // the counter must grow, else two copies of the key are in use.
    const stored = factor.signCount;
    if ((newCounter > 0 || stored > 0) && newCounter <= stored) {
      return fail('counter_not_increased', `signature counter ${newCounter} is not above the stored ${stored}: possibly a cloned authenticator`);
    }
    if (!(await this.#store.mfa.updateSignCount(factor.id, stored, newCounter))) {
      return fail('counter_not_increased', 'another assertion of this credential moved its counter meanwhile: possibly a cloned authenticator');
    }
    // The presence test always happened; 'mfa' only when the authenticator also verified the
    // person (possession plus PIN or biometrics).
    const amr = [methodOf(credentialDeviceType), 'user', ...(userVerified ? ['mfa'] : [])];
    return { ok: true, userId: factor.userId, factorId: factor.id, userVerified, amr };
  }

  async #take(key: string, purpose: Challenge['purpose']): Promise<Challenge | null> {
    const value = (await this.#challenges.take(key)) as Partial<Challenge> | null;
    if (!value || value.purpose !== purpose || typeof value.challenge !== 'string') return null;
    return value as Challenge;
  }
}

function transportsOf(data: Record<string, unknown>): string[] | undefined {
  return Array.isArray(data.transports) ? data.transports.filter((t): t is string => typeof t === 'string') : undefined;
}
