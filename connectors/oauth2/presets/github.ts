// GitHub and GitHub Enterprise Server. The subject is the numeric user id (logins can be renamed
// and re-registered); the email is the verified primary one from /user/emails, because the
// profile's `email` is whatever the user chose to make public; groups are org logins and
// `org:team` names, read with read:org.
import type { OAuth2Config } from '../oauth2-config.ts';
import type { OAuth2Preset, ProfileResult } from '../oauth2-preset.ts';
import { UpstreamRejected } from '../upstream-errors.ts';

interface GitHubUser {
  id: number;
  login: string;
  name?: string | null;
}
interface GitHubEmail {
  email: string;
  primary: boolean;
  verified: boolean;
}
interface GitHubTeam {
  slug: string;
  name: string;
  organization: { login: string };
}

const GITHUB_COM = 'https://github.com';

export function githubPreset(config: OAuth2Config): OAuth2Preset {
  const baseUrl = (config.baseUrl ?? GITHUB_COM).replace(/\/+$/, '');
  // github.com serves its API from its own host; Enterprise Server under /api/v3.
  const apiUrl = (config.apiUrl ?? (new URL(baseUrl).hostname === 'github.com' ? 'https://api.github.com' : `${baseUrl}/api/v3`)).replace(/\/+$/, '');
  const allowedOrgs = config.allowedOrgs?.map((o) => o.toLowerCase());
  const readOrgs = Boolean(config.loadGroups || allowedOrgs);
  const teamNameField = config.teamNameField ?? 'slug';

  return {
    authorizationUrl: `${baseUrl}/login/oauth/authorize`,
    tokenUrl: `${baseUrl}/login/oauth/access_token`,
    scopes: ['read:user', 'user:email', ...(readOrgs ? ['read:org'] : [])],
    pkce: true,
    clientAuth: 'client_secret_post',
    apiHeaders: { accept: 'application/vnd.github+json' },

    async loadProfile(api, accessToken, logger): Promise<ProfileResult> {
      const user = (await api.getJson(`${apiUrl}/user`, accessToken)) as GitHubUser | null;
      if (typeof user?.id !== 'number' || typeof user.login !== 'string') throw new UpstreamRejected('GET /user answered no id and login');

      let emails: GitHubEmail[] = [];
      try {
        emails = (await api.listByLinkHeader(`${apiUrl}/user/emails?per_page=100`, accessToken)) as GitHubEmail[];
      } catch (err) {
        // Without the user:email scope GitHub answers 404: carry on without an email.
        if (!(err instanceof UpstreamRejected) || err.status === 401 || err.status === undefined) throw err;
        logger.warn({ err: err.message }, 'cannot read the GitHub user\'s emails (is user:email among the scopes?); continuing without one');
      }
      const primary = emails.find((e) => e?.primary === true && e.verified === true && typeof e.email === 'string');

      let orgs: string[] = [];
      let teams: string[] = [];
      if (readOrgs) {
        const orgList = (await api.listByLinkHeader(`${apiUrl}/user/orgs?per_page=100`, accessToken)) as { login?: unknown }[];
        orgs = orgList.map((o) => o?.login).filter((l): l is string => typeof l === 'string');
        if (allowedOrgs && !orgs.some((o) => allowedOrgs.includes(o.toLowerCase()))) {
          return { ok: false, reason: 'not_permitted', detail: `GitHub user ${user.login} is in none of allowedOrgs` };
        }
      }
      if (config.loadGroups) {
        const teamList = (await api.listByLinkHeader(`${apiUrl}/user/teams?per_page=100`, accessToken)) as GitHubTeam[];
        teams = teamList
          .filter((t) => typeof t?.organization?.login === 'string' && typeof t[teamNameField] === 'string')
          .map((t) => `${t.organization.login}:${t[teamNameField]}`);
      }
      // With allowedOrgs, only those orgs' memberships become groups: the others are none of
      // this broker's business.
      const inScope = (org: string) => !allowedOrgs || allowedOrgs.includes(org.toLowerCase());
      const groups = config.loadGroups ? [...orgs.filter(inScope), ...teams.filter((t) => inScope(t.slice(0, t.indexOf(':'))))] : undefined;

      return {
        ok: true,
        profile: {
          subject: String(user.id),
          username: user.login,
          name: typeof user.name === 'string' && user.name ? user.name : undefined,
          email: primary?.email,
          emailVerified: primary ? true : undefined,
          groups,
          attributes: user as unknown as Record<string, unknown>,
        },
      };
    },
  };
}
