// One SAMLResponse from the POST binding, from raw form value to the facts of its signed assertion.
// In order: the XML guard (before any parser: size, DTDs, depth and element count), the shape of
// the signatures (one assertion in the entire document, every signature covering its own parent),
// the signatures themselves against the IdP's certificates, then content: status, issuer,
// destination, an early look at the visible assertion (refusals only, for precise reasons),
// node-saml's validation (signatures, decryption, InResponseTo, conditions, audience), and our
// checks again on the assertion node-saml verified, which is the only thing identity is read from.
import { SAML, ValidateInResponseTo, type CacheProvider } from '@node-saml/node-saml';
import type { FailureReason } from '../../src/connectors/contract.ts';
import { assertionProblem, type AssertionExpectations } from './assertion-checks.ts';
import { readAssertion, type AssertionFacts } from './assertion-facts.ts';
import { elementsWithId, verifyElementSignature } from './enveloped-signature.ts';
import type { IdpDescriptor } from './idp-metadata.ts';
import { nodeSamlDetail } from './node-saml-failure.ts';
import type { SignatureRequirement } from './saml-config.ts';
import { attr, child, children, descendants, isElement, parseXml, shown, text } from './saml-dom.ts';
import { NS, STATUS } from '../../src/saml/urns.ts';
import { decodePostMessage, guardXml } from '../../src/saml/xml-guard.ts';

export interface ResponseExpectations extends Omit<AssertionExpectations, 'now'> {
  /** When the AuthnRequest was issued (solicited responses). */
  requestIssuedAt: string | null;
  idp: IdpDescriptor;
  signatures: SignatureRequirement;
  requireEncryptedAssertions: boolean;
  /** PEM; null when no decryption key is configured. */
  decryptionKey: string | null;
}

export type ResponseResult = { ok: true; assertion: AssertionFacts } | { ok: false; reason: FailureReason; detail: string };

const refused = (detail: string, reason: FailureReason = 'upstream_error'): ResponseResult => ({ ok: false, reason, detail });

/** Second-level status codes that mean the person (or the IdP's policy for them) said no. */
const DENIED = new Set(['urn:oasis:names:tc:SAML:2.0:status:RequestDenied', 'urn:oasis:names:tc:SAML:2.0:status:NoPassive']);

/**
 * A non-Success status. RequestDenied (refused, e.g. consent declined) and NoPassive (no session
 * for a passive request) are access_denied; AuthnFailed is upstream_error like every other code:
 * the IdP could not authenticate, which is its error to show, not a decision of the person.
 */
function statusFailure(response: Element): ResponseResult | null {
  const status = child(response, NS.protocol, 'Status');
  const code = status && child(status, NS.protocol, 'StatusCode');
  const value = code && attr(code, 'Value');
  if (!value) return refused('malformed: the response has no StatusCode');
  if (value === STATUS.success) return null;
  const second = attr(child(code, NS.protocol, 'StatusCode') ?? code, 'Value');
  const message = text(child(status, NS.protocol, 'StatusMessage'));
  const short = (uri: string | null) => shown(uri?.replace(/^urn:oasis:names:tc:SAML:2\.0:status:/, '') ?? null, 80);
  const detail = `status: ${short(value)}${second && second !== value ? `/${short(second)}` : ''}${message ? ` (${shown(message, 120)})` : ''}`;
  return refused(detail, second && DENIED.has(second) ? 'access_denied' : 'upstream_error');
}

/** The ID a Signature's single Reference points at, or null when it has not exactly one `#id` reference. */
function referencedId(signature: Element): string | null {
  const refs = descendants(signature, NS.dsig, 'Reference');
  const uri = refs.length === 1 ? attr(refs[0], 'URI') : null;
  return uri?.startsWith('#') ? uri.slice(1) : null;
}

/** SHA-1 signatures and digests are forgeable enough to refuse (xml-crypto still accepts them). */
const WEAK_ALGORITHM = /#(rsa-sha1|dsa-sha1|hmac-sha1|sha1)$/;

