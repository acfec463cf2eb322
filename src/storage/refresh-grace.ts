// Refresh-token reuse grace. Refresh tokens rotate on every use, and oidc-provider revokes the
// whole grant when a used one comes back (lib/actions/grants/refresh_token.js). A client whose
// response was lost (its connection dropped, or the instance died after rotating) still holds
// the old token, and its retry would revoke its own grant. Within `grace` seconds of the first
// rotation, a repeat of the same token is let through instead:
//
// - the adapter reports the just-consumed token as unconsumed (only inside a token request),
//   so oidc-provider rotates it again instead of revoking;
// - every rotated token's successor records its predecessor, in the database, so whichever
//   instance answers the repeat can find the successor issued the first time;
// - the repeat gets that same successor while it is unused (the token it just minted is
//   deleted), else the fresh one. Either way one chain stays, whichever response arrived.
//
// A repeat after the successor was itself used is not a lost response (the client got and used
// it): that is reuse, and revokes as outside the window. The consumption time is set once, so
// repeats do not stretch the window.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Knex } from 'knex';
import type { Context, Next } from 'koa';
import { errors } from 'oidc-provider';
import { artifactsChanged } from './artifact-cache.ts';

const TABLE = 'oidc_payloads';
/** Where a rotated refresh token's payload names the token it replaced. */
export const PREDECESSOR = 'kbPredecessor';

interface TokenExchange {
  /** The refresh token this request consumed (the successor it saves names it). */
  rotatedFrom?: string;
  /** Set when the presented token had already been rotated, within the grace window. */
  repeated?: { id: string; grantId: string };
  /** Writes a rotation the adapter holds back to save with the access token (oidc-adapter.ts). */
  flush?: () => Promise<void>;
}

const exchanges = new AsyncLocalStorage<TokenExchange>();

/** The token request being served, if any: grace applies only there (not to introspection). */
export function currentExchange(): TokenExchange | undefined {
  return exchanges.getStore();
}

/** Whether a successor of `id` was already used: then a repeat of `id` is reuse, not a retry. */
export async function successorUsed(knex: Knex, id: string, grantId: string): Promise<boolean> {
  const row = await knex(TABLE)
    .where({ kind: 'RefreshToken', grant_id: grantId })
    .whereRaw('payload->>? = ?', [PREDECESSOR, id])
    .whereNotNull('consumed_at')
    .first('id');
  return row !== undefined;
}

/**
 * Wraps the token endpoint: gives the adapter a place to note a rotation, and answers a repeat
 * with the successor issued the first time when that one is still unused.
 */
export function refreshGrace(knex: Knex, tokenPath = '/token') {
  return async function refreshTokenGrace(ctx: Context, next: Next) {
    if (ctx.method !== 'POST' || ctx.path !== tokenPath) return next();
    const exchange: TokenExchange = {};
    await exchanges.run(exchange, next);
    // A rotation still held means no access token was saved after it; a code's claim still held,
    // that no refresh token was saved after its access token (oidc-adapter.ts): written only if
    // the answer (which carries those tokens) is a success.
    if (exchange.flush) {
      const flush = exchange.flush;
      exchange.flush = undefined;
      if (ctx.status === 200) {
        try {
          await flush();
        } catch (err) {
          if (!(err instanceof errors.OIDCProviderError) || !err.expose) throw err;
          // The code was used by another request meanwhile: nothing of this answer was stored,
          // and it becomes the refusal oidc-provider sends for a used code.
          ctx.status = err.statusCode;
          ctx.body = { error: err.error, error_description: err.error_description };
          return;
        }
      }
    }
    const body = ctx.body as { refresh_token?: unknown } | undefined;
    if (!exchange.repeated || ctx.status !== 200 || typeof body?.refresh_token !== 'string') return;
    const minted = body.refresh_token;
    const earlier = await knex(TABLE)
      .where({ kind: 'RefreshToken', grant_id: exchange.repeated.grantId })
      .whereRaw('payload->>? = ?', [PREDECESSOR, exchange.repeated.id])
      .whereNot('id', minted)
      .whereNull('consumed_at')
      .andWhere((q) => q.whereNull('expires_at').orWhere('expires_at', '>', new Date()))
      .orderBy('expires_at', 'asc')
      .first<{ id: string } | undefined>('id');
    if (!earlier) return;
    body.refresh_token = earlier.id;
    artifactsChanged();
    await knex(TABLE).where({ kind: 'RefreshToken', id: minted }).delete();
    artifactsChanged();
  };
}
