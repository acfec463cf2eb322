// The admin REST API under /admin/api/v1: authentication, per-IP budget, JSON bodies, zod
// validation, problem+json errors, ETags and the audit of every change, around the operations
// declared in src/admin-api/routes. Also serves the OpenAPI document and its reference page.
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import type { Context, Next } from 'koa';
import type Provider from 'oidc-provider';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { Config } from '../config/schema.ts';
import type { Store } from '../storage/store.ts';
import type { RateLimits } from '../limits/rate-limits.ts';
import { markPage, addCspSources } from '../http/security-headers.ts';
import type { AdminChange, AdminRoute } from './admin-route.ts';
import { AdminProblem, fieldErrors, invalid, toProblem } from './problem.ts';
import { allows, authenticateAdmin, type AdminPrincipal, type AuthenticationFailure } from './authenticate-admin.ts';
import { changedFields } from './admin-support.ts';
import { DatabaseUnavailable, isDatabaseUnavailable } from '../storage/database-unavailable.ts';
import { API_PREFIX, openApiDocument } from './openapi-document.ts';

export interface AdminApiDependencies {
  config: Config;
  store: Store;
  logger: Logger;
  limits: RateLimits;
  routes: readonly AdminRoute[];
  version: string;
  provider: Provider;
}

interface CompiledRoute {
  route: AdminRoute;
  pattern: RegExp;
  names: string[];
}

