// Message catalogs for every page and mail a person sees. A catalog is a folder per language
// under `locales/` (and, first, under a theme's `locales/`), holding one JSON file per area:
// `locales/de/login.json` with `{ "title": "Anmelden" }` is the message `login.title` in German.
// A message may name values in braces, `{client}`, filled from the caller's values; the result
// is plain text (templates escape it). A key missing in a language falls back to English, then
// to the key itself, so a half-translated language still renders every page.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { isPageText, type PageText } from './page-text.ts';

const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
export const LOCALES_DIR = path.join(REPO_ROOT, 'locales');
export const DEFAULT_LOCALE = 'en';

/**
 * A message in one language. `key` is a catalog key, or a PageText carrying its key and values.
 * A string that is no key comes back as it is (a page given ready-made text still renders).
 */
export type Translate = (key: string | PageText, values?: Record<string, unknown>) => string;

export class MessageCatalogs {
  readonly #catalogs = new Map<string, Map<string, string>>();
  readonly #translators = new Map<string, Translate>();
  /** The languages with a catalog, English first. */
  readonly locales: readonly string[];

  /** The language used when neither ui_locales nor Accept-Language names one we have. */
  readonly defaultLocale: string;

  /**
   * @param dirs folders holding `<lang>/<area>.json`, earlier ones overriding later ones
   * @param options.defaultLocale the fallback language of negotiation (default English); it
   *   must have a catalog. Messages missing in any language still fall back to English.
   */
  constructor(dirs: readonly string[] = [LOCALES_DIR], options: { defaultLocale?: string } = {}) {
    for (const dir of [...dirs].reverse()) {
      for (const lang of listDirs(dir)) {
        if (!LANGUAGE_TAG.test(lang)) continue;
        const catalog = this.#catalogs.get(lang.toLowerCase()) ?? new Map<string, string>();
        for (const file of readdirSync(path.join(dir, lang)).filter((f) => f.endsWith('.json')).sort()) {
          const area = file.slice(0, -'.json'.length);
          const entries = JSON.parse(readFileSync(path.join(dir, lang, file), 'utf8')) as Record<string, unknown>;
          for (const [key, text] of Object.entries(entries)) {
            if (typeof text !== 'string') throw new Error(`${path.join(dir, lang, file)}: message "${key}" is not a string`);
            catalog.set(`${area}.${key}`, text);
          }
        }
        this.#catalogs.set(lang.toLowerCase(), catalog);
      }
    }
    if (!this.#catalogs.has(DEFAULT_LOCALE)) this.#catalogs.set(DEFAULT_LOCALE, new Map());
    this.locales = [DEFAULT_LOCALE, ...[...this.#catalogs.keys()].filter((l) => l !== DEFAULT_LOCALE).sort()];
    const wanted = options.defaultLocale?.toLowerCase() ?? DEFAULT_LOCALE;
    if (!this.#catalogs.has(wanted)) throw new Error(`ui.defaultLocale: there is no catalog for "${options.defaultLocale}" (have: ${this.locales.join(', ')})`);
    this.defaultLocale = wanted;
  }

  has(locale: string, key: string): boolean {
    return this.#catalogs.get(locale)?.has(key) ?? false;
  }

  /** The keys of a language's catalog (tests compare languages for completeness). */
  keys(locale: string): string[] {
    return [...(this.#catalogs.get(locale)?.keys() ?? [])].sort();
  }

  /** The translator of a language (made once per language: pages ask for it on every render). */
  translator(locale: string): Translate {
    const cached = this.#translators.get(locale);
    if (cached) return cached;
    const made = this.#makeTranslator(locale);
    // Only languages with a catalog are kept: a request cannot grow the cache with made-up tags.
    if (this.#catalogs.has(locale)) this.#translators.set(locale, made);
    return made;
  }

  #makeTranslator(locale: string): Translate {
    const own = this.#catalogs.get(locale);
    const fallback = this.#catalogs.get(DEFAULT_LOCALE)!;
    const lookup = (key: string) => own?.get(key) ?? fallback.get(key);
    let plurals: Intl.PluralRules | undefined;
    const translate: Translate = (keyOrText, givenValues) => {
      const key = isPageText(keyOrText) ? keyOrText.key : String(keyOrText ?? '');
      const values = isPageText(keyOrText) ? (keyOrText.values ?? givenValues) : givenValues;
      let message = lookup(key);
      const count = typeof values?.count === 'string' && /^\d{1,15}$/.test(values.count) ? Number(values.count) : values?.count;
      if (message === undefined && typeof count === 'number' && Number.isFinite(count)) {
        // Plural forms: `<key>.one`, `<key>.other`, ... by the language's CLDR rules.
        plurals ??= new Intl.PluralRules(own ? locale : DEFAULT_LOCALE);
        message = lookup(`${key}.${plurals.select(count)}`) ?? lookup(`${key}.other`);
      }
      message ??= key;
      if (!values) return message;
      // Values that are texts themselves ("in {wait}") are translated in the same language.
      const filled: Record<string, unknown> = {};
      for (const [name, value] of Object.entries(values)) filled[name] = isPageText(value) ? translate(value) : value;
      return fill(message, filled);
    };
    return translate;
  }

  /**
   * The language to answer in: the first of `ui_locales` (space-separated, in order of
   * preference) that has a catalog, else the best Accept-Language match, else English. A tag
   * matches its own catalog or, failing that, its primary language (`de-AT` -> `de`).
   */
  negotiate(request: { uiLocales?: unknown; acceptLanguage?: unknown }): string {
    if (typeof request.uiLocales === 'string') {
      for (const tag of request.uiLocales.split(' ').slice(0, 20)) {
        const found = this.#match(tag);
        if (found) return found;
      }
    }
    if (typeof request.acceptLanguage === 'string') {
      for (const tag of parseAcceptLanguage(request.acceptLanguage)) {
        const found = this.#match(tag);
        if (found) return found;
      }
    }
    return this.defaultLocale;
  }

  #match(tag: string): string | null {
    if (!LANGUAGE_TAG.test(tag)) return null;
    const lower = tag.toLowerCase();
    if (this.#catalogs.has(lower)) return lower;
    const primary = lower.split('-')[0]!;
    return this.#catalogs.has(primary) ? primary : null;
  }
}

const LANGUAGE_TAG = /^[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8}){0,4}$/;

/** Accept-Language tags by preference (q-values, then order), `*` and q=0 left out. */
export function parseAcceptLanguage(header: string): string[] {
  const ranked: { tag: string; q: number; i: number }[] = [];
  for (const [i, part] of header.slice(0, 1000).split(',').slice(0, 30).entries()) {
    const [tag = '', ...params] = part.trim().split(';');
    let q = 1;
    for (const p of params) {
      const m = /^\s*q\s*=\s*([01](?:\.\d{0,3})?)\s*$/.exec(p);
      if (m) q = Number(m[1]);
    }
    if (tag && tag !== '*' && q > 0) ranked.push({ tag: tag.trim(), q, i });
  }
  return ranked.sort((a, b) => b.q - a.q || a.i - b.i).map((r) => r.tag);
}

function fill(text: string, values: Record<string, unknown>): string {
  return text.replace(/\{([A-Za-z0-9_]+)\}/g, (whole, name: string) => (Object.hasOwn(values, name) && values[name] != null ? String(values[name]) : whole));
}

function listDirs(dir: string): string[] {
  try {
    return readdirSync(dir).filter((name) => statSync(path.join(dir, name)).isDirectory());
  } catch {
    return [];
  }
}
