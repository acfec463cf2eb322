// SAML service providers: what `keybridge saml-sp` does, through the API
// (src/management/saml-service-providers.ts). Config-declared SPs are listed and read-only.
import { z } from 'zod';
import type { Config } from '../../config/schema.ts';
import type { Store } from '../../storage/store.ts';
import { ConfigError } from '../../errors.ts';
import { defineRoute, type AdminRoute } from '../admin-route.ts';
import { decodeCursor, encodeCursor, pageOf, pageQuery } from '../admin-support.ts';
import { invalid } from '../problem.ts';
import * as sps from '../../management/saml-service-providers.ts';
import { ATTRIBUTE_SOURCES } from '../../saml-idp/saml-idp-config.ts';

const entityId = z.string().min(1).max(1024).describe("The SP's SAML entityID (percent-encode it in the path: / as %2F).");
const httpUrl = z.string().max(2048).describe('An absolute http(s) URL where the SP publishes its metadata.');
const metadataXml = z.string().min(1).max(1_000_000).describe("The SP's metadata (an EntityDescriptor, or an aggregate holding it).");
const attribute = z.strictObject({
  name: z.string().min(1).max(256).describe('The SAML attribute Name the SP expects.'),
  from: z.string().min(1).max(140).describe(`A user field (${ATTRIBUTE_SOURCES.join(', ')}) or claim:<mapped claim name>.`),
  nameFormat: z.enum(['basic', 'uri', 'unspecified']).optional(),
});
const attributes = z.array(attribute).max(100).describe('The attributes released to the SP; null or absent: uid, mail, displayName, givenName, sn and groups.');

const spSchema = z.object({
  entityId: z.string(),
  name: z.string().nullable(),
  source: z.enum(['config', 'database']),
  readOnly: z.boolean().describe('Declared in the config file: change it there.'),
  enabled: z.boolean(),
  metadata: z
    .object({ from: z.enum(['xml', 'url', 'file', 'none']), url: z.string().nullable(), sha256: z.string().nullable().describe('Hex SHA-256 of the stored XML.') })
    .describe('Where its metadata comes from (the XML itself is not returned).'),
  assertionConsumerServices: z.array(z.string()).nullable().describe('Where responses go; null when the metadata is read from a URL or file when needed.'),
  attributes: z.array(z.object({ name: z.string(), from: z.string(), nameFormat: z.string().optional() })).nullable(),
  createdAt: z.iso.datetime().nullable(),
  updatedAt: z.iso.datetime().nullable(),
});
const withWarning = spSchema.extend({ warning: z.string().optional().describe('The metadata URL could not be read now; it is fetched again when the SP is first used.') });

const params = z.object({ entityId });

/** Field problems in the body: schema issues and unusable metadata name their field. */
async function bodyErrors<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof sps.InvalidMetadata) throw invalid([{ path: `body.${err.field}`, message: err.message }]);
    if (err instanceof ConfigError) throw invalid(err.issues.map((i) => ({ path: i.path ? `body.${i.path}` : 'body', message: i.message })));
    throw err;
  }
}

