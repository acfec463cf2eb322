// The account REST API under /account/api: what the account console (and nothing else) uses to
// let a signed-in person see and change their own account. Every operation is keyed by the
// token's subject; an id in a path that is not the caller's own is "not found", never another
// person's data. Bearer tokens only (no cookies), so there is no CSRF to defend against.
// Errors are problem+json as in the admin API (src/admin-api/problem.ts).
import { randomUUID } from 'node:crypto';
import type { Context, Next } from 'koa';
import type Provider from 'oidc-provider';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { Config } from '../config/schema.ts';
import type { Store } from '../storage/store.ts';
import type { RateLimits } from '../limits/rate-limits.ts';
import { AdminProblem, fieldErrors, invalid, toProblem } from '../admin-api/problem.ts';
import { readJson } from '../admin-api/admin-api.ts';
import { DatabaseUnavailable, isDatabaseUnavailable } from '../storage/database-unavailable.ts';
import { authenticateAccount, requireRecentLogin, type AccountAuthFailure, type AccountPrincipal } from './authenticate-account.ts';
import { accountRoutes, type AccountRouteDependencies } from './account-routes.ts';

export const ACCOUNT_API_PREFIX = '/account/api';
/** Largest JSON body (a passkey's registration answer is the biggest thing sent: 16 KiB at most). */
const BODY_LIMIT = 64 * 1024;
const REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;

export interface AccountRequest<B = unknown, Q = unknown> {
  principal: AccountPrincipal;
  params: Record<string, string>;
  query: Q;
  body: B;
  ctx: Context;
  requestId: string;
  /** Records a security-relevant event about the caller's own account. */
  audit(type: string, details?: Record<string, unknown>, outcome?: 'success' | 'failure'): Promise<void>;
}

export interface AccountResponse {
  status?: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface AccountRoute {
  method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
  /** Below /account/api; `:name` segments are parameters (ids of the caller's own things). */
  path: string;
  /** A sensitive change: the person must have signed in within account.reauthMaxAge. */
  recentLogin?: boolean;
  body?: z.ZodType;
  query?: z.ZodType;
  handler(request: AccountRequest<any, any>): Promise<AccountResponse>;
}

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

function compile(route: AccountRoute): Compiled {
  const names: string[] = [];
  const source = route.path.replace(/:([A-Za-z]+)/g, (_m, name: string) => {
    names.push(name);
    return '([^/]+)';
  });
  return { route, pattern: new RegExp(`^${source}$`), names };
}

function validate<T>(schema: z.ZodType<T> | undefined, value: unknown, where: 'query' | 'body'): T {
  if (!schema) return undefined as T;
  const result = schema.safeParse(value);
  if (!result.success) throw invalid(fieldErrors(where, result.error));
  return result.data;
}

function queryObject(ctx: Context): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of new URLSearchParams(ctx.querystring)) {
    if (key in out) throw invalid([{ path: `query.${key}`, message: 'must be given once' }]);
    out[key] = value;
  }
  return out;
}

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

    let match: { route: AccountRoute; params: Record<string, string> } | undefined;
    let pathMatched = false;
    for (const c of compiled) {
      const m = c.pattern.exec(sub);
      if (!m) continue;
      pathMatched = true;
      // HEAD is not GET here: a GET may record something (the export is audited).
      if (c.route.method !== ctx.method) continue;
      const params: Record<string, string> = {};
      for (const [i, name] of c.names.entries()) {
        // Not one of ours: nobody has a thing with that id.
        if (!ID.test(m[i + 1]!)) throw new AdminProblem(404, 'not_found', 'There is no such item in your account.');
        params[name] = m[i + 1]!;
      }
      match = { route: c.route, params };
      break;
    }
    if (!match) {
      if (pathMatched) throw new AdminProblem(405, 'method_not_allowed', `${ctx.method} is not supported here.`);
      throw new AdminProblem(404, 'not_found', 'There is no such account API endpoint.');
    }
    const { route } = match;
    const query = validate(route.query, queryObject(ctx), 'query');
    let body: unknown;
    if (route.body) body = validate(route.body, await readJson(ctx, BODY_LIMIT), 'body');
    else if (Number(ctx.get('content-length') || 0) > 0 || ctx.get('transfer-encoding')) throw new AdminProblem(415, 'unsupported_media_type', 'This operation takes no body.');
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
    ctx.status = result.status ?? (result.body === undefined ? 204 : 200);
    ctx.set('Cache-Control', 'no-store');
    for (const [name, value] of Object.entries(result.headers ?? {})) ctx.set(name, value);
    if (result.body !== undefined) {
      ctx.type = 'application/json';
      ctx.body = JSON.stringify(result.body);
    }
  }

  return async function accountApiMiddleware(ctx: Context, next: Next) {
    if (!config.account.enabled || (ctx.path !== ACCOUNT_API_PREFIX && !ctx.path.startsWith(`${ACCOUNT_API_PREFIX}/`))) return next();
    const given = ctx.get('x-request-id');
    const requestId = REQUEST_ID.test(given) ? given : randomUUID();
    ctx.set('X-Request-Id', requestId);
    try {
      if (limits.enabled) {
        const verdict = await limits.hitIp('token', ctx.ip);
        if (!verdict.allowed) throw new AdminProblem(429, 'too_many_requests', 'Too many requests. Wait a moment and try again.', { headers: { 'Retry-After': String(verdict.retryAfterSeconds) } });
      }
      await handle(ctx, requestId);
    } catch (err) {
      const problem = toProblem(err, requestId);
      if (problem.status >= 500 && problem.status !== 503 && problem.status !== 501) logger.error({ err, requestId, method: ctx.method, path: ctx.path }, 'account api error');
      ctx.status = problem.status;
      for (const [name, value] of Object.entries(problem.headers)) ctx.set(name, value);
      ctx.set('Cache-Control', 'no-store');
      ctx.type = 'application/problem+json';
      // Extra members a problem may carry (the password policy's code and values, for the console to translate).
      const extra = err instanceof AdminProblem ? (err as AdminProblem & { extra?: Record<string, unknown> }).extra : undefined;
      ctx.body = JSON.stringify(extra ? { ...extra, ...problem.body } : problem.body);
    }
  };
}
