// Who may come in at all, decided on a verified identity: allowedDomains (Google's Workspace `hd`
// claim, or the domain of a *verified* email elsewhere, since anyone can type an unverified one)
// and the preset's own refusals (Entra tenants). A refusal is `not_permitted`, with this detail.
import type { UpstreamIdentity } from '../../src/connectors/contract.ts';
import type { Claims } from './oidc-preset.ts';
import type { ResolvedOidcConfig } from './oidc-config.ts';
import { claimAt } from './identity-from-claims.ts';

export function accessRefusal(identity: UpstreamIdentity, claims: Claims, c: ResolvedOidcConfig): string | null {
  if (c.allowedDomains) {
    const allowed = new Set(c.allowedDomains);
    const domainClaim = c.definition.domainClaim;
    if (domainClaim) {
      const domain = claimAt(claims, domainClaim);
      if (typeof domain !== 'string' || !allowed.has(domain.toLowerCase())) {
        return typeof domain === 'string' ? `${domainClaim} ${domain} is not in allowedDomains` : `no ${domainClaim} claim (not a managed domain account)`;
      }
    } else {
      const domain = identity.email?.split('@').pop()?.toLowerCase();
      if (!domain || !allowed.has(domain)) return `email domain ${domain ?? '(none)'} is not in allowedDomains`;
      if (identity.emailVerified !== true) return 'the email is not verified, so its domain proves nothing';
    }
  }
  return c.definition.hooks?.refuse?.(claims, c) ?? null;
}
