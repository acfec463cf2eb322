// SAML service providers as the CLI (`keybridge saml-sp`) and the admin API manage them: rows in
// the database beside the config file's `samlIdp.serviceProviders` (which win on the same entity
// ID and are read-only here). Settings are validated with the config schema and the metadata is
// parsed before anything is stored; a metadata URL that cannot be read now is stored with a
// warning (the SP may not be up yet) and fetched again when first used. Every instance reads the
// rows per sign-in (src/saml-idp/service-providers.ts), so changes apply at once everywhere.
import { createHash } from 'node:crypto';
import type { Config } from '../config/schema.ts';
import type { Store } from '../storage/store.ts';
import type { StoredServiceProvider } from '../storage/saml-service-provider-repository.ts';
import { ConfigError, KeybridgeError, NotFound } from '../errors.ts';
import { serviceProviderSchema, type AttributeRule, type ServiceProviderConfig } from '../saml-idp/saml-idp-config.ts';
import { MetadataError, parseSpMetadata } from '../saml-idp/sp-metadata.ts';
import { checkIfMatch, etagOf } from '../admin-api/admin-support.ts';

/** One released attribute as given (the schema fills in nameFormat). */
export interface AttributeInput {
  name: string;
  from: string;
  nameFormat?: AttributeRule['nameFormat'];
}

export interface ServiceProviderInput {
  entityId: string;
  name?: string;
  metadataXml?: string;
  metadataUrl?: string;
  enabled?: boolean;
  /** The attributes released to it; absent: the defaults (uid, mail, displayName, givenName, sn, groups). */
  attributes?: AttributeInput[];
}

export interface ServiceProviderPatch {
  name?: string | null;
  enabled?: boolean;
  metadataXml?: string;
  metadataUrl?: string;
  attributes?: AttributeInput[] | null;
}

export interface ServiceProviderView {
  entityId: string;
  name: string | null;
  source: 'config' | 'database';
  readOnly: boolean;
  enabled: boolean;
  /** `sha256`: of the stored metadata XML (null otherwise), to tell one copy from another. */
  metadata: { from: 'xml' | 'url' | 'file' | 'none'; url: string | null; sha256: string | null };
  /** From stored metadata XML or explicit settings; null when the metadata is read from a URL or file when needed. */
  assertionConsumerServices: string[] | null;
  /** null: the default set. */
  attributes: AttributeInput[] | null;
  createdAt: string | null;
  updatedAt: string | null;
}

/** Metadata that cannot be used; `field` is the input that carried it. */
export class InvalidMetadata extends KeybridgeError {
  readonly field: 'metadataXml' | 'metadataUrl';

  constructor(field: 'metadataXml' | 'metadataUrl', message: string) {
    super('invalid_metadata', `the metadata cannot be used: ${message}`, { status: 400, expose: true });
    this.field = field;
  }
}

export class ConfiguredServiceProvider extends KeybridgeError {
  constructor(entityId: string) {
    super('read_only', `service provider "${entityId}" is defined in the config file; change it there`, { status: 409, expose: true });
  }
}

const METADATA_TIMEOUT_MS = 10_000;
const MAX_METADATA_BYTES = 2 * 1024 * 1024;

function view(settings: Record<string, unknown>, meta: { entityId: string; source: 'config' | 'database'; enabled: boolean; createdAt: Date | null; updatedAt: Date | null }): ServiceProviderView {
  const s = settings as Partial<ServiceProviderConfig>;
  let acs: string[] | null = s.assertionConsumerServices?.map((a) => a.url) ?? null;
  if (!acs && typeof s.metadataXml === 'string') {
    try {
      acs = parseSpMetadata(s.metadataXml, meta.entityId).assertionConsumerServices.map((a) => a.url);
    } catch {
      acs = [];
    }
  }
  return {
    entityId: meta.entityId,
    name: s.name ?? null,
    source: meta.source,
    readOnly: meta.source === 'config',
    enabled: meta.enabled,
    metadata: {
      from: s.metadataXml !== undefined ? 'xml' : s.metadataUrl !== undefined ? 'url' : s.metadataFile !== undefined ? 'file' : 'none',
      url: s.metadataUrl ?? null,
      sha256: typeof s.metadataXml === 'string' ? createHash('sha256').update(s.metadataXml).digest('hex') : null,
    },
    assertionConsumerServices: acs,
    attributes: s.attributes ?? null,
    createdAt: meta.createdAt?.toISOString() ?? null,
    updatedAt: meta.updatedAt?.toISOString() ?? null,
  };
}

