// GitLab.com or a self-managed GitLab: the issuer is the instance URL; groups (full paths, with
// subgroups) come from userinfo.
import type { OidcPreset } from '../oidc-preset.ts';
import { withoutTrailingSlash } from '../upstream-url.ts';

export const gitlabPreset: OidcPreset = {
  fields: ['baseUrl'],
  issuer: (c) => withoutTrailingSlash(c.baseUrl ?? 'https://gitlab.com'),
  issuerFrom: 'baseUrl',
  scopes: ['openid', 'profile', 'email'],
  claims: { username: 'nickname', groups: 'groups' },
  userinfo: 'auto',
};
