// Connectors: list and read every connector (config ones read-only), create, change, enable,
// disable and delete stored ones, test a connector, import a directory connector's users.
// The logic is in src/management/connectors.ts, which the CLI uses too.
import { z } from 'zod';
import { mappersSchema } from '../../accounts/identity-mappers.ts';
import { LINKING_POLICIES, RESERVED_CONNECTOR_IDS, RESERVED_CONNECTOR_MESSAGE } from '../../config/schema.ts';
import { upstreamMfaSchema } from '../../mfa/upstream-mfa-policy.ts';
import type { ConnectorService, ConnectorStatus, ConnectorView } from '../../management/connectors.ts';
import type { ConnectorSync } from '../../storage/connector-repository.ts';
import { defineRoute, type AdminRoute } from '../admin-route.ts';
import { checkIfMatch, decodeCursor, encodeCursor, etagOf, pageOf, pageQuery } from '../admin-support.ts';
import { notFound } from '../problem.ts';

const SLUG = /^[a-z0-9][a-z0-9-]{0,63}$/;
const slug = (what: string) => z.string().regex(SLUG, 'must be 1-64 lowercase letters, digits and "-", starting with a letter or digit').describe(what);

const policySchema = z
  .strictObject({
    linking: z
      .strictObject({
        firstLogin: z.enum(LINKING_POLICIES).default('create').describe('What a first login does when no local user is linked yet.'),
        trustEmail: z.boolean().default(false).describe("Trust this upstream's email_verified."),
      })
      .optional(),
    storeTokens: z.boolean().optional().describe("Keep the upstream's OAuth tokens (needs secrets.tokenKeys)."),
    mappers: mappersSchema.optional(),
    trustUpstreamMfa: z.boolean().optional().describe("Accept the upstream's proof of a second factor (an amr or acr listed in upstreamMfa) instead of asking for a local one."),
    upstreamMfa: upstreamMfaSchema.optional(),
  })
  .describe('What the broker does with the identities of this connector; the same fields as in the config file.');

const connectorConfig = z.record(z.string(), z.unknown()).describe("The connector's own config, validated by its type's schema (the same as `config:` in the config file).");

export const connectorSchema = z.object({
  id: z.string(),
  type: z.string(),
  name: z.string(),
  enabled: z.boolean(),
  source: z.enum(['config', 'database']).describe('config: declared in the config file, read-only here.'),
  readOnly: z.boolean(),
  config: connectorConfig.describe('The config without its secret fields (those are write-only).'),
  secretFields: z.array(z.string()).describe('The config fields this type treats as secrets: accepted on writes, never returned.'),
  secretsSet: z.array(z.string()).describe('The secret fields that hold a value.'),
  policy: z.record(z.string(), z.unknown()).nullable(),
  position: z.int().describe('Order on the login page (then id).'),
  createdAt: z.iso.datetime().nullable(),
  updatedAt: z.iso.datetime().nullable(),
  status: z
    .object({
      lastSuccessAt: z.iso.datetime().nullable().describe('The latest successful login through it (audit event login.success).'),
      lastError: z
        .object({ at: z.iso.datetime(), message: z.string() })
        .nullable()
        .describe("The latest login error through it: a login.error (the connector failed or its upstream did not answer) or a login.failure for an upstream's refused answer. Never a secret."),
    })
    .describe('How its logins went lately, from the audit trail; not part of the ETag.'),
});

const connectorTypeSchema = z.object({
  type: z.string().describe('The `type` to create a connector with.'),
  label: z.string(),
  configSchema: z.record(z.string(), z.unknown()).describe("The type's config as JSON Schema, generated from the same schema the API validates `config` with (input side: fields with defaults are optional)."),
  secretFields: z.array(z.string()).describe('Dotted config paths that are secrets: write-only.'),
  test: z.boolean().describe('Its connectors can be tested (POST /connectors/{id}/test).'),
  sync: z.boolean().describe('Its connectors can import their directory (POST /connectors/{id}/sync).'),
  presets: z.array(z.object({ name: z.string(), label: z.string(), config: z.record(z.string(), z.unknown()).describe('The config a new connector of this preset starts from.'), hint: z.string().optional(), hide: z.array(z.string()).optional().describe('Top-level config fields that do not apply with this preset; forms hide them.') })),
});

