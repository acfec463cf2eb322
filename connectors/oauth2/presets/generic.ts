// Any OAuth 2.0 provider without OIDC: the endpoints come from the config, the profile from one
// GET of `userinfoUrl`, mapped by `claims`. PKCE is on unless turned off (RFC 9700 asks for it).
import { mapClaims } from '../claims-mapper.ts';
import type { OAuth2Config } from '../oauth2-config.ts';
import type { OAuth2Preset, ProfileResult } from '../oauth2-preset.ts';
import { UpstreamRejected } from '../upstream-errors.ts';

export function genericPreset(config: OAuth2Config): OAuth2Preset {
  // The schema makes the three URLs required without a preset.
  const userinfoUrl = config.userinfoUrl as string;
  return {
    authorizationUrl: config.authorizationUrl as string,
    tokenUrl: config.tokenUrl as string,
    scopes: [],
    pkce: true,
    clientAuth: 'client_secret_basic',

    async loadProfile(api, accessToken): Promise<ProfileResult> {
      const doc = await api.getJson(userinfoUrl, accessToken);
      if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new UpstreamRejected('the userinfo response is not a JSON object');
      const mapped = mapClaims(doc as Record<string, unknown>, config.claims);
      if (typeof mapped === 'string') throw new UpstreamRejected(mapped);
      return { ok: true, profile: mapped };
    },
  };
}
