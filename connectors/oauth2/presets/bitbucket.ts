// Bitbucket Cloud. The subject is the account uuid; the email is the primary confirmed one from
// /2.0/user/emails (the profile has none); groups are workspace slugs. Bitbucket wants the
// client credentials in HTTP Basic and grants the scopes set on the OAuth consumer.
import type { OAuth2Config } from '../oauth2-config.ts';
import type { OAuth2Preset, ProfileResult } from '../oauth2-preset.ts';
import { UpstreamRejected } from '../upstream-errors.ts';

interface BitbucketUser {
  uuid: string;
  username?: string;
  nickname?: string;
  display_name?: string;
  account_id?: string;
}
interface BitbucketEmail {
  email: string;
  is_primary: boolean;
  is_confirmed: boolean;
}

export function bitbucketPreset(config: OAuth2Config): OAuth2Preset {
  const apiUrl = (config.apiUrl ?? 'https://api.bitbucket.org/2.0').replace(/\/+$/, '');
  const allowed = config.allowedWorkspaces?.map((w) => w.toLowerCase());
  const readWorkspaces = Boolean(config.loadGroups || allowed);

  return {
    authorizationUrl: 'https://bitbucket.org/site/oauth2/authorize',
    tokenUrl: 'https://bitbucket.org/site/oauth2/access_token',
    scopes: ['account', 'email'],
    pkce: false,
    clientAuth: 'client_secret_basic',

    async loadProfile(api, accessToken): Promise<ProfileResult> {
      const user = (await api.getJson(`${apiUrl}/user`, accessToken)) as BitbucketUser | null;
      if (typeof user?.uuid !== 'string' || !user.uuid) throw new UpstreamRejected('GET /2.0/user answered no uuid');
      const emails = (await api.listByNextUrl(`${apiUrl}/user/emails?pagelen=100`, accessToken)) as BitbucketEmail[];
      const primary = emails.find((e) => e?.is_primary === true && e.is_confirmed === true && typeof e.email === 'string');

      let workspaces: string[] | undefined;
      if (readWorkspaces) {
        const memberships = (await api.listByNextUrl(`${apiUrl}/user/permissions/workspaces?pagelen=100`, accessToken)) as { workspace?: { slug?: unknown } }[];
        workspaces = memberships.map((m) => m?.workspace?.slug).filter((s): s is string => typeof s === 'string');
        if (allowed && !workspaces.some((w) => allowed.includes(w.toLowerCase()))) {
          return { ok: false, reason: 'not_permitted', detail: `Bitbucket user ${user.username ?? user.uuid} is in none of allowedWorkspaces` };
        }
      }
      const username = user.username ?? user.nickname;
      return {
        ok: true,
        profile: {
          subject: user.uuid,
          username: typeof username === 'string' ? username : undefined,
          name: typeof user.display_name === 'string' && user.display_name ? user.display_name : undefined,
          email: primary?.email,
          emailVerified: primary ? true : undefined,
          groups: config.loadGroups ? workspaces?.filter((w) => !allowed || allowed.includes(w.toLowerCase())) : undefined,
          attributes: user as unknown as Record<string, unknown>,
        },
      };
    },
  };
}
