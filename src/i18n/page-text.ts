// Text that code puts on a page (an error, a notice, a heading) travels as a catalog key with its
// values and is translated only when the page is rendered, in the page's language. A value may
// itself be a PageText ("Try again in {wait}" with wait = "8 seconds"), translated the same way.
// A message with a numeric `count` may have plural forms `<key>.one`, `<key>.other` (and the
// other CLDR categories a language needs: `.few`, `.many`...), chosen by Intl.PluralRules.

export interface PageText {
  key: string;
  values?: Record<string, unknown>;
}

/** A page text for `key` (a message in `locales/<lang>/<area>.json`). */
export function text(key: string, values?: Record<string, unknown>): PageText {
  return values ? { key, values } : { key };
}

export function isPageText(value: unknown): value is PageText {
  return typeof value === 'object' && value !== null && typeof (value as PageText).key === 'string';
}
