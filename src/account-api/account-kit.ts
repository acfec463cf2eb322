// What the account API's operations share: their dependencies, the views of a person's things
// (profile with its read-only source, sessions, apps, identities, security events), who owns a
// profile, how many ways in a person has left, and the re-authentication check.
import { z } from 'zod';
import type Provider from 'oidc-provider';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import type { Store } from '../storage/store.ts';
import type { User } from '../storage/types.ts';
import type { ConnectorRegistry } from '../connectors/registry.ts';
import type { MfaServices } from '../login/mfa-services.ts';
import type { PasswordPolicyService } from '../accounts/password-policy.ts';
import type { RateLimits } from '../limits/rate-limits.ts';
import { userService } from '../management/users.ts';
import { AdminProblem } from '../admin-api/problem.ts';
import { requireRecentLogin, type AccountPrincipal } from './authenticate-account.ts';
import { profileFields } from '../accounts/profile-fields.ts';
import { declaredInConfig } from '../accounts/config-users.ts';

/** The email service (registration/verification helper) the console asks to change an address. */
export interface AccountEmails {
  /** Sends the verification link to the new address (and a notice to the old one); the change applies when it is followed. */
  requestEmailChange(input: { userId: string; newEmail: string; locale: string; ip?: string }): Promise<void>;
}

/** Starts a "link another identity" round trip (src/account-api/link-flow.ts). */
export interface LinkTickets {
  issue(principal: AccountPrincipal, connectorId: string): Promise<string>;
}

export interface AccountRouteDependencies {
  config: Config;
  store: Store;
  logger: Logger;
  provider: Provider;
  limits: RateLimits;
  registry(): ConnectorRegistry;
  mfa: MfaServices;
  passwordPolicy: PasswordPolicyService;
  accountEmails?: AccountEmails;
  linkTickets: LinkTickets;
  /** The language the person reads (for mails), from Accept-Language. */
  localeOf(acceptLanguage: string): string;
}

/** Text a person types: trimmed, no control characters. */
export const text = (max: number) =>
  z
    .string()
    .max(max, `must be at most ${max} characters`)
    .transform((s) => s.trim())
    .refine((s) => !/[\u0000-\u001f\u007f]/.test(s), 'must not contain control characters');

