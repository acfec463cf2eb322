// Every SAML message and metadata document, on both sides (the saml connector as SP, Keybridge
// as IdP), passes through here before any XML parser sees it.
// A DTD (DOCTYPE, ENTITY, ...) is how XXE and entity-expansion ("billion laughs") attacks start,
// and SAML never needs one, so any is refused outright, as are processing instructions other than
// the XML declaration, text that is not UTF-8 (a UTF-16 DOCTYPE would slip past a byte scan),
// and oversized input, including deflated payloads that inflate too far (zip bombs).
// Last, one linear scan of the tags (no DOM) bounds the document's shape: tens of thousands of
// nested elements in 256 KB froze the event loop for seconds in the parser and in signature
// checks, so nesting deeper or elements more numerous than any real SAML message are refused.
import { inflateRawSync } from 'node:zlib';

/** Largest protocol message accepted, decoded (and inflated). */
export const MAX_MESSAGE_BYTES = 256 * 1024;
/** Largest metadata document accepted. */
export const MAX_METADATA_BYTES = 2 * 1024 * 1024;

/** Bounds on a document's shape, checked before any parser sees it. */
export interface ShapeLimits {
  /** Deepest element nesting (the root element is depth 1). */
  maxDepth: number;
  /** Most elements in the document. */
  maxElements: number;
}

/**
 * Protocol messages. Real ones nest under 15 levels (an encrypted assertion's KeyInfo is the
 * deepest). A response carrying a person in 1,015 AD groups (the most a Windows token holds)
 * has about 1,100 elements; 5,000 leaves room for more and still parses in a few milliseconds.
 */
export const MESSAGE_LIMITS: ShapeLimits = { maxDepth: 64, maxElements: 5000 };
/** Metadata documents: an aggregate of a few hundred entities fits in 2 MB and nests no deeper than messages. */
export const METADATA_LIMITS: ShapeLimits = { maxDepth: 64, maxElements: 30_000 };

/**
 * Why input was refused: too big, nested too deep or too many elements, a DTD declaration, a
 * processing instruction, or not well-formed text.
 */
export type GuardRefusal = 'too_large' | 'too_deep' | 'too_many_elements' | 'dtd' | 'pi' | 'malformed';

export type Guarded = { ok: true; xml: string } | { ok: false; reason: GuardRefusal; detail: string };

