// Our own reader and verifier for messages service providers send us (AuthnRequest,
// LogoutRequest, LogoutResponse). samlify only builds our outbound messages: its inbound
// verification of signed requests has an open signature-wrapping bypass (tngan/samlify#634,
// GHSA-63ch-w8pw-4mf2), where the verifier checks one signed element while the parser reads
// another. Here nothing is read from a message before it is verified, and only from what the
// signature covers:
// - HTTP-Redirect: the signature is over the query octets exactly as received
//   (`SAMLRequest=..&RelayState=..&SigAlg=..`), RSA-SHA256/512 only; the payload is inflated with
//   a size cap.
// - HTTP-POST: the only accepted signature is a `ds:Signature` that is a direct child of the root
//   element, with exactly one Reference whose URI is `#<root ID>`, exclusive c14n and the
//   enveloped transform; xml-crypto checks it against the service provider's certificates only
//   (never a certificate the message carries), and values are then read from the signed content
//   xml-crypto returns, not from the received document.
// Before any of that, the shared guard (src/saml/xml-guard.ts) refuses text that is not UTF-8,
// control characters, DTDs, entities, processing instructions, and documents nested too deep or
// with too many elements, on the decoded and (boundedly) inflated bytes.
import { createPublicKey, verify, X509Certificate } from 'node:crypto';
import { inflateRawSync } from 'node:zlib';
import { MAX_MESSAGE_BYTES, guardXml } from '../saml/xml-guard.ts';
import { SignedXml } from 'xml-crypto';
import { SamlRejected, type MessageKind } from './saml-rejected.ts';
import { XmlRefused, attr, allChildElements, childElement, childElements, guardRefusal, parseSafeXml, textOf } from './safe-xml.ts';
import { DIGEST_ALGORITHMS, ENVELOPED, EXC_C14N, NS, SIGNATURE_ALGORITHMS, WEAK_SIGNATURE_ALGORITHMS } from './saml-urns.ts';

/** Largest accepted XML message, after base64 decoding and inflating. */
export const MAX_MESSAGE_CHARS = MAX_MESSAGE_BYTES;
/** Largest accepted base64 parameter (POST bodies are bounded before this too). */
const MAX_PARAMETER_CHARS = 400 * 1024;
const MAX_RELAY_STATE = 1024;

export type MessageType = 'AuthnRequest' | 'LogoutRequest' | 'LogoutResponse';
type Param = 'SAMLRequest' | 'SAMLResponse';

/** A decoded, not yet verified message: enough to find the service provider it claims to come from. */
export interface InboundMessage {
  type: MessageType;
  binding: 'redirect' | 'post';
  xml: string;
  /** The Issuer as written; unverified until `verifyMessage`. */
  issuer: string | null;
  /** The root's ID as written (unverified): for the log line of a refusal only. */
  id: string | null;
  relayState: string | null;
  /** Redirect binding: the signed octets and the signature parameters, when the query carries them. */
  querySignature: { octets: string; sigAlg: string; signature: Buffer } | null;
  /** POST binding: whether the root has a direct-child ds:Signature. */
  envelopedSignature: boolean;
}

const kindOf = (type: MessageType): MessageKind => (type === 'AuthnRequest' ? 'sign-in request' : type === 'LogoutRequest' ? 'sign-out request' : 'sign-out response');

function refuse(type: MessageType, err: unknown, sp: string | null = null): never {
  if (err instanceof SamlRejected) throw err;
  if (err instanceof XmlRefused) throw new SamlRejected(err.reason, kindOf(type), { sp, detail: { error: err.message, ...(err.guard && { guard: err.guard }) } });
  throw new SamlRejected('malformed', kindOf(type), { sp, cause: err });
}

/** `application/x-www-form-urlencoded` decoding of one raw query value. */
function formDecode(raw: string): string {
  return decodeURIComponent(raw.replace(/\+/g, ' '));
}

function base64Bytes(value: string, type: MessageType): Buffer {
  const compact = value.replace(/\s+/g, '');
  if (compact.length > MAX_PARAMETER_CHARS) throw new SamlRejected('too_large', kindOf(type));
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length % 4 === 1) throw new SamlRejected('malformed', kindOf(type), { detail: { error: 'not base64' } });
  return Buffer.from(compact, 'base64');
}

/**
 * Decoded (and inflated) bytes as text, through the shared guard: not UTF-8, a NUL, a DTD, too
 * deep or too many elements are refused here, before any parser or signature check sees them.
 */
