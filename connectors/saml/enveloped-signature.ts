// An enveloped XML signature over a message's root element (logout messages in the POST
// binding), checked with xml-crypto under the same rules node-saml applies to responses: one
// Signature, a direct child of the root, one Reference, to the root's own ID, which no other
// element carries. On success the caller gets the signed, canonical XML and must read only that.
import { SignedXml } from 'xml-crypto';
import { allElements, attr, children, descendants } from './saml-dom.ts';
import { NS } from '../../src/saml/urns.ts';

export type Verified = { ok: true; signedXml: string } | { ok: false; detail: string };

/** Elements carrying `id` in any of the ID attributes xml-crypto resolves references by. */
export function elementsWithId(doc: Document, id: string): Element[] {
  return allElements(doc).filter((e) => ['ID', 'Id', 'id'].some((a) => attr(e, a) === id));
}

export function verifyEnvelopedSignature(xml: string, doc: Document, certificates: string[]): Verified {
  const root = doc.documentElement;
  const signatures = children(root, NS.dsig, 'Signature');
  if (signatures.length === 0) return { ok: false, detail: 'signature: the message is not signed' };
  if (descendants(doc, NS.dsig, 'Signature').length !== 1) return { ok: false, detail: 'wrapping: more than one Signature in the message' };
  const id = attr(root, 'ID');
  if (!id) return { ok: false, detail: 'malformed: the message has no ID' };
  if (elementsWithId(doc, id).length !== 1) return { ok: false, detail: 'wrapping: the message ID is not unique' };
  const normalized = xml.replace(/\r\n?/g, '\n');
  for (const publicCert of certificates) {
    const sig = new SignedXml({ publicCert });
    try {
      sig.loadSignature(signatures[0]);
      const refs = sig.getReferences();
      if (refs.length !== 1 || refs[0].uri !== `#${id}`) return { ok: false, detail: 'wrapping: the signature does not reference the message itself' };
      if ((refs[0].transforms ?? []).length > 2) return { ok: false, detail: 'signature: too many transforms' };
      if (sig.checkSignature(normalized) && sig.getSignedReferences().length === 1) return { ok: true, signedXml: sig.getSignedReferences()[0] };
    } catch {
      // Not this certificate (or not verifiable at all): try the next one.
    }
  }
  return { ok: false, detail: 'signature: the XML signature does not verify with any IdP certificate' };
}
