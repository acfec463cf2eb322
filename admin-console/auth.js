// Signing in to Keybridge itself as the console's public client: authorization code + PKCE
// (S256), the token kept in this tab's sessionStorage, and signing out through end_session.
const clientId = document.querySelector('meta[name="keybridge-console-client"]')?.content ?? 'keybridge-admin-console';
const TOKEN_KEY = 'keybridge-console-token';
const LOGIN_KEY = 'keybridge-console-login';
const RETRY_KEY = 'keybridge-console-retries';
export const CALLBACK_PATH = '/admin/callback';

// The shell names Keybridge's endpoints (oidc-provider's routes under the issuer), which saves
// a discovery request on each sign-in; discovery is the fallback.
const named = document.querySelector('meta[name="keybridge-endpoints"]')?.dataset ?? {};
let discovery = named.authorization && named.token && named.endSession ? { authorization_endpoint: named.authorization, token_endpoint: named.token, end_session_endpoint: named.endSession } : null;
async function endpoints() {
  if (!discovery) {
    const res = await fetch('/.well-known/openid-configuration', { headers: { accept: 'application/json' } });
    if (!res.ok) throw new Error(`Keybridge's discovery document did not load (HTTP ${res.status}).`);
    discovery = await res.json();
  }
  return discovery;
}

const base64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const random = (n) => base64url(crypto.getRandomValues(new Uint8Array(n)));
const redirectUri = () => `${location.origin}${CALLBACK_PATH}`;

/** The stored token, or null when there is none or it has expired. */
export function currentToken() {
  try {
    const token = JSON.parse(sessionStorage.getItem(TOKEN_KEY) ?? 'null');
    return token && token.expiresAt > Date.now() + 5_000 ? token : null;
  } catch {
    return null;
  }
}

/** Sends the browser to Keybridge's sign-in, coming back to `returnTo` (a console path). */
export async function signIn(returnTo = location.pathname + location.search) {
  if (!crypto.subtle) throw new Error('The admin console needs https (or a loopback address) to sign in: the browser offers no SHA-256 here for PKCE.');
  const retries = Number(sessionStorage.getItem(RETRY_KEY) ?? '0');
  // A token that is refused right after sign-in would otherwise loop between the API and /auth.
  if (retries >= 3) {
    sessionStorage.removeItem(RETRY_KEY);
    throw new Error('Signing in did not produce a token the admin API accepts. Sign out and try again.');
  }
  sessionStorage.setItem(RETRY_KEY, String(retries + 1));
  const { authorization_endpoint: authorize } = await endpoints();
  const verifier = random(32);
  const challenge = base64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
  const state = random(16);
  const nonce = random(16);
  const safeReturn = returnTo.startsWith('/admin') && !returnTo.startsWith('//') ? returnTo : '/admin/';
  sessionStorage.setItem(LOGIN_KEY, JSON.stringify({ verifier, state, nonce, returnTo: safeReturn }));
  const url = new URL(authorize);
  url.search = new URLSearchParams({ client_id: clientId, response_type: 'code', redirect_uri: redirectUri(), scope: 'openid profile email', code_challenge: challenge, code_challenge_method: 'S256', state, nonce }).toString();
  location.assign(url.href);
  return new Promise(() => {});
}

/** Completes the sign-in on /admin/callback; answers the console path to show next. */
export async function completeSignIn() {
  const params = new URLSearchParams(location.search);
  const pending = JSON.parse(sessionStorage.getItem(LOGIN_KEY) ?? 'null');
  sessionStorage.removeItem(LOGIN_KEY);
  if (params.get('error')) throw new Error(`Sign-in did not complete: ${params.get('error_description') ?? params.get('error')}.`);
  if (!pending || !params.get('state') || params.get('state') !== pending.state) throw new Error('This sign-in answer does not belong to a sign-in started in this tab. Start again.');
  const code = params.get('code');
  if (!code) throw new Error('The sign-in answer carries no authorization code.');
  const { token_endpoint: tokenEndpoint } = await endpoints();
  const res = await fetch(tokenEndpoint, {
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
export function signInWorked() {
  sessionStorage.removeItem(RETRY_KEY);
}

/** Forgets the token and ends the Keybridge session (RP-initiated logout). */
export async function signOut() {
  const token = currentToken();
  sessionStorage.removeItem(TOKEN_KEY);
  const { end_session_endpoint: endSession } = await endpoints();
  const url = new URL(endSession);
  url.search = new URLSearchParams({ client_id: clientId, post_logout_redirect_uri: `${location.origin}/admin/`, ...(token?.idToken ? { id_token_hint: token.idToken } : {}) }).toString();
  location.assign(url.href);
}

/** Drops the token (it was refused) without ending the session. */
export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}