const testSchema = z.object({
  connectorId: z.string(),
  type: z.string(),
  ok: z.boolean(),
  supported: z.boolean().describe('False when this connector type has no test.'),
  steps: z.array(
    z.object({
      name: z.string(),
      ok: z.boolean(),
      detail: z.string(),
      field: z.string().optional().describe('The field most likely at fault (`config.bindDn`) when the step failed.'),
      ms: z.int().min(0),
    }),
  ),
  found: z.record(z.string(), z.unknown()).describe('What the test found: counts, names, dates.'),
  testedAt: z.iso.datetime(),
});

const syncSchema = z.object({
  id: z.string(),
  connectorId: z.string(),
  state: z.enum(['running', 'succeeded', 'failed']),
  progress: z.record(z.string(), z.unknown()).describe('total, processed, created, updated, unchanged, disabled, enabled, groups (so far, then final).'),
  error: z.string().nullable(),
  startedAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
  finishedAt: z.iso.datetime().nullable(),
});

const idParams = z.object({ id: z.string().min(1).max(200) });

const createBody = z.strictObject({
  id: slug('Used in URLs (/callback/<id>) and audit events; cannot be changed.').refine((id) => !RESERVED_CONNECTOR_IDS.includes(id), RESERVED_CONNECTOR_MESSAGE),
  type: slug('The connector type: ldap, activedirectory, oidc, oauth2, saml, passport, or a plugin.'),
  name: z.string().min(1).max(100).optional().describe('Shown on the login page; defaults to the id.'),
  enabled: z.boolean().default(true),
  config: connectorConfig.default({}),
  policy: policySchema.optional(),
  position: z.int().min(0).max(100_000).default(0),
});

const updateBody = z.strictObject({
  name: z.string().min(1).max(100).optional(),
  enabled: z.boolean().optional(),
  config: connectorConfig.optional().describe('Replaces the whole config. A secret field left out keeps its stored value; null removes it.'),
  policy: policySchema.nullable().optional(),
  position: z.int().min(0).max(100_000).optional(),
});

const listQuery = z.object({
  ...pageQuery,
  type: z.string().max(64).optional(),
  source: z.enum(['config', 'database']).optional(),
  enabled: z.enum(['true', 'false']).optional(),
});

const syncView = (s: ConnectorSync): z.infer<typeof syncSchema> => ({
  id: s.id,
  connectorId: s.connectorId,
  state: s.state,
  progress: s.progress,
  error: s.error,
  startedAt: s.startedAt.toISOString(),
  updatedAt: s.updatedAt.toISOString(),
  finishedAt: s.finishedAt?.toISOString() ?? null,
});

// What the audit log keeps of a connector: everything shown (no secret is shown).
const audited = (v: ConnectorView) => ({ ...v }) as Record<string, unknown>;

const TAG = 'Connectors';

type Shown = ConnectorView & { status: ConnectorStatus };
const READ_ONLY_409 = { description: 'The connector is declared in the config file (read-only), or the id is taken.' };

