// The SAML HTTP-Redirect binding (SAML bindings 3.4): a deflated, base64 message in the query,
// signed over the exact query bytes `SAMLRequest=..&RelayState=..&SigAlg=..` as sent. Building
// and verifying work on the raw, still-encoded parameters, so what is signed is what travels.
import { X509Certificate, sign, verify, type KeyObject } from 'node:crypto';
import { deflateRawSync } from 'node:zlib';

export const RSA_SHA256 = 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256';
const SIGNATURE_ALGORITHMS: Record<string, string> = {
  [RSA_SHA256]: 'sha256',
  'http://www.w3.org/2001/04/xmldsig-more#rsa-sha384': 'sha384',
  'http://www.w3.org/2001/04/xmldsig-more#rsa-sha512': 'sha512',
};

export type MessageKind = 'SAMLRequest' | 'SAMLResponse';

export function deflateBase64(xml: string): string {
  return deflateRawSync(Buffer.from(xml, 'utf8')).toString('base64');
}

/** `target` with the message (already deflated and base64) and RelayState, signed with `key` when given. */
export function redirectUrl(target: string, kind: MessageKind, payload: string, relayState: string | undefined, key: KeyObject | null): string {
  const parts = [`${kind}=${encodeURIComponent(payload)}`];
  if (relayState) parts.push(`RelayState=${encodeURIComponent(relayState)}`);
  if (key) {
    parts.push(`SigAlg=${encodeURIComponent(RSA_SHA256)}`);
    parts.push(`Signature=${encodeURIComponent(sign('sha256', Buffer.from(parts.join('&')), key).toString('base64'))}`);
  }
  return `${target}${target.includes('?') ? '&' : '?'}${parts.join('&')}`;
}

export interface RedirectMessage {
  kind: MessageKind;
  /** Base64 of the deflated message. */
  payload: string;
  relayState: string | null;
}

const decode = (raw: string) => decodeURIComponent(raw.replace(/\+/g, '%20'));

/**
 * Reads a Redirect-binding message from the raw query and checks its signature against any of
 * `certificates`. The signature is required: an unsigned logout message proves nothing.
 */
export function verifyRedirect(rawQuery: string, certificates: string[]): { ok: true; message: RedirectMessage } | { ok: false; detail: string } {
  const raw = new Map<string, string>();
  for (const token of rawQuery.replace(/^\?/, '').split('&')) {
    if (!token) continue;
    const eq = token.indexOf('=');
    const name = eq < 0 ? token : token.slice(0, eq);
    if (!['SAMLRequest', 'SAMLResponse', 'RelayState', 'SigAlg', 'Signature'].includes(name)) continue;
    if (raw.has(name)) return { ok: false, detail: `malformed: ${name} appears twice in the query` };
    raw.set(name, eq < 0 ? '' : token.slice(eq + 1));
  }
  const kinds = (['SAMLRequest', 'SAMLResponse'] as const).filter((k) => raw.has(k));
  if (kinds.length !== 1) return { ok: false, detail: 'malformed: the query must carry exactly one of SAMLRequest and SAMLResponse' };
  const kind = kinds[0];
  let payload: string, relayState: string | null, sigAlg: string, signature: Buffer;
  try {
    // Base64 has '+' of its own: a sender that left it unencoded did not mean a space.
    payload = decodeURIComponent(raw.get(kind)!);
    relayState = raw.has('RelayState') ? decode(raw.get('RelayState')!) : null;
    if (!raw.has('Signature') || !raw.has('SigAlg')) return { ok: false, detail: 'signature: the message is not signed (no Signature/SigAlg in the query)' };
    sigAlg = decode(raw.get('SigAlg')!);
    signature = Buffer.from(decodeURIComponent(raw.get('Signature')!), 'base64');
  } catch {
    return { ok: false, detail: 'malformed: bad percent-encoding in the query' };
  }
  const hash = SIGNATURE_ALGORITHMS[sigAlg];
  if (!hash) return { ok: false, detail: `signature: unsupported SigAlg ${sigAlg.slice(0, 100)}` };
  let signed = `${kind}=${raw.get(kind)}`;
  if (raw.has('RelayState')) signed += `&RelayState=${raw.get('RelayState')}`;
  signed += `&SigAlg=${raw.get('SigAlg')}`;
  const valid = certificates.some((pem) => {
    try {
      return verify(hash, Buffer.from(signed), new X509Certificate(pem).publicKey, signature);
    } catch {
      return false;
    }
  });
  if (!valid) return { ok: false, detail: 'signature: the query signature does not verify with any IdP certificate' };
  return { ok: true, message: { kind, payload, relayState } };
}