function messageText(bytes: Buffer, type: MessageType): string {
  const guarded = guardXml(bytes, MAX_MESSAGE_CHARS);
  if (!guarded.ok) refuse(type, guardRefusal(guarded));
  return guarded.xml;
}

/** Bounded: a DEFLATE bomb stops at the message size limit. */
function inflate(bytes: Buffer, type: MessageType): Buffer {
  try {
    return inflateRawSync(bytes, { maxOutputLength: MAX_MESSAGE_CHARS });
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) throw new SamlRejected('too_large', kindOf(type), { detail: { error: 'inflated payload over the limit' } });
    throw new SamlRejected('malformed', kindOf(type), { detail: { error: 'not DEFLATE data' } });
  }
}

function typeOfRoot(root: Element): MessageType | null {
  if (root.namespaceURI !== NS.protocol) return null;
  return root.localName === 'AuthnRequest' || root.localName === 'LogoutRequest' || root.localName === 'LogoutResponse' ? root.localName : null;
}

/** Parses the XML and checks its root is one of the expected messages; the issuer is read as written. */
function parseMessage(xml: string, expected: readonly MessageType[], fallback: MessageType): { type: MessageType; root: Element; issuer: string | null; id: string | null } {
  let root: Element;
  try {
    root = parseSafeXml(xml, MAX_MESSAGE_CHARS).documentElement;
  } catch (err) {
    refuse(fallback, err);
  }
  const type = typeOfRoot(root);
  if (!type || !expected.includes(type)) throw new SamlRejected('malformed', kindOf(fallback), { detail: { error: `unexpected root element ${root.localName}` } });
  let issuer: string | null;
  try {
    issuer = textOf(childElement(root, NS.assertion, 'Issuer'));
  } catch (err) {
    refuse(type, err);
  }
  const id = attr(root, 'ID');
  return { type, root, issuer, id: id && id.length <= 256 && isPlainText(id) ? id : null };
}

/**
 * Text a person or an SP may send us: no control characters (a NUL among them) and no U+FFFD,
 * which is what invalid UTF-8 becomes when a form or query is decoded.
 */
export const isPlainText = (value: string) => !/[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F\uFFFD]/.test(value);

function relayStateOf(value: string | undefined, type: MessageType): string | null {
  if (value === undefined || value === '') return null;
  if (value.length > MAX_RELAY_STATE) throw new SamlRejected('too_large', kindOf(type), { detail: { error: 'RelayState too long' } });
  if (!isPlainText(value)) throw new SamlRejected('malformed', kindOf(type), { detail: { error: 'RelayState holds control characters or invalid UTF-8' } });
  return value;
}

/**
 * HTTP-Redirect binding: reads `SAMLRequest`/`SAMLResponse`, `RelayState`, `SigAlg`, `Signature`
 * from the raw query string; a repeated parameter is refused (which copy would be signed?).
 */
export function decodeRedirect(rawQuery: string, expected: readonly MessageType[]): InboundMessage {
  const fallback = expected[0];
  const raw = new Map<string, string>();
  for (const part of rawQuery.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const name = eq < 0 ? part : part.slice(0, eq);
    if (!['SAMLRequest', 'SAMLResponse', 'RelayState', 'SigAlg', 'Signature'].includes(name)) continue;
    if (raw.has(name)) throw new SamlRejected('malformed', kindOf(fallback), { detail: { error: `repeated ${name}` } });
    raw.set(name, eq < 0 ? '' : part.slice(eq + 1));
  }
  const param: Param | null = raw.has('SAMLRequest') ? 'SAMLRequest' : raw.has('SAMLResponse') ? 'SAMLResponse' : null;
  if (!param || (raw.has('SAMLRequest') && raw.has('SAMLResponse'))) throw new SamlRejected('malformed', kindOf(fallback), { detail: { error: 'no single SAMLRequest or SAMLResponse' } });
  let decoded: Record<string, string>;
  try {
    decoded = Object.fromEntries([...raw].map(([k, v]) => [k, formDecode(v)]));
  } catch (err) {
    throw new SamlRejected('malformed', kindOf(fallback), { cause: err });
  }
  const xml = messageText(inflate(base64Bytes(decoded[param], fallback), fallback), fallback);
  const { type, issuer, id } = parseMessage(xml, expected, fallback);
  if ((param === 'SAMLRequest') !== (type !== 'LogoutResponse')) throw new SamlRejected('malformed', kindOf(type), { detail: { error: `${type} sent as ${param}` } });

  let querySignature: InboundMessage['querySignature'] = null;
  if (raw.has('Signature') || raw.has('SigAlg')) {
    if (!raw.get('Signature') || !raw.get('SigAlg')) throw new SamlRejected('malformed', kindOf(type), { sp: issuer, detail: { error: 'Signature without SigAlg or the reverse' } });
    // The octets as received: the SP signed its own encoding, which we must not re-encode.
    const octets = `${param}=${raw.get(param)}${raw.has('RelayState') ? `&RelayState=${raw.get('RelayState')}` : ''}&SigAlg=${raw.get('SigAlg')}`;
    querySignature = { octets, sigAlg: decoded.SigAlg, signature: base64Bytes(decoded.Signature, type) };
  }
  return { type, binding: 'redirect', xml, issuer, id, relayState: relayStateOf(decoded.RelayState, type), querySignature, envelopedSignature: false };
}

