// A user's second factors and required actions (resource `users`). Thin: the rules live in
// src/management/user-mfa.ts and src/management/users.ts.
import { z } from 'zod';
import type { UserService } from '../../management/users.ts';
import { defineRoute, type AdminRoute } from '../admin-route.ts';

const id = z.string().min(1).max(128);
const userParams = z.object({ id: id.describe('The user id.') });
const date = z.iso.datetime();
const requiredAction = z.enum(['update_password', 'configure_mfa']);

const factorSchema = z.object({
  id: z.string(),
  type: z.enum(['totp', 'webauthn']),
  name: z.string(),
  confirmed: z.boolean().describe('False while a TOTP enrolment waits for its first code.'),
  createdAt: date,
  lastUsedAt: date.nullable(),
});

const mfaSchema = z.object({
  factors: z.array(factorSchema).describe('Oldest first; never a secret or key.'),
  recoveryCodesLeft: z.int().describe('Unused recovery codes.'),
});

const actionsSchema = z.object({ actions: z.array(requiredAction).describe('Oldest first.') });

export function userMfaRoutes(deps: { users: UserService }): AdminRoute[] {
  const { users } = deps;
  return [
    defineRoute({
      method: 'get',
      path: '/users/{id}/mfa',
      resource: 'users',
      access: 'read',
      tag: 'Users',
      operationId: 'getUserMfa',
      summary: "List a user's second factors",
      params: userParams,
      responses: { 200: { description: 'The factors (TOTP apps, passkeys) and how many recovery codes are left.', schema: mfaSchema } },
      async handler({ params }) {
        return { body: await users.mfa.list(params.id) };
      },
    }),
    defineRoute({
      method: 'delete',
      path: '/users/{id}/mfa/{factorId}',
      resource: 'users',
      access: 'write',
      tag: 'Users',
      operationId: 'removeUserMfaFactor',
      summary: 'Remove one second factor of a user',
      description: 'Audited as `admin.mfa.factor_removed`. A repeated remove, or the id of another user\'s factor, answers 404.',
      params: z.object({ id: id.describe('The user id.'), factorId: id.describe('The factor id.') }),
      responses: { 200: { description: 'The factor removed.', schema: factorSchema } },
      async handler({ params, audit }) {
        return { body: await users.mfa.removeFactor(params.id, params.factorId, audit) };
      },
    }),
    defineRoute({
      method: 'post',
      path: '/users/{id}/mfa/reset',
      resource: 'users',
      access: 'write',
      tag: 'Users',
      operationId: 'resetUserMfa',
      summary: "Reset a user's two-step verification",
      description: 'Removes every factor and recovery code, as `keybridge users mfa reset` does (for a person who lost their authenticator). Audited as `admin.mfa.reset`. Where policy requires MFA, the user enrols again at the next login.',
      params: userParams,
      responses: { 200: { description: 'What was removed.', schema: z.object({ factors: z.array(factorSchema), recoveryCodes: z.int().describe('Recovery codes removed (used or not).') }) } },
      async handler({ params, audit }) {
        return { body: await users.mfa.reset(params.id, audit) };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/users/{id}/required-actions',
      resource: 'users',
      access: 'read',
      tag: 'Users',
      operationId: 'getUserRequiredActions',
      summary: 'List what a user must do at their next login',
      params: userParams,
      responses: { 200: { description: 'The required actions.', schema: actionsSchema } },
      async handler({ params }) {
        return { body: { actions: await users.requiredActions(params.id) } };
      },
    }),
    defineRoute({
      method: 'put',
      path: '/users/{id}/required-actions',
      resource: 'users',
      access: 'write',
      tag: 'Users',
      operationId: 'setUserRequiredActions',
      summary: 'Set what a user must do at their next login',
      description: 'Replaces the list. update_password: choose a new password (also set by a password reset); configure_mfa: enrol a second factor. update_password is refused (409) for users whose password cannot be changed here (declared in config, or owned by an upstream).',
      params: userParams,
      body: z.strictObject({ actions: z.array(requiredAction).max(10) }),
      responses: { 200: { description: 'The required actions after the change.', schema: actionsSchema }, 409: { description: 'update_password for a user declared in config or whose profile an upstream owns.' } },
      async handler({ params, body, audit }) {
        const { before, after } = await users.setRequiredActions(params.id, [...new Set(body.actions)]);
        if (before.join() !== after.join()) await audit({ action: 'user.required_actions', target: { kind: 'user', id: params.id }, before: { actions: before }, after: { actions: after } });
        return { body: { actions: after } };
      },
    }),
  ];
}
