// Entra ID group overage: a token carries at most ~200 group ids; beyond that it carries a pointer
// (`_claim_names.groups`, or `hasgroups: true` in implicit flows) and the groups must be read from
// Microsoft Graph with the user's access token. The pointer's own endpoint is the retired Azure
// AD Graph, so Microsoft Graph's getMemberObjects is asked instead.
import type { CallWithAccessToken, Claims } from './oidc-preset.ts';
import type { ResolvedOidcConfig } from './oidc-config.ts';
import { withoutTrailingSlash } from './upstream-url.ts';

export const DEFAULT_GRAPH_URL = 'https://graph.microsoft.com';

export function signalsGroupOverage(claims: Claims): boolean {
  const names = claims._claim_names;
  return claims.hasgroups === true || (typeof names === 'object' && names !== null && 'groups' in names);
}

/** Thrown when Graph answers, but not with groups; a 5xx is an outage and says so in `status`. */
export class GraphError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = 'GraphError';
    this.status = status;
  }
}

/** The groups hook: every group id (transitive) of the signed-in user when the token overflowed. */
export async function overageGroups(claims: Claims, call: CallWithAccessToken, c: ResolvedOidcConfig): Promise<string[] | undefined> {
  if (!signalsGroupOverage(claims)) return undefined;
  const url = new URL(`${withoutTrailingSlash(c.graphUrl ?? DEFAULT_GRAPH_URL)}/v1.0/me/getMemberObjects`);
  const res = await call(url, 'POST', JSON.stringify({ securityEnabledOnly: false }), { 'content-type': 'application/json', accept: 'application/json' });
  if (!res.ok) throw new GraphError(res.status, `Microsoft Graph getMemberObjects answered ${res.status}`);
  const body = (await res.json().catch(() => null)) as { value?: unknown } | null;
  if (!Array.isArray(body?.value) || !body.value.every((v) => typeof v === 'string')) throw new GraphError(res.status, 'Microsoft Graph getMemberObjects answered without a list of ids');
  return body.value as string[];
}
