// Auth0: the tenant's issuer ends with a slash, and tokens must match it exactly.
import type { OidcPreset } from '../oidc-preset.ts';
import { hostOrigin } from '../upstream-url.ts';

export const auth0Preset: OidcPreset = {
  fields: ['domain'],
  required: ['domain'],
  issuer: (c) => `${hostOrigin(c.domain!)}/`,
  issuerFrom: 'domain',
  scopes: ['openid', 'profile', 'email'],
  claims: { username: 'nickname' },
  userinfo: 'auto',
};
