// Signing in to Keybridge itself as a console's public client, shared by the admin and the
// account console: authorization code + PKCE (S256), the token kept in this tab's
// sessionStorage, signing out through end_session, and (on request) re-authentication with
// max_age=0 and prompt=login. Each console's auth.js makes one of these with its own names.
const base64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const random = (n) => base64url(crypto.getRandomValues(new Uint8Array(n)));

/**
 * `base`: the console's path (/admin); `storage`: the prefix of its sessionStorage keys;
 * `defaultClientId`: used when the shell names none; `endpoints()`: resolves to Keybridge's
 * { authorization, token, endSession }; `extraParams()`: more authorization request parameters;
 * `messages`: { needsHttps, tokenRefused } for the errors that name the console.
 */
export function pkceSignIn({ base, storage, defaultClientId, endpoints, extraParams = () => ({}), messages }) {
  const clientId = document.querySelector('meta[name="keybridge-console-client"]')?.content ?? defaultClientId;
  const TOKEN_KEY = `${storage}-token`;
  const LOGIN_KEY = `${storage}-login`;
  const RETRY_KEY = `${storage}-retries`;
  const CALLBACK_PATH = `${base}/callback`;
  const redirectUri = () => `${location.origin}${CALLBACK_PATH}`;

  /** The stored token, or null when there is none or it has expired. */
  function currentToken() {
    try {
      const token = JSON.parse(sessionStorage.getItem(TOKEN_KEY) ?? 'null');
      return token && token.expiresAt > Date.now() + 5_000 ? token : null;
    } catch {
      return null;
    }
  }

  /**
   * Sends the browser to Keybridge's sign-in, coming back to `returnTo` (a console path).
   * `reauthenticate`: the person must sign in again even with a live session (a sensitive change).
   */
  async function signIn(returnTo = location.pathname + location.search, { reauthenticate = false } = {}) {
    if (!crypto.subtle) throw new Error(messages.needsHttps);
    const retries = Number(sessionStorage.getItem(RETRY_KEY) ?? '0');
    // A token refused right after sign-in would otherwise loop between the API and /auth.
    if (retries >= 3) {
      sessionStorage.removeItem(RETRY_KEY);
      throw new Error(messages.tokenRefused);
    }
    sessionStorage.setItem(RETRY_KEY, String(retries + 1));
    const { authorization } = await endpoints();
    const verifier = random(32);
    const challenge = base64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
    const state = random(16);
    const nonce = random(16);
    const safeReturn = returnTo.startsWith(base) && !returnTo.startsWith('//') ? returnTo : `${base}/`;
    sessionStorage.setItem(LOGIN_KEY, JSON.stringify({ verifier, state, nonce, returnTo: safeReturn }));
    const url = new URL(authorization, location.origin);
    url.search = new URLSearchParams({
      client_id: clientId,
      response_type: 'code',
      redirect_uri: redirectUri(),
      scope: 'openid profile email',
      code_challenge: challenge,
      code_challenge_method: 'S256',
      state,
      nonce,
      ...extraParams(),
      ...(reauthenticate ? { prompt: 'login', max_age: '0' } : {}),
    }).toString();
    location.assign(url.href);
    return new Promise(() => {});
  }

  /** Completes the sign-in on <base>/callback; answers the console path to show next. */
  async function completeSignIn() {
    const params = new URLSearchParams(location.search);
    const pending = JSON.parse(sessionStorage.getItem(LOGIN_KEY) ?? 'null');
    sessionStorage.removeItem(LOGIN_KEY);
    if (params.get('error')) throw new Error(`Sign-in did not complete: ${params.get('error_description') ?? params.get('error')}.`);
    if (!pending || !params.get('state') || params.get('state') !== pending.state) throw new Error('This sign-in answer does not belong to a sign-in started in this tab. Start again.');
    const code = params.get('code');
    if (!code) throw new Error('The sign-in answer carries no authorization code.');
    const { token } = await endpoints();
    const res = await fetch(token, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri(), client_id: clientId, code_verifier: pending.verifier }),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok || !body.access_token) throw new Error(`Keybridge refused the sign-in code: ${body.error_description ?? body.error ?? `HTTP ${res.status}`}.`);
    const expiresIn = Number(body.expires_in) > 0 ? Number(body.expires_in) : 300;
    sessionStorage.setItem(TOKEN_KEY, JSON.stringify({ accessToken: body.access_token, idToken: body.id_token ?? null, expiresAt: Date.now() + expiresIn * 1000 }));
    return pending.returnTo;
  }

  /** A sign-in that reached the API: later 401s may try again. */
  function signInWorked() {
    sessionStorage.removeItem(RETRY_KEY);
  }

  /** Forgets the token and ends the Keybridge session (RP-initiated logout). */
  async function signOut() {
    const token = currentToken();
    sessionStorage.removeItem(TOKEN_KEY);
    const { endSession } = await endpoints();
    const url = new URL(endSession, location.origin);
    url.search = new URLSearchParams({ client_id: clientId, post_logout_redirect_uri: `${location.origin}${base}/`, ...(token?.idToken ? { id_token_hint: token.idToken } : {}) }).toString();
    location.assign(url.href);
  }

  /** Drops the token (it was refused, or the account is gone) without ending the session. */
  function forgetToken() {
    sessionStorage.removeItem(TOKEN_KEY);
  }

  return { CALLBACK_PATH, currentToken, signIn, completeSignIn, signInWorked, signOut, forgetToken };
}
