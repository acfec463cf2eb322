// Discord. The subject is the user's snowflake id; `global_name` is the display name; the email
// counts only when Discord says it is verified; groups are guild ids (names are not unique and
// can be changed by any guild admin), read with the `guilds` scope.
import type { OAuth2Config } from '../oauth2-config.ts';
import type { OAuth2Preset, ProfileResult } from '../oauth2-preset.ts';
import { UpstreamRejected } from '../upstream-errors.ts';

interface DiscordUser {
  id: string;
  username: string;
  global_name?: string | null;
  email?: string | null;
  verified?: boolean;
}

/** Discord's largest page of guilds. */
const GUILD_PAGE = 200;

export function discordPreset(config: OAuth2Config): OAuth2Preset {
  const apiUrl = (config.apiUrl ?? 'https://discord.com/api').replace(/\/+$/, '');
  const allowedGuilds = config.allowedGuilds;
  const readGuilds = Boolean(config.loadGroups || allowedGuilds);

  return {
    authorizationUrl: 'https://discord.com/oauth2/authorize',
    tokenUrl: 'https://discord.com/api/oauth2/token',
    scopes: ['identify', 'email', ...(readGuilds ? ['guilds'] : [])],
    // Not documented for confidential clients; turn on with `pkce: true` where it works.
    pkce: false,
    clientAuth: 'client_secret_post',

    async loadProfile(api, accessToken): Promise<ProfileResult> {
      const user = (await api.getJson(`${apiUrl}/users/@me`, accessToken)) as DiscordUser | null;
      if (typeof user?.id !== 'string' || !user.id || typeof user.username !== 'string') throw new UpstreamRejected('GET /users/@me answered no id and username');

      let guilds: string[] | undefined;
      if (readGuilds) {
        guilds = (await api.listByCursor(`${apiUrl}/users/@me/guilds`, accessToken, GUILD_PAGE)).map((g) => g.id);
        if (allowedGuilds && !guilds.some((g) => allowedGuilds.includes(g))) {
          return { ok: false, reason: 'not_permitted', detail: `Discord user ${user.id} is in none of allowedGuilds` };
        }
      }
      const verified = user.verified === true && typeof user.email === 'string' && user.email !== '';
      return {
        ok: true,
        profile: {
          subject: user.id,
          username: user.username,
          name: typeof user.global_name === 'string' && user.global_name ? user.global_name : undefined,
          email: verified ? (user.email as string) : undefined,
          emailVerified: verified ? true : undefined,
          groups: config.loadGroups ? guilds?.filter((g) => !allowedGuilds || allowedGuilds.includes(g)) : undefined,
          attributes: user as unknown as Record<string, unknown>,
        },
      };
    },
  };
}
