// Static clients from config become oidc-provider client metadata (read-only at runtime).
import type { Config } from '../config/schema.ts';

export type ClientConfig = Config['clients'][number];

/** Extra client metadata Keybridge understands beyond RFC 7591. */
export const EXTRA_CLIENT_METADATA = ['first_party', 'allowed_resources', 'secret_hashes', 'token_lifetimes'] as const;

export function clientMetadata(client: ClientConfig): Record<string, unknown> {
  const grantTypes = [...client.grantTypes];
  const redirects = grantTypes.includes('authorization_code');
  const authMethod = client.tokenEndpointAuthMethod ?? (client.secret ? 'client_secret_basic' : 'none');
  return {
    client_id: client.id,
    ...(client.secret ? { client_secret: client.secret } : {}),
    client_name: client.name ?? client.id,
    token_endpoint_auth_method: authMethod,
    grant_types: grantTypes,
    response_types: redirects ? ['code'] : [],
    redirect_uris: redirects ? [...(client.redirectUris ?? [])] : [],
    post_logout_redirect_uris: [...client.postLogoutRedirectUris],
    ...(client.backchannelLogoutUri ? { backchannel_logout_uri: client.backchannelLogoutUri, backchannel_logout_session_required: true } : {}),
    ...(client.scopes?.length ? { scope: client.scopes.join(' ') } : {}),
    first_party: client.firstParty,
    ...(client.resources?.length ? { allowed_resources: [...client.resources] } : {}),
  };
}
