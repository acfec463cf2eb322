// Time-based one-time passwords (RFC 6238) as a second factor. The parameters are the ones every
// authenticator app supports (SHA1, 6 digits, 30 s); a code is accepted one step early or late
// (clock drift), and each accepted step is claimed in the database so the same code cannot be
// used twice, here or on another instance. Secrets are sealed at rest, bound to their user, so a
// sealed secret copied onto another user's row does not open.
import { Secret, TOTP } from 'otpauth';
import type { Logger } from 'pino';
import type { Store } from '../storage/store.ts';
import type { TokenCipher } from '../accounts/token-cipher.ts';

const PERIOD = 30;
const DIGITS = 6;
const WINDOW = 1;
const FACTOR_NAME = 'Authenticator app';

export type TotpVerification = { ok: true; factorId: string } | { ok: false; reason: 'invalid' | 'replayed' | 'not_enrolled' };

export interface TotpEnrolment {
  factorId: string;
  /** base32, for typing into an app that cannot scan. */
  secret: string;
  /** otpauth:// URI (what the QR code holds). */
  uri: string;
  /** The QR code as an SVG document, rendered here (no network). */
  qrSvg: string;
}

export interface TotpServiceOptions {
  store: Store;
  cipher: TokenCipher;
  /** Shown in the authenticator app next to the username. */
  issuerName: string;
  logger?: Logger;
  /** Milliseconds since the epoch (tests pin time steps with it). */
  clock?: () => number;
}

export const totpBinding = (userId: string) => `totp:${userId}`;

/** The code with spaces removed, or null when it cannot be a code (not exactly 6 digits). */
export function normalizeTotpCode(input: unknown): string | null {
  if (typeof input !== 'string' || input.length > 64) return null;
  const code = input.replace(/\s+/g, '');
  return /^[0-9]{6}$/.test(code) ? code : null;
}

export class TotpService {
  readonly #store: Store;
  readonly #cipher: TokenCipher;
  readonly #issuer: string;
  readonly #logger: Logger | undefined;
  readonly #clock: () => number;

  constructor(options: TotpServiceOptions) {
    this.#store = options.store;
    this.#cipher = options.cipher;
    this.#issuer = options.issuerName;
    this.#logger = options.logger;
    this.#clock = options.clock ?? Date.now;
  }

  /** A new secret, stored sealed and unconfirmed until its first code (replaces an earlier pending one). */
  async startEnrolment(user: { id: string; username: string }): Promise<TotpEnrolment> {
    const secret = new Secret({ size: 20 });
    const totp = new TOTP({ issuer: this.#issuer, label: user.username, algorithm: 'SHA1', digits: DIGITS, period: PERIOD, secret });
    const factorId = await this.#store.mfa.addTotp(user.id, FACTOR_NAME, this.#cipher.seal(secret.base32, totpBinding(user.id)));
    const uri = totp.toString();
    // Loaded at the first enrolment, not at every start.
    const { default: QRCode } = await import('qrcode');
    const qrSvg = await QRCode.toString(uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
    return { factorId, secret: secret.base32, uri, qrSvg };
  }

  /** Completes an enrolment with its first code. 'gone': no such pending factor (reset or replaced). */
  async confirmEnrolment(userId: string, factorId: string, code: unknown): Promise<'confirmed' | 'invalid' | 'gone'> {
    const pending = (await this.#store.mfa.totpFactors(userId, { pending: true })).find((f) => f.id === factorId && !f.confirmed);
    if (!pending) return 'gone';
    const normalized = normalizeTotpCode(code);
    if (!normalized) return 'invalid';
    const step = this.#matchingStep(userId, pending.id, pending.sealedSecret, normalized);
    if (step === null || !(await this.#store.mfa.claimTotpStep(pending.id, step))) return 'invalid';
    return (await this.#store.mfa.confirm(userId, pending.id)) ? 'confirmed' : 'gone';
  }

  /** Checks a code against every confirmed TOTP factor of the user; the matching step is used up. */
  async verify(userId: string, code: unknown): Promise<TotpVerification> {
    const normalized = normalizeTotpCode(code);
    if (!normalized) return { ok: false, reason: 'invalid' };
    const factors = await this.#store.mfa.totpFactors(userId);
    if (!factors.length) return { ok: false, reason: 'not_enrolled' };
    let replayed = false;
    for (const factor of factors) {
      const step = this.#matchingStep(userId, factor.id, factor.sealedSecret, normalized);
      if (step === null) continue;
      if (await this.#store.mfa.claimTotpStep(factor.id, step)) return { ok: true, factorId: factor.id };
      replayed = true;
    }
    return { ok: false, reason: replayed ? 'replayed' : 'invalid' };
  }

  /** The time step the code belongs to (within the window), or null. */
  #matchingStep(userId: string, factorId: string, sealed: string, code: string): number | null {
    const secret = this.#cipher.open(sealed, totpBinding(userId));
    if (typeof secret !== 'string') {
      // Another key, an altered row, or a row moved from another user: a refusal, not an error.
      this.#logger?.warn({ userId, factorId }, 'a TOTP secret cannot be opened with the configured keys');
      return null;
    }
    const now = this.#clock();
    const delta = TOTP.validate({ token: code, secret: Secret.fromBase32(secret), algorithm: 'SHA1', digits: DIGITS, period: PERIOD, timestamp: now, window: WINDOW });
    return delta === null ? null : TOTP.counter({ period: PERIOD, timestamp: now }) + delta;
  }
}
