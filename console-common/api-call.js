// One call to a console's own API with the signed-in person's bearer token, shared by the admin
// and the account console: no token signs in first, a refused token (401) is dropped and signs
// in again, and any error status becomes the console's own error (from its problem, RFC 9457).
const query = (params) => {
  const entries = Object.entries(params ?? {}).filter(([, v]) => v !== undefined && v !== null && v !== '');
  return entries.length ? `?${new URLSearchParams(entries.map(([k, v]) => [k, String(v)]))}` : '';
};

/**
 * `base`: the API's path; `auth`: { currentToken, forgetToken, signIn } from the console's
 * auth.js; `toError(status, problem)`: the console's error (status 0: Keybridge did not answer);
 * `inspect(res, data)`: a look at every answer before it is returned or thrown (optional).
 * The call answers { status, body, etag, headers }, or with `raw: true` the Response itself.
 */
export function apiCall({ base, auth, toError, inspect = async () => {} }) {
  return async function api(method, path, { body, params, ifMatch, raw } = {}) {
    const token = auth.currentToken();
    if (!token) await auth.signIn();
    let res;
    try {
      res = await fetch(`${base}${path}${query(params)}`, {
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
      throw toError(0, {});
    }
    if (res.status === 401) {
      auth.forgetToken();
      await auth.signIn();
    }
    if (raw && res.ok) return res;
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    await inspect(res, data);
    if (!res.ok) throw toError(res.status, data ?? {});
    return { status: res.status, body: data, etag: res.headers.get('etag'), headers: res.headers };
  };
}

/** Percent-encodes one path segment (ids may hold any character). */
export const seg = (value) => encodeURIComponent(String(value));
