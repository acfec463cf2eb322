// The database cannot be reached, refused the connection, timed out or hung. Requests that
// need it answer 503 `temporarily_unavailable` (with Retry-After) instead of a 500: nothing is
// wrong with the request, and clients and load balancers should retry.
//
// It is an oidc-provider error class so that oidc-provider's own endpoints (token, userinfo,
// introspection, authorization) answer it as-is; Keybridge's routes handle it in error-pages.
import { errors } from 'oidc-provider';

/** Seconds a client should wait before retrying (the Retry-After header). */
export const RETRY_AFTER_SECONDS = 5;

export class DatabaseUnavailable extends errors.TemporarilyUnavailable {
  constructor(cause?: unknown) {
    super('the service is temporarily unavailable, try again shortly', cause === undefined ? undefined : { cause });
    const self = this as unknown as { status: number; statusCode: number; expose: boolean; allow_redirect: boolean; error_detail?: string };
    self.status = 503;
    self.statusCode = 503;
    // The description is ours and safe to show; it is not a server bug.
    self.expose = true;
    // A person at /auth gets our "try again" page rather than being bounced to the app.
    self.allow_redirect = false;
    delete self.error_detail;
    // oidc-provider answers `error: <message>`; knex prefixes the SQL to the message of any
    // error a query throws. The code stays the message whatever anyone writes to it.
    Object.defineProperty(this, 'message', { get: () => 'temporarily_unavailable', set: () => {}, enumerable: false, configurable: true });
  }
}

// SQLSTATEs of a database that is going away, refusing work or out of connections, and of a
// statement cancelled by statement_timeout.
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300', '57014', '25P03']);
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ECONNABORTED']);
const UNAVAILABLE_MESSAGES = [
  'Query read timeout', // pg client-side query_timeout (a hung server)
  'timeout expired', // pg connectionTimeoutMillis
  'Connection terminated',
  'Connection ended unexpectedly',
  'not queryable',
  'Timeout acquiring a connection', // knex pool acquire timeout
];

/** Whether an error means "the database is not answering", as opposed to a bug or bad data. */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (err instanceof DatabaseUnavailable) return true;
  if (!(err instanceof Error)) return false;
  const { code } = err as { code?: unknown };
  if (typeof code === 'string' && (NETWORK_CODES.has(code) || UNAVAILABLE_SQLSTATES.has(code) || code.startsWith('08'))) return true;
  if (err.name === 'KnexTimeoutError') return true;
  if (UNAVAILABLE_MESSAGES.some((m) => err.message.includes(m))) return true;
  // AggregateError from a connect() that tried several addresses.
  if (err instanceof AggregateError) return err.errors.some(isDatabaseUnavailable);
  return false;
}
