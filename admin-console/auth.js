// Signing in to Keybridge itself as the admin console's public client (code + PKCE, shared
// with the account console in console-common/pkce-sign-in.js).
import { pkceSignIn } from './common/pkce-sign-in.js';

// The shell names Keybridge's endpoints (oidc-provider's routes under the issuer), which saves
// a discovery request on each sign-in; discovery is the fallback.
const named = document.querySelector('meta[name="keybridge-endpoints"]')?.dataset ?? {};
let known = named.authorization && named.token && named.endSession ? { authorization: named.authorization, token: named.token, endSession: named.endSession } : null;
async function endpoints() {
  if (!known) {
    const res = await fetch('/.well-known/openid-configuration', { headers: { accept: 'application/json' } });
    if (!res.ok) throw new Error(`Keybridge's discovery document did not load (HTTP ${res.status}).`);
    const discovery = await res.json();
    known = { authorization: discovery.authorization_endpoint, token: discovery.token_endpoint, endSession: discovery.end_session_endpoint };
  }
  return known;
}

export const { CALLBACK_PATH, currentToken, signIn, completeSignIn, signInWorked, signOut, forgetToken } = pkceSignIn({
  base: '/admin',
  storage: 'keybridge-console',
  defaultClientId: 'keybridge-admin-console',
  endpoints,
  messages: {
    needsHttps: 'The admin console needs https (or a loopback address) to sign in: the browser offers no SHA-256 here for PKCE.',
    tokenRefused: 'Signing in did not produce a token the admin API accepts. Sign out and try again.',
  },
});
