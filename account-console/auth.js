// Signing in to Keybridge itself as the account console's public client: authorization code +
// PKCE (S256), the token kept in this tab's sessionStorage, signing out through end_session,
// and re-authentication (max_age=0 and prompt=login) before sensitive changes.
import { locale } from './i18n.js';

const clientId = document.querySelector('meta[name="keybridge-console-client"]')?.content ?? 'keybridge-account-console';
const TOKEN_KEY = 'keybridge-account-token';
const LOGIN_KEY = 'keybridge-account-login';
const RETRY_KEY = 'keybridge-account-retries';
export const CALLBACK_PATH = '/account/callback';

const named = document.querySelector('meta[name="keybridge-endpoints"]')?.dataset ?? {};
const endpoints = { authorization: named.authorization ?? '/auth', token: named.token ?? '/token', endSession: named.endSession ?? '/session/end' };

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

/**
 * Sends the browser to Keybridge's sign-in, coming back to `returnTo` (a console path).
 * `reauthenticate`: the person must sign in again even with a live session (a sensitive change).
 */
export async function signIn(returnTo = location.pathname + location.search, { reauthenticate = false } = {}) {
  if (!crypto.subtle) throw new Error('The account console needs https (or a loopback address) to sign in.');
  const retries = Number(sessionStorage.getItem(RETRY_KEY) ?? '0');
  // A token refused right after sign-in would otherwise loop between the API and /auth.
  if (retries >= 3) {
    sessionStorage.removeItem(RETRY_KEY);
    throw new Error('Signing in did not produce a token the account API accepts. Sign out and try again.');
  }
  sessionStorage.setItem(RETRY_KEY, String(retries + 1));
  const verifier = random(32);
  const challenge = base64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
  const state = random(16);
  const nonce = random(16);
  const safeReturn = returnTo.startsWith('/account') && !returnTo.startsWith('//') ? returnTo : '/account/';
  sessionStorage.setItem(LOGIN_KEY, JSON.stringify({ verifier, state, nonce, returnTo: safeReturn }));
  const url = new URL(endpoints.authorization, location.origin);
  url.search = new URLSearchParams({
    client_id: clientId,
    response_type: 'code',
    redirect_uri: redirectUri(),
    scope: 'openid profile email',
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state,
    nonce,
    ui_locales: locale,
    ...(reauthenticate ? { prompt: 'login', max_age: '0' } : {}),
  }).toString();
  location.assign(url.href);
  return new Promise(() => {});
}

/** Completes the sign-in on /account/callback; answers the console path to show next. */
export async function completeSignIn() {
  const params = new URLSearchParams(location.search);
  const pending = JSON.parse(sessionStorage.getItem(LOGIN_KEY) ?? 'null');
  sessionStorage.removeItem(LOGIN_KEY);
  if (params.get('error')) throw new Error(`Sign-in did not complete: ${params.get('error_description') ?? params.get('error')}.`);
  if (!pending || !params.get('state') || params.get('state') !== pending.state) throw new Error('This sign-in answer does not belong to a sign-in started in this tab. Start again.');
  const code = params.get('code');
  if (!code) throw new Error('The sign-in answer carries no authorization code.');
  const res = await fetch(endpoints.token, {
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
export function signOut() {
  const token = currentToken();
  sessionStorage.removeItem(TOKEN_KEY);
  const url = new URL(endpoints.endSession, location.origin);
  url.search = new URLSearchParams({ client_id: clientId, post_logout_redirect_uri: `${location.origin}/account/`, ...(token?.idToken ? { id_token_hint: token.idToken } : {}) }).toString();
  location.assign(url.href);
}

/** Drops the token (it was refused, or the account is gone) without ending the session. */
export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}
