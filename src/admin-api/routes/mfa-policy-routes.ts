// Second-factor policies (src/management/mfa-policies.ts): list every level with its source, set
// or clear a stored mode. Config entries other than the global default answer 409.
import { z } from 'zod';
import { defineRoute, type AdminRoute, type AdminRequest } from '../admin-route.ts';
import { MFA_MODES, mfaModeSchema, normalizeMfaGroup } from '../../mfa/mfa-config.ts';
import { clearMfaPolicy, listMfaPolicies, setMfaPolicy, type MfaPolicyDependencies, type TargetKind } from '../../management/mfa-policies.ts';
import type { MfaPolicyKind } from '../../storage/mfa-policy-repository.ts';

const mode = mfaModeSchema.describe('required: every login asks for a second factor (enrolling one if needed); optional: asked of users who have one; off: never asked.');

const policySchema = z.object({
  kind: z.enum(['global', 'client', 'group', 'connector']),
  target: z.string().describe("The client id, group name or connector id; '' for global."),
  mode: z.enum(MFA_MODES),
  source: z.enum(['config', 'stored']),
  readOnly: z.boolean().describe('True for config entries other than the global default: change them in the config file.'),
  updatedAt: z.iso.datetime().nullable(),
});

const targetParams = z.object({
  kind: z.enum(['client', 'group', 'connector'], { error: 'must be "client", "group" or "connector" (the global level is /mfa-policies/global)' }),
  target: z
    .string()
    .min(1)
    .max(200, 'must be at most 200 characters')
    .refine((v) => !/\p{C}/u.test(v), 'must not contain control or invisible format characters')
    .refine((v) => normalizeMfaGroup(v) !== '', 'must not be blank')
    .describe('The client id, group name or connector id.'),
});
const modeBody = z.strictObject({ mode });

/** Group names compare as the groups claim carries them. */
const targetOf = (p: { kind: TargetKind; target: string }) => (p.kind === 'group' ? normalizeMfaGroup(p.target) : p.target);
const auditId = (kind: MfaPolicyKind, target: string) => (kind === 'global' ? 'global' : `${kind}:${target}`);

export function mfaPolicyRoutes(deps: MfaPolicyDependencies): AdminRoute[] {
  const common = { resource: 'mfa-policies', tag: 'Two-step verification' } as const;
  const set = async (kind: MfaPolicyKind, target: string, request: AdminRequest<unknown, unknown, z.infer<typeof modeBody>>) => {
    const { before, view } = await setMfaPolicy(deps, kind, target, request.body.mode);
    if (before?.mode !== view.mode) {
      await request.audit({ action: 'mfa.policy_changed', target: { kind: 'mfa_policy', id: auditId(kind, target) }, before: before ? { mode: before.mode } : null, after: { mode: view.mode } });
    }
    return { body: view };
  };
  const clear = async (kind: MfaPolicyKind, target: string, request: AdminRequest<unknown, unknown, unknown>) => {
    const removed = await clearMfaPolicy(deps, kind, target);
    await request.audit({ action: 'mfa.policy_changed', target: { kind: 'mfa_policy', id: auditId(kind, target) }, before: { mode: removed.mode }, after: null });
    return {};
  };
  const setResponses = {
    200: { description: 'The stored policy.', schema: policySchema },
    404: { description: 'No such client or connector.' },
    409: { description: 'The config file declares this level.' },
  };
  return [
    defineRoute({
      ...common,
      method: 'get',
      path: '/mfa-policies',
      access: 'read',
      operationId: 'listMfaPolicies',
      summary: 'List the second-factor policies',
      description: 'Every level that sets a mode, from the config file and stored: global first, then clients, connectors and groups. A login gets the strictest mode of the levels that apply to it.',
      responses: { 200: { description: 'The policies.', schema: z.object({ items: z.array(policySchema) }) } },
      async handler() {
        return { body: { items: await listMfaPolicies(deps) } };
      },
    }),
    defineRoute({
      ...common,
      method: 'put',
      path: '/mfa-policies/global',
      access: 'write',
      operationId: 'setGlobalMfaPolicy',
      summary: 'Set the global second-factor mode',
      description: "Replaces the config file's mfa.mode (which stays the default once this is deleted).",
      body: modeBody,
      responses: { 200: setResponses[200] },
      handler: (request) => set('global', '', request),
    }),
    defineRoute({
      ...common,
      method: 'delete',
      path: '/mfa-policies/global',
      access: 'write',
      operationId: 'clearGlobalMfaPolicy',
      summary: "Go back to the config file's global mode",
      responses: { 204: { description: 'Cleared.' }, 404: { description: 'No global mode is stored.' } },
      handler: (request) => clear('global', '', request),
    }),
    defineRoute({
      ...common,
      method: 'put',
      path: '/mfa-policies/{kind}/{target}',
      access: 'write',
      operationId: 'setMfaPolicy',
      summary: "Set a client's, group's or connector's second-factor mode",
      description: 'Groups are named as in the groups claim and need not exist yet (an upstream may bring them later); clients and connectors must exist.',
      params: targetParams,
      body: modeBody,
      responses: setResponses,
      handler: (request) => set(request.params.kind, targetOf(request.params), request),
    }),
    defineRoute({
      ...common,
      method: 'delete',
      path: '/mfa-policies/{kind}/{target}',
      access: 'write',
      operationId: 'clearMfaPolicy',
      summary: "Clear a client's, group's or connector's stored mode",
      params: targetParams,
      responses: { 204: { description: 'Cleared.' }, 404: { description: 'No mode is stored for it.' }, 409: { description: 'The config file declares this level.' } },
      handler: (request) => clear(request.params.kind, targetOf(request.params), request),
    }),
  ];
}
