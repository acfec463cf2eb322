// An enveloped XML signature over a message we send in the HTTP-POST binding (logout messages to
// an IdP that has no Redirect endpoint): rsa-sha256, exclusive c14n, placed after the Issuer as
// the schema wants. (AuthnRequests in the POST binding are signed by node-saml.)
import { SignedXml } from 'xml-crypto';
import { RSA_SHA256 } from './redirect-binding.ts';
import type { KeyPair } from './sp-keys.ts';

const EXC_C14N = 'http://www.w3.org/2001/10/xml-exc-c14n#';

export function signEnveloped(xml: string, key: KeyPair): string {
  const sig = new SignedXml({ privateKey: key.privateKeyPem, publicCert: key.certificatePem, signatureAlgorithm: RSA_SHA256, canonicalizationAlgorithm: EXC_C14N });
  sig.addReference({ xpath: '/*', transforms: ['http://www.w3.org/2000/09/xmldsig#enveloped-signature', EXC_C14N], digestAlgorithm: 'http://www.w3.org/2001/04/xmlenc#sha256' });
  sig.computeSignature(xml, { prefix: 'ds', location: { reference: "/*/*[local-name(.)='Issuer']", action: 'after' } });
  return sig.getSignedXml();
}
