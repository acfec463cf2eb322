// Sign in with Apple: a signed JWT instead of a client secret, form_post (required when asking
// for name or email), no userinfo endpoint, `email_verified` as the string "true", and the
// person's name only once, on the first authorization, in the posted `user` parameter.
import type { Claims, OidcPreset } from '../oidc-preset.ts';
import { appleClientSecret } from '../apple-client-secret.ts';

export const applePreset: OidcPreset = {
  fields: ['teamId', 'keyId', 'privateKey', 'privateKeyFile'],
  required: ['teamId', 'keyId'],
  defaultIssuer: 'https://appleid.apple.com',
  scopes: ['openid', 'name', 'email'],
  claims: { username: 'email' },
  userinfo: 'never',
  responseMode: 'form_post',
  tokenAuthMethod: 'client_secret_post',
  check(c, issue) {
    if ((c.privateKey === undefined) === (c.privateKeyFile === undefined)) issue(['privateKey'], 'give either privateKey or privateKeyFile');
  },
  hooks: {
    clientSecret: (c) => appleClientSecret({ teamId: c.teamId!, keyId: c.keyId!, clientId: c.clientId, privateKey: c.privateKey, privateKeyFile: c.privateKeyFile }),
    callbackClaims: appleUserClaims,
  },
};

/** The name from Apple's `user` parameter. It is unsigned, so only the name is taken from it, never the email. */
function appleUserClaims(params: Record<string, string>): Claims {
  if (!params.user) return {};
  let user: unknown;
  try {
    user = JSON.parse(params.user);
  } catch {
    return {};
  }
  const name = (user as { name?: { firstName?: unknown; lastName?: unknown } } | null)?.name;
  const given = typeof name?.firstName === 'string' && name.firstName.trim() ? name.firstName.trim() : undefined;
  const family = typeof name?.lastName === 'string' && name.lastName.trim() ? name.lastName.trim() : undefined;
  const full = [given, family].filter(Boolean).join(' ');
  return { ...(given && { given_name: given }), ...(family && { family_name: family }), ...(full && { name: full }) };
}
