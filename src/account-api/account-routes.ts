// The account API's operations: profile, password, linked identities, second factors, sessions
// and applications, the security log, the data export and self-deletion. Each handler works on
// `principal.user` only; a path id that names something of another person answers 404.
import { z } from 'zod';
import type Provider from 'oidc-provider';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import type { Store } from '../storage/store.ts';
import type { User } from '../storage/types.ts';
import type { ConnectorRegistry } from '../connectors/registry.ts';
import type { MfaServices } from '../login/mfa-services.ts';
import type { PasswordPolicy } from '../accounts/password-policy.ts';
import type { RateLimits } from '../limits/rate-limits.ts';
import { WEBAUTHN_MESSAGES } from '../login/mfa-services.ts';
import { verifyPassword } from '../accounts/passwords.ts';
import { usernameKey, usernameProblem } from '../accounts/normalize-username.ts';
import { unlinkIdentity } from '../accounts/link-identity.ts';
import { endSessions } from '../oidc/end-sessions.ts';
import { factorView } from '../management/user-mfa.ts';
import { userService } from '../management/users.ts';
import { encodeCursor, decodeCursor } from '../admin-api/admin-support.ts';
import { AdminProblem, conflict, invalid, notFound } from '../admin-api/problem.ts';
import type { AccountPrincipal } from './authenticate-account.ts';
import type { AccountRoute } from './account-api.ts';

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
  passwordPolicy: PasswordPolicy;
  accountEmails?: AccountEmails;
  linkTickets: LinkTickets;
  /** The language the person reads (for mails), from Accept-Language. */
  localeOf(acceptLanguage: string): string;
}

const SECURITY_LOG_DAYS = 90;
const EXPORT_AUDIT_LIMIT = 10_000;

/** Text a person types: trimmed, no control characters. */
const text = (max: number) =>
  z
    .string()
    .max(max, `must be at most ${max} characters`)
    .transform((s) => s.trim())
    .refine((s) => !/[\u0000-\u001f\u007f]/.test(s), 'must not contain control characters');
const optionalName = text(200).nullable().optional().transform((v) => (v === '' ? null : v));

const profileBody = z.strictObject({
  username: text(128).optional(),
  name: optionalName,
  givenName: optionalName,
  familyName: optionalName,
});
const emailBody = z.strictObject({ email: z.email('must be an email address').max(254, 'must be at most 254 characters') });
// Far above any policy's maximum, so the policy itself says "too long" (with its limit).
const passwordBody = z.strictObject({
  currentPassword: z.string().max(4096, 'must be at most 4096 characters').optional(),
  newPassword: z.string().min(1, 'is required').max(4096, 'must be at most 4096 characters'),
  signOutOtherSessions: z.boolean().optional(),
});
const linkBody = z.strictObject({ connectorId: z.string().min(1).max(64) });
const codeBody = z.strictObject({ code: z.string().min(1, 'is required').max(32, 'must be at most 32 characters') });
const passkeyBody = z.strictObject({ name: text(64).refine((s) => s.length > 0, 'is required'), credential: z.record(z.string(), z.unknown()) });
const deleteBody = z.strictObject({ confirm: z.string().max(256) });
const logQuery = z.strictObject({ limit: z.coerce.number().int().min(1).max(100).default(25), cursor: z.string().max(512).optional() });

