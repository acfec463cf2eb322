// Signing keys: list them with their state, rotate them (what `keybridge keys rotate` does).
import { z } from 'zod';
import type { Config } from '../../config/schema.ts';
import type { Store } from '../../storage/store.ts';
import type { SigningKey } from '../../storage/types.ts';
import { rotateSigningKeys, signingKeyGrace } from '../../oidc/signing-keys.ts';
import { defineRoute, type AdminRoute } from '../admin-route.ts';

const PRIVATE_MEMBERS = new Set(['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']);

export const signingKeySchema = z.object({
  kid: z.string(),
  alg: z.string(),
  status: z.enum(['active', 'retired']),
  createdAt: z.iso.datetime(),
  retiredAt: z.iso.datetime().nullable(),
  removeAfter: z.iso.datetime().nullable().describe('When a retired key stops being published.'),
  ageSeconds: z.int().min(0),
  publicJwk: z.record(z.string(), z.unknown()),
});

export function keyView(key: SigningKey, now = Date.now()): z.infer<typeof signingKeySchema> {
  return {
    kid: key.kid,
    alg: key.alg,
    status: key.status,
    createdAt: key.createdAt.toISOString(),
    retiredAt: key.retiredAt?.toISOString() ?? null,
    removeAfter: key.removeAfter?.toISOString() ?? null,
    ageSeconds: Math.max(0, Math.floor((now - key.createdAt.getTime()) / 1000)),
    publicJwk: Object.fromEntries(Object.entries(key.privateJwk).filter(([k]) => !PRIVATE_MEMBERS.has(k))),
  };
}

export function keyRoutes(deps: { config: Config; store: Store; afterRotation: () => Promise<unknown> }): AdminRoute[] {
  const { config, store } = deps;
  return [
    defineRoute({
      method: 'get',
      path: '/keys',
      resource: 'keys',
      access: 'read',
      tag: 'Keys',
      operationId: 'listKeys',
      summary: 'List the published signing keys',
      description: 'Active keys sign; retired keys stay published for verification until removeAfter.',
      responses: { 200: { description: 'The keys, active first.', schema: z.object({ items: z.array(signingKeySchema) }) } },
      async handler() {
        return { body: { items: (await store.signingKeys.listPublishable()).map((k) => keyView(k)) } };
      },
    }),
    defineRoute({
      method: 'post',
      path: '/keys/rotate',
      resource: 'keys',
      access: 'write',
      tag: 'Keys',
      operationId: 'rotateKeys',
      summary: 'Rotate the signing keys',
      description: 'A fresh key per configured algorithm becomes active; the previous keys stay published until everything they signed has expired. This instance switches at once, others within their key poll interval.',
      responses: { 200: { description: 'The keys after the rotation.', schema: z.object({ items: z.array(signingKeySchema), graceSeconds: z.int() }) } },
      async handler({ audit }) {
        const grace = signingKeyGrace(config);
        const fresh = await rotateSigningKeys(store, config.keys.algorithms, grace);
        await audit({ action: 'keys.rotate', target: { kind: 'keys', id: fresh.map((k) => k.kid).join(',') }, details: { kids: fresh.map((k) => `${k.kid}:${k.alg}`), graceSeconds: grace } });
        await deps.afterRotation();
        return { body: { items: (await store.signingKeys.listPublishable()).map((k) => keyView(k)), graceSeconds: grace } };
      },
    }),
  ];
}
