// Sorts what a strategy passed to this.error(): an upstream that answered "no" (a result the
// broker logs) from one that could not be reached or is failing (thrown: "X unavailable").
// Duck-typed on names and fields, because the bridge does not load passport-oauth2 itself.

export interface ClassifiedError {
  unavailable: boolean;
  /** Name, OAuth error code, HTTP status and message; not yet redacted. */
  detail: string;
}

const NETWORK_CODES = /^(ECONNREFUSED|ECONNRESET|ECONNABORTED|ETIMEDOUT|ESOCKETTIMEDOUT|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|EPIPE|UND_ERR_\w+|ERR_TLS_\w+|CERT_\w+|\w*_CERT_\w*|SELF_SIGNED_\w+)$/;

interface ErrorLike {
  name?: unknown;
  message?: unknown;
  code?: unknown;
  syscall?: unknown;
  status?: unknown;
  statusCode?: unknown;
  httpStatus?: unknown;
  oauthError?: unknown;
  cause?: unknown;
}

function chain(err: unknown): ErrorLike[] {
  const out: ErrorLike[] = [];
  let current: unknown = err;
  while (current && typeof current === 'object' && out.length < 5) {
    const e = current as ErrorLike;
    out.push(e);
    current = e.oauthError ?? e.cause;
  }
  return out;
}

function httpStatusOf(e: ErrorLike): number | undefined {
  // TokenError/AuthorizationError `status` is passport's own guess (500 by default), not HTTP.
  const value = e.httpStatus ?? e.statusCode;
  return typeof value === 'number' ? value : undefined;
}

export function classifyStrategyError(err: unknown): ClassifiedError {
  const errors = chain(err);
  if (!errors.length) return { unavailable: false, detail: `strategy error: ${String(err)}` };
  const network = errors.some((e) => (typeof e.code === 'string' && NETWORK_CODES.test(e.code)) || typeof e.syscall === 'string' || e.name === 'AbortError' || e.name === 'TimeoutError');
  const status = errors.map(httpStatusOf).find((s) => s !== undefined);
  const unavailable = network || (status !== undefined && (status >= 500 || status === 429));
  const top = errors[0];
  const parts = [String(top.name ?? 'Error')];
  const code = errors.map((e) => e.code).find((c) => typeof c === 'string');
  if (code) parts.push(String(code));
  if (status !== undefined) parts.push(`HTTP ${status}`);
  const message = errors.map((e) => e.message).filter((m) => typeof m === 'string' && m).join(': ');
  return { unavailable, detail: `${parts.join(' ')}${message ? `: ${message}` : ''}` };
}
