// Our IdP metadata, written here rather than by samlify's builder, which put SingleLogoutService
// after SingleSignOnService and NameIDFormat before SingleLogoutService: the SAML 2.0 metadata
// schema fixes the order (IDPSSODescriptor: KeyDescriptor*, ArtifactResolutionService*,
// SingleLogoutService*, ManageNameIDService*, NameIDFormat*, SingleSignOnService+, ...), and SPs
// that validate metadata (Shibboleth SP does by default) refuse the whole document otherwise.
// test/saml/schema-validation.test.ts checks the result against the OASIS XSDs.
import { xmlEscape } from './safe-xml.ts';
import { BINDING, NAME_ID_FORMAT, NS } from './saml-urns.ts';

export interface IdpMetadataInput {
  entityId: string;
  ssoUrl: string;
  sloUrl: string;
  /** PEM or bare base64. */
  certificate: string;
  wantAuthnRequestsSigned: boolean;
}

/** The NameID formats we can produce, advertised in this order. */
export const ADVERTISED_NAME_ID_FORMATS = [NAME_ID_FORMAT.persistent, NAME_ID_FORMAT.transient, NAME_ID_FORMAT.emailAddress, NAME_ID_FORMAT.unspecified];

export function idpMetadataXml(m: IdpMetadataInput): string {
  const cert = m.certificate.replace(/-----(BEGIN|END) CERTIFICATE-----|\s+/g, '');
  const endpoint = (name: string, binding: string, url: string) => `<md:${name} Binding="${binding}" Location="${xmlEscape(url)}"/>`;
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<md:EntityDescriptor xmlns:md="${NS.metadata}" xmlns:ds="${NS.dsig}" entityID="${xmlEscape(m.entityId)}">`,
    `<md:IDPSSODescriptor protocolSupportEnumeration="${NS.protocol}" WantAuthnRequestsSigned="${m.wantAuthnRequestsSigned}">`,
    `<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>${cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>`,
    endpoint('SingleLogoutService', BINDING.redirect, m.sloUrl),
    endpoint('SingleLogoutService', BINDING.post, m.sloUrl),
    ...ADVERTISED_NAME_ID_FORMATS.map((f) => `<md:NameIDFormat>${f}</md:NameIDFormat>`),
    endpoint('SingleSignOnService', BINDING.redirect, m.ssoUrl),
    endpoint('SingleSignOnService', BINDING.post, m.ssoUrl),
    `</md:IDPSSODescriptor>`,
    `</md:EntityDescriptor>`,
  ].join('\n') + '\n';
}
