// Keycloak: one realm of a server. Groups need the realm's "Group Membership" mapper (claim
// `groups`); realm roles are at `realm_access.roles` if those are wanted instead.
import type { OidcPreset } from '../oidc-preset.ts';
import { withoutTrailingSlash } from '../upstream-url.ts';

export const keycloakPreset: OidcPreset = {
  fields: ['baseUrl', 'realm'],
  required: ['baseUrl', 'realm'],
  issuer: (c) => `${withoutTrailingSlash(c.baseUrl!)}/realms/${encodeURIComponent(c.realm!)}`,
  issuerFrom: 'baseUrl and realm',
  scopes: ['openid', 'profile', 'email'],
  claims: { groups: 'groups' },
  userinfo: 'auto',
};
