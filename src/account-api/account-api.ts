// The account REST API under /account/api: what the account console (and nothing else) uses to
// let a signed-in person see and change their own account. Every operation is keyed by the
// token's subject; an id in a path that is not the caller's own is "not found", never another
// person's data. Bearer tokens only (no cookies), so there is no CSRF to defend against.
// Errors are problem+json as in the admin API (src/admin-api/problem.ts).
import type { Context, Next } from 'koa';
import type Provider from 'oidc-provider';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { Config } from '../config/schema.ts';
import type { Store } from '../storage/store.ts';
import type { RateLimits } from '../limits/rate-limits.ts';
import { AdminProblem } from '../admin-api/problem.ts';
import { compilePath, matchRoute, queryObject, readBody, runJsonApi, sendResult, validate } from '../http/json-api.ts';
import { DatabaseUnavailable, isDatabaseUnavailable } from '../storage/database-unavailable.ts';
import { authenticateAccount, requireRecentLogin, type AccountAuthFailure, type AccountPrincipal } from './authenticate-account.ts';
import { accountRoutes, type AccountRouteDependencies } from './account-routes.ts';
import type { AccountRoute } from './account-route.ts';

export type { AccountRequest, AccountResponse, AccountRoute } from './account-route.ts';

export const ACCOUNT_API_PREFIX = '/account/api';
/** Largest JSON body (a passkey's registration answer is the biggest thing sent: 16 KiB at most). */
const BODY_LIMIT = 64 * 1024;

export interface AccountApiDependencies extends AccountRouteDependencies {
  config: Config;
  store: Store;
  logger: Logger;
  limits: RateLimits;
  provider: Provider;
  clientId: string;
}

// Ids in paths: what our ids look like (uuids, oidc-provider's uids); anything else cannot be one.
const ID = /^[A-Za-z0-9_-]{1,128}$/;

interface Compiled {
  route: AccountRoute;
  pattern: RegExp;
  names: string[];
}

const compile = (route: AccountRoute): Compiled => ({ route, ...compilePath(route.path, /:([A-Za-z]+)/g) });

export function accountApi(deps: AccountApiDependencies) {
  const { config, store, logger, limits } = deps;
  const compiled = accountRoutes(deps).map(compile);

  async function auditQuietly(event: Parameters<Store['audit']['record']>[0], requestId: string): Promise<void> {
    try {
      await store.audit.record(event);
    } catch (err) {
      if (err instanceof DatabaseUnavailable || isDatabaseUnavailable(err)) logger.debug({ requestId }, 'account api refusal not audited: database unavailable');
      else logger.warn({ requestId, message: (err as Error).message }, 'account api refusal not audited');
    }
  }

  async function handle(ctx: Context, requestId: string): Promise<void> {
    const sub = ctx.path.slice(ACCOUNT_API_PREFIX.length) || '/';
    let principal: AccountPrincipal;
    try {
      principal = await authenticateAccount(ctx, deps.provider, { store, clientId: deps.clientId });
    } catch (err) {
      const failure = (err as { failure?: AccountAuthFailure }).failure;
      if (failure) {
        await limits.tokenFailure(ctx.ip);
        // No token at all is the console's normal first call, not worth an event.
        if (failure.reason !== 'no_token') await auditQuietly({ type: 'account.unauthenticated', outcome: 'failure', ip: ctx.ip, clientId: failure.clientId ?? null, userId: failure.userId ?? null, details: { reason: failure.reason, method: ctx.method, path: ctx.path.slice(0, 256), requestId } }, requestId);
      }
      throw err;
    }

    // HEAD is not GET here: a GET may record something (the export is audited).
    const match = matchRoute(compiled, sub, ctx.method, (raw) => {
      // Not one of ours: nobody has a thing with that id.
      if (!ID.test(raw)) throw new AdminProblem(404, 'not_found', 'There is no such item in your account.');
      return raw;
    });
    if (!match.route) {
      if (match.pathMatched) throw new AdminProblem(405, 'method_not_allowed', `${ctx.method} is not supported here.`);
      throw new AdminProblem(404, 'not_found', 'There is no such account API endpoint.');
    }
    const { route } = match;
    const query = validate(route.query, queryObject(ctx), 'query');
    const body = await readBody(ctx, route.body, BODY_LIMIT);
    if (route.recentLogin) requireRecentLogin(principal, config.account.reauthMaxAge);

    const result = await route.handler({
      principal,
      params: match.params,
      query,
      body,
      ctx,
      requestId,
      audit: (type, details = {}, outcome = 'success') => store.audit.record({ type, outcome, userId: principal.user.id, clientId: principal.clientId, ip: ctx.ip, details: { ...details, requestId } }),
    });
    sendResult(ctx, result);
  }

  return async function accountApiMiddleware(ctx: Context, next: Next) {
    if (!config.account.enabled || (ctx.path !== ACCOUNT_API_PREFIX && !ctx.path.startsWith(`${ACCOUNT_API_PREFIX}/`))) return next();
    return runJsonApi(ctx, { limits, logger, name: 'account api' }, (requestId) => handle(ctx, requestId));
  };
}
