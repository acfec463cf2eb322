// The only way the console reaches Keybridge's data: the admin REST API under /admin/api/v1,
// with the signed-in administrator's bearer token. Problems (RFC 9457) become ApiError, whose
// field errors the forms show next to the field they name.
import { currentToken, forgetToken, signIn } from './auth.js';

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

const query = (params) => {
  const entries = Object.entries(params ?? {}).filter(([, v]) => v !== undefined && v !== null && v !== '');
  return entries.length ? `?${new URLSearchParams(entries.map(([k, v]) => [k, String(v)]))}` : '';
};

/**
 * One API call. Answers { status, body, etag, headers }; throws ApiError for any error status.
 * `raw: true` answers the Response itself (exports).
 */
export async function api(method, path, { body, params, ifMatch, raw } = {}) {
  const token = currentToken();
  if (!token) await signIn();
  let res;
  try {
    res = await fetch(`${API}${path}${query(params)}`, {
      method,
      headers: {
        authorization: `Bearer ${token.accessToken}`,
        accept: 'application/json, application/problem+json',
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(ifMatch ? { 'if-match': ifMatch } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  } catch {
    throw new ApiError(0);
  }
  if (res.status === 401) {
    forgetToken();
    await signIn();
  }
  if (raw && res.ok) return res;
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) throw new ApiError(res.status, data ?? {});
  return { status: res.status, body: data, etag: res.headers.get('etag'), headers: res.headers };
}

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

/** Percent-encodes one path segment (ids may hold any character). */
export const seg = (value) => encodeURIComponent(String(value));
