// What the admin API (/admin/api/v1) and the account API (/account/api) share around their own
// operations: a request id, the per-IP budget, problem+json for every error, route patterns with
// named path segments, JSON bodies read within a limit, zod validation of query and body (field
// errors named by path), and writing an operation's result.
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Context } from 'koa';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { RateLimits } from '../limits/rate-limits.ts';
import { AdminProblem, fieldErrors, invalid, toProblem } from '../admin-api/problem.ts';

const REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;

export interface CompiledPath {
  pattern: RegExp;
  names: string[];
}

/** A route path as a pattern; `parameter` finds its named segments (`{id}` or `:id`), each one path segment. */
export function compilePath(path: string, parameter: RegExp): CompiledPath {
  const names: string[] = [];
  const source = path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(parameter, (_m, name: string) => {
    names.push(name);
    return '([^/]+)';
  });
  return { pattern: new RegExp(`^${source}$`), names };
}

/**
 * The route for this path and method, each parameter passed through `param` (which may refuse
 * it by throwing); otherwise whether some route has this path (the method is then the problem).
 */
export function matchRoute<R extends { method: string }>(
  compiled: readonly (CompiledPath & { route: R })[],
  path: string,
  method: string,
  param: (raw: string) => string,
): { route: R; params: Record<string, string> } | { route?: undefined; pathMatched: boolean } {
  let pathMatched = false;
  for (const c of compiled) {
    const m = c.pattern.exec(path);
    if (!m) continue;
    pathMatched = true;
    if (c.route.method.toUpperCase() !== method) continue;
    return { route: c.route, params: Object.fromEntries(c.names.map((name, i) => [name, param(m[i + 1]!)])) };
  }
  return { pathMatched };
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

export function validate<T>(schema: z.ZodType<T> | undefined, value: unknown, where: 'params' | 'query' | 'body'): T {
  if (!schema) return undefined as T;
  const result = schema.safeParse(value);
  if (!result.success) throw invalid(fieldErrors(where, result.error));
  return result.data;
}

/** Query parameters as given; a repeated parameter is refused (no schema takes arrays). */
export function queryObject(ctx: Context): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of new URLSearchParams(ctx.querystring)) {
    if (key in out) throw invalid([{ path: `query.${key}`, message: 'must be given once' }]);
    out[key] = value;
  }
  return out;
}

/** The body of an operation that takes one (read and validated), or a 415 when one that takes none was sent one. */
export async function readBody(ctx: Context, schema: z.ZodType | undefined, limit: number): Promise<unknown> {
  if (schema) return validate(schema, await readJson(ctx, limit), 'body');
  if (Number(ctx.get('content-length') || 0) > 0 || ctx.get('transfer-encoding')) throw new AdminProblem(415, 'unsupported_media_type', 'This operation takes no body.');
  return undefined;
}

export interface JsonResult {
  status?: number;
  body?: unknown;
  headers?: Record<string, string>;
  etag?: string;
  /** Set for a body that is not JSON (already a string or buffer). */
  contentType?: string;
  /** A streamed body (an export). */
  stream?: AsyncIterable<string | Buffer>;
}

/** Writes an operation's result; never cached. */
export function sendResult(ctx: Context, result: JsonResult): void {
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

/**
 * Runs `handle` with a request id (the caller's X-Request-Id when it looks like one), within
 * the per-IP budget, turning any error into problem+json. Server errors are logged, except
 * 503 (the database is away) and 501 (a feature this server has not configured).
 */
export async function runJsonApi(ctx: Context, options: { limits: RateLimits; logger: Logger; name: string }, handle: (requestId: string) => Promise<void>): Promise<void> {
  const given = ctx.get('x-request-id');
  const requestId = REQUEST_ID.test(given) ? given : randomUUID();
  ctx.set('X-Request-Id', requestId);
  try {
    if (options.limits.enabled) {
      const verdict = await options.limits.hitIp('token', ctx.ip);
      if (!verdict.allowed) throw new AdminProblem(429, 'too_many_requests', 'Too many requests. Wait a moment and try again.', { headers: { 'Retry-After': String(verdict.retryAfterSeconds) } });
    }
    await handle(requestId);
  } catch (err) {
    const problem = toProblem(err, requestId);
    if (problem.status >= 500 && problem.status !== 503 && problem.status !== 501) options.logger.error({ err, requestId, method: ctx.method, path: ctx.path }, `${options.name} error`);
    ctx.status = problem.status;
    for (const [name, value] of Object.entries(problem.headers)) ctx.set(name, value);
    ctx.set('Cache-Control', 'no-store');
    ctx.type = 'application/problem+json';
    // Extra members a problem may carry (the password policy's code and values, for the account console to translate).
    const extra = err instanceof AdminProblem ? err.extra : undefined;
    ctx.body = JSON.stringify(extra ? { ...extra, ...problem.body } : problem.body);
  }
}

