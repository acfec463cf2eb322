// Profile: who the person is (GET /me, with the console's features), their names and username,
// and the request to change their email address (verified by mail before it applies).
import { z } from 'zod';
import { usernameKey, usernameProblem } from '../../accounts/normalize-username.ts';
import { AdminProblem, conflict, invalid } from '../../admin-api/problem.ts';
import { text } from '../account-kit.ts';
import { defineAccountRoute, type AccountRoute } from '../account-route.ts';
import type { AccountKit } from '../account-kit.ts';

const optionalName = text(200).nullable().optional().transform((v) => (v === '' ? null : v));
const profileBody = z.strictObject({
  username: text(128).optional(),
  name: optionalName,
  givenName: optionalName,
  familyName: optionalName,
});
const emailBody = z.strictObject({ email: z.email('must be an email address').max(254, 'must be at most 254 characters') });

export function profileRoutes(kit: AccountKit): AccountRoute[] {
  const { deps, config, store, mfa, configured, users, ownerOf, readOnlyProblem, profile, requireRecent } = kit;
  return [
    defineAccountRoute({
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
    }),
    defineAccountRoute({
      method: 'PATCH',
      path: '/me',
      body: profileBody,
      async handler({ principal, body: patch, audit }) {
        const owner = ownerOf(principal.user);
        if (owner) throw readOnlyProblem(owner, 'Your profile');
        const changes: Record<string, unknown> = {};
        for (const key of ['name', 'givenName', 'familyName'] as const) if (patch[key] !== undefined && patch[key] !== principal.user[key]) changes[key] = patch[key];
        if (patch.username !== undefined && patch.username !== principal.user.username) {
          const problem = usernameProblem(patch.username);
          if (problem) throw invalid([{ path: 'body.username', message: problem }]);
          // The username signs the person in: changing it is as sensitive as the password.
          requireRecent(principal, 'Changing your username');
          if (usernameKey(patch.username) !== usernameKey(principal.user.username) && configured(patch.username)) throw conflict('That username is taken.', 'already_exists', 'body.username');
          changes.username = patch.username;
        }
        if (!Object.keys(changes).length) return { body: await profile(principal.user) };
        const { before, after } = await users.update(principal.user.id, changes, null);
        await audit('account.profile_updated', { fields: Object.keys(changes), ...(changes.username ? { usernameBefore: before.username, usernameAfter: after.username } : {}) });
        return { body: await profile((await store.users.findById(principal.user.id))!) };
      },
    }),
    defineAccountRoute({
      method: 'POST',
      path: '/me/email',
      recentLogin: true,
      body: emailBody,
      async handler({ principal, body, ctx, audit }) {
        const owner = ownerOf(principal.user);
        if (owner) throw readOnlyProblem(owner, 'Your email address');
        if (!deps.accountEmails) throw new AdminProblem(501, 'email_not_configured', 'Email is not configured on this server, so the address cannot be changed here. Ask your administrator.');
        const email = body.email;
        await deps.accountEmails.requestEmailChange({ userId: principal.user.id, newEmail: email, locale: deps.localeOf(ctx.get('accept-language')), ip: ctx.ip });
        await audit('account.email_change_requested', {});
        // The same answer whether or not the address is free: no one learns who uses it.
        return { status: 202, body: { status: 'verification_sent' } };
      },
    }),
  ];
}
