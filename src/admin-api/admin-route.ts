// One admin API operation, declared once: its path, the scope it needs, the zod schemas of its
// input and output, and its handler. The router validates requests with these schemas and the
// OpenAPI document is generated from the same declarations, so the two cannot drift apart.
import type { Context } from 'koa';
import type { z } from 'zod';
import type { AdminPrincipal } from './authenticate-admin.ts';

export type HttpMethod = 'get' | 'post' | 'put' | 'patch' | 'delete';

export interface ResponseSpec {
  description: string;
  /** The JSON body's schema; absent for empty responses (204). */
  schema?: z.ZodType;
  /** Defaults to application/json. Streams (JSONL, CSV) name their own type and give no schema. */
  contentType?: string;
  /** A stream that comes in one of several types (chosen by a query parameter, as exports are). */
  contentTypes?: string[];
}

/** What a handler learns of one change, for the audit log (src/admin-api/change-audit.ts). */
export interface AdminChange {
  /** `<resource>.<action>`: `user.update`, `client.rotate_secret`... */
  action: string;
  target: { kind: string; id: string };
  before?: Record<string, unknown> | null;
  after?: Record<string, unknown> | null;
  /** Anything else worth keeping (never a secret). */
  details?: Record<string, unknown>;
}

export interface AdminRequest<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  principal: AdminPrincipal;
  /** The If-Match header's entity tags (null when absent; `*` matches any). */
  ifMatch: string[] | null;
  requestId: string;
  ctx: Context;
  /** Records the change in the audit log, with the actor and request id. */
  audit(change: AdminChange): Promise<void>;
}

export interface AdminResponse {
  status?: number;
  body?: unknown;
  etag?: string;
  headers?: Record<string, string>;
  /** A streamed body (exports): chunks of text, sent as they come. */
  stream?: AsyncIterable<string>;
  contentType?: string;
}

export interface AdminRoute<P = unknown, Q = unknown, B = unknown> {
  method: HttpMethod;
  /** OpenAPI form, below /admin/api/v1: `/users/{id}`. */
  path: string;
  /** Fine-grained scopes are `admin:<resource>:read|write`. */
  resource: string;
  access: 'read' | 'write';
  summary: string;
  description?: string;
  tag: string;
  operationId: string;
  params?: z.ZodType<P>;
  query?: z.ZodType<Q>;
  body?: z.ZodType<B>;
  /** Largest body in bytes (default: admin.bodyLimit). */
  bodyLimit?: number;
  responses: Record<number, ResponseSpec>;
  handler(request: AdminRequest<P, Q, B>): Promise<AdminResponse>;
}

/** Keeps the handler's types tied to the schemas. */
export function defineRoute<P = Record<string, never>, Q = Record<string, never>, B = undefined>(route: AdminRoute<P, Q, B>): AdminRoute {
  return route as unknown as AdminRoute;
}
