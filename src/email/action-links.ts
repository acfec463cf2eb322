// The links mails carry: a random 256-bit token in the URL, its SHA-256 in the database, bound
// to one purpose, usable once before it expires. Opening a link (GET) only looks; the page's
// button (POST) consumes it, because mail scanners prefetch links.
import { createHash, randomBytes } from 'node:crypto';
import type { Store } from '../storage/store.ts';
import type { ActionPurpose, ActionToken } from '../storage/action-token-repository.ts';

/** 32 random bytes, base64url: 43 characters. */
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;

export const hashToken = (token: string) => createHash('sha256').update(token).digest('base64url');

/** Where each purpose's link leads. */
export const LINK_PATHS: Record<ActionPurpose, string> = {
  register: '/email/verify/',
  verify_email: '/email/verify/',
  change_email: '/email/verify/',
  reset_password: '/password/reset/',
};

export interface IssuedLink {
  token: string;
  url: string;
  expiresAt: Date;
}

export class ActionLinks {
  readonly #store: Store;
  readonly #issuer: string;

  constructor(store: Store, issuer: string) {
    this.#store = store;
    this.#issuer = issuer;
  }

  /** A new link for `purpose`, stored in `tx` when given (with the mail that carries it). */
  async issue(purpose: ActionPurpose, input: { userId?: string | null; email?: string | null; data?: Record<string, unknown>; minutes: number }, tx?: Store): Promise<IssuedLink> {
    const token = randomBytes(32).toString('base64url');
    const expiresAt = new Date(Date.now() + input.minutes * 60_000);
    await (tx ?? this.#store).actionTokens.insert({ tokenHash: hashToken(token), purpose, userId: input.userId, email: input.email, data: input.data, expiresAt });
    return { token, url: `${this.#issuer}${LINK_PATHS[purpose]}${token}`, expiresAt };
  }

  /** The token's record if it is usable for one of `purposes` (nothing consumed). */
  async look(token: string, purposes: readonly ActionPurpose[]): Promise<ActionToken | null> {
    if (!TOKEN_SHAPE.test(token)) return null;
    return this.#store.actionTokens.findUsable(hashToken(token), purposes);
  }

  /** Uses the token up, atomically (in `tx` when given, so a failure after it rolls it back). */
  async consume(token: string, purposes: readonly ActionPurpose[], tx?: Store): Promise<ActionToken | null> {
    if (!TOKEN_SHAPE.test(token)) return null;
    return (tx ?? this.#store).actionTokens.consume(hashToken(token), purposes);
  }

  /** Voids a user's other unused links of a purpose. */
  async revokeForUser(userId: string, purpose: ActionPurpose, tx?: Store): Promise<number> {
    return (tx ?? this.#store).actionTokens.revokeForUser(userId, purpose);
  }

  deleteExpired(): Promise<number> {
    return this.#store.actionTokens.deleteExpired();
  }
}