const BASE64 = /^[A-Za-z0-9+/\r\n\t ]*={0,2}[\r\n\t ]*$/;
const FORBIDDEN_CHAR = /[\u0001-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/;
const REFERENCE = /&#(x[0-9A-Fa-f]+|[0-9]+);/g;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Whether a character reference names a character outside XML 1.0's Char production. */
function forbiddenReference(xml: string): boolean {
  for (const [, ref] of xml.matchAll(REFERENCE)) {
    const code = ref[0] === 'x' ? Number.parseInt(ref.slice(1), 16) : Number(ref);
    const allowed = code === 0x9 || code === 0xa || code === 0xd || (code >= 0x20 && code <= 0xd7ff) || (code >= 0xe000 && code <= 0xfffd) || (code >= 0x10000 && code <= 0x10ffff);
    if (!allowed) return true;
  }
  return false;
}

/**
 * Checks decoded bytes and returns them as text, or says why they are refused. `limits` defaults
 * to the metadata bounds when `maxBytes` is a metadata size, the message bounds otherwise.
 */
export function guardXml(bytes: Uint8Array, maxBytes = MAX_MESSAGE_BYTES, limits: ShapeLimits = maxBytes > MAX_MESSAGE_BYTES ? METADATA_LIMITS : MESSAGE_LIMITS): Guarded {
  if (bytes.length > maxBytes) return { ok: false, reason: 'too_large', detail: `too large: ${bytes.length} bytes (limit ${maxBytes})` };
  let xml: string;
  try {
    xml = utf8.decode(bytes);
  } catch {
    return { ok: false, reason: 'malformed', detail: 'malformed: not UTF-8 text' };
  }
  if (xml.includes('\0')) return { ok: false, reason: 'malformed', detail: 'malformed: NUL character' };
  // Characters XML 1.0 does not allow, raw or as character references (xmldom turns `&#0;` into a NUL).
  if (FORBIDDEN_CHAR.test(xml)) return { ok: false, reason: 'malformed', detail: 'malformed: a control character' };
  if (forbiddenReference(xml)) return { ok: false, reason: 'malformed', detail: 'malformed: a character reference to a character XML does not allow' };
  // `<!` opens comments and CDATA sections, which are harmless, and DTD declarations, which are
  // not. A `<!` inside a comment is refused too: no legitimate message needs one.
  if (/<!(?!--|\[CDATA\[)/.test(xml)) return { ok: false, reason: 'dtd', detail: 'dtd: a DOCTYPE or other DTD declaration is not allowed' };
  const declaration = /^<\?xml\s[^<>?]*\?>/.exec(xml);
  const encoding = declaration && /\bencoding\s*=\s*["']([^"']*)["']/.exec(declaration[0])?.[1];
  if (encoding && !/^utf-?8$/i.test(encoding)) {
    return { ok: false, reason: 'malformed', detail: 'malformed: the XML declaration names an encoding other than UTF-8' };
  }
  if (xml.indexOf('<?', declaration ? declaration[0].length : 0) !== -1) return { ok: false, reason: 'pi', detail: 'malformed: processing instructions are not allowed' };
  const shape = shapeProblem(xml, declaration ? declaration[0].length : 0, limits);
  if (shape) return { ok: false, ...shape };
  return { ok: true, xml };
}

const LT = 0x3c;
const GT = 0x3e;
const SLASH = 0x2f;
const BANG = 0x21;
const QUOTE = 0x22;
const APOSTROPHE = 0x27;
const isNameEnd = (c: number) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === SLASH || c === GT;

/**
 * One pass over the tags, outside comments, CDATA sections and quoted attribute values, keeping
 * the open element names on a stack no deeper than the limit: linear in the input, whatever its
 * shape. End tags must match their start tags, so stray end tags cannot hide depth from the
 * count. Runs after the DTD and PI checks (no `<!` but comments and CDATA, no `<?` but the
 * declaration before `from`); the rest of well-formedness is still the parser's to judge.
 */
function shapeProblem(xml: string, from: number, limits: ShapeLimits): { reason: GuardRefusal; detail: string } | null {
  const malformed = (what: string) => ({ reason: 'malformed' as const, detail: `malformed: ${what}` });
  const open: string[] = [];
  let elements = 0;
  let i = xml.indexOf('<', from);
  while (i !== -1) {
    const next = xml.charCodeAt(i + 1);
    if (next === BANG) {
      // A comment or a CDATA section: the DTD check refused every other `<!`.
      const comment = xml.startsWith('<!--', i);
      const end = xml.indexOf(comment ? '-->' : ']]>', i + (comment ? 4 : 9));
      if (end === -1) return malformed(comment ? 'an unterminated comment' : 'an unterminated CDATA section');
      i = xml.indexOf('<', end + 3);
      continue;
    }
    if (next === SLASH) {
      const end = xml.indexOf('>', i + 2);
      if (end === -1) return malformed('an unterminated end tag');
      if (open.pop() !== xml.slice(i + 2, end).trimEnd()) return malformed('an end tag that does not match its start tag');
      i = xml.indexOf('<', end + 1);
      continue;
    }
    // A start tag: its name, then its end, skipping `>` inside quoted attribute values.
    let j = i + 1;
    while (j < xml.length && !isNameEnd(xml.charCodeAt(j))) j++;
    if (j === i + 1) return malformed('a tag without a name');
    const name = xml.slice(i + 1, j);
    let quote = 0;
    for (; j < xml.length; j++) {
      const c = xml.charCodeAt(j);
      if (quote) {
        if (c === quote) quote = 0;
      } else if (c === QUOTE || c === APOSTROPHE) {
        quote = c;
      } else if (c === GT || c === LT) {
        break;
      }
    }
    if (xml.charCodeAt(j) !== GT) return malformed('an unterminated start tag');
    if (++elements > limits.maxElements) return { reason: 'too_many_elements', detail: `too many elements: more than ${limits.maxElements}` };
    if (xml.charCodeAt(j - 1) !== SLASH) {
      open.push(name);
      if (open.length > limits.maxDepth) return { reason: 'too_deep', detail: `too deep: elements nested more than ${limits.maxDepth} levels` };
    }
    i = xml.indexOf('<', j + 1);
  }
  return open.length ? malformed('an element that is never closed') : null;
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
