// The `config:` block of an `oauth2` connector: a provider without OpenID Connect, described by a
// preset (github, bitbucket, discord) or by its endpoints and a claims mapper. Every field is
// documented where it is defined; messages never repeat a value, so a secret cannot leak.
import { z } from 'zod';
import type { OAuth2Preset } from './oauth2-preset.ts';
import { bitbucketPreset } from './presets/bitbucket.ts';
import { discordPreset } from './presets/discord.ts';
import { genericPreset } from './presets/generic.ts';
import { githubPreset } from './presets/github.ts';

export const PRESETS = ['github', 'bitbucket', 'discord'] as const;

/** https everywhere; plain http only to this machine (tests, a local proxy). */
function isUpstreamUrl(value: string): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  if (url.username || url.password || url.hash) return false;
  if (url.protocol === 'https:') return true;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return url.protocol === 'http:' && (host === 'localhost' || host === '::1' || /^127\./.test(host));
}
const upstreamUrl = z.string().refine(isUpstreamUrl, 'must be an https:// URL (http:// only for 127.0.0.1, ::1 or localhost), without credentials or #fragment');

/** RFC 6749 scope-token characters. */
const scope = z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'must be one scope without spaces or quotes');
/** A dotted path into the userinfo JSON ("id", "data.user.login", "emails.0.value"). */
const claimPath = z.string().regex(/^[^.\s]+(\.[^.\s]+)*$/, 'must be a dotted path such as "data.user.id"');
/** One path, or several tried in order. */
const claimPaths = z.union([claimPath, z.array(claimPath).min(1).max(8)]);

/** Fields that belong to one preset only, checked below. */
export const PRESET_ONLY: Record<string, (typeof PRESETS)[number][]> = {
  baseUrl: ['github'],
  allowedOrgs: ['github'],
  teamNameField: ['github'],
  allowedWorkspaces: ['bitbucket'],
  allowedGuilds: ['discord'],
  apiUrl: ['github', 'bitbucket', 'discord'],
  loadGroups: ['github', 'bitbucket', 'discord'],
};