export function accountRoutes(deps: AccountRouteDependencies): AccountRoute[] {
  const { config, store, provider, logger, mfa } = deps;
  const configured = new Set(config.users.map((u) => usernameKey(u.username)));
  const users = userService({ config, store, provider, logger });

  /** Who owns this profile when it is not the person: the configuration file, or a connector. */
  function ownerOf(user: User): { kind: 'config' | 'connector'; id: string | null; name: string } | null {
    if (configured.has(usernameKey(user.username))) return { kind: 'config', id: null, name: 'the configuration file' };
    if (user.managedBy) return { kind: 'connector', id: user.managedBy, name: deps.registry().get(user.managedBy)?.name ?? user.managedBy };
    return null;
  }

  const readOnlyProblem = (owner: NonNullable<ReturnType<typeof ownerOf>>, what: string) =>
    Object.assign(new AdminProblem(409, 'read_only', `${what} is managed by ${owner.name} and cannot be changed here.`), { extra: { source: owner } });

  async function profile(user: User) {
    const owner = ownerOf(user);
    const [hash, identities, factors] = await Promise.all([store.credentials.getPasswordHash(user.id), store.identities.listForUser(user.id), store.mfa.list(user.id)]);
    return {
      id: user.id,
      username: user.username,
      email: user.email,
      emailVerified: user.emailVerified,
      name: user.name,
      givenName: user.givenName,
      familyName: user.familyName,
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

  const sessionView = (s: Awaited<ReturnType<Store['userSessions']['sessionsOf']>>[number], principal: AccountPrincipal, agents: Map<string, string>) => ({
    id: s.uid,
    current: s.uid === principal.sessionUid,
    userAgent: agents.get(s.uid) ?? null,
    signedInAt: s.authenticatedAt?.toISOString() ?? null,
    lastSeenAt: (s.lastUsedAt ?? s.authenticatedAt)?.toISOString() ?? null,
    expiresAt: s.expiresAt?.toISOString() ?? null,
    ip: s.ip,
    connector: s.connectorId ? { id: s.connectorId, name: deps.registry().get(s.connectorId)?.name ?? s.connectorId } : null,
    methods: s.amr,
    applications: s.clients,
  });

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

  return [
    {
      method: 'GET',
      path: '/me',
      async handler({ principal }) {
        const connectors = deps.registry().list().filter((c) => c.connector.kind === 'redirect').map((c) => ({ id: c.id, name: c.name }));
        return {
          body: {
            ...(await profile(principal.user)),
            session: { id: principal.sessionUid, authenticatedAt: principal.authenticatedAt?.toISOString() ?? null },
            features: {
              emailChange: Boolean(deps.accountEmails),
              selfDeletion: config.account.selfDeletion,
              passkeys: mfa.passkeys,
              reauthMaxAge: config.account.reauthMaxAge,
              linkableConnectors: connectors,
            },
          },
        };
      },
    },
    {
      method: 'PATCH',
      path: '/me',
      body: profileBody,
      async handler({ principal, body, audit }) {
        const patch = body as z.infer<typeof profileBody>;
        const owner = ownerOf(principal.user);
        if (owner) throw readOnlyProblem(owner, 'Your profile');
        const changes: Record<string, unknown> = {};
        for (const key of ['name', 'givenName', 'familyName'] as const) if (patch[key] !== undefined && patch[key] !== principal.user[key]) changes[key] = patch[key];
        if (patch.username !== undefined && patch.username !== principal.user.username) {
          const problem = usernameProblem(patch.username);
          if (problem) throw invalid([{ path: 'body.username', message: problem }]);
          // The username signs the person in: changing it is as sensitive as the password.
          const at = principal.authenticatedAt?.getTime() ?? 0;
          if (Date.now() - at > config.account.reauthMaxAge * 1000) throw new AdminProblem(403, 'reauthentication_required', `Changing your username needs a recent sign-in (within ${config.account.reauthMaxAge} seconds). Sign in again and retry.`);
          if (usernameKey(patch.username) !== usernameKey(principal.user.username) && configured.has(usernameKey(patch.username))) throw conflict('That username is taken.', 'already_exists', 'body.username');
          changes.username = patch.username;
        }
        if (!Object.keys(changes).length) return { body: await profile(principal.user) };
        const { before, after } = await users.update(principal.user.id, changes, null);
        await audit('account.profile_updated', { fields: Object.keys(changes), ...(changes.username ? { usernameBefore: before.username, usernameAfter: after.username } : {}) });
        return { body: await profile((await store.users.findById(principal.user.id))!) };
      },
    },
    {
      method: 'POST',
      path: '/me/email',
      recentLogin: true,
      body: emailBody,
      async handler({ principal, body, ctx, audit }) {
        const owner = ownerOf(principal.user);
        if (owner) throw readOnlyProblem(owner, 'Your email address');
        if (!deps.accountEmails) throw new AdminProblem(501, 'email_not_configured', 'Email is not configured on this server, so the address cannot be changed here. Ask your administrator.');
        const email = (body as z.infer<typeof emailBody>).email;
        await deps.accountEmails.requestEmailChange({ userId: principal.user.id, newEmail: email, locale: deps.localeOf(ctx.get('accept-language')), ip: ctx.ip });
        await audit('account.email_change_requested', {});
        // The same answer whether or not the address is free: no one learns who uses it.
        return { status: 202, body: { status: 'verification_sent' } };
      },
    },
    {
      method: 'POST',
      path: '/me/password',
      recentLogin: true,
      body: passwordBody,
      async handler({ principal, body, audit }) {
        const input = body as z.infer<typeof passwordBody>;
        const user = principal.user;
        const owner = ownerOf(user);
        if (owner) throw readOnlyProblem(owner, 'Your password');
        const hash = await store.credentials.getPasswordHash(user.id);
        if (hash) {
          if (input.currentPassword === undefined || input.currentPassword === '') throw invalid([{ path: 'body.currentPassword', message: 'is required' }]);
          // Shares the login's counters: the console is no way around the password throttle.
          const verdict = await deps.limits.accountAttempt('local', user.username);
          if (!verdict.allowed) throw new AdminProblem(429, 'too_many_attempts', 'Too many wrong passwords. Wait a moment and try again.', { headers: { 'Retry-After': String(verdict.retryAfterSeconds) } });
          if (!(await verifyPassword(hash, input.currentPassword))) {
            await deps.limits.accountFailure('local', user.username);
            await audit('user.password_change_failed', { reason: 'wrong_current_password' }, 'failure');
            throw Object.assign(new AdminProblem(400, 'wrong_password', 'The current password is not right.', { errors: [{ path: 'body.currentPassword', message: 'is not right' }] }));
          }
          await deps.limits.accountSuccess('local', user.username);
        }
        const problem = await deps.passwordPolicy.problem(input.newPassword, { userId: user.id, username: user.username, email: user.email, name: user.name });
        if (problem) {
          throw Object.assign(new AdminProblem(400, 'password_rejected', `The new password ${problem.message}.`, { errors: [{ path: 'body.newPassword', message: problem.message }] }), {
            extra: { passwordProblem: { code: problem.code, values: problem.values ?? {} } },
          });
        }
        await deps.passwordPolicy.setPassword(store, user.id, input.newPassword);
        await store.mfa.removeRequiredAction(user.id, 'update_password');
        let ended = 0;
        if (input.signOutOtherSessions) {
          const others = (await store.userSessions.sessionUidsOf(user.id)).filter((uid) => uid !== principal.sessionUid);
          ended = (await endSessions({ provider, store, logger }, others, 'password_changed')).length;
        }
        await audit('user.password_changed', { by: 'self', ...(hash ? {} : { reason: 'first_password' }), sessionsEnded: ended });
        return { body: { changed: true, sessionsEnded: ended } };
      },
    },
    {
      method: 'GET',
      path: '/identities',
      async handler({ principal }) {
        const identities = await store.identities.listForUser(principal.user.id);
        return { body: { items: identities.map(identityView) } };
      },
    },
    {
      method: 'DELETE',
      path: '/identities/:id',
      recentLogin: true,
      async handler({ principal, params, ctx }) {
        const identity = await store.identities.findById(params.id!);
        if (!identity || identity.userId !== principal.user.id) throw notFound('The linked identity');
        if ((await remainingMethods(principal.user.id, { identityId: identity.id })) === 0) {
          throw new AdminProblem(409, 'last_sign_in_method', 'This is your only way to sign in. Set a password or link another account first.');
        }
        await unlinkIdentity(store, identity.id, { by: 'self', ip: ctx.ip });
        return { status: 204 };
      },
    },
    {
      method: 'POST',
      path: '/identities/link',
      recentLogin: true,
      body: linkBody,
      async handler({ principal, body }) {
        const { connectorId } = body as z.infer<typeof linkBody>;
        const registered = deps.registry().get(connectorId);
        if (!registered || registered.connector.kind !== 'redirect') throw invalid([{ path: 'body.connectorId', message: 'is not a sign-in method that can be linked' }]);
        const linked = await store.identities.listForUser(principal.user.id);
        if (linked.some((i) => i.connectorId === connectorId)) throw conflict(`An account at ${registered.name} is already linked. Unlink it first to link another.`, 'already_linked', 'body.connectorId');
        const ticket = await deps.linkTickets.issue(principal, connectorId);
        return { status: 201, body: { url: `/account/link/${encodeURIComponent(connectorId)}?ticket=${encodeURIComponent(ticket)}` } };
      },
    },
    {
      method: 'GET',
      path: '/mfa',
      async handler({ principal }) {
        const [factors, recoveryCodesLeft] = await Promise.all([store.mfa.list(principal.user.id), store.mfa.recoveryCodesLeft(principal.user.id)]);
        return { body: { factors: factors.filter((f) => f.confirmed).map(factorView), recoveryCodesLeft, passkeys: mfa.passkeys } };
      },
    },
    {
      method: 'POST',
      path: '/mfa/totp',
      recentLogin: true,
      async handler({ principal }) {
        // An earlier enrolment never confirmed is replaced (startEnrolment drops it).
        const pending = await mfa.totp.startEnrolment({ id: principal.user.id, username: principal.user.username });
        return { status: 201, body: { factorId: pending.factorId, secret: pending.secret, uri: pending.uri, qrSvg: pending.qrSvg } };
      },
    },
    {
      method: 'POST',
      path: '/mfa/totp/:id/confirm',
      recentLogin: true,
      body: codeBody,
      async handler({ principal, params, body, audit }) {
        const result = await mfa.totp.confirmEnrolment(principal.user.id, params.id!, (body as z.infer<typeof codeBody>).code);
        if (result === 'gone') throw notFound('The authenticator app set-up');
        if (result !== 'confirmed') throw new AdminProblem(400, 'wrong_code', 'That code is not right. Check the time on your device and enter the current code.', { errors: [{ path: 'body.code', message: 'is not right' }] });
        await audit('mfa.enrolled', { factor: 'totp', via: 'account-console' });
        return { status: 201, body: { factorId: params.id, recoveryCodes: await firstRecoveryCodes(principal.user.id, audit) } };
      },
    },
    {
      method: 'POST',
      path: '/mfa/passkeys/options',
      recentLogin: true,
      async handler({ principal }) {
        if (!mfa.passkeys) throw new AdminProblem(409, 'passkeys_unavailable', 'Passkeys cannot be used on this server (it is reached by an IP address).');
        const u = principal.user;
        return { body: await mfa.webauthn.registrationOptions({ id: u.id, username: u.username, name: u.name }, `account-passkey.${u.id}`) };
      },
    },
    {
      method: 'POST',
      path: '/mfa/passkeys',
      recentLogin: true,
      body: passkeyBody,
      async handler({ principal, body, audit }) {
        const input = body as z.infer<typeof passkeyBody>;
        const result = await mfa.webauthn.verifyRegistration(principal.user.id, `account-passkey.${principal.user.id}`, input.credential, input.name);
        if (!result.ok) {
          logger.info({ user: principal.user.id, error: result.error, detail: result.detail }, 'passkey registration refused');
          throw new AdminProblem(400, `passkey_${result.error}`, WEBAUTHN_MESSAGES[result.error]);
        }
        await audit('mfa.enrolled', { factor: 'webauthn', name: input.name, via: 'account-console' });
        return { status: 201, body: { factorId: result.factorId, recoveryCodes: await firstRecoveryCodes(principal.user.id, audit) } };
      },
    },
    {
      method: 'DELETE',
      path: '/mfa/factors/:id',
      recentLogin: true,
      async handler({ principal, params, audit }) {
        const factor = await store.mfa.find(principal.user.id, params.id!);
        if (!factor || !factor.confirmed) throw notFound('The factor');
        if (factor.type === 'webauthn' && mfa.passkeys && (await remainingMethods(principal.user.id, {})) <= 1) {
          throw new AdminProblem(409, 'last_sign_in_method', 'This passkey is your only way to sign in. Set a password or link another account first.');
        }
        if (!(await store.mfa.remove(principal.user.id, factor.id))) throw notFound('The factor');
        await audit('mfa.factor_removed', { factor: factor.type, name: factor.name, by: 'self' });
        return { status: 204 };
      },
    },
    {
      method: 'POST',
      path: '/mfa/recovery-codes',
      recentLogin: true,
      async handler({ principal, audit }) {
        const factors = (await store.mfa.list(principal.user.id)).filter((f) => f.confirmed);
        if (!factors.length) throw new AdminProblem(409, 'no_factor', 'Recovery codes stand in for a second factor: add an authenticator app or a passkey first.');
        const codes = await mfa.recovery.issue(principal.user.id);
        await audit('mfa.recovery_codes_issued', { by: 'self' });
        return { status: 201, body: { codes } };
      },
    },
    {
      method: 'GET',
      path: '/sessions',
      async handler({ principal }) {
        const sessions = await store.userSessions.sessionsOf(principal.user.id);
        const agents = await store.loginSessions.userAgents(sessions.map((s) => s.uid));
        return { body: { items: sessions.map((s) => sessionView(s, principal, agents)) } };
      },
    },
    {
      method: 'DELETE',
      path: '/sessions/:id',
      async handler({ principal, params, audit }) {
        const live = await store.userSessions.sessionsOf(principal.user.id);
        if (!live.some((s) => s.uid === params.id)) throw notFound('The session');
        await endSessions({ provider, store, logger }, [params.id!], 'user_signout');
        await audit('account.session_ended', { current: params.id === principal.sessionUid });
        return { status: 204 };
      },
    },
    {
      method: 'POST',
      path: '/sessions/end-others',
      async handler({ principal, audit }) {
        const others = (await store.userSessions.sessionUidsOf(principal.user.id)).filter((uid) => uid !== principal.sessionUid);
        const ended = others.length ? await endSessions({ provider, store, logger }, others, 'user_signout_others') : [];
        await audit('account.sessions_ended', { count: ended.length });
        return { body: { ended: ended.length } };
      },
    },
    {
      method: 'GET',
      path: '/apps',
      async handler({ principal }) {
        return { body: { items: await appsOf(principal) } };
      },
    },
    {
      method: 'DELETE',
      path: '/apps/:id',
      async handler({ principal, params, ctx, requestId }) {
        const grant = await store.userSessions.grantOf(principal.user.id, params.id!);
        if (!grant) throw notFound('The application access');
        await store.userSessions.revokeGrants([grant.id]);
        // The event names the application whose access ended (not the console).
        await store.audit.record({ type: 'grant.revoked', userId: principal.user.id, clientId: grant.clientId, ip: ctx.ip, details: { by: 'self', scopes: grant.scopes, requestId } });
        return { status: 204 };
      },
    },
    {
      method: 'GET',
      path: '/security-log',
      query: logQuery,
      async handler({ principal, query }) {
        const q = query as z.infer<typeof logQuery>;
        const [beforeId] = (decodeCursor(q.cursor, ['string']) ?? []) as string[];
        const events = await store.audit.search({ userId: principal.user.id, since: new Date(Date.now() - SECURITY_LOG_DAYS * 86400_000), beforeId, limit: q.limit + 1 });
        const page = events.slice(0, q.limit);
        return { body: { items: page.map(eventView), nextCursor: events.length > q.limit ? encodeCursor([page.at(-1)!.id]) : null } };
      },
    },
    {
      method: 'GET',
      path: '/export',
      async handler({ principal, audit }) {
        const id = principal.user.id;
        const [me, groups, identities, factors, recoveryCodesLeft, requiredActions, sessions, apps, events] = await Promise.all([
          profile(principal.user),
          store.users.memberships(id),
          store.identities.listForUser(id),
          store.mfa.list(id),
          store.mfa.recoveryCodesLeft(id),
          store.mfa.requiredActions(id),
          store.userSessions.sessionsOf(id),
          appsOf(principal),
          store.audit.list({ userId: id, limit: EXPORT_AUDIT_LIMIT }),
        ]);
        const agents = await store.loginSessions.userAgents(sessions.map((s) => s.uid));
        await audit('account.exported', {});
        const u = principal.user;
        const body = {
          format: 'keybridge-account-export/1',
          exportedAt: new Date().toISOString(),
          issuer: config.issuer,
          profile: { ...me, enabled: u.enabled, attributes: u.attributes, managedBy: u.managedBy, updatedAt: u.updatedAt.toISOString() },
          groups,
          // What each upstream said about the person; never its tokens (kept encrypted, and not theirs to carry around).
          linkedIdentities: identities.map((i) => ({ ...identityView(i), subject: i.subject, data: i.data, syncedAt: i.syncedAt?.toISOString() ?? null })),
          secondFactors: factors.map(factorView),
          recoveryCodesLeft,
          requiredActions,
          sessions: sessions.map((s) => sessionView(s, principal, agents)),
          applications: apps,
          securityLog: events.map((e) => ({ ...eventView(e), details: e.details })),
        };
        const day = new Date().toISOString().slice(0, 10);
        return { body, headers: { 'Content-Disposition': `attachment; filename="keybridge-account-${day}.json"` } };
      },
    },
    {
      method: 'DELETE',
      path: '/me',
      body: deleteBody,
      async handler({ principal, body, ctx }) {
        if (!config.account.selfDeletion) throw new AdminProblem(403, 'self_deletion_disabled', 'Deleting your own account is not enabled on this server. Ask your administrator.');
        const user = principal.user;
        const owner = ownerOf(user);
        if (owner?.kind === 'config') throw readOnlyProblem(owner, 'Your account');
        // Checked here rather than by the route flag: the disabled answer comes first.
        const at = principal.authenticatedAt?.getTime() ?? 0;
        if (Date.now() - at > config.account.reauthMaxAge * 1000) throw new AdminProblem(403, 'reauthentication_required', `Deleting your account needs a recent sign-in (within ${config.account.reauthMaxAge} seconds). Sign in again and retry.`);
        if ((body as z.infer<typeof deleteBody>).confirm !== user.username) throw invalid([{ path: 'body.confirm', message: 'must be your username, typed exactly' }], 'Type your username to confirm.');
        const { ended } = await users.remove(user.id, null);
        await store.audit.record({ type: 'user.deleted', userId: user.id, ip: ctx.ip, clientId: principal.clientId, details: { by: 'self', username: user.username, sessionsEnded: ended.sessions.length, grantsRevoked: ended.grantsRevoked } });
        return { status: 204 };
      },
    },
  ];

  /** New recovery codes after the first factor (shown once); null when the person already has some. */
  async function firstRecoveryCodes(userId: string, audit: (type: string, details?: Record<string, unknown>) => Promise<void>): Promise<string[] | null> {
    if ((await store.mfa.recoveryCodesLeft(userId)) > 0) return null;
    const codes = await mfa.recovery.issue(userId);
    await audit('mfa.recovery_codes_issued', { by: 'self' });
    return codes;
  }
}
