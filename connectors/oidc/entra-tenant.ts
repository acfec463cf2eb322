// Entra ID tenants. A single-tenant app trusts one issuer, `${authority}/<tenant id>/v2.0`. A
// multi-tenant app (`organizations`, `common`) discovers an issuer *template*,
// `${authority}/{tenantid}/v2.0`: each token's issuer is the template with the token's own `tid`,
// so the tenant has to be checked against an allow-list, or anyone with any work account gets in.
import type { Claims } from './oidc-preset.ts';
import type { ResolvedOidcConfig } from './oidc-config.ts';

export const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PLACEHOLDER = '{tenantid}';

export function isMultiTenant(tenant: unknown): boolean {
  return tenant === 'organizations' || tenant === 'common';
}

export function issuerTemplate(authority: string): string {
  return `${authority}/${PLACEHOLDER}/v2.0`;
}

/** The issuer a token of `tenantId` carries under `template`. */
export function issuerForTenant(template: string, tenantId: string): string {
  return template.replace(PLACEHOLDER, tenantId);
}

/** The tenant id an issuer names under `template`, or null when it does not fit the template. */
export function tenantOfIssuer(template: string, issuer: string): string | null {
  const at = template.indexOf(PLACEHOLDER);
  if (at < 0) return null;
  const prefix = template.slice(0, at);
  const suffix = template.slice(at + PLACEHOLDER.length);
  if (!issuer.startsWith(prefix) || !issuer.endsWith(suffix)) return null;
  const tenant = issuer.slice(prefix.length, issuer.length - suffix.length);
  return GUID.test(tenant) ? tenant : null;
}

/** The refuse hook: the token's tenant must be the configured one, or an allowed one. */
export function refuseTenant(claims: Claims, c: ResolvedOidcConfig): string | null {
  const tid = typeof claims.tid === 'string' ? claims.tid.toLowerCase() : undefined;
  if (!tid) return 'the ID token has no tid (tenant) claim';
  if (!isMultiTenant(c.tenant)) return tid === String(c.tenant).toLowerCase() ? null : `tenant ${tid} is not the configured tenant`;
  if (c.allowAnyTenant) return null;
  return (c.allowedTenants ?? []).some((t) => t.toLowerCase() === tid) ? null : `tenant ${tid} is not in allowedTenants`;
}
