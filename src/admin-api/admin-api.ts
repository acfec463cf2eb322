// The admin REST API under /admin/api/v1: authentication, per-IP budget, JSON bodies, zod
// validation, problem+json errors, ETags and the audit of every change, around the operations
// declared in src/admin-api/routes. Also serves the OpenAPI document and its reference page.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createRequire } from 'node:module';
import type { Context, Next } from 'koa';
import type Provider from 'oidc-provider';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import type { Store } from '../storage/store.ts';
import type { RateLimits } from '../limits/rate-limits.ts';
import { markPage, addCspSources } from '../http/security-headers.ts';
import type { AdminChange, AdminRoute } from './admin-route.ts';
import { AdminProblem, invalid } from './problem.ts';
import { compilePath, matchRoute, queryObject, readBody, runJsonApi, sendResult, validate } from '../http/json-api.ts';
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
  return { route, ...compilePath(route.path, /\{([A-Za-z]+)\}/g) };
}

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
    const match = matchRoute(compiled, sub, ctx.method, (raw) => {
      try {
        return decodeURIComponent(raw);
      } catch {
        throw invalid([{ path: 'params', message: 'is not valid percent-encoding' }]);
      }
    });

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
    if (!match.route) {
      if (match.pathMatched) throw new AdminProblem(405, 'method_not_allowed', `${ctx.method} is not supported here.`);
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
    const body = await readBody(ctx, route.body, route.bodyLimit ?? config.admin.bodyLimit);

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
    sendResult(ctx, result);
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
    return runJsonApi(ctx, { limits, logger, name: 'admin api' }, (requestId) => handle(ctx, deps.provider, requestId));
  };
}