/** HTTP-POST binding: base64 XML (some SPs, node-saml among them, also DEFLATE it; both are accepted). */
export function decodePost(form: Record<string, string>, expected: readonly MessageType[]): InboundMessage {
  const fallback = expected[0];
  const param: Param | null = form.SAMLRequest !== undefined ? 'SAMLRequest' : form.SAMLResponse !== undefined ? 'SAMLResponse' : null;
  if (!param || (form.SAMLRequest !== undefined && form.SAMLResponse !== undefined)) throw new SamlRejected('malformed', kindOf(fallback), { detail: { error: 'no single SAMLRequest or SAMLResponse' } });
  const bytes = base64Bytes(form[param], fallback);
  if (bytes.length > MAX_MESSAGE_CHARS) throw new SamlRejected('too_large', kindOf(fallback));
  const deflated = !/^\uFEFF?\s*</.test(bytes.subarray(0, 64).toString('utf8'));
  const xml = messageText(deflated ? inflate(bytes, fallback) : bytes, fallback);
  const { type, root, issuer, id } = parseMessage(xml, expected, fallback);
  if ((param === 'SAMLRequest') !== (type !== 'LogoutResponse')) throw new SamlRejected('malformed', kindOf(type), { detail: { error: `${type} sent as ${param}` } });
  return {
    type,
    binding: 'post',
    xml,
    issuer,
    id,
    relayState: relayStateOf(form.RelayState, type),
    querySignature: null,
    envelopedSignature: childElements(root, NS.dsig, 'Signature').length > 0,
  };
}

export function isSigned(message: InboundMessage): boolean {
  return message.binding === 'redirect' ? message.querySignature !== null : message.envelopedSignature;
}

/** A certificate (PEM or bare base64) as a Node public key; null when it cannot be read. */
function publicKeyOf(cert: string) {
  try {
    const body = cert.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
    return new X509Certificate(Buffer.from(body, 'base64')).publicKey;
  } catch {
    try {
      return createPublicKey(cert);
    } catch {
      return null;
    }
  }
}

export function toPem(cert: string): string {
  const body = cert.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
  return `-----BEGIN CERTIFICATE-----\n${body.match(/.{1,64}/g)!.join('\n')}\n-----END CERTIFICATE-----\n`;
}

/**
 * Verifies the message's signature with one of `certs` and returns the root element to read
 * values from: the signed content for POST, the parsed message for Redirect (the query signature
 * covers all of it). An unsigned message is returned as is only when `required` is false; a
 * signature that is present is always checked.
 */
export function verifyMessage(message: InboundMessage, certs: readonly string[], required: boolean): { root: Element; signed: boolean } {
  const kind = kindOf(message.type);
  const sp = message.issuer;
  const signed = isSigned(message);
  if (!signed && required) throw new SamlRejected('unsigned', kind, { sp });
  if (signed && !certs.length && required) throw new SamlRejected('bad_signature', kind, { sp, detail: { error: 'no certificate registered to verify it with' } });
  if (!signed || !certs.length) {
    // Unsigned (or signed, but the SP registered nothing to check it with) and allowed: read the message as received.
    return { root: parseSafeXml(message.xml, MAX_MESSAGE_CHARS).documentElement, signed: false };
  }
  if (message.binding === 'redirect') {
    const { octets, sigAlg, signature } = message.querySignature!;
    if (WEAK_SIGNATURE_ALGORITHMS.has(sigAlg)) throw new SamlRejected('weak_signature_algorithm', kind, { sp });
    const hash = SIGNATURE_ALGORITHMS[sigAlg];
    if (!hash) throw new SamlRejected('bad_signature', kind, { sp, detail: { error: 'unsupported SigAlg' } });
    const ok = certs.some((cert) => {
      const key = publicKeyOf(cert);
      try {
        return key !== null && verify(hash, Buffer.from(octets, 'utf8'), key, signature);
      } catch {
        return false;
      }
    });
    if (!ok) throw new SamlRejected('bad_signature', kind, { sp });
    return { root: parseSafeXml(message.xml, MAX_MESSAGE_CHARS).documentElement, signed: true };
  }
  return { root: verifyEnveloped(message, certs), signed: true };
}

