// Signing in to Keybridge itself as the account console's public client (code + PKCE, shared
// with the admin console in console-common/pkce-sign-in.js), in the console's language, and
// re-authentication (signIn(path, { reauthenticate: true })) before sensitive changes.
import { pkceSignIn } from './common/pkce-sign-in.js';
import { locale } from './i18n.js';

const named = document.querySelector('meta[name="keybridge-endpoints"]')?.dataset ?? {};
const endpoints = { authorization: named.authorization ?? '/auth', token: named.token ?? '/token', endSession: named.endSession ?? '/session/end' };

export const { CALLBACK_PATH, currentToken, signIn, completeSignIn, signInWorked, signOut, forgetToken } = pkceSignIn({
  base: '/account',
  storage: 'keybridge-account',
  defaultClientId: 'keybridge-account-console',
  endpoints: async () => endpoints,
  extraParams: () => ({ ui_locales: locale }),
  messages: {
    needsHttps: 'The account console needs https (or a loopback address) to sign in.',
    tokenRefused: 'Signing in did not produce a token the account API accepts. Sign out and try again.',
  },
});