export function samlServiceProviderRoutes(deps: { config: Config; store: Store; fetchMetadata?: typeof fetch }): AdminRoute[] {
  const { config, store } = deps;
  const common = { resource: 'saml-service-providers', tag: 'SAML service providers' } as const;
  return [
    defineRoute({
      ...common,
      method: 'get',
      path: '/saml-service-providers',
      access: 'read',
      operationId: 'listSamlServiceProviders',
      summary: 'List SAML service providers',
      description: 'Config-declared and stored ones, by entity ID (byte order).',
      query: z.object(pageQuery),
      responses: { 200: { description: 'A page of service providers.', schema: pageOf(spSchema) } },
      async handler({ query }) {
        const after = decodeCursor(query.cursor, ['string']);
        const items = await sps.listServiceProviders(store, config, { afterEntityId: after?.[0] as string | undefined, limit: query.limit + 1 });
        const page = items.slice(0, query.limit);
        return { body: { items: page, nextCursor: items.length > query.limit ? encodeCursor([page.at(-1)!.entityId]) : null } };
      },
    }),
    defineRoute({
      ...common,
      method: 'get',
      path: '/saml-service-providers/{entityId}',
      access: 'read',
      operationId: 'getSamlServiceProvider',
      summary: 'Get a SAML service provider',
      params,
      responses: { 200: { description: 'The service provider.', schema: spSchema } },
      async handler({ params: p }) {
        const { sp, etag } = await sps.getServiceProvider(store, config, p.entityId);
        return { body: sp, etag };
      },
    }),
    defineRoute({
      ...common,
      method: 'post',
      path: '/saml-service-providers',
      access: 'write',
      operationId: 'createSamlServiceProvider',
      summary: 'Add a SAML service provider',
      description: 'From its metadata XML or a metadata URL (exactly one). The XML must describe this entity ID with an HTTP-POST assertion consumer service; a URL that cannot be read now is stored with a warning.',
      bodyLimit: 1_200_000,
      body: z
        .strictObject({ entityId, name: z.string().min(1).max(200).optional(), metadataXml: metadataXml.optional(), metadataUrl: httpUrl.optional(), enabled: z.boolean().optional(), attributes: attributes.optional() })
        .superRefine((b, ctx) => {
          if ((b.metadataXml === undefined) === (b.metadataUrl === undefined)) ctx.addIssue({ code: 'custom', path: ['metadataXml'], message: 'give exactly one of metadataXml and metadataUrl' });
        }),
      responses: {
        201: { description: 'Added.', schema: withWarning },
        409: { description: 'An SP with this entity ID exists (in the database or the config file).' },
      },
      async handler({ body, audit }) {
        const { sp, etag, warning } = await bodyErrors(() => sps.createServiceProvider(store, config, body, { fetchMetadata: deps.fetchMetadata }));
        await audit({ action: 'saml_sp.create', target: { kind: 'saml-service-provider', id: sp.entityId }, before: null, after: { name: sp.name, enabled: sp.enabled, metadata: sp.metadata, attributes: sp.attributes } });
        return { status: 201, body: { ...sp, ...(warning ? { warning } : {}) }, etag };
      },
    }),
    defineRoute({
      ...common,
      method: 'patch',
      path: '/saml-service-providers/{entityId}',
      access: 'write',
      operationId: 'updateSamlServiceProvider',
      summary: 'Change a stored SAML service provider',
      description: 'Name, enabled, attribute release, or new metadata (XML or URL, replacing the old). Send If-Match with the ETag last read. A disabled SP cannot sign anyone in.',
      bodyLimit: 1_200_000,
      params,
      body: z
        .strictObject({ name: z.string().min(1).max(200).nullable().optional(), enabled: z.boolean().optional(), metadataXml: metadataXml.optional(), metadataUrl: httpUrl.optional(), attributes: attributes.nullable().optional() })
        .superRefine((b, ctx) => {
          if (b.metadataXml !== undefined && b.metadataUrl !== undefined) ctx.addIssue({ code: 'custom', path: ['metadataUrl'], message: 'give only one of metadataXml and metadataUrl' });
        }),
      responses: {
        200: { description: 'The service provider after the change.', schema: withWarning },
        409: { description: 'The SP is declared in the config file.' },
      },
      async handler({ params: p, body, ifMatch, audit }) {
        const { before, sp, etag, warning } = await bodyErrors(() => sps.updateServiceProvider(store, config, p.entityId, body, ifMatch, { fetchMetadata: deps.fetchMetadata }));
        const summary = (v: sps.ServiceProviderView) => ({ name: v.name, enabled: v.enabled, metadata: v.metadata, attributes: v.attributes });
        await audit({ action: 'saml_sp.update', target: { kind: 'saml-service-provider', id: sp.entityId }, before: summary(before), after: summary(sp) });
        return { body: { ...sp, ...(warning ? { warning } : {}) }, etag };
      },
    }),
    defineRoute({
      ...common,
      method: 'delete',
      path: '/saml-service-providers/{entityId}',
      access: 'write',
      operationId: 'deleteSamlServiceProvider',
      summary: 'Remove a stored SAML service provider',
      description: 'Deleting it again answers 404.',
      params,
      responses: { 204: { description: 'Removed.' }, 409: { description: 'The SP is declared in the config file.' } },
      async handler({ params: p, ifMatch, audit }) {
        const before = await sps.deleteServiceProvider(store, config, p.entityId, ifMatch);
        await audit({ action: 'saml_sp.delete', target: { kind: 'saml-service-provider', id: before.entityId }, before: { name: before.name, enabled: before.enabled, metadata: before.metadata }, after: null });
        return {};
      },
    }),
  ];
}
