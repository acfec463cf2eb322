// Namespace-aware reading of SAML XML with @xmldom/xmldom. Elements are matched by namespace URI
// and local name, never by prefix, so `<foo:Assertion xmlns:foo="...assertion">` is an assertion
// and `<saml:Assertion xmlns:saml="urn:evil">` is not. Callers guard the text first (src/saml/xml-guard.ts).
import { DOMParser } from '@xmldom/xmldom';

/** Parses guarded XML; throws on anything not well-formed. */
export function parseXml(xml: string): Document {
  const fail = (message: string) => {
    throw new Error(`malformed XML: ${String(message).split('\n')[0].slice(0, 160)}`);
  };
  const doc = new DOMParser({ errorHandler: { warning: () => undefined, error: fail, fatalError: fail } }).parseFromString(xml, 'text/xml');
  if (!doc?.documentElement) fail('no document element');
  return doc;
}

export function isElement(node: Node | null | undefined, ns: string, localName: string): node is Element {
  return !!node && node.nodeType === 1 && (node as Element).namespaceURI === ns && (node as Element).localName === localName;
}

/** Direct child elements with this namespace and local name. */
export function children(parent: Node, ns: string, localName: string): Element[] {
  const out: Element[] = [];
  for (let n = parent.firstChild; n; n = n.nextSibling) if (isElement(n, ns, localName)) out.push(n);
  return out;
}

export function child(parent: Node, ns: string, localName: string): Element | null {
  return children(parent, ns, localName)[0] ?? null;
}

/** Every element with this namespace and local name below `root` (any depth). */
export function descendants(root: Document | Element, ns: string, localName: string): Element[] {
  return Array.from(root.getElementsByTagNameNS(ns, localName) as unknown as ArrayLike<Element>);
}

/** Every element below `root` (any depth), for ID uniqueness checks. */
export function allElements(root: Document | Element): Element[] {
  return Array.from(root.getElementsByTagName('*') as unknown as ArrayLike<Element>);
}

/** An attribute's value, or null when absent (xmldom returns '' for absent attributes). */
export function attr(el: Element, name: string): string | null {
  return el.hasAttribute(name) ? el.getAttribute(name) : null;
}

export function text(el: Element | null): string | null {
  if (!el) return null;
  const value = (el.textContent ?? '').trim();
  return value || null;
}

const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** An xs:dateTime attribute as epoch milliseconds; undefined when absent, NaN when malformed. */
export function instant(el: Element, name: string): number | undefined {
  const value = attr(el, name);
  if (value === null) return undefined;
  return DATE_TIME.test(value) ? Date.parse(value) : Number.NaN;
}

/** Attacker-influenced text for a log detail: one line, printable, short. */
export function shown(value: string | null | undefined, max = 120): string {
  if (value === null || value === undefined) return '(none)';
  const clean = value.replace(/[^\x20-\x7E]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}...` : clean;
}
