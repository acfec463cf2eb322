// Every SAML message and metadata document, on both sides (the saml connector as SP, Keybridge
// as IdP), passes through here before any XML parser sees it.
// A DTD (DOCTYPE, ENTITY, ...) is how XXE and entity-expansion ("billion laughs") attacks start,
// and SAML never needs one, so any is refused outright, as are processing instructions other than
// the XML declaration, text that is not UTF-8 (a UTF-16 DOCTYPE would slip past a byte scan),
// and oversized input, including deflated payloads that inflate too far (zip bombs).
import { inflateRawSync } from 'node:zlib';

/** Largest protocol message accepted, decoded (and inflated). */
export const MAX_MESSAGE_BYTES = 256 * 1024;
/** Largest metadata document accepted. */
export const MAX_METADATA_BYTES = 2 * 1024 * 1024;

/** Why input was refused: too big, a DTD declaration, a processing instruction, or not well-formed text. */
export type GuardRefusal = 'too_large' | 'dtd' | 'pi' | 'malformed';

export type Guarded = { ok: true; xml: string } | { ok: false; reason: GuardRefusal; detail: string };

const BASE64 = /^[A-Za-z0-9+/\r\n\t ]*={0,2}[\r\n\t ]*$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Checks decoded bytes and returns them as text, or says why they are refused. */
export function guardXml(bytes: Uint8Array, maxBytes = MAX_MESSAGE_BYTES): Guarded {
  if (bytes.length > maxBytes) return { ok: false, reason: 'too_large', detail: `too large: ${bytes.length} bytes (limit ${maxBytes})` };
  let xml: string;
  try {
    xml = utf8.decode(bytes);
  } catch {
    return { ok: false, reason: 'malformed', detail: 'malformed: not UTF-8 text' };
  }
  if (xml.includes('\0')) return { ok: false, reason: 'malformed', detail: 'malformed: NUL character' };
  // `<!` opens comments and CDATA sections, which are harmless, and DTD declarations, which are
  // not. A `<!` inside a comment is refused too: no legitimate message needs one.
  if (/<!(?!--|\[CDATA\[)/.test(xml)) return { ok: false, reason: 'dtd', detail: 'dtd: a DOCTYPE or other DTD declaration is not allowed' };
  const declaration = /^<\?xml\s[^<>?]*\?>/.exec(xml);
  const encoding = declaration && /\bencoding\s*=\s*["']([^"']*)["']/.exec(declaration[0])?.[1];
  if (encoding && !/^utf-?8$/i.test(encoding)) {
    return { ok: false, reason: 'malformed', detail: 'malformed: the XML declaration names an encoding other than UTF-8' };
  }
  if (xml.indexOf('<?', declaration ? declaration[0].length : 0) !== -1) return { ok: false, reason: 'pi', detail: 'malformed: processing instructions are not allowed' };
  return { ok: true, xml };
}

function base64Bytes(value: string, maxBytes: number): Uint8Array | string {
  if (value.length > Math.ceil((maxBytes * 4) / 3) + 8192) return `too large: the encoded message exceeds ${maxBytes} bytes`;
  if (!BASE64.test(value)) return 'malformed: not base64';
  return Buffer.from(value, 'base64');
}

/** A base64 message as the POST binding carries it. */
export function decodePostMessage(value: string): Guarded {
  const bytes = base64Bytes(value, MAX_MESSAGE_BYTES);
  return typeof bytes === 'string' ? { ok: false, reason: bytes.startsWith('too large') ? 'too_large' : 'malformed', detail: bytes } : guardXml(bytes);
}

/** A deflated base64 message as the Redirect binding carries it; inflation is bounded. */
export function decodeRedirectMessage(value: string): Guarded {
  const bytes = base64Bytes(value, MAX_MESSAGE_BYTES);
  if (typeof bytes === 'string') return { ok: false, reason: bytes.startsWith('too large') ? 'too_large' : 'malformed', detail: bytes };
  let inflated: Buffer;
  try {
    inflated = inflateRawSync(bytes, { maxOutputLength: MAX_MESSAGE_BYTES });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ERR_BUFFER_TOO_LARGE'
      ? { ok: false, reason: 'too_large', detail: `too large: inflates past ${MAX_MESSAGE_BYTES} bytes` }
      : { ok: false, reason: 'malformed', detail: 'malformed: not a deflated message' };
  }
  return guardXml(inflated);
}