const storedView = (row: StoredServiceProvider) => view(row.settings, { entityId: row.entityId, source: 'database', enabled: row.enabled, createdAt: row.createdAt, updatedAt: row.updatedAt });
const configuredView = (sp: ServiceProviderConfig) => view(sp as unknown as Record<string, unknown>, { entityId: sp.entityId, source: 'config', enabled: true, createdAt: null, updatedAt: null });

/** Checks the settings with the config schema and the metadata itself; returns a warning for a URL that cannot be read now. */
async function validated(settings: Record<string, unknown>, fetchMetadata: typeof fetch): Promise<{ warning?: string }> {
  const parsed = serviceProviderSchema.safeParse(settings);
  if (!parsed.success) throw new ConfigError(parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })), 'the service provider');
  const entityId = settings.entityId as string;
  if (typeof settings.metadataXml === 'string') {
    try {
      parseSpMetadata(settings.metadataXml, entityId);
    } catch (err) {
      throw new InvalidMetadata('metadataXml', (err as Error).message);
    }
  } else if (typeof settings.metadataUrl === 'string') {
    try {
      const res = await fetchMetadata(settings.metadataUrl, { signal: AbortSignal.timeout(METADATA_TIMEOUT_MS) });
      if (!res.ok) throw new MetadataError(`metadata URL answered HTTP ${res.status}`);
      // The same bound as the registry's fetch: a huge answer is not read into memory.
      if (Number(res.headers.get('content-length') ?? 0) > MAX_METADATA_BYTES) throw new MetadataError('metadata is too large');
      const body = Buffer.from(await res.arrayBuffer());
      if (body.length > MAX_METADATA_BYTES) throw new MetadataError('metadata is too large');
      parseSpMetadata(body.toString('utf8'), entityId);
    } catch (err) {
      return { warning: `the metadata URL cannot be used right now (${(err as Error).message}); Keybridge fetches it again when the application is first used` };
    }
  }
  return {};
}

export async function listServiceProviders(store: Store, config: Config, options: { afterEntityId?: string; limit: number }): Promise<ServiceProviderView[]> {
  const configured = config.samlIdp.serviceProviders.filter((sp) => options.afterEntityId === undefined || sp.entityId > options.afterEntityId);
  const names = new Set(configured.map((sp) => sp.entityId));
  // One more stored row per configured one: a stored row the config overrides is not shown twice.
  const rows = (await store.samlServiceProviders.page({ afterEntityId: options.afterEntityId, limit: options.limit + names.size })).filter((r) => !config.samlIdp.serviceProviders.some((sp) => sp.entityId === r.entityId));
  return [...configured.map(configuredView), ...rows.map(storedView)].sort((a, b) => (a.entityId < b.entityId ? -1 : 1)).slice(0, options.limit);
}

export async function getServiceProvider(store: Store, config: Config, entityId: string): Promise<{ sp: ServiceProviderView; etag: string }> {
  const configured = config.samlIdp.serviceProviders.find((sp) => sp.entityId === entityId);
  if (configured) {
    const sp = configuredView(configured);
    return { sp, etag: etagOf(sp) };
  }
  const row = await store.samlServiceProviders.find(entityId);
  if (!row) throw new NotFound(`SAML service provider "${entityId}"`);
  const sp = storedView(row);
  return { sp, etag: etagOf(sp) };
}

