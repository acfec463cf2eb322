// The writes of one authorization request, held back and sent together. A request that ends a
// login (oidc-provider's resume, or /auth with a live session) saves a grant, an authorization
// code and the browser session one after another, each its own statement. Held, the grant and
// the code go with the session's save as one statement: one round trip and one commit instead of
// three, and all or none of them stored. What no session save took along is written when the
// request's middleware returns, before the answer (which carries the code) leaves; a request
// that fails before then stores nothing held, whether its error propagates or oidc-provider
// renders it as an error page (status 400 or more: no code leaves with it). Within the request,
// a held record is read from here (oidc-adapter.ts).
//
// A resume also destroys the interaction it finishes and records the login's row (which
// connector signed the session in). Both go in the same statement as the session's save: the
// interaction's delete gates it, so of two resumes of one interaction at once only the one whose
// delete removed it stores anything (the other is refused as a resume of a finished
// interaction). A resume that fails still removes its interaction.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Context, Next } from 'koa';

export interface HeldWrites {
  /** The held saves by `kind\0id`, in the order first made (the adapter's row values). */
  rows: Map<string, readonly unknown[]>;
  /** Writes what is held; set by the adapter while something is. */
  flush?: () => Promise<void>;
  /** An interaction whose delete was held back: the held writes are stored only if it removes it. */
  gate?: { kind: string; id: string };
  /** Runs the held delete alone (the request failed: nothing else is written); set with `gate`. */
  discard?: () => Promise<void>;
  /**
   * The login's row (login-session-repository.ts), written with the held writes: its
   * parameters, and what to tell with the stored row (null: not stored).
   */
  alongside?: { params: readonly unknown[]; settled(row: Record<string, unknown> | null): void };
  /**
   * The held writes failed, or their delete removed nothing (another resume of the interaction
   * got there first): the answer, an error, must carry nothing they were to store.
   */
  failed?: boolean;
  /** An interaction post's hold: only a companion waits in it (nothing above is held there). */
  interaction?: true;
  /** A write waiting to go with the request's next save (rideAlong). */
  companion?: Companion;
}

/**
 * A small write that need not be a statement of its own: the next save the request makes through
 * the adapter (a login's interaction result, or its step's state) takes it along as a CTE
 * (`WITH companion AS (...)`), one round trip and one commit instead of two. If no save comes,
 * `alone` writes it as the request ends; if that save fails, right after.
 */
export interface Companion {
  /** Names the combined statement (prepared once per connection): one per companion text. */
  name: string;
  /** The companion's SQL, its parameters numbered from `$first`. */
  text(first: number): string;
  values: readonly unknown[];
  /** Writes it by itself (no save came, or the one that took it failed); handles its own failure. */
  alone(): Promise<void>;
}

const holds = new AsyncLocalStorage<HeldWrites>();

/** The authorization request being served, if any. */
export function currentHold(): HeldWrites | undefined {
  const hold = holds.getStore();
  return hold?.interaction ? undefined : hold;
}

/** The companion write waiting for this request's next save, taken (the save writes it). */
export function takeCompanion(): Companion | undefined {
  const hold = holds.getStore();
  const companion = hold?.companion;
  if (hold) hold.companion = undefined;
  return companion;
}

/** Wraps the authorization endpoint and its resume (`/auth`, `/auth/:uid`). */
export function holdAuthorizationWrites(authorizationPath = '/auth') {
  return async function holdWrites(ctx: Context, next: Next) {
    if ((ctx.method !== 'GET' && ctx.method !== 'POST') || (ctx.path !== authorizationPath && !ctx.path.startsWith(`${authorizationPath}/`))) return next();
    const hold: HeldWrites = { rows: new Map() };
    try {
      await holds.run(hold, next);
      if (ctx.status >= 400) await discard(hold);
      else if (hold.flush) await hold.flush();
    } catch (err) {
      await discard(hold);
      throw err;
    } finally {
      if (hold.failed) {
        // Not the code's redirect, and no cookie changed: the browser keeps the session it had
        // (or the one that the resume which got there first set).
        ctx.remove('Location');
        ctx.remove('Set-Cookie');
      }
    }
  };
}

/**
 * Wraps the interaction routes' form posts (`POST /interaction/...`): a companion write
 * (rideAlong) waits there for the request's next save.
 */
export function holdInteractionWrites(prefix = '/interaction/') {
  return async function holdCompanions(ctx: Context, next: Next) {
    if (ctx.method !== 'POST' || !ctx.path.startsWith(prefix)) return next();
    const hold: HeldWrites = { rows: new Map(), interaction: true };
    try {
      await holds.run(hold, next);
    } finally {
      const companion = hold.companion;
      hold.companion = undefined;
      if (companion) await companion.alone();
    }
  };
}

/** Leaves `companion` for the current interaction post's next save; false outside one (write it now). */
export function rideAlong(companion: Companion): boolean {
  const hold = holds.getStore();
  if (!hold?.interaction || hold.companion) return false;
  hold.companion = companion;
  return true;
}

/** After a failed request: its held delete goes alone, and nothing held is written. */
async function discard(hold: HeldWrites): Promise<void> {
  hold.alongside?.settled(null);
  hold.alongside = undefined;
  // Should that delete fail too (the database down), the interaction stays until it expires: it
  // has issued nothing, and the request's own error is the one to report.
  await hold.discard?.().catch(() => {});
}
