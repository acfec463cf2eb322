// XML from outside (SAML messages, service provider metadata) is parsed only after the shared
// guard (src/saml/xml-guard.ts) refused document type declarations (so no entity can be declared,
// let alone expanded: no billion laughs, no external entities), processing instructions,
// oversized input and documents nested too deep or with too many elements. Parser errors are
// fatal. Then a few helpers read elements by namespace and position, never by searching the
// whole tree, so a value can only come from where the schema puts it.
import { DOMParser } from '@xmldom/xmldom';
import { guardXml, type Guarded } from '../saml/xml-guard.ts';

export type XmlRefusal = 'too_large' | 'dtd_forbidden' | 'malformed';

export class XmlRefused extends Error {
  readonly reason: XmlRefusal;
  /** The shared guard's own words when it refused the text (our wording, never the input's), for the audit trail. */
  readonly guard: string | null;

  constructor(reason: XmlRefusal, message: string, guard: string | null = null) {
    super(message);
    this.name = 'XmlRefused';
    this.reason = reason;
    this.guard = guard;
  }
}

/** A refusal of the shared guard as an XmlRefused: a depth or element-count bomb counts as too large. */
export function guardRefusal(guarded: Extract<Guarded, { ok: false }>): XmlRefused {
  const reason: XmlRefusal =
    guarded.reason === 'dtd' || guarded.reason === 'pi' ? 'dtd_forbidden' : guarded.reason === 'too_deep' || guarded.reason === 'too_many_elements' ? 'too_large' : guarded.reason;
  return new XmlRefused(reason, `XML refused: ${guarded.detail}`, guarded.detail);
}

export function parseSafeXml(xml: string, maxBytes: number): Document {
  const guarded = guardXml(Buffer.from(xml, 'utf8'), maxBytes);
  if (!guarded.ok) throw guardRefusal(guarded);
  const fail = (message: string) => {
    throw new XmlRefused('malformed', `XML parse error: ${String(message).slice(0, 200)}`);
  };
  let doc: Document;
  try {
    doc = new DOMParser({ errorHandler: { warning: () => {}, error: fail, fatalError: fail } }).parseFromString(guarded.xml, 'text/xml') as unknown as Document;
  } catch (err) {
    if (err instanceof XmlRefused) throw err;
    throw new XmlRefused('malformed', `XML parse error: ${(err as Error).message.slice(0, 200)}`);
  }
  if (!doc?.documentElement) throw new XmlRefused('malformed', 'XML without a root element');
  return doc;
}

/** The element children of `parent` with this namespace and local name, in document order. */
export function childElements(parent: Element, ns: string, localName: string): Element[] {
  const found: Element[] = [];
  for (let n = parent.firstChild; n; n = n.nextSibling) {
    if (n.nodeType === 1 && (n as Element).namespaceURI === ns && (n as Element).localName === localName) found.push(n as Element);
  }
  return found;
}

/** The single such child, or null; more than one is malformed. */
export function childElement(parent: Element, ns: string, localName: string): Element | null {
  const found = childElements(parent, ns, localName);
  if (found.length > 1) throw new XmlRefused('malformed', `more than one ${localName}`);
  return found[0] ?? null;
}

/** Every element child, whatever its name. */
export function allChildElements(parent: Element): Element[] {
  const found: Element[] = [];
  for (let n = parent.firstChild; n; n = n.nextSibling) if (n.nodeType === 1) found.push(n as Element);
  return found;
}

/** The element's text, trimmed (comments are not text, so `a<!---->b` reads as `ab`, as c14n signs it). */
export function textOf(el: Element | null): string | null {
  if (!el) return null;
  const text = (el.textContent ?? '').trim();
  return text === '' ? null : text;
}

/** An attribute without a namespace, or null when absent. */
export function attr(el: Element, name: string): string | null {
  return el.hasAttribute(name) ? el.getAttribute(name) : null;
}

/** Escapes text for an XML attribute value or element content. */
export function xmlEscape(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}
