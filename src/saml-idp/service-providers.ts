// The service providers Keybridge signs people in to: config entries, then database rows (the
// config wins on the same entity ID), each resolved with its metadata into one shape. Metadata
// from a URL is fetched when first needed and kept for `metadataRefreshSeconds`; when a refresh
// fails the last good copy stays in use, and with none the SP is unavailable (a 503 page).
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Store } from '../storage/store.ts';
import { DEFAULT_ATTRIBUTES, serviceProviderSchema, type AttributeRule, type NameIdFormatName, type ServiceProviderConfig } from './saml-idp-config.ts';
import { MetadataError, parseSpMetadata, type SpMetadata } from './sp-metadata.ts';

export interface ServiceProvider {
  entityId: string;
  name: string;
  source: 'config' | 'database';
  /** HTTP-POST assertion consumer services; the only places responses go. */
  acs: { url: string; index?: number; isDefault: boolean }[];
  slo: { url: string; responseUrl: string; binding: 'redirect' | 'post' } | null;
  signingCerts: string[];
  encryptionCert: string | null;
  /** Unsigned sign-in requests are refused (else accepted when their ACS is registered). */
  requireSignedRequests: boolean;
  /** The NameID formats the SP's metadata lists (empty without metadata). */
  nameIdFormats: string[];
  signResponse: boolean;
  signAssertion: boolean;
  encryptAssertions: boolean;
  encryptionAlgorithm: ServiceProviderConfig['encryptionAlgorithm'];
  nameId: { format: NameIdFormatName; from?: 'id' | 'username' | 'email' };
  attributes: AttributeRule[];
  idpInitiated: { enabled: boolean; defaultRelayState?: string };
}

/** The SP exists but cannot be used now (metadata unreachable or unusable). */
export class ServiceProviderUnavailable extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ServiceProviderUnavailable';
  }
}

const METADATA_TIMEOUT_MS = 10_000;
const MAX_METADATA_BYTES = 2 * 1024 * 1024;
/** After a failed fetch with nothing cached, wait this long before trying again. */
const RETRY_AFTER_MS = 30_000;

interface CachedMetadata {
  metadata: SpMetadata | null;
  fetchedAt: number;
  error?: string;
}

export class ServiceProviderRegistry {
  readonly #configured: Map<string, ServiceProviderConfig>;
  readonly #store: Store;
  readonly #logger: Logger;
  readonly #fetch: typeof fetch;
  readonly #requireSignedRequests: boolean;
  readonly #metadata = new Map<string, CachedMetadata>();
  readonly #inflight = new Map<string, Promise<SpMetadata>>();

  constructor(deps: { configured: readonly ServiceProviderConfig[]; store: Store; logger: Logger; fetch?: typeof fetch; requireSignedRequests?: boolean }) {
    this.#configured = new Map(deps.configured.map((sp) => [sp.entityId, sp]));
    this.#store = deps.store;
    this.#logger = deps.logger;
    this.#fetch = deps.fetch ?? globalThis.fetch;
    this.#requireSignedRequests = deps.requireSignedRequests ?? false;
  }

  /** The enabled SP with this entity ID, or null; throws ServiceProviderUnavailable when it cannot be used now. */
  async find(entityId: string): Promise<ServiceProvider | null> {
    const configured = this.#configured.get(entityId);
    if (configured) return this.#resolve(configured, 'config');
    const row = await this.#store.samlServiceProviders.find(entityId);
    if (!row || !row.enabled) return null;
    const parsed = serviceProviderSchema.safeParse({ ...row.settings, entityId });
    if (!parsed.success) {
      this.#logger.error({ sp: entityId, issues: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`) }, 'stored SAML service provider has invalid settings');
      throw new ServiceProviderUnavailable('stored settings are invalid');
    }
    return this.#resolve(parsed.data, 'database');
  }