export const oauth2ConfigSchema = z
  .strictObject({
    preset: z.enum(PRESETS).optional().describe('A known provider whose endpoints, scopes and profile mapping are filled in; explicit fields win.'),
    clientId: z.string().min(1).describe('The client id of the OAuth app registered at the provider.'),
    clientSecret: z.string().min(1).describe('The client secret of that OAuth app.'),
    authorizationUrl: upstreamUrl.optional().describe("The provider's authorization endpoint; required without a preset, with one it overrides the preset's."),
    tokenUrl: upstreamUrl.optional().describe("The provider's token endpoint; required without a preset, with one it overrides the preset's."),
    userinfoUrl: upstreamUrl
      .optional()
      .describe('Without a preset (and only then, required): the URL of the JSON document describing the user, read with the access token.'),
    scopes: z
      .array(scope)
      .max(50)
      .optional()
      .describe("Scopes to request, replacing the preset's (github: read:user user:email, plus read:org for groups or allowedOrgs); none by default without a preset."),
    pkce: z
      .boolean()
      .optional()
      .describe('Send an S256 PKCE challenge; default on, except with the bitbucket and discord presets (turn it on where the provider accepts it).'),
    clientAuth: z
      .enum(['client_secret_basic', 'client_secret_post'])
      .optional()
      .describe("How the client authenticates at the token endpoint; default the preset's (github, discord: post; bitbucket: basic), else client_secret_basic."),
    claims: z
      .strictObject({
        subject: claimPaths.optional().describe('Path(s) to a string or number that never changes for the person; default the first of sub, id, user_id, uuid.'),
        username: claimPaths.optional().describe('Path(s) to the username; default the first of preferred_username, login, username, nickname.'),
        email: claimPaths.optional().describe('Path(s) to the email address; default email.'),
        emailVerified: z
          .union([claimPaths, z.boolean()])
          .optional()
          .describe('Path(s) to a value that must be true for the email to count as verified (default email_verified), or `true` when this upstream only returns verified addresses.'),
        name: claimPaths.optional().describe('Path(s) to the full name; default the first of name, display_name.'),
        givenName: claimPaths.optional().describe('Path(s) to the given name; default given_name.'),
        familyName: claimPaths.optional().describe('Path(s) to the family name; default family_name.'),
        groups: claimPaths.optional().describe('Path(s) to a list (or one value) of group names, e.g. "teams.name" collects `name` of every element; default none.'),
      })
      .optional()
      .describe('Without a preset: where the identity fields sit in the userinfo JSON, as dotted paths (several are tried in order).'),
    timeoutMs: z.number().int().min(100).max(120_000).default(10_000).describe('Time limit in milliseconds for each call to the provider (token, API).'),

    baseUrl: upstreamUrl.optional().describe('github: the web host of a GitHub Enterprise Server (its API is then at baseUrl/api/v3); default https://github.com.'),
    apiUrl: upstreamUrl.optional().describe("Presets: the REST API base, when it is not where the preset expects it."),
    loadGroups: z
      .boolean()
      .default(false)
      .describe('Presets: memberships become groups (github: org logins and org:team; bitbucket: workspace slugs; discord: guild ids).'),
    allowedOrgs: z
      .array(z.string().regex(/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$/, 'must be a GitHub organization login'))
      .min(1)
      .max(100)
      .optional()
      .describe('github: only members of at least one of these organizations get in, also at refresh (their groups are limited to them).'),
    teamNameField: z.enum(['slug', 'name']).optional().describe('github: team groups as org:slug (default, stable) or org:Team Name.'),
    allowedWorkspaces: z
      .array(z.string().regex(/^[A-Za-z0-9_.-]{1,62}$/, 'must be a Bitbucket workspace slug'))
      .min(1)
      .max(100)
      .optional()
      .describe('bitbucket: only members of at least one of these workspaces (slugs) get in.'),
    allowedGuilds: z
      .array(z.string().regex(/^\d{1,25}$/, 'must be a Discord guild id (digits)'))
      .min(1)
      .max(100)
      .optional()
      .describe('discord: only members of at least one of these guilds (ids) get in.'),
  })
  .superRefine((c, ctx) => {
    // Runs even when other fields failed (`when` below), so every problem is reported at once;
    // hence the defensive reads.
    const preset = (PRESETS as readonly unknown[]).includes(c.preset) ? c.preset : undefined;
    if (c.preset === undefined) {
      for (const key of ['authorizationUrl', 'tokenUrl', 'userinfoUrl'] as const) {
        if (c[key] === undefined) ctx.addIssue({ code: 'custom', path: [key], message: `is required without a preset (${PRESETS.join(', ')})` });
      }
    } else if (preset) {
      if (c.userinfoUrl !== undefined) ctx.addIssue({ code: 'custom', path: ['userinfoUrl'], message: `is for connectors without a preset; ${preset} reads its own API (override it with apiUrl)` });
      if (c.claims !== undefined) ctx.addIssue({ code: 'custom', path: ['claims'], message: `is for connectors without a preset; ${preset} maps its profile itself` });
    }
    for (const [key, presets] of Object.entries(PRESET_ONLY)) {
      const value = (c as Record<string, unknown>)[key];
      if (value === undefined || (key === 'loadGroups' && value === false)) continue;
      if (c.preset === undefined || (preset && !presets.includes(preset))) {
        ctx.addIssue({ code: 'custom', path: [key], message: `only applies to preset ${presets.join(' or ')}${key === 'loadGroups' ? ' (without a preset, map groups with claims.groups)' : ''}` });
      }
    }
  }, { when: () => true });

export type OAuth2ConfigInput = z.input<typeof oauth2ConfigSchema>;
export type OAuth2Config = z.output<typeof oauth2ConfigSchema>;

/** The config with the preset's defaults applied: what the connector actually runs with. */
export interface ResolvedOAuth2Config extends OAuth2Config {
  authorizationUrl: string;
  tokenUrl: string;
  scopes: string[];
  pkce: boolean;
  clientAuth: NonNullable<OAuth2Config['clientAuth']>;
  provider: OAuth2Preset;
}

export function resolveOAuth2Config(c: OAuth2Config): ResolvedOAuth2Config {
  const provider = c.preset === 'github' ? githubPreset(c) : c.preset === 'bitbucket' ? bitbucketPreset(c) : c.preset === 'discord' ? discordPreset(c) : genericPreset(c);
  return {
    ...c,
    authorizationUrl: c.authorizationUrl ?? provider.authorizationUrl,
    tokenUrl: c.tokenUrl ?? provider.tokenUrl,
    scopes: c.scopes ?? provider.scopes,
    pkce: c.pkce ?? provider.pkce,
    clientAuth: c.clientAuth ?? provider.clientAuth,
    provider,
  };
}
