// The only way the console reaches Keybridge's data: the admin REST API under /admin/api/v1,
// with the signed-in administrator's bearer token. Problems (RFC 9457) become ApiError, whose
// field errors the forms show next to the field they name.
import { apiCall } from './common/api-call.js';
import { currentToken, forgetToken, signIn } from './auth.js';
export { seg } from './common/api-call.js';

export const API = '/admin/api/v1';

export class ApiError extends Error {
  constructor(status, problem = {}) {
    super(problem.detail || problem.title || (status ? `The request failed (HTTP ${status}).` : 'Keybridge did not answer. Check that it is running.'));
    this.status = status;
    this.code = problem.code ?? null;
    this.requestId = problem.instance ?? null;
    /** [{ path, message }], paths like body.redirectUris.0 or query.limit. */
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
  }

  /** Messages for a field: errors whose path is `path` or lies below it. */
  fieldErrors(path) {
    return this.errors.filter((e) => e.path === path || e.path.startsWith(`${path}.`)).map((e) => (e.path === path ? e.message : `${e.path.slice(path.length + 1)}: ${e.message}`));
  }
}

/**
 * One API call. Answers { status, body, etag, headers }; throws ApiError for any error status.
 * `raw: true` answers the Response itself (exports).
 */
export const api = apiCall({ base: API, auth: { currentToken, forgetToken, signIn }, toError: (status, problem) => new ApiError(status, problem) });

export const get = (path, params) => api('GET', path, { params });

/** Every page of a list, up to `max` items. */
export async function getAll(path, params = {}, max = 1000) {
  const items = [];
  let cursor;
  do {
    const { body } = await api('GET', path, { params: { ...params, limit: 200, cursor } });
    items.push(...body.items);
    cursor = body.nextCursor;
  } while (cursor && items.length < max);
  return items;
}