  async #resolve(sp: ServiceProviderConfig, source: ServiceProvider['source']): Promise<ServiceProvider> {
    const metadata = await this.#metadataOf(sp);
    const certs = (sp.certificates ?? []).map((c) => (typeof c === 'string' ? { pem: c, use: null } : c));
    const explicitSigning = certs.filter((c) => c.use !== 'encryption').map((c) => c.pem);
    const explicitEncryption = certs.filter((c) => c.use !== 'signing').map((c) => c.pem);
    const signingCerts = explicitSigning.length ? explicitSigning : (metadata?.signingCertificates ?? []);
    const encryptionCerts = explicitEncryption.length ? explicitEncryption : (metadata?.encryptionCertificates ?? []);
    const acs = sp.assertionConsumerServices ?? metadata?.assertionConsumerServices ?? [];
    const slo = sp.singleLogoutService ?? metadata?.singleLogoutService ?? null;
    // The SP's own setting, else the operator's global one, else what the SP's metadata says: an SP
    // that does not ask for signed requests (Shibboleth SP by default) may send them unsigned, as
    // Shibboleth IdP and Keycloak allow; the response still only goes to a registered ACS.
    const requireSignedRequests = sp.requireSignedRequests ?? (this.#requireSignedRequests || Boolean(metadata?.authnRequestsSigned));
    const unusable = (why: string) => {
      this.#logger.error({ sp: sp.entityId }, `SAML service provider unusable: ${why}`);
      return new ServiceProviderUnavailable(why);
    };
    if (requireSignedRequests && !signingCerts.length) throw unusable('signed requests are required but there is no signing certificate to verify them');
    if (sp.encryptAssertions && !encryptionCerts.length) throw unusable('assertions are to be encrypted but there is no encryption certificate');
    if (!acs.length) throw unusable('no assertion consumer service');
    return {
      entityId: sp.entityId,
      name: sp.name ?? sp.entityId,
      source,
      acs: acs.map((a) => ({ url: a.url, ...(a.index !== undefined ? { index: a.index } : {}), isDefault: a.isDefault })),
      slo: slo ? { url: slo.url, responseUrl: slo.responseUrl ?? slo.url, binding: slo.binding } : null,
      signingCerts,
      encryptionCert: encryptionCerts[0] ?? null,
      requireSignedRequests,
      nameIdFormats: metadata?.nameIdFormats ?? [],
      signResponse: sp.signResponse,
      signAssertion: sp.signAssertion,
      encryptAssertions: sp.encryptAssertions,
      encryptionAlgorithm: sp.encryptionAlgorithm,
      nameId: sp.nameId,
      attributes: sp.attributes ?? DEFAULT_ATTRIBUTES,
      idpInitiated: sp.idpInitiated,
    };
  }

  async #metadataOf(sp: ServiceProviderConfig): Promise<SpMetadata | null> {
    if (sp.metadataXml !== undefined) return this.#cached(`xml:${sp.entityId}:${createHash('sha256').update(sp.metadataXml).digest('base64url')}`, Infinity, async () => sp.metadataXml!, sp.entityId);
    if (sp.metadataFile !== undefined) return this.#cached(`file:${sp.entityId}:${sp.metadataFile}`, Infinity, () => readFile(sp.metadataFile!, 'utf8'), sp.entityId);
    if (sp.metadataUrl !== undefined) return this.#cached(`url:${sp.entityId}:${sp.metadataUrl}`, sp.metadataRefreshSeconds * 1000, () => this.#download(sp.metadataUrl!), sp.entityId);
    return null;
  }

  async #cached(key: string, maxAgeMs: number, load: () => Promise<string>, entityId: string): Promise<SpMetadata> {
    const now = Date.now();
    const cached = this.#metadata.get(key);
    if (cached?.metadata && now - cached.fetchedAt < maxAgeMs) return cached.metadata;
    if (cached && !cached.metadata && now - cached.fetchedAt < RETRY_AFTER_MS) throw new ServiceProviderUnavailable(`metadata unavailable: ${cached.error}`);
    let pending = this.#inflight.get(key);
    if (!pending) {
      pending = (async () => parseSpMetadata(await load(), entityId))();
      this.#inflight.set(key, pending);
      void pending.finally(() => this.#inflight.delete(key)).catch(() => {});
    }
    try {
      const metadata = await pending;
      this.#metadata.set(key, { metadata, fetchedAt: Date.now() });
      return metadata;
    } catch (err) {
      const error = err instanceof MetadataError ? err.message : (err as Error).message;
      if (cached?.metadata) {
        // A refresh failed: keep serving the last good copy, try again after the retry delay.
        this.#logger.warn({ sp: entityId, error }, 'SAML service provider metadata refresh failed; using the last good copy');
        this.#metadata.set(key, { ...cached, fetchedAt: now - maxAgeMs + RETRY_AFTER_MS });
        return cached.metadata;
      }
      this.#logger.error({ sp: entityId, error }, 'SAML service provider metadata unavailable');
      this.#metadata.set(key, { metadata: null, fetchedAt: now, error });
      throw new ServiceProviderUnavailable(`metadata unavailable: ${error}`, { cause: err });
    }
  }

  async #download(url: string): Promise<string> {
    const res = await this.#fetch(url, { signal: AbortSignal.timeout(METADATA_TIMEOUT_MS), redirect: 'follow', headers: { accept: 'application/samlmetadata+xml, application/xml, text/xml' } });
    if (!res.ok) throw new MetadataError(`metadata URL answered HTTP ${res.status}`);
    const declared = Number(res.headers.get('content-length') ?? 0);
    if (declared > MAX_METADATA_BYTES) throw new MetadataError('metadata is too large');
    const body = Buffer.from(await res.arrayBuffer());
    if (body.length > MAX_METADATA_BYTES) throw new MetadataError('metadata is too large');
    return body.toString('utf8');
  }
}
