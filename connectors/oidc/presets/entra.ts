// Microsoft Entra ID (Azure AD) v2.0 endpoints: one tenant, or any work account with an
// allow-list of tenants; groups from the token, or from Microsoft Graph when they overflow it.
import type { OidcPreset } from '../oidc-preset.ts';
import { isMultiTenant, issuerTemplate, refuseTenant } from '../entra-tenant.ts';
import { overageGroups } from '../entra-groups.ts';
import { withoutTrailingSlash } from '../upstream-url.ts';

const AUTHORITY = 'https://login.microsoftonline.com';

export const entraPreset: OidcPreset = {
  fields: ['tenant', 'allowedTenants', 'allowAnyTenant', 'authority', 'graphUrl'],
  required: ['tenant'],
  issuer: (c) => `${withoutTrailingSlash(c.authority ?? AUTHORITY)}/${c.tenant}/v2.0`,
  issuerFrom: 'authority and tenant',
  scopes: ['openid', 'profile', 'email'],
  // Entra's ID token carries the profile (and groups, when the app asks for them); its userinfo
  // lives on Graph and needs a Graph access token, which another resource's scope would not give.
  userinfo: 'never',
  check(c, issue) {
    if (c.tenant === undefined) return;
    if (isMultiTenant(c.tenant)) {
      if (c.allowedTenants === undefined && c.allowAnyTenant !== true) {
        issue(['allowedTenants'], `is required for tenant "${c.tenant}" (or allowAnyTenant: true, letting every Entra tenant in)`);
      }
      if (c.allowedTenants !== undefined && c.allowAnyTenant === true) issue(['allowAnyTenant'], 'give either allowedTenants or allowAnyTenant');
    } else {
      if (c.allowedTenants !== undefined) issue(['allowedTenants'], 'is only for tenant "organizations" or "common"');
      if (c.allowAnyTenant !== undefined) issue(['allowAnyTenant'], 'is only for tenant "organizations" or "common"');
    }
  },
  hooks: {
    issuerTemplate: (c) => (isMultiTenant(c.tenant) ? issuerTemplate(withoutTrailingSlash(c.authority ?? AUTHORITY)) : undefined),
    refuse: refuseTenant,
    groups: overageGroups,
  },
};
