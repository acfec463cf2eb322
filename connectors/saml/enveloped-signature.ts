// An enveloped XML signature over one element (a logout message's root in the POST binding; a
// Response or its Assertion), checked with xml-crypto under the same rules node-saml applies to
// responses: one Signature, a direct child of the element, one Reference, to the element's own
// ID, which no other element carries. On success the caller gets the signed, canonical XML.
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
  if (children(root, NS.dsig, 'Signature').length === 0) return { ok: false, detail: 'signature: the message is not signed' };
  if (descendants(doc, NS.dsig, 'Signature').length !== 1) return { ok: false, detail: 'wrapping: more than one Signature in the message' };
  return verifyElementSignature(xml, doc, root, certificates, 'message');
}

/**
 * The enveloped signature of `element` (the root, or an assertion inside a response), checked in
 * the context of the whole document `xml` as received, with the IdP's certificates only (never
 * one the message carries). `what` names the element in the refusal.
 */
export function verifyElementSignature(xml: string, doc: Document, element: Element, certificates: string[], what: string): Verified {
  const signatures = children(element, NS.dsig, 'Signature');
  if (signatures.length === 0) return { ok: false, detail: `signature: the ${what} is not signed` };
  if (signatures.length > 1) return { ok: false, detail: `wrapping: more than one Signature on the ${what}` };
  const id = attr(element, 'ID');
  if (!id) return { ok: false, detail: `malformed: the ${what} has no ID` };
  if (elementsWithId(doc, id).length !== 1) return { ok: false, detail: `wrapping: the ${what} ID is not unique` };
  const normalized = xml.replace(/\r\n?/g, '\n');
  for (const publicCert of certificates) {
    const sig = new SignedXml({ publicCert, getCertFromKeyInfo: () => null });
    try {
      sig.loadSignature(signatures[0]);
      const refs = sig.getReferences();
      if (refs.length !== 1 || refs[0].uri !== `#${id}`) return { ok: false, detail: `wrapping: the signature does not reference the ${what} itself` };
      if ((refs[0].transforms ?? []).length > 2) return { ok: false, detail: 'signature: too many transforms' };
      if (sig.checkSignature(normalized) && sig.getSignedReferences().length === 1) return { ok: true, signedXml: sig.getSignedReferences()[0] };
    } catch {
      // Not this certificate (or not verifiable at all): try the next one.
    }
  }
  return { ok: false, detail: `signature: the ${what} signature does not verify with any IdP certificate` };
}
