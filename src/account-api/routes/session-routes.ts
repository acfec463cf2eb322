// Sessions and apps: browser sessions (sign out one, or everywhere but here) and the grants
// applications hold (revoke ends the grant with every code and token issued under it).
import { endSessions } from '../../oidc/end-sessions.ts';
import { notFound } from '../../admin-api/problem.ts';
import { defineAccountRoute, type AccountRoute } from '../account-route.ts';
import type { AccountKit } from '../account-kit.ts';

export function sessionRoutes(kit: AccountKit): AccountRoute[] {
  const { store, provider, logger, sessionViews, appsOf } = kit;
  return [
    defineAccountRoute({
      method: 'GET',
      path: '/sessions',
      async handler({ principal }) {
        const sessions = await store.userSessions.sessionsOf(principal.user.id);
        return { body: { items: await sessionViews(sessions, principal) } };
      },
    }),
    defineAccountRoute({
      method: 'DELETE',
      path: '/sessions/:id',
      async handler({ principal, params, audit }) {
        const live = await store.userSessions.sessionsOf(principal.user.id);
        if (!live.some((s) => s.uid === params.id)) throw notFound('The session');
        await endSessions({ provider, store, logger }, [params.id!], 'user_signout');
        await audit('account.session_ended', { current: params.id === principal.sessionUid });
        return { status: 204 };
      },
    }),
    defineAccountRoute({
      method: 'POST',
      path: '/sessions/end-others',
      async handler({ principal, audit }) {
        const others = (await store.userSessions.sessionUidsOf(principal.user.id)).filter((uid) => uid !== principal.sessionUid);
        const ended = others.length ? await endSessions({ provider, store, logger }, others, 'user_signout_others') : [];
        await audit('account.sessions_ended', { count: ended.length });
        return { body: { ended: ended.length } };
      },
    }),
    defineAccountRoute({
      method: 'GET',
      path: '/apps',
      async handler({ principal }) {
        return { body: { items: await appsOf(principal) } };
      },
    }),
    defineAccountRoute({
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
    }),
  ];
}