export function connectorRoutes(deps: { connectors: ConnectorService }): AdminRoute[] {
  const service = deps.connectors;
  const found = async (id: string) => (await service.get(id)) ?? Promise.reject(notFound(`Connector "${id}"`));
  // The status changes with every login, so it is added to what is shown, outside the ETag.
  const shownAll = async (views: ConnectorView[]): Promise<Shown[]> => {
    const statuses = await service.statuses(views.map((v) => v.id));
    return views.map((v) => ({ ...v, status: statuses.get(v.id)! }));
  };
  const shown = async (view: ConnectorView): Promise<Shown> => (await shownAll([view]))[0];

  const setEnabled = (enabled: boolean) =>
    defineRoute({
      method: 'post',
      path: `/connectors/{id}/${enabled ? 'enable' : 'disable'}`,
      resource: 'connectors',
      access: 'write',
      tag: TAG,
      operationId: enabled ? 'enableConnector' : 'disableConnector',
      summary: enabled ? 'Enable a stored connector' : 'Disable a stored connector',
      description: enabled
        ? 'Every instance starts offering it within 2 s.'
        : 'Every instance stops offering it within 2 s; logins already under way through it finish. Its users stay.',
      params: idParams,
      responses: { 200: { description: 'The connector.', schema: connectorSchema }, 409: READ_ONLY_409, 412: { description: 'If-Match names an outdated ETag.' } },
      async handler({ params, ifMatch, audit }) {
        const { before, after } = await service.update(params.id, { enabled }, (current) => checkIfMatch(ifMatch, etagOf(current)));
        if (before.enabled !== after.enabled) await audit({ action: enabled ? 'connector.enable' : 'connector.disable', target: { kind: 'connector', id: params.id }, before: audited(before), after: audited(after) });
        return { body: await shown(after), etag: etagOf(after) };
      },
    });

  return [
    defineRoute({
      method: 'get',
      path: '/connector-types',
      resource: 'connectors',
      access: 'read',
      tag: TAG,
      operationId: 'listConnectorTypes',
      summary: 'List the connector types that can be created',
      description: "Every type this broker loads (built-in folders and plugins handed over in code), with its config's JSON Schema, its secret fields, whether its connectors can be tested and imported, and its presets (OIDC: Google, Entra ID, GitLab...; OAuth 2.0: GitHub...).",
      responses: { 200: { description: 'The types, by type name.', schema: z.object({ items: z.array(connectorTypeSchema) }) } },
      async handler() {
        return { body: { items: await service.types() } };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/connectors',
      resource: 'connectors',
      access: 'read',
      tag: TAG,
      operationId: 'listConnectors',
      summary: 'List connectors',
      description: 'Config-declared connectors (source: config, read-only) and stored ones, ordered by id. Secret config fields are never returned.',
      query: listQuery,
      responses: { 200: { description: 'A page of connectors.', schema: pageOf(connectorSchema) } },
      async handler({ query }) {
        const [after] = decodeCursor(query.cursor, ['string']) ?? [];
        const all = await service.list({ type: query.type, source: query.source, enabled: query.enabled === undefined ? undefined : query.enabled === 'true' });
        const rest = after === undefined ? all : all.filter((c) => c.id > (after as string));
        const items = await shownAll(rest.slice(0, query.limit));
        return { body: { items, nextCursor: rest.length > query.limit ? encodeCursor([items.at(-1)!.id]) : null } };
      },
    }),
    defineRoute({
      method: 'post',
      path: '/connectors',
      resource: 'connectors',
      access: 'write',
      tag: TAG,
      operationId: 'createConnector',
      summary: 'Create a connector',
      description:
        "The config is validated by the type's own schema (errors at `body.config.<field>`). Secret fields are stored encrypted with secrets.tokenKeys (409 secrets_unavailable without them) and never returned. Every instance offers an enabled connector within 2 s.",
      body: createBody,
      responses: { 201: { description: 'The connector.', schema: connectorSchema }, 409: { description: 'The id is taken (by a config or a stored connector), or secrets cannot be stored without secrets.tokenKeys.' } },
      async handler({ body, audit }) {
        const view = await service.create(body);
        await audit({ action: 'connector.create', target: { kind: 'connector', id: view.id }, before: null, after: audited(view), details: { secretsSet: view.secretsSet } });
        return { status: 201, body: await shown(view), etag: etagOf(view), headers: { location: `/admin/api/v1/connectors/${encodeURIComponent(view.id)}` } };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/connectors/{id}',
      resource: 'connectors',
      access: 'read',
      tag: TAG,
      operationId: 'getConnector',
      summary: 'Read a connector',
      params: idParams,
      responses: { 200: { description: 'The connector; its ETag is for If-Match on changes.', schema: connectorSchema } },
      async handler({ params }) {
        const view = await found(params.id);
        return { body: await shown(view), etag: etagOf(view) };
      },
    }),
    defineRoute({
      method: 'patch',
      path: '/connectors/{id}',
      resource: 'connectors',
      access: 'write',
      tag: TAG,
      operationId: 'updateConnector',
      summary: 'Change a stored connector',
      description: 'Fields left out stay. `config` replaces the whole config, except secret fields left out, which keep their stored value. Every instance runs the new version within 2 s; logins already under way finish on the old one.',
      params: idParams,
      body: updateBody,
      responses: { 200: { description: 'The connector.', schema: connectorSchema }, 409: READ_ONLY_409 },
      async handler({ params, body, ifMatch, audit }) {
        const { before, after, secretsChanged } = await service.update(params.id, body, (current) => checkIfMatch(ifMatch, etagOf(current)));
        await audit({ action: 'connector.update', target: { kind: 'connector', id: params.id }, before: audited(before), after: audited(after), details: { secretsChanged } });
        return { body: await shown(after), etag: etagOf(after) };
      },
    }),
    defineRoute({
      method: 'delete',
      path: '/connectors/{id}',
      resource: 'connectors',
      access: 'write',
      tag: TAG,
      operationId: 'deleteConnector',
      summary: 'Delete a stored connector',
      description: 'Every instance stops offering it within 2 s. Its users and their links stay (they can no longer sign in through it). Deleting it again is a 404.',
      params: idParams,
      responses: { 204: { description: 'Deleted.' }, 409: READ_ONLY_409 },
      async handler({ params, ifMatch, audit }) {
        const before = await service.delete(params.id, (current) => checkIfMatch(ifMatch, etagOf(current)));
        await audit({ action: 'connector.delete', target: { kind: 'connector', id: params.id }, before: audited(before), after: null });
        return { status: 204 };
      },
    }),
    setEnabled(true),
    setEnabled(false),
    defineRoute({
      method: 'post',
      path: '/connectors/{id}/test',
      resource: 'connectors',
      access: 'write',
      tag: TAG,
      operationId: 'testConnector',
      summary: 'Test a connector against its upstream',
      description:
        'Runs on a fresh instance of the connector (disabled ones too). LDAP/AD: connect, bind as the service account, search users; OIDC: discovery and JWKS; SAML: metadata and certificate expiry; OAuth 2.0: endpoints reachable. A failure is a 200 with ok: false and the failing step, with the config field at fault when known.',
      params: idParams,
      responses: { 200: { description: 'What the test found.', schema: testSchema } },
      async handler({ params }) {
        return { body: await service.test(params.id) };
      },
    }),
    defineRoute({
      method: 'post',
      path: '/connectors/{id}/sync',
      resource: 'connectors',
      access: 'write',
      tag: TAG,
      operationId: 'startConnectorSync',
      summary: "Import a directory connector's users now",
      description: 'Starts the import in the background on this instance; GET the same path for its progress (from any instance). One import of a connector runs at a time across instances (409 sync_running).',
      params: idParams,
      responses: { 202: { description: 'Started.', schema: syncSchema }, 409: { description: 'An import is already running, the connector is disabled, or its type cannot list users.' } },
      async handler({ params, audit }) {
        const started = await service.startSync(params.id);
        await audit({ action: 'connector.sync', target: { kind: 'connector', id: params.id }, details: { syncId: started.id } });
        return { status: 202, body: syncView(started), headers: { location: `/admin/api/v1/connectors/${encodeURIComponent(params.id)}/sync` } };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/connectors/{id}/sync',
      resource: 'connectors',
      access: 'read',
      tag: TAG,
      operationId: 'getConnectorSync',
      summary: 'Progress of the latest import',
      description: 'The latest import, started through the API or by the schedule (`sync.intervalMinutes`), from any instance: state, counts so far, start and end, error. 404 when none ran.',
      params: idParams,
      responses: { 200: { description: 'The latest import.', schema: syncSchema } },
      async handler({ params }) {
        await found(params.id);
        const latest = await service.latestSync(params.id);
        if (!latest) throw notFound(`An import of connector "${params.id}"`);
        return { body: syncView(latest) };
      },
    }),
  ];
}
