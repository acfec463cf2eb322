// Okta: the org authorization server (https://{domain}) or a custom one
// (https://{domain}/oauth2/{id}). Groups need a `groups` claim configured in Okta.
import type { OidcPreset } from '../oidc-preset.ts';
import { hostOrigin } from '../upstream-url.ts';

export const oktaPreset: OidcPreset = {
  fields: ['domain', 'authorizationServer'],
  required: ['domain'],
  issuer: (c) => `${hostOrigin(c.domain!)}${c.authorizationServer ? `/oauth2/${c.authorizationServer}` : ''}`,
  issuerFrom: 'domain and authorizationServer',
  scopes: ['openid', 'profile', 'email'],
  claims: { groups: 'groups' },
  userinfo: 'auto',
};