/** The checks on the signature's shape that xml-crypto leaves to its caller. */
function checkSignatureShape(root: Element, kind: MessageKind, sp: string | null): Element {
  const bad = (error: string): never => {
    throw new SamlRejected('bad_signature', kind, { sp, detail: { error } });
  };
  const signatures = childElements(root, NS.dsig, 'Signature');
  if (signatures.length !== 1) bad('not exactly one signature on the root element');
  const signature = signatures[0];
  const id = attr(root, 'ID');
  if (!id || id.includes("'")) bad('root element without a usable ID');
  const parts = allChildElements(signature);
  // SignedInfo, SignatureValue, optional KeyInfo; no ds:Object (nothing else may be "signed").
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p.namespaceURI !== NS.dsig) || parts[0].localName !== 'SignedInfo' || parts[1].localName !== 'SignatureValue' || (parts[2] && parts[2].localName !== 'KeyInfo')) {
    bad('unexpected signature structure');
  }
  const signedInfo = parts[0];
  const c14n = childElement(signedInfo, NS.dsig, 'CanonicalizationMethod');
  const method = childElement(signedInfo, NS.dsig, 'SignatureMethod');
  const references = childElements(signedInfo, NS.dsig, 'Reference');
  if (!c14n || attr(c14n, 'Algorithm') !== EXC_C14N) bad('canonicalization is not exclusive c14n');
  const algorithm = method ? attr(method, 'Algorithm') : null;
  if (algorithm && WEAK_SIGNATURE_ALGORITHMS.has(algorithm)) throw new SamlRejected('weak_signature_algorithm', kind, { sp });
  if (!algorithm || !SIGNATURE_ALGORITHMS[algorithm]) bad('unsupported signature algorithm');
  if (references.length !== 1) bad('not exactly one reference');
  const reference = references[0];
  if (attr(reference, 'URI') !== `#${id}`) bad('the reference is not to the root element');
  const transforms = childElement(reference, NS.dsig, 'Transforms');
  const algorithms = transforms ? childElements(transforms, NS.dsig, 'Transform').map((t) => attr(t, 'Algorithm')) : [];
  if (algorithms.length !== 2 || algorithms[0] !== ENVELOPED || algorithms[1] !== EXC_C14N) bad('transforms are not enveloped-signature then exclusive c14n');
  const digest = childElement(reference, NS.dsig, 'DigestMethod');
  const digestAlgorithm = digest ? attr(digest, 'Algorithm') : null;
  if (!digestAlgorithm || !DIGEST_ALGORITHMS.has(digestAlgorithm)) {
    if (digestAlgorithm === 'http://www.w3.org/2000/09/xmldsig#sha1') throw new SamlRejected('weak_signature_algorithm', kind, { sp });
    bad('unsupported digest algorithm');
  }
  return signature;
}

function verifyEnveloped(message: InboundMessage, certs: readonly string[]): Element {
  const kind = kindOf(message.type);
  const sp = message.issuer;
  const root = parseSafeXml(message.xml, MAX_MESSAGE_CHARS).documentElement;
  const signature = checkSignatureShape(root, kind, sp);
  for (const cert of certs) {
    const sig = new SignedXml({
      publicCert: toPem(cert),
      // Never trust a certificate the message itself carries.
      getCertFromKeyInfo: () => null,
    });
    let signedContent: string | undefined;
    try {
      sig.loadSignature(signature);
      if (!sig.checkSignature(message.xml)) continue;
      const refs = sig.getSignedReferences();
      if (refs.length !== 1) continue;
      signedContent = refs[0];
    } catch {
      continue;
    }
    // Read only what was signed: the canonical form of the root, signature removed.
    const signedRoot = parseSafeXml(signedContent, MAX_MESSAGE_CHARS).documentElement;
    if (signedRoot.namespaceURI !== root.namespaceURI || signedRoot.localName !== root.localName || attr(signedRoot, 'ID') !== attr(root, 'ID')) {
      throw new SamlRejected('bad_signature', kind, { sp, detail: { error: 'signed content is not the root element' } });
    }
    return signedRoot;
  }
  throw new SamlRejected('bad_signature', kind, { sp });
}

