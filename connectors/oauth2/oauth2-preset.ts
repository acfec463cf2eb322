// What a provider preset is: endpoints and defaults (data) plus how to read and map the profile
// with an access token, in the spirit of Auth.js providers. The connector around it is shared.
import type { Logger } from 'pino';
import type { UpstreamIdentity } from '../../src/connectors/contract.ts';
import type { ClientAuth } from './token-endpoint.ts';
import type { UpstreamApi } from './upstream-api.ts';

/**
 * The identity fields a preset fills in; the connector adds connectorId and tokens. Not amr or
 * acr: a profile API proves nothing about how the person signed in (no ID token).
 */
export type UpstreamProfile = Omit<UpstreamIdentity, 'connectorId' | 'tokens' | 'localUserId' | 'amr' | 'acr'>;

/** A profile, or a person the configuration does not let in (org, guild, workspace rules). */
export type ProfileResult = { ok: true; profile: UpstreamProfile } | { ok: false; reason: 'not_permitted'; detail: string };

export interface OAuth2Preset {
  authorizationUrl: string;
  tokenUrl: string;
  scopes: string[];
  pkce: boolean;
  clientAuth: ClientAuth;
  /**
   * Reads who the token belongs to. Throws UpstreamRejected (401: the token is dead) or
   * UpstreamUnavailable; never sees the client secret.
   */
  loadProfile(api: UpstreamApi, accessToken: string, logger: Logger): Promise<ProfileResult>;
  /** Extra headers for every API call (media types). */
  apiHeaders?: Record<string, string>;
}