export async function createServiceProvider(
  store: Store,
  config: Config,
  input: ServiceProviderInput,
  options: { fetchMetadata?: typeof fetch; inTransaction?: (tx: Store) => Promise<void> } = {},
): Promise<{ sp: ServiceProviderView; etag: string; warning?: string }> {
  if (config.samlIdp.serviceProviders.some((sp) => sp.entityId === input.entityId)) throw new ConfiguredServiceProvider(input.entityId);
  const settings: Record<string, unknown> = {
    entityId: input.entityId,
    ...(input.name ? { name: input.name } : {}),
    ...(input.metadataXml !== undefined ? { metadataXml: input.metadataXml } : {}),
    ...(input.metadataUrl ? { metadataUrl: input.metadataUrl } : {}),
    ...(input.attributes ? { attributes: input.attributes } : {}),
  };
  const { warning } = await validated(settings, options.fetchMetadata ?? fetch);
  const row = await store.transaction(async (tx) => {
    const created = await tx.samlServiceProviders.create({ entityId: input.entityId, settings, enabled: input.enabled ?? true });
    await options.inTransaction?.(tx);
    return created;
  });
  const sp = storedView(row);
  return { sp, etag: etagOf(sp), ...(warning ? { warning } : {}) };
}

function merged(row: StoredServiceProvider, patch: ServiceProviderPatch): Record<string, unknown> {
  const settings: Record<string, unknown> = { ...row.settings, entityId: row.entityId };
  if (patch.name !== undefined) {
    if (patch.name === null) delete settings.name;
    else settings.name = patch.name;
  }
  if (patch.metadataXml !== undefined || patch.metadataUrl !== undefined) {
    // New metadata replaces the old, wherever it came from.
    delete settings.metadataXml;
    delete settings.metadataUrl;
    delete settings.metadataFile;
    if (patch.metadataXml !== undefined) settings.metadataXml = patch.metadataXml;
    if (patch.metadataUrl !== undefined) settings.metadataUrl = patch.metadataUrl;
  }
  if (patch.attributes !== undefined) {
    if (patch.attributes === null) delete settings.attributes;
    else settings.attributes = patch.attributes;
  }
  return settings;
}

/**
 * Changes a stored SP. The new settings are validated (a metadata URL fetched) before the row is
 * locked, so no lock is held across the network; a row that changed meanwhile is a 412.
 */
export async function updateServiceProvider(
  store: Store,
  config: Config,
  entityId: string,
  patch: ServiceProviderPatch,
  ifMatch: string[] | null,
  options: { fetchMetadata?: typeof fetch } = {},
): Promise<{ before: ServiceProviderView; sp: ServiceProviderView; etag: string; warning?: string }> {
  if (config.samlIdp.serviceProviders.some((sp) => sp.entityId === entityId)) throw new ConfiguredServiceProvider(entityId);
  const read = await store.samlServiceProviders.find(entityId);
  if (!read) throw new NotFound(`SAML service provider "${entityId}"`);
  const readTag = etagOf(storedView(read));
  checkIfMatch(ifMatch, readTag);
  const settings = merged(read, patch);
  const { warning } = await validated(settings, options.fetchMetadata ?? fetch);
  return store.transaction(async (tx) => {
    const row = await tx.samlServiceProviders.lock(entityId);
    if (!row) throw new NotFound(`SAML service provider "${entityId}"`);
    const before = storedView(row);
    checkIfMatch([readTag], etagOf(before));
    const updated = await tx.samlServiceProviders.update(entityId, { settings, ...(patch.enabled !== undefined ? { enabled: patch.enabled } : {}) });
    const sp = storedView(updated!);
    return { before, sp, etag: etagOf(sp), ...(warning ? { warning } : {}) };
  });
}

export async function deleteServiceProvider(store: Store, config: Config, entityId: string, ifMatch: string[] | null): Promise<ServiceProviderView> {
  if (config.samlIdp.serviceProviders.some((sp) => sp.entityId === entityId)) throw new ConfiguredServiceProvider(entityId);
  return store.transaction(async (tx) => {
    const row = await tx.samlServiceProviders.lock(entityId);
    if (!row) throw new NotFound(`SAML service provider "${entityId}"`);
    const before = storedView(row);
    checkIfMatch(ifMatch, etagOf(before));
    await tx.samlServiceProviders.delete(entityId);
    return before;
  });
}
