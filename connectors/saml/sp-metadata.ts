// This connector's SAML SP metadata, for the IdP administrator: entityID, what we sign and want
// signed, our signing (and encryption) certificates, NameID format, the ACS (HTTP-POST, index 0)
// and, when we can sign logout messages, single logout (HTTP-Redirect and HTTP-POST). Built here
// rather than by node-saml, whose generator lists only a POST logout endpoint and index 1.
import { xmlEscape } from './logout-messages.ts';
import { BINDING, NS } from '../../src/saml/urns.ts';
import { certificateBody, type KeyPair } from './sp-keys.ts';

export interface SpMetadataInput {
  entityId: string;
  callbackUrl: string;
  logoutUrl: string;
  signing: KeyPair | null;
  decryption: KeyPair | null;
  authnRequestsSigned: boolean;
  wantAssertionsSigned: boolean;
  nameIdFormat: string;
}

const ENCRYPTION_METHODS = [
  'http://www.w3.org/2009/xmlenc11#aes256-gcm',
  'http://www.w3.org/2009/xmlenc11#aes128-gcm',
  'http://www.w3.org/2001/04/xmlenc#aes256-cbc',
  'http://www.w3.org/2001/04/xmlenc#aes128-cbc',
  'http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p',
];

function keyDescriptor(use: 'signing' | 'encryption', pair: KeyPair): string {
  const methods = use === 'encryption' ? ENCRYPTION_METHODS.map((m) => `<md:EncryptionMethod Algorithm="${m}"/>`).join('') : '';
  return `<md:KeyDescriptor use="${use}"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>${certificateBody(pair.certificate)}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>${methods}</md:KeyDescriptor>`;
}

export function spMetadataXml(m: SpMetadataInput): string {
  const parts = [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<md:EntityDescriptor xmlns:md="${NS.metadata}" xmlns:ds="${NS.dsig}" entityID="${xmlEscape(m.entityId)}">`,
    `<md:SPSSODescriptor protocolSupportEnumeration="${NS.protocol}" AuthnRequestsSigned="${m.authnRequestsSigned}" WantAssertionsSigned="${m.wantAssertionsSigned}">`,
    m.signing ? keyDescriptor('signing', m.signing) : '',
    m.decryption ? keyDescriptor('encryption', m.decryption) : '',
    m.signing ? `<md:SingleLogoutService Binding="${BINDING.redirect}" Location="${xmlEscape(m.logoutUrl)}"/>` : '',
    m.signing ? `<md:SingleLogoutService Binding="${BINDING.post}" Location="${xmlEscape(m.logoutUrl)}"/>` : '',
    `<md:NameIDFormat>${xmlEscape(m.nameIdFormat)}</md:NameIDFormat>`,
    `<md:AssertionConsumerService Binding="${BINDING.post}" Location="${xmlEscape(m.callbackUrl)}" index="0" isDefault="true"/>`,
    `</md:SPSSODescriptor>`,
    `</md:EntityDescriptor>`,
  ];
  return parts.filter(Boolean).join('\n') + '\n';
}
