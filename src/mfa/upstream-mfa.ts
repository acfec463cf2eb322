// Whether the upstream already proved a second factor for this login, by the connector's policy
// (`trustUpstreamMfa`, `upstreamMfa`); the login's second-factor step asks this before it asks
// for a local factor.
import type { UpstreamIdentity } from '../connectors/contract.ts';
import type { RegisteredConnector } from '../connectors/registry.ts';
import { upstreamAmr } from '../connectors/upstream-authentication.ts';
import { DEFAULT_MFA_AMR } from './upstream-mfa-policy.ts';

// Methods a token must not repeat unless this policy accepted them: factors, and our own words.
const NEVER_PASSED_ON = new Set<string>([...DEFAULT_MFA_AMR, 'fed']);

export interface UpstreamMfaProof {
  proved: boolean;
  /**
   * What the broker's own tokens may say about this login (RFC 8176): `fed`, then, when proved,
   * `mfa` and the accepted upstream methods; the upstream's methods that are no second factor
   * (`pwd`, `kba`) either way. Never a factor the policy did not accept.
   */
  amr: string[];
}

export function upstreamMfaProof(identity: UpstreamIdentity, policy: RegisteredConnector['policy']): UpstreamMfaProof {
  // Re-bounded: a third-party connector may hand anything over.
  const claimed = upstreamAmr(identity.amr) ?? [];
  const accepted = new Set(policy.upstreamMfa.amr);
  const provenBy = claimed.filter((m) => accepted.has(m));
  const plain = claimed.filter((m) => !accepted.has(m) && !NEVER_PASSED_ON.has(m));
  const byAcr = identity.acr !== undefined && policy.upstreamMfa.acr.includes(identity.acr);
  const proved = policy.trustUpstreamMfa && (provenBy.length > 0 || byAcr);
  return { proved, amr: [...new Set(['fed', ...(proved ? ['mfa', ...provenBy] : []), ...plain])] };
}
