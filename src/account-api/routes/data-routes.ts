// The person's data: their security log (last 90 days, paged), the export of everything stored
// about them (GDPR Art. 15/20, never a secret), and deleting the account where allowed.
import { z } from 'zod';
import { factorView } from '../../management/user-mfa.ts';
import { encodeCursor, decodeCursor } from '../../admin-api/admin-support.ts';
import { AdminProblem, invalid } from '../../admin-api/problem.ts';
import { defineAccountRoute, type AccountRoute } from '../account-route.ts';
import type { AccountKit } from '../account-kit.ts';

const SECURITY_LOG_DAYS = 90;
const EXPORT_AUDIT_LIMIT = 10_000;
const deleteBody = z.strictObject({ confirm: z.string().max(256) });
const logQuery = z.strictObject({ limit: z.coerce.number().int().min(1).max(100).default(25), cursor: z.string().max(512).optional() });

export function dataRoutes(kit: AccountKit): AccountRoute[] {
  const { config, store, users, ownerOf, readOnlyProblem, profile, sessionViews, appsOf, identityView, eventView, requireRecent } = kit;
  return [
    defineAccountRoute({
      method: 'GET',
      path: '/security-log',
      query: logQuery,
      async handler({ principal, query: q }) {
        const [beforeId] = (decodeCursor(q.cursor, ['string']) ?? []) as string[];
        const events = await store.audit.search({ userId: principal.user.id, since: new Date(Date.now() - SECURITY_LOG_DAYS * 86400_000), beforeId, limit: q.limit + 1 });
        const page = events.slice(0, q.limit);
        return { body: { items: page.map(eventView), nextCursor: events.length > q.limit ? encodeCursor([page.at(-1)!.id]) : null } };
      },
    }),
    defineAccountRoute({
      method: 'GET',
      path: '/export',
      async handler({ principal, audit }) {
        const id = principal.user.id;
        const [identities, factors] = await Promise.all([store.identities.listForUser(id), store.mfa.list(id)]);
        const [me, groups, recoveryCodesLeft, requiredActions, sessions, apps, events] = await Promise.all([
          profile(principal.user, { identities, factors }),
          store.users.memberships(id),
          store.mfa.recoveryCodesLeft(id),
          store.mfa.requiredActions(id),
          store.userSessions.sessionsOf(id),
          appsOf(principal),
          store.audit.list({ userId: id, limit: EXPORT_AUDIT_LIMIT }),
        ]);
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
          sessions: await sessionViews(sessions, principal),
          applications: apps,
          securityLog: events.map((e) => ({ ...eventView(e), details: e.details })),
        };
        const day = new Date().toISOString().slice(0, 10);
        return { body, headers: { 'Content-Disposition': `attachment; filename="keybridge-account-${day}.json"` } };
      },
    }),
    defineAccountRoute({
      method: 'DELETE',
      path: '/me',
      body: deleteBody,
      async handler({ principal, body, ctx }) {
        if (!config.account.selfDeletion) throw new AdminProblem(403, 'self_deletion_disabled', 'Deleting your own account is not enabled on this server. Ask your administrator.');
        const user = principal.user;
        const owner = ownerOf(user);
        if (owner?.kind === 'config') throw readOnlyProblem(owner, 'Your account');
        // Checked here rather than by the route flag: the disabled answer comes first.
        requireRecent(principal, 'Deleting your account');
        if (body.confirm !== user.username) throw invalid([{ path: 'body.confirm', message: 'must be your username, typed exactly' }], 'Type your username to confirm.');
        const { ended } = await users.remove(user.id, null);
        await store.audit.record({ type: 'user.deleted', userId: user.id, ip: ctx.ip, clientId: principal.clientId, details: { by: 'self', username: user.username, sessionsEnded: ended.sessions.length, grantsRevoked: ended.grantsRevoked } });
        return { status: 204 };
      },
    }),
  ];
}
