// What went wrong talking to an upstream, in the three kinds the connector answers differently:
// the upstream could not be reached or is failing (throw: "unavailable right now"), it answered
// with an OAuth error (access_denied, invalid_grant, ...), or its answer failed validation. The
// detail is short and never carries tokens, codes or secrets (openid-client keeps those in
// `cause`, which is not read here).
import { AuthorizationResponseError, ClientError, ResponseBodyError, WWWAuthenticateChallengeError } from 'openid-client';
import { GraphError } from './entra-groups.ts';

export type UpstreamFailure =
  | { kind: 'unavailable'; detail: string }
  | { kind: 'oauth_error'; error: string; detail: string }
  | { kind: 'invalid'; detail: string };

/** A check of ours failed on an answer that openid-client accepted (subject changed, tenant template, ...). */
export class UpstreamAnswerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UpstreamAnswerError';
  }
}

function oauthDetail(error: string, description: unknown): string {
  return typeof description === 'string' && description ? `${error}: ${description.slice(0, 200)}` : error;
}

export function classifyUpstreamFailure(err: unknown): UpstreamFailure {
  if (err instanceof AuthorizationResponseError) return { kind: 'oauth_error', error: err.error, detail: oauthDetail(err.error, err.error_description) };
  if (err instanceof ResponseBodyError) {
    if (err.status >= 500) return { kind: 'unavailable', detail: `HTTP ${err.status} ${err.error}` };
    return { kind: 'oauth_error', error: err.error, detail: oauthDetail(err.error, err.error_description) };
  }
  if (err instanceof WWWAuthenticateChallengeError) {
    const challenge = err.cause[0];
    const error = challenge?.parameters.error ?? 'invalid_token';
    return { kind: 'oauth_error', error, detail: `${err.response.status} ${oauthDetail(error, challenge?.parameters.error_description)}` };
  }
  if (err instanceof GraphError) return err.status >= 500 ? { kind: 'unavailable', detail: err.message } : { kind: 'invalid', detail: err.message };
  if (err instanceof UpstreamAnswerError) return { kind: 'invalid', detail: err.message };
  if (err instanceof ClientError) {
    if (err.code === 'OAUTH_TIMEOUT' || err.code === 'OAUTH_ABORT') return { kind: 'unavailable', detail: 'timed out' };
    const cause = err.cause;
    if (cause instanceof Response) {
      return cause.status >= 500 || cause.status === 429 ? { kind: 'unavailable', detail: `HTTP ${cause.status}` } : { kind: 'invalid', detail: `${err.message} (HTTP ${cause.status})` };
    }
    if (err.message === 'something went wrong') return { kind: 'unavailable', detail: describe(cause) };
    return { kind: 'invalid', detail: cause instanceof Error && cause.message !== err.message ? `${err.message}: ${cause.message}` : err.message };
  }
  // fetch itself: refused connections, DNS, TLS, resets (a TypeError with the reason in `cause`).
  if (err instanceof TypeError && !('code' in err)) return { kind: 'unavailable', detail: describe(err) };
  if (err instanceof DOMException && (err.name === 'TimeoutError' || err.name === 'AbortError')) return { kind: 'unavailable', detail: 'timed out' };
  throw err;
}

function describe(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown; message?: unknown } } | undefined)?.cause;
  if (typeof cause?.code === 'string') return cause.code;
  if (err instanceof Error) return typeof cause?.message === 'string' ? `${err.message}: ${cause.message}` : err.message;
  return 'unknown error';
}

/** Thrown by start/callback/refresh when the upstream is unreachable or failing: the broker shows "unavailable". */
export class UpstreamUnavailableError extends Error {
  constructor(issuer: string, detail: string, options?: { cause?: unknown }) {
    super(`upstream ${issuer} is unavailable: ${detail}`, options);
    this.name = 'UpstreamUnavailableError';
  }
}
