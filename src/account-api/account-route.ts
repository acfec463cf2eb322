// One operation of the account API: its method and path, whether it needs a recent sign-in, the
// schemas of its query and body, and its handler (typed from those schemas by defineAccountRoute).
import type { Context } from 'koa';
import type { z } from 'zod';
import type { AccountPrincipal } from './authenticate-account.ts';

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

export interface AccountRoute<Q = unknown, B = unknown> {
  method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
  /** Below /account/api; `:name` segments are parameters (ids of the caller's own things). */
  path: string;
  /** A sensitive change: the person must have signed in within account.reauthMaxAge. */
  recentLogin?: boolean;
  body?: z.ZodType<B>;
  query?: z.ZodType<Q>;
  handler(request: AccountRequest<B, Q>): Promise<AccountResponse>;
}

/** Keeps the handler's types tied to the schemas (as defineRoute does for the admin API). */
export function defineAccountRoute<Q = undefined, B = undefined>(route: AccountRoute<Q, B>): AccountRoute {
  return route as unknown as AccountRoute;
}
