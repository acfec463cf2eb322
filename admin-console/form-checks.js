// Checks a form body before it is sent, for what the API refuses without naming a field: a NUL
// character anywhere makes Keybridge's edge refuse the whole request (input-guard), so the
// console finds the field itself and reports it there, as the API would.
import { ApiError } from './api.js';

/** Field errors (paths like body.redirectUris.2) for every string holding a NUL; [] when none. */
export function nulErrors(value, path = 'body') {
  if (typeof value === 'string') return value.includes('\0') ? [{ path, message: 'must not contain NUL characters' }] : [];
  if (Array.isArray(value)) return value.flatMap((v, i) => nulErrors(v, `${path}.${i}`));
  if (value && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => nulErrors(v, `${path}.${k}`));
  return [];
}

/** Throws the ApiError the API would answer if `body` holds a NUL character. */
export function refuseNul(body) {
  const errors = nulErrors(body);
  if (errors.length) throw new ApiError(400, { status: 400, code: 'invalid_request', detail: 'The request is not valid.', errors });
}