function compile(route: AdminRoute): CompiledRoute {
  const names: string[] = [];
  const source = route.path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\\?\{([A-Za-z]+)\\?\}|\{([A-Za-z]+)\}/g, (_m, a: string, b: string) => {
    names.push(a ?? b);
    return '([^/]+)';
  });
  return { route, pattern: new RegExp(`^${source}$`), names };
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;
const swaggerDir = path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
const DOC_ASSETS: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
};
const DOCS_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Keybridge admin API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/admin/api/docs/swagger-ui.css"></head>
<body><div id="api-reference"></div>
<script src="/admin/api/docs/swagger-ui-bundle.js"></script>
<script src="/admin/api/docs/init.js"></script></body></html>`;
const DOCS_INIT = `window.ui = SwaggerUIBundle({ url: '${API_PREFIX}/openapi.json', dom_id: '#api-reference', deepLinking: true });\n`;

function parseIfMatch(header: string): string[] | null {
  if (!header) return null;
  return header.split(',').map((t) => t.trim()).filter(Boolean);
}

/** Reads a JSON body within the limit; the edge check (input-guard) already refused raw NUL bytes and bad UTF-8, checkText finds NULs written as JSON escapes. */
export async function readJson(ctx: Context, limit: number): Promise<unknown> {
  if (!ctx.is('application/json', '+json')) throw new AdminProblem(415, 'unsupported_media_type', 'The body must be JSON (Content-Type: application/json).');
  const declared = Number(ctx.get('content-length') || 0);
  if (declared > limit) throw new AdminProblem(413, 'too_large', `The body is larger than ${limit} bytes.`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new AdminProblem(413, 'too_large', `The body is larger than ${limit} bytes.`);
    chunks.push(chunk as Buffer);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks, size).toString('utf8'));
  } catch {
    throw invalid([{ path: 'body', message: 'is not valid JSON' }]);
  }
  checkText(value);
  return value;
}

/** PostgreSQL stores neither NUL nor lone surrogates; JSON escapes can carry both. */
function checkText(value: unknown): void {
  const stack: Array<[unknown, string, number]> = [[value, 'body', 0]];
  while (stack.length) {
    const [v, at, depth] = stack.pop()!;
    if (depth > 32) throw invalid([{ path: at, message: 'is nested too deeply' }]);
    if (typeof v === 'string') {
      if (v.includes('\0') || !v.isWellFormed()) throw invalid([{ path: at, message: 'must be valid text (no NUL characters or unpaired surrogates)' }]);
    } else if (v && typeof v === 'object') {
      for (const [k, item] of Object.entries(v)) {
        if (k.includes('\0') || !k.isWellFormed()) throw invalid([{ path: at, message: 'has a key that is not valid text' }]);
        stack.push([item, `${at}.${k}`, depth + 1]);
      }
    }
  }
}

function validate<T>(schema: z.ZodType<T> | undefined, value: unknown, where: 'params' | 'query' | 'body'): T {
  if (!schema) return undefined as T;
  const result = schema.safeParse(value);
  if (!result.success) throw invalid(fieldErrors(where, result.error));
  return result.data;
}

/** Query parameters as given; a repeated parameter is refused (no schema takes arrays). */
function queryObject(ctx: Context): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of new URLSearchParams(ctx.querystring)) {
    if (key in out) throw invalid([{ path: `query.${key}`, message: 'must be given once' }]);
    out[key] = value;
  }
  return out;
}

export function adminApi(deps: AdminApiDependencies) {
  const { config, store, logger, limits } = deps;
  const compiled = deps.routes.map(compile);
  let document: string | undefined;

  /** Best effort: a refusal stays a refusal (401/403) even when the audit log cannot be written. */
  async function auditFailure(ctx: Context, failure: AuthenticationFailure, status: number, requestId: string): Promise<void> {
    try {
      await recordFailure(ctx, failure, status, requestId);
    } catch (err) {
      if (err instanceof DatabaseUnavailable || isDatabaseUnavailable(err)) logger.debug({ requestId }, 'admin refusal not audited: database unavailable');
      else logger.warn({ requestId, reason: failure.reason, message: (err as Error).message }, 'admin refusal not audited');
    }
  }

  async function recordFailure(ctx: Context, failure: AuthenticationFailure, status: number, requestId: string): Promise<void> {
    await store.audit.record({
      type: status === 401 ? 'admin.unauthenticated' : 'admin.forbidden',
      outcome: 'failure',
      ip: ctx.ip,
      clientId: failure.clientId ?? null,
      userId: failure.userId ?? null,
      details: { reason: failure.reason, method: ctx.method, path: ctx.path.slice(0, 256), requestId },
    });
  }

  async function recordChange(ctx: Context, principal: AdminPrincipal, requestId: string, change: AdminChange): Promise<void> {
    const { target } = change;
    await store.audit.record({
      type: `admin.${change.action}`,
      outcome: 'success',
      ip: ctx.ip,
      userId: target.kind === 'user' ? target.id : null,
      clientId: target.kind === 'client' ? target.id : null,
      connectorId: target.kind === 'connector' ? target.id : null,
      details: {
        actor: { kind: principal.kind, clientId: principal.clientId, ...(principal.userId ? { userId: principal.userId, username: principal.username } : {}) },
        requestId,
        target,
        ...(change.before !== undefined || change.after !== undefined ? { changes: changedFields(change.before, change.after) } : {}),
        ...(change.details ? { details: change.details } : {}),
      },
    });
  }

  async function handle(ctx: Context, provider: Provider, requestId: string): Promise<void> {
    const sub = ctx.path.slice(API_PREFIX.length) || '/';
    if (sub === '/openapi.json' && (ctx.method === 'GET' || ctx.method === 'HEAD')) {
      document ??= JSON.stringify(openApiDocument(deps.routes, { issuer: config.issuer, version: deps.version }));
      ctx.type = 'application/json';
      ctx.set('Cache-Control', 'no-cache');
      ctx.body = document;
      return;
    }
    let match: { route: AdminRoute; params: Record<string, string> } | undefined;
    let pathMatched = false;
    for (const c of compiled) {
      const m = c.pattern.exec(sub);
      if (!m) continue;
      pathMatched = true;
      if (c.route.method.toUpperCase() !== ctx.method) continue;
      let params: Record<string, string>;
      try {
        params = Object.fromEntries(c.names.map((n, i) => [n, decodeURIComponent(m[i + 1])]));
      } catch {
        throw invalid([{ path: 'params', message: 'is not valid percent-encoding' }]);
      }
      match = { route: c.route, params };
      break;
    }

    // Who is asking comes first: nothing about the API's shape is told to an anonymous caller.
    let principal: AdminPrincipal;
    try {
      principal = await authenticateAdmin(ctx, provider, { config, store });
    } catch (err) {
      const failure = (err as { failure?: AuthenticationFailure }).failure;
      if (failure && err instanceof AdminProblem) {
        if (err.status === 401) await limits.tokenFailure(ctx.ip);
        await auditFailure(ctx, failure, err.status, requestId);
      }
      throw err;
    }
    if (!match) {
      if (pathMatched) throw new AdminProblem(405, 'method_not_allowed', `${ctx.method} is not supported here.`);
      throw new AdminProblem(404, 'not_found', 'There is no such admin API endpoint.');
    }
    const { route } = match;
    if (!allows(principal, route.resource, route.access)) {
      const failure = { reason: 'insufficient_scope', clientId: principal.clientId, userId: principal.userId ?? undefined };
      await auditFailure(ctx, failure, 403, requestId);
      throw new AdminProblem(403, 'insufficient_scope', `This operation needs the scope admin:${route.access} (or admin:${route.resource}:${route.access}).`, {
        headers: { 'WWW-Authenticate': `Bearer realm="keybridge-admin", error="insufficient_scope", scope="admin:${route.access} admin:${route.resource}:${route.access}"` },
      });
    }

    const params = validate(route.params, match.params, 'params');
    const query = validate(route.query, queryObject(ctx), 'query');
    let body: unknown;
    if (route.body) body = validate(route.body, await readJson(ctx, route.bodyLimit ?? config.admin.bodyLimit), 'body');
    else if (Number(ctx.get('content-length') || 0) > 0 || ctx.get('transfer-encoding')) {
      throw new AdminProblem(415, 'unsupported_media_type', 'This operation takes no body.');
    }

    const result = await route.handler({
      params,
      query,
      body,
      principal,
      ifMatch: parseIfMatch(ctx.get('if-match')),
      requestId,
      ctx,
      audit: (change) => recordChange(ctx, principal, requestId, change),
    });
    ctx.status = result.status ?? (result.body === undefined && !result.stream ? 204 : 200);
    ctx.set('Cache-Control', 'no-store');
    if (result.etag) ctx.set('ETag', result.etag);
    for (const [name, value] of Object.entries(result.headers ?? {})) ctx.set(name, value);
    if (result.stream) {
      ctx.type = result.contentType ?? 'text/plain';
      ctx.body = Readable.from(result.stream);
    } else if (result.body !== undefined) {
      ctx.type = result.contentType ?? 'application/json';
      ctx.body = result.contentType ? result.body : JSON.stringify(result.body);
    }
  }

  async function serveDocs(ctx: Context): Promise<void> {
    const name = ctx.path.slice('/admin/api/docs'.length).replace(/^\//, '');
    ctx.set('Cache-Control', 'no-cache');
    if (name === '') {
      markPage(ctx);
      addCspSources(ctx, 'script-src', "'self'");
      addCspSources(ctx, 'connect-src', "'self'");
      ctx.type = 'text/html; charset=utf-8';
      ctx.body = DOCS_PAGE;
    } else if (name === 'init.js') {
      ctx.type = 'text/javascript; charset=utf-8';
      ctx.body = DOCS_INIT;
    } else if (Object.hasOwn(DOC_ASSETS, name)) {
      ctx.type = DOC_ASSETS[name];
      ctx.body = await readFile(path.join(swaggerDir, name));
    } else {
      ctx.status = 404;
      ctx.type = 'text/plain';
      ctx.body = 'Not found';
    }
  }

  return async function adminApiMiddleware(ctx: Context, next: Next) {
    const inApi = ctx.path === API_PREFIX || ctx.path.startsWith(`${API_PREFIX}/`);
    if (!inApi) {
      if ((ctx.path === '/admin/api/docs' || ctx.path.startsWith('/admin/api/docs/')) && (ctx.method === 'GET' || ctx.method === 'HEAD')) return serveDocs(ctx);
      return next();
    }
    const given = ctx.get('x-request-id');
    const requestId = REQUEST_ID.test(given) ? given : randomUUID();
    ctx.set('X-Request-Id', requestId);
    try {
      if (limits.enabled) {
        const verdict = await limits.hitIp('token', ctx.ip);
        if (!verdict.allowed) throw new AdminProblem(429, 'too_many_requests', 'Too many requests. Wait a moment and try again.', { headers: { 'Retry-After': String(verdict.retryAfterSeconds) } });
      }
      await handle(ctx, deps.provider, requestId);
    } catch (err) {
      const problem = toProblem(err, requestId);
      if (problem.status >= 500 && problem.status !== 503) logger.error({ err, requestId, method: ctx.method, path: ctx.path }, 'admin api error');
      ctx.status = problem.status;
      for (const [name, value] of Object.entries(problem.headers)) ctx.set(name, value);
      ctx.set('Cache-Control', 'no-store');
      ctx.type = 'application/problem+json';
      ctx.body = JSON.stringify(problem.body);
    }
  };
}
