// Where the IdP description comes from. Static sources (metadataFile, metadataXml, the manual
// fields) are read and parsed when the connector is created, so their errors are config errors;
// metadataUrl is fetched on first use (create() contacts nobody) and again every
// metadataRefreshMinutes. A failed refresh keeps the last good copy and retries a minute later;
// with no good copy yet, the IdP is unavailable.
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { idpFromConfig, parseIdpMetadata, type IdpDescriptor } from './idp-metadata.ts';
import type { SamlConfig } from './saml-config.ts';
import { MAX_METADATA_BYTES } from '../../src/saml/xml-guard.ts';
import { UpstreamUnavailableError } from './upstream-unavailable.ts';

const RETRY_AFTER_FAILURE_MS = 60_000;

export interface IdpSource {
  current(): Promise<IdpDescriptor>;
}

export function idpSource(config: SamlConfig, fetchFn: typeof fetch, logger: Logger): IdpSource {
  const idp = config.idp;
  if (idp.metadataXml !== undefined) return constant(parseIdpMetadata(idp.metadataXml));
  if (idp.metadataFile !== undefined) {
    let xml: string;
    try {
      xml = readFileSync(idp.metadataFile, 'utf8');
    } catch (err) {
      throw new Error(`idp.metadataFile: cannot read ${idp.metadataFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    try {
      return constant(parseIdpMetadata(xml));
    } catch (err) {
      throw new Error(`idp.metadataFile: ${(err as Error).message}`);
    }
  }
  if (idp.metadataUrl !== undefined) return fetched(idp.metadataUrl, (idp.metadataRefreshMinutes ?? 60) * 60_000, config.timeoutMs, fetchFn, logger);
  return constant(idpFromConfig(idp));
}

function constant(descriptor: IdpDescriptor): IdpSource {
  return { current: async () => descriptor };
}

async function download(url: string, timeoutMs: number, fetchFn: typeof fetch): Promise<string> {
  const response = await fetchFn(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/samlmetadata+xml, application/xml, text/xml' } });
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`HTTP ${response.status}`);
  }
  const length = Number(response.headers.get('content-length') ?? 0);
  if (length > MAX_METADATA_BYTES) {
    await response.body?.cancel();
    throw new Error(`the metadata is larger than ${MAX_METADATA_BYTES} bytes`);
  }
  return response.text();
}

function describe(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown; message?: unknown } }).cause;
  if (typeof cause?.code === 'string') return cause.code;
  if (err instanceof DOMException && err.name === 'TimeoutError') return 'timed out';
  return typeof cause?.message === 'string' ? `${(err as Error).message}: ${cause.message}` : (err as Error).message;
}

function fetched(url: string, refreshMs: number, timeoutMs: number, fetchFn: typeof fetch, logger: Logger): IdpSource {
  let good: IdpDescriptor | null = null;
  let nextFetchAt = 0;
  let inFlight: Promise<IdpDescriptor> | null = null;

  async function load(): Promise<IdpDescriptor> {
    try {
      const descriptor = parseIdpMetadata(await download(url, timeoutMs, fetchFn));
      good = descriptor;
      nextFetchAt = Date.now() + refreshMs;
      return descriptor;
    } catch (err) {
      nextFetchAt = Date.now() + Math.min(RETRY_AFTER_FAILURE_MS, refreshMs);
      if (good) {
        logger.warn({ err, url }, 'IdP metadata refresh failed; keeping the last good copy');
        return good;
      }
      throw new UpstreamUnavailableError(`IdP metadata ${url}`, describe(err), { cause: err });
    }
  }

  return {
    async current() {
      if (good && Date.now() < nextFetchAt) return good;
      inFlight ??= load().finally(() => {
        inFlight = null;
      });
      return inFlight;
    },
  };
}
