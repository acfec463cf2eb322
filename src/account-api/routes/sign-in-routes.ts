// Ways to sign in: the password (current one checked, the policy's verdict, stored through the
// policy), and linked upstream accounts: list, unlink (never the last way in), and the ticket
// that starts linking another (src/account-api/link-flow.ts).
import { z } from 'zod';
import { verifyPassword } from '../../accounts/passwords.ts';
import { unlinkIdentity } from '../../accounts/link-identity.ts';
import { endSessions } from '../../oidc/end-sessions.ts';
import { AdminProblem, conflict, invalid, notFound } from '../../admin-api/problem.ts';
import { defineAccountRoute, type AccountRoute } from '../account-route.ts';
import type { AccountKit } from '../account-kit.ts';

// Far above any policy's maximum, so the policy itself says "too long" (with its limit).
const passwordBody = z.strictObject({
  currentPassword: z.string().max(4096, 'must be at most 4096 characters').optional(),
  newPassword: z.string().min(1, 'is required').max(4096, 'must be at most 4096 characters'),
  signOutOtherSessions: z.boolean().optional(),
});
const linkBody = z.strictObject({ connectorId: z.string().min(1).max(64) });

export function signInRoutes(kit: AccountKit): AccountRoute[] {
  const { deps, store, provider, logger, ownerOf, readOnlyProblem, remainingMethods, identityView } = kit;
  return [
    defineAccountRoute({
      method: 'POST',
      path: '/me/password',
      recentLogin: true,
      body: passwordBody,
      async handler({ principal, body: input, audit }) {
        const user = principal.user;
        const owner = ownerOf(user);
        if (owner) throw readOnlyProblem(owner, 'Your password');
        const hash = await store.credentials.getPasswordHash(user.id);
        if (hash) {
          if (input.currentPassword === undefined || input.currentPassword === '') throw invalid([{ path: 'body.currentPassword', message: 'is required' }]);
          // Shares the login's counters (kept per local connector id and name typed): the console
          // is no way around the password throttle.
          const counter = deps.registry().list().find((c) => c.type === 'local')?.id ?? 'local';
          const verdict = await deps.limits.accountAttempt(counter, user.username);
          if (!verdict.allowed) throw new AdminProblem(429, 'too_many_attempts', 'Too many wrong passwords. Wait a moment and try again.', { headers: { 'Retry-After': String(verdict.retryAfterSeconds) } });
          if (!(await verifyPassword(hash, input.currentPassword))) {
            await deps.limits.accountFailure(counter, user.username);
            await audit('user.password_change_failed', { reason: 'wrong_current_password' }, 'failure');
            throw new AdminProblem(400, 'wrong_password', 'The current password is not right.', { errors: [{ path: 'body.currentPassword', message: 'is not right' }] });
          }
          await deps.limits.accountSuccess(counter, user.username);
        }
        const problem = await deps.passwordPolicy.problem(input.newPassword, { userId: user.id, username: user.username, email: user.email, name: user.name });
        if (problem) {
          throw new AdminProblem(400, 'password_rejected', `The new password ${problem.message}.`, {
            errors: [{ path: 'body.newPassword', message: problem.message, code: problem.code }],
            extra: { passwordProblem: { code: problem.code, values: problem.values ?? {} } },
          });
        }
        await deps.passwordPolicy.setPassword(store, user.id, input.newPassword);
        let ended = 0;
        if (input.signOutOtherSessions) {
          const others = (await store.userSessions.sessionUidsOf(user.id)).filter((uid) => uid !== principal.sessionUid);
          ended = (await endSessions({ provider, store, logger }, others, 'password_changed')).length;
        }
        await audit('user.password_changed', { by: 'self', ...(hash ? {} : { reason: 'first_password' }), sessionsEnded: ended });
        return { body: { changed: true, sessionsEnded: ended } };
      },
    }),
    defineAccountRoute({
      method: 'GET',
      path: '/identities',
      async handler({ principal }) {
        const identities = await store.identities.listForUser(principal.user.id);
        return { body: { items: identities.map(identityView) } };
      },
    }),
    defineAccountRoute({
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
    }),
    defineAccountRoute({
      method: 'POST',
      path: '/identities/link',
      recentLogin: true,
      body: linkBody,
      async handler({ principal, body }) {
        const { connectorId } = body;
        const registered = deps.registry().get(connectorId);
        if (!registered || registered.connector.kind !== 'redirect') throw invalid([{ path: 'body.connectorId', message: 'is not a sign-in method that can be linked' }]);
        const linked = await store.identities.listForUser(principal.user.id);
        if (linked.some((i) => i.connectorId === connectorId)) throw conflict(`An account at ${registered.name} is already linked. Unlink it first to link another.`, 'already_linked', 'body.connectorId');
        const ticket = await deps.linkTickets.issue(principal, connectorId);
        return { status: 201, body: { url: `/account/link/${encodeURIComponent(connectorId)}?ticket=${encodeURIComponent(ticket)}` } };
      },
    }),
  ];
}
