// What Keybridge needs to know about the upstream IdP, from its SAML metadata or from the manual
// config fields: entityID, where to send AuthnRequests (per binding), where single logout goes,
// and every signing certificate (several during a key rollover: any of them validates).
import type { X509Certificate } from 'node:crypto';
import { URL_MESSAGE, isIdpUrl, parseCertificate, type SamlConfig } from './saml-config.ts';
import { attr, children, descendants, parseXml, shown, text } from './saml-dom.ts';
import { BINDING, NS } from '../../src/saml/urns.ts';
import { MAX_METADATA_BYTES, guardXml } from '../../src/saml/xml-guard.ts';

export interface IdpDescriptor {
  entityId: string;
  /** SingleSignOnService per binding; manual config gives one URL for both. */
  sso: { redirect?: string; post?: string };
  /** SingleLogoutService (HTTP-Redirect preferred, else HTTP-POST), when the IdP does single logout. */
  slo: { location: string; responseLocation: string; binding: 'redirect' | 'post' } | null;
  /** Signing certificates, PEM. */
  certificates: string[];
}

function pem(certificate: X509Certificate): string {
  return certificate.toString();
}

export function idpFromConfig(idp: SamlConfig['idp']): IdpDescriptor {
  const certificates = (idp.certificates ?? []).map((c, i) => {
    const parsed = parseCertificate(c);
    if (!parsed) throw new Error(`idp.certificates[${i}]: not a certificate`);
    return pem(parsed);
  });
  return {
    entityId: idp.entityId!,
    sso: { redirect: idp.ssoUrl, post: idp.ssoUrl },
    slo: idp.sloUrl ? { location: idp.sloUrl, responseLocation: idp.sloUrl, binding: 'redirect' } : null,
    certificates,
  };
}

/** Parses an IdP's metadata (an EntityDescriptor, or an EntitiesDescriptor holding one IdP); throws with the reason. */
export function parseIdpMetadata(xml: string): IdpDescriptor {
  const guarded = guardXml(Buffer.from(xml, 'utf8'), MAX_METADATA_BYTES);
  if (!guarded.ok) throw new Error(`metadata refused: ${guarded.detail}`);
  const doc = parseXml(guarded.xml);
  const root = doc.documentElement;
  if (root.namespaceURI !== NS.metadata || (root.localName !== 'EntityDescriptor' && root.localName !== 'EntitiesDescriptor')) {
    throw new Error(`metadata: the document is a ${shown(root.localName)}, not an EntityDescriptor`);
  }
  const entities = (root.localName === 'EntityDescriptor' ? [root] : descendants(root, NS.metadata, 'EntityDescriptor')).filter(
    (e) => children(e, NS.metadata, 'IDPSSODescriptor').some((d) => (attr(d, 'protocolSupportEnumeration') ?? '').split(/\s+/).includes(NS.protocol)),
  );
  if (entities.length !== 1) throw new Error(`metadata: expected one SAML 2.0 identity provider, found ${entities.length}`);
  const entity = entities[0];
  const entityId = attr(entity, 'entityID');
  if (!entityId) throw new Error('metadata: the EntityDescriptor has no entityID');
  const descriptor = children(entity, NS.metadata, 'IDPSSODescriptor').find((d) => (attr(d, 'protocolSupportEnumeration') ?? '').split(/\s+/).includes(NS.protocol))!;

  const endpoint = (name: string, binding: string): { location: string; responseLocation: string } | undefined => {
    const found = children(descriptor, NS.metadata, name).find((e) => attr(e, 'Binding') === binding && attr(e, 'Location'));
    if (!found) return undefined;
    const location = attr(found, 'Location')!;
    const responseLocation = attr(found, 'ResponseLocation') ?? location;
    for (const url of [location, responseLocation]) if (!isIdpUrl(url)) throw new Error(`metadata: a ${name} URL ${URL_MESSAGE}`);
    return { location, responseLocation };
  };
  const redirect = endpoint('SingleSignOnService', BINDING.redirect)?.location;
  const post = endpoint('SingleSignOnService', BINDING.post)?.location;
  if (!redirect && !post) throw new Error('metadata: no SingleSignOnService with the HTTP-Redirect or HTTP-POST binding');
  const sloRedirect = endpoint('SingleLogoutService', BINDING.redirect);
  const sloPost = endpoint('SingleLogoutService', BINDING.post);
  const slo = sloRedirect ? { ...sloRedirect, binding: 'redirect' as const } : sloPost ? { ...sloPost, binding: 'post' as const } : null;

  const certificates: string[] = [];
  for (const key of children(descriptor, NS.metadata, 'KeyDescriptor')) {
    const use = attr(key, 'use');
    if (use !== null && use !== 'signing') continue;
    for (const x509 of descendants(key, NS.dsig, 'X509Certificate')) {
      const parsed = parseCertificate(text(x509) ?? '');
      if (!parsed) throw new Error('metadata: a signing KeyDescriptor holds something that is not a certificate');
      if (!certificates.includes(pem(parsed))) certificates.push(pem(parsed));
    }
  }
  if (certificates.length === 0) throw new Error('metadata: the IdP publishes no signing certificate');
  return {
    entityId,
    sso: { redirect, post },
    slo,
    certificates,
  };
}