export function createAccountKit(deps: AccountRouteDependencies) {
  const { config, store, provider, logger, mfa } = deps;
  const configured = declaredInConfig(config);
  const users = userService({ config, store, provider, logger, passwordPolicy: deps.passwordPolicy });

  /** Who owns this profile when it is not the person: the configuration file, or a connector. */
  function ownerOf(user: User): { kind: 'config' | 'connector'; id: string | null; name: string } | null {
    if (configured(user.username)) return { kind: 'config', id: null, name: 'the configuration file' };
    if (user.managedBy) return { kind: 'connector', id: user.managedBy, name: deps.registry().get(user.managedBy)?.name ?? user.managedBy };
    return null;
  }

  const readOnlyProblem = (owner: NonNullable<ReturnType<typeof ownerOf>>, what: string) =>
    new AdminProblem(409, 'read_only', `${what} is managed by ${owner.name} and cannot be changed here.`, { extra: { source: owner } });

  /** The profile as the console shows it; `loaded`: the person's identities and factors when the caller read them already. */
  async function profile(user: User, loaded?: { identities: unknown[]; factors: { confirmed: boolean }[] }) {
    const owner = ownerOf(user);
    const [hash, identities, factors] = await Promise.all([
      store.credentials.getPasswordHash(user.id),
      loaded?.identities ?? store.identities.listForUser(user.id),
      loaded?.factors ?? store.mfa.list(user.id),
    ]);
    return {
      ...profileFields(user),
      createdAt: user.createdAt.toISOString(),
      hasPassword: hash !== null,
      /** Fields the person cannot change here, and who owns them. */
      readOnly: owner ? { fields: ['username', 'email', 'name', 'givenName', 'familyName', 'password'], source: owner } : null,
      counts: { identities: identities.length, factors: factors.filter((f) => f.confirmed).length },
    };
  }

  /** Sign-in methods left if `without` went: a password, a passkey (where passkeys sign in), other identities. */
  async function remainingMethods(userId: string, without: { identityId?: string }): Promise<number> {
    const [hash, identities, passkeys] = await Promise.all([store.credentials.getPasswordHash(userId), store.identities.listForUser(userId), mfa.passkeys ? store.mfa.webauthnFactors(userId) : []]);
    return (hash ? 1 : 0) + identities.filter((i) => i.id !== without.identityId).length + passkeys.filter((p) => p.confirmed).length;
  }

  type StoredSession = Awaited<ReturnType<Store['userSessions']['sessionsOf']>>[number];
  /** Sessions as the person sees them: the device they signed in with, and the apps by name. */
  async function sessionViews(sessions: StoredSession[], principal: AccountPrincipal) {
    const clientIds = [...new Set(sessions.flatMap((s) => s.clients))];
    const names = new Map(await Promise.all(clientIds.map(async (id) => [id, await clientName(id)] as const)));
    return sessions.map((s) => ({
      id: s.uid,
      current: s.uid === principal.sessionUid,
      userAgent: s.userAgent,
      signedInAt: s.authenticatedAt?.toISOString() ?? null,
      lastSeenAt: (s.lastUsedAt ?? s.authenticatedAt)?.toISOString() ?? null,
      expiresAt: s.expiresAt?.toISOString() ?? null,
      ip: s.ip,
      connector: s.connectorId ? { id: s.connectorId, name: deps.registry().get(s.connectorId)?.name ?? s.connectorId } : null,
      methods: s.amr,
      applications: s.clients.map((id) => ({ id, name: names.get(id) ?? id })),
    }));
  }

  async function clientName(clientId: string): Promise<string> {
    const client = await provider.Client.find(clientId).catch(() => undefined);
    return (client as { clientName?: string } | undefined)?.clientName ?? clientId;
  }

  async function appsOf(principal: AccountPrincipal) {
    const grants = await store.userSessions.grantsOf(principal.user.id);
    return Promise.all(
      grants.map(async (g) => ({
        id: g.id,
        clientId: g.clientId,
        name: await clientName(g.clientId),
        current: g.id === principal.grantId,
        scopes: g.scopes,
        resources: g.resources,
        grantedAt: g.createdAt?.toISOString() ?? null,
        expiresAt: g.expiresAt?.toISOString() ?? null,
      })),
    );
  }

  const identityView = (i: Awaited<ReturnType<Store['identities']['listForUser']>>[number]) => ({
    id: i.id,
    connector: { id: i.connectorId, name: deps.registry().get(i.connectorId)?.name ?? i.connectorId },
    username: i.username,
    email: i.email,
    linkedAt: i.createdAt.toISOString(),
    lastLoginAt: i.lastLoginAt?.toISOString() ?? null,
  });

  const eventView = (e: Awaited<ReturnType<Store['audit']['search']>>[number]) => {
    const d = e.details as Record<string, unknown>;
    // Only what tells the person what happened; never the internals some events carry.
    const details = Object.fromEntries(['reason', 'factor', 'via', 'by', 'type', 'name'].filter((k) => typeof d[k] === 'string' || typeof d[k] === 'boolean').map((k) => [k, d[k]]));
    return { id: e.id, at: e.at.toISOString(), type: e.type, outcome: e.outcome, ip: e.ip, clientId: e.clientId, connectorId: e.connectorId, details };
  };

  /** For changes that need a recent sign-in only in some cases (a username change) or after another check (deletion). */
  const requireRecent = (principal: AccountPrincipal, what: string) => requireRecentLogin(principal, config.account.reauthMaxAge, what);

  /** New recovery codes after the first factor (shown once); null when the person already has some. */
  async function firstRecoveryCodes(userId: string, audit: (type: string, details?: Record<string, unknown>) => Promise<void>): Promise<string[] | null> {
    if ((await store.mfa.recoveryCodesLeft(userId)) > 0) return null;
    const codes = await mfa.recovery.issue(userId);
    await audit('mfa.recovery_codes_issued', { by: 'self' });
    return codes;
  }

  return { deps, config, store, provider, logger, mfa, configured, users, ownerOf, readOnlyProblem, profile, remainingMethods, sessionViews, appsOf, identityView, eventView, requireRecent, firstRecoveryCodes };
}

export type AccountKit = ReturnType<typeof createAccountKit>;
