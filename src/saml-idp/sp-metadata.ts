// Reads what Keybridge needs from a service provider's SAML metadata: its HTTP-POST assertion
// consumer services, its single logout service, its certificates, whether it signs its
// requests and the NameID formats it lists. Parsed with the same guard as inbound messages (no DTDs, no entities), by position.
import { XmlRefused, attr, childElement, childElements, parseSafeXml, textOf } from './safe-xml.ts';
import { BINDING, NS } from './saml-urns.ts';

const MAX_METADATA_CHARS = 2 * 1024 * 1024;

export interface SpMetadata {
  entityId: string;
  assertionConsumerServices: { url: string; index?: number; isDefault: boolean }[];
  singleLogoutService: { url: string; responseUrl?: string; binding: 'redirect' | 'post' } | null;
  signingCertificates: string[];
  encryptionCertificates: string[];
  authnRequestsSigned: boolean;
  /** The NameIDFormat elements of its SPSSODescriptor, in document order (formats it accepts). */
  nameIdFormats: string[];
}

export class MetadataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MetadataError';
  }
}

const isHttpUrl = (v: string | null): v is string => v !== null && /^https?:\/\/[^/?#\s]+[^\s#]*$/i.test(v) && URL.canParse(v);

/** The SP's entry in `xml` (an EntityDescriptor, or an EntitiesDescriptor aggregate holding it). */
export function parseSpMetadata(xml: string, entityId: string): SpMetadata {
  let root: Element;
  try {
    root = parseSafeXml(xml, MAX_METADATA_CHARS).documentElement;
  } catch (err) {
    throw new MetadataError(err instanceof XmlRefused ? `metadata refused: ${err.message}` : 'metadata is not XML');
  }
  const entity = findEntity(root, entityId, 0);
  if (!entity) throw new MetadataError(`metadata has no EntityDescriptor with entityID "${entityId}"`);
  const sso = childElements(entity, NS.metadata, 'SPSSODescriptor').find((d) => (attr(d, 'protocolSupportEnumeration') ?? '').split(/\s+/).includes(NS.protocol));
  if (!sso) throw new MetadataError('metadata has no SAML 2.0 SPSSODescriptor');

  const signing: string[] = [];
  const encryption: string[] = [];
  for (const kd of childElements(sso, NS.metadata, 'KeyDescriptor')) {
    const use = attr(kd, 'use');
    const keyInfo = childElement(kd, NS.dsig, 'KeyInfo');
    const certs = keyInfo ? childElements(keyInfo, NS.dsig, 'X509Data').flatMap((d) => childElements(d, NS.dsig, 'X509Certificate')).flatMap((c) => textOf(c)?.replace(/\s+/g, '') ?? []) : [];
    if (use !== 'encryption') signing.push(...certs);
    if (use !== 'signing') encryption.push(...certs);
  }

  const acs = childElements(sso, NS.metadata, 'AssertionConsumerService')
    .filter((a) => attr(a, 'Binding') === BINDING.post && isHttpUrl(attr(a, 'Location')))
    .map((a) => {
      const index = attr(a, 'index');
      return { url: attr(a, 'Location')!, ...(index !== null && /^\d{1,5}$/.test(index) ? { index: Number(index) } : {}), isDefault: attr(a, 'isDefault') === 'true' };
    });
  if (!acs.length) throw new MetadataError('metadata has no HTTP-POST AssertionConsumerService with an http(s) Location');

  const slos = childElements(sso, NS.metadata, 'SingleLogoutService');
  const slo = slos.find((s) => attr(s, 'Binding') === BINDING.redirect) ?? slos.find((s) => attr(s, 'Binding') === BINDING.post);
  let singleLogoutService: SpMetadata['singleLogoutService'] = null;
  if (slo && isHttpUrl(attr(slo, 'Location'))) {
    const responseUrl = attr(slo, 'ResponseLocation');
    singleLogoutService = { url: attr(slo, 'Location')!, ...(isHttpUrl(responseUrl) ? { responseUrl } : {}), binding: attr(slo, 'Binding') === BINDING.redirect ? 'redirect' : 'post' };
  }

  return {
    entityId,
    assertionConsumerServices: acs,
    singleLogoutService,
    signingCertificates: signing,
    encryptionCertificates: encryption,
    authnRequestsSigned: ['true', '1'].includes(attr(sso, 'AuthnRequestsSigned') ?? ''),
    nameIdFormats: childElements(sso, NS.metadata, 'NameIDFormat').flatMap((f) => textOf(f)?.trim() || []).filter((f) => f.length <= 256),
  };
}

function findEntity(el: Element, entityId: string, depth: number): Element | null {
  if (el.namespaceURI !== NS.metadata || depth > 8) return null;
  if (el.localName === 'EntityDescriptor') return attr(el, 'entityID') === entityId ? el : null;
  if (el.localName !== 'EntitiesDescriptor') return null;
  for (const child of [...childElements(el, NS.metadata, 'EntityDescriptor'), ...childElements(el, NS.metadata, 'EntitiesDescriptor')]) {
    const found = findEntity(child, entityId, depth + 1);
    if (found) return found;
  }
  return null;
}