// ------------------------------------------------------------------------ reading verified roots

/** A SAML dateTime; null when absent, refused when not a date. */
function instant(el: Element, name: string, kind: MessageKind): Date | null {
  const value = attr(el, name);
  if (value === null) return null;
  const date = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(value) ? new Date(value) : new Date(NaN);
  if (Number.isNaN(date.getTime())) throw new SamlRejected('malformed', kind, { detail: { error: `${name} is not a dateTime` } });
  return date;
}

const boolAttr = (el: Element | null, name: string) => (el ? ['true', '1'].includes(attr(el, name) ?? '') : false);

interface Common {
  id: string;
  issueInstant: Date;
  destination: string | null;
  issuer: string;
}

function common(root: Element, kind: MessageKind): Common {
  const id = attr(root, 'ID');
  if (!id || id.length > 256 || attr(root, 'Version') !== '2.0') throw new SamlRejected('malformed', kind, { detail: { error: 'missing ID or Version 2.0' } });
  const issueInstant = instant(root, 'IssueInstant', kind);
  if (!issueInstant) throw new SamlRejected('malformed', kind, { detail: { error: 'missing IssueInstant' } });
  const issuer = textOf(childElement(root, NS.assertion, 'Issuer'));
  if (!issuer) throw new SamlRejected('malformed', kind, { detail: { error: 'missing Issuer' } });
  return { id, issueInstant, destination: attr(root, 'Destination'), issuer };
}

export interface AuthnRequest extends Common {
  acsUrl: string | null;
  acsIndex: number | null;
  protocolBinding: string | null;
  forceAuthn: boolean;
  isPassive: boolean;
  nameIdFormat: string | null;
}

export function readAuthnRequest(root: Element): AuthnRequest {
  const kind = 'sign-in request';
  try {
    const base = common(root, kind);
    const index = attr(root, 'AssertionConsumerServiceIndex');
    if (index !== null && !/^\d{1,5}$/.test(index)) throw new SamlRejected('malformed', kind, { detail: { error: 'bad AssertionConsumerServiceIndex' } });
    const policy = childElement(root, NS.protocol, 'NameIDPolicy');
    return {
      ...base,
      acsUrl: attr(root, 'AssertionConsumerServiceURL'),
      acsIndex: index === null ? null : Number(index),
      protocolBinding: attr(root, 'ProtocolBinding'),
      forceAuthn: boolAttr(root, 'ForceAuthn'),
      isPassive: boolAttr(root, 'IsPassive'),
      nameIdFormat: policy ? attr(policy, 'Format') : null,
    };
  } catch (err) {
    refuse('AuthnRequest', err);
  }
}

export interface LogoutRequest extends Common {
  notOnOrAfter: Date | null;
  nameId: string;
  nameIdFormat: string | null;
  sessionIndexes: string[];
}

export function readLogoutRequest(root: Element): LogoutRequest {
  const kind = 'sign-out request';
  try {
    const base = common(root, kind);
    const nameIdEl = childElement(root, NS.assertion, 'NameID');
    const nameId = textOf(nameIdEl);
    if (!nameIdEl || !nameId) throw new SamlRejected('malformed', kind, { detail: { error: 'no NameID (an EncryptedID is not supported)' } });
    return {
      ...base,
      notOnOrAfter: instant(root, 'NotOnOrAfter', kind),
      nameId,
      nameIdFormat: attr(nameIdEl, 'Format'),
      sessionIndexes: childElements(root, NS.protocol, 'SessionIndex').flatMap((el) => textOf(el) ?? []),
    };
  } catch (err) {
    refuse('LogoutRequest', err);
  }
}

export interface LogoutResponse extends Common {
  inResponseTo: string | null;
  status: string | null;
}

export function readLogoutResponse(root: Element): LogoutResponse {
  const kind = 'sign-out response';
  try {
    const base = common(root, kind);
    const status = childElement(root, NS.protocol, 'Status');
    const code = status ? childElement(status, NS.protocol, 'StatusCode') : null;
    return { ...base, inResponseTo: attr(root, 'InResponseTo'), status: code ? attr(code, 'Value') : null };
  } catch (err) {
    refuse('LogoutResponse', err);
  }
}
