// The two ways an upstream call goes wrong. Unavailable (network, timeout, 5xx, rate limit) is
// thrown to the broker, which shows "try again later"; an answer the connector cannot use (a
// 4xx, a malformed body) becomes a typed failure result. Messages carry no tokens or secrets.

/** The upstream could not be reached or is failing right now: worth retrying later. */
export class UpstreamUnavailable extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UpstreamUnavailable';
  }
}

/** The upstream answered, but not with something usable: `status` 401 means the token is dead. */
export class UpstreamRejected extends Error {
  readonly status: number | undefined;

  constructor(message: string, status?: number) {
    super(message);
    this.name = 'UpstreamRejected';
    this.status = status;
  }
}

/** A short, printable excerpt of the upstream's own error message (for the log). */
export function upstreamMessage(text: string): string {
  let message: unknown;
  try {
    const body = JSON.parse(text) as Record<string, unknown>;
    message = body.message ?? (body.error as Record<string, unknown> | undefined)?.message ?? body.error_description ?? body.error;
  } catch {
    return '';
  }
  return typeof message === 'string' && message ? `: ${message.replace(/[^\x20-\x7E]/g, '?').slice(0, 160)}` : '';
}

/** The thrown error for a call that never got an answer (network failure, timeout). */
export function unavailable(what: string, timeoutMs: number, err: unknown): UpstreamUnavailable {
  const name = (err as Error | undefined)?.name;
  if (name === 'TimeoutError' || name === 'AbortError') return new UpstreamUnavailable(`${what} timed out after ${timeoutMs} ms`, { cause: err });
  const cause = (err as { cause?: { code?: string; message?: string } } | undefined)?.cause;
  return new UpstreamUnavailable(`${what} failed: ${cause?.code ?? cause?.message ?? (err as Error)?.message ?? String(err)}`, { cause: err });
}