/** Every signature must be a direct child of the element it signs (the Response or the Assertion). */
function signatureProblem(doc: Document, signable: Element[]): string | null {
  for (const signature of descendants(doc, NS.dsig, 'Signature')) {
    for (const method of [...descendants(signature, NS.dsig, 'SignatureMethod'), ...descendants(signature, NS.dsig, 'DigestMethod')]) {
      if (WEAK_ALGORITHM.test(attr(method, 'Algorithm') ?? '')) return `signature: weak algorithm ${attr(method, 'Algorithm')} (SHA-1 is refused)`;
    }
    const parent = signature.parentNode as Element | null;
    if (!parent || !signable.includes(parent)) return 'wrapping: a Signature outside the Response and Assertion elements';
    const id = attr(parent, 'ID');
    if (!id || referencedId(signature) !== id) return `wrapping: the ${parent.localName} signature does not reference its own element`;
    if (elementsWithId(doc, id).length !== 1) return `wrapping: the ${parent.localName} ID is not unique in the document`;
  }
  return null;
}

function requestCache(requestId: string | null, issuedAt: string | null): CacheProvider {
  // node-saml asks its cache whether InResponseTo names a request it sent; ours knows exactly one.
  return {
    saveAsync: async () => null,
    getAsync: async (key) => (requestId !== null && key === requestId ? issuedAt : null),
    removeAsync: async () => null,
  };
}

