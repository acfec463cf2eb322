// Google (accounts and Workspace). Workspace accounts carry their domain in `hd`; restricting to
// it is the only reliable way to say "our company's Google accounts" (an email domain is not).
import type { OidcPreset } from '../oidc-preset.ts';

export const googlePreset: OidcPreset = {
  fields: [],
  defaultIssuer: 'https://accounts.google.com',
  scopes: ['openid', 'email', 'profile'],
  // Google has no preferred_username; the address is what people know themselves by.
  claims: { username: 'email' },
  domainClaim: 'hd',
  hooks: {
    // With one domain, Google's account chooser offers only that domain's accounts. A hint: the
    // `hd` claim is still checked.
    authParams: (c): Record<string, string> => (c.allowedDomains?.length === 1 ? { hd: c.allowedDomains[0] } : {}),
  },
};