export async function validateResponse(samlResponse: string, e: ResponseExpectations): Promise<ResponseResult> {
  const guarded = decodePostMessage(samlResponse);
  if (!guarded.ok) return refused(guarded.detail);
  let doc: Document;
  try {
    doc = parseXml(guarded.xml);
  } catch (err) {
    return refused((err as Error).message);
  }
  const response: Element = doc.documentElement;
  const rootName = response.localName;
  if (!isElement(response, NS.protocol, 'Response')) return refused(`malformed: a ${shown(rootName, 40)} where a samlp:Response belongs`);

  // The shape of the signatures first: at most one assertion in the entire document, plain or
  // encrypted, as a child of the Response (an assertion anywhere else, in Extensions, Advice or a
  // wrapper, is how signature wrapping starts), and every signature covering its own parent.
  const plain = descendants(doc, NS.assertion, 'Assertion');
  const encrypted = descendants(doc, NS.assertion, 'EncryptedAssertion');
  const all = [...plain, ...encrypted];
  if (all.length > 1) return refused(`wrapping: ${all.length} assertions in the response`);
  if (all.length === 1 && all[0].parentNode !== response) return refused('wrapping: the assertion is not a direct child of the Response');
  const visible = plain[0] ?? null;
  const structure = signatureProblem(doc, visible ? [response, visible] : [response]);
  if (structure) return refused(structure);

  // Then the signatures themselves, with the IdP's certificates, before anything the document
  // says is believed: a forgery is a signature failure, whatever else is wrong with it. (An
  // encrypted assertion's own signature is inside the encryption: node-saml checks it below.)
  const responseSigned = children(response, NS.dsig, 'Signature').length > 0;
  const assertionSigned = visible ? children(visible, NS.dsig, 'Signature').length > 0 : null;
  if ((e.signatures === 'response' || e.signatures === 'both') && !responseSigned) return refused('signature: the response is not signed');
  for (const [signed, element, what] of [[responseSigned, response, 'response'], [assertionSigned, visible, 'assertion']] as const) {
    if (!signed || !element) continue;
    const verified = verifyElementSignature(guarded.xml, doc, element, e.idp.certificates, what);
    if (!verified.ok) return refused(verified.detail);
  }

  if (attr(response, 'Version') !== '2.0') return refused('malformed: not a SAML 2.0 response');
  // A status without an assertion is often unsigned (SAML requires signatures only over
  // assertions): it is reported as the IdP's answer, unless the response had to be signed (above).
  const status = statusFailure(response);
  if (status) return status;
  if (all.length === 0) return refused('no assertion in the response');
  if (!visible && !e.decryptionKey) return refused('encryption: the assertion is encrypted but no decryption key is configured');
  if (visible && e.requireEncryptedAssertions) return refused('encryption: the assertion is not encrypted (requireEncryptedAssertions)');
  if ((e.signatures === 'assertion' || e.signatures === 'both') && assertionSigned === false) return refused('signature: the assertion is not signed');
  if (e.signatures === 'either' && !responseSigned && assertionSigned === false) return refused('signature: neither the response nor the assertion is signed');

  const issuer = child(response, NS.assertion, 'Issuer');
  if (issuer && text(issuer) !== e.idpEntityId) return refused(`issuer: the response Issuer ${shown(text(issuer))} is not ${e.idpEntityId}`);
  const destination = attr(response, 'Destination');
  if (destination !== null && destination !== e.callbackUrl) return refused(`destination: the response Destination ${shown(destination)} is not ${e.callbackUrl}`);
  const inResponseTo = attr(response, 'InResponseTo');
  if (e.requestId === null && inResponseTo !== null) return refused('in_response_to: an unsolicited response must not answer a request (InResponseTo)');
  if (e.requestId !== null && inResponseTo === null) return refused('in_response_to: the response has no InResponseTo');
  if (e.requestId !== null && inResponseTo !== e.requestId) return refused('in_response_to: the response answers another request');

  const now = Date.now();
  if (visible) {
    const early = assertionProblem(readAssertion(visible), { ...e, now });
    if (early) return refused(early);
  }

  // node-saml: wantAuthnResponseSigned demands the Response signature; wantAssertionsSigned the
  // assertion's. With both false ("either") it still requires the assertion to be signed when
  // the Response is not, so an entirely unsigned response never passes.
  const saml = new SAML({
    callbackUrl: e.callbackUrl,
    issuer: e.spEntityId,
    audience: e.spEntityId,
    idpCert: e.idp.certificates,
    idpIssuer: e.idp.entityId,
    wantAuthnResponseSigned: e.signatures === 'response' || e.signatures === 'both',
    wantAssertionsSigned: e.signatures === 'assertion' || e.signatures === 'both',
    acceptedClockSkewMs: e.skewMs,
    maxAssertionAgeMs: e.maxAgeMs ?? 0,
    ...(e.decryptionKey && { decryptionPvk: e.decryptionKey }),
    validateInResponseTo: e.requestId === null ? ValidateInResponseTo.never : ValidateInResponseTo.always,
    cacheProvider: requestCache(e.requestId, e.requestIssuedAt),
  });
  let signedXml: string;
  try {
    // The exact bytes that passed the guard.
    const { profile } = await saml.validatePostResponseAsync({ SAMLResponse: Buffer.from(guarded.xml, 'utf8').toString('base64') });
    if (!profile?.getAssertionXml) return refused('no assertion in the response');
    signedXml = profile.getAssertionXml();
  } catch (err) {
    return refused(nodeSamlDetail(err));
  }

  // Defence in depth against signature wrapping: what node-saml verified is the one assertion
  // of the document, and it alone is read from here on.
  const signedGuard = guardXml(Buffer.from(signedXml, 'utf8'));
  if (!signedGuard.ok) return refused(`wrapping: the signed assertion: ${signedGuard.detail}`);
  let signed: Element;
  try {
    signed = parseXml(signedGuard.xml).documentElement;
  } catch (err) {
    return refused(`wrapping: the signed assertion: ${(err as Error).message}`);
  }
  const mismatch = signedAssertionMismatch(signed, visible);
  if (mismatch) return refused(mismatch);
  const facts = readAssertion(signed);
  const problem = assertionProblem(facts, { ...e, now: Date.now() });
  if (problem) return refused(problem);
  return { ok: true, assertion: facts };
}

/** The signed assertion must be an Assertion, and (when not encrypted) the very one the document holds. */
export function signedAssertionMismatch(signed: Element, visible: Element | null): string | null {
  if (!isElement(signed, NS.assertion, 'Assertion')) return 'wrapping: the signed content is not an assertion';
  if (visible && attr(signed, 'ID') !== attr(visible, 'ID')) return 'wrapping: the signed assertion is not the assertion in the response';
  return null;
}
