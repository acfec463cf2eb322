// Renders the pages a person sees from nunjucks templates (autoescaped). A theme folder is
// searched first, so a theme can override any single template and inherit the rest.
import path from 'node:path';
import nunjucks from 'nunjucks';
import { LOCALES_DIR, MessageCatalogs, type Translate } from '../i18n/messages.ts';
import { isPageText } from '../i18n/page-text.ts';
import { escapeHtml } from './escape-html.ts';

const REPO_ROOT = path.resolve(import.meta.dirname, '../..');

export class PageRenderer {
  readonly #env: nunjucks.Environment;
  /** The message catalogs pages are rendered from (a theme's `locales/` first). */
  readonly catalogs: MessageCatalogs;

  /**
   * @param options.templatesDir built-in templates (default `<repo>/templates`)
   * @param options.themeDir a theme: its `templates/` folder (or the folder itself) is searched
   *   before the built-in templates; its `assets/` are served by staticAssets
   * @param options.title the product name shown on every page (`brand`)
   * @param options.defaultLocale the language when the browser names none we have (default `en`)
   */
  constructor(options: { templatesDir?: string; themeDir?: string; title: string; defaultLocale?: string }) {
    const dirs = [options.templatesDir ?? path.join(REPO_ROOT, 'templates')];
    if (options.themeDir) dirs.unshift(path.resolve(options.themeDir, 'templates'), path.resolve(options.themeDir));
    this.catalogs = new MessageCatalogs(options.themeDir ? [path.resolve(options.themeDir, 'locales'), LOCALES_DIR] : [LOCALES_DIR], { defaultLocale: options.defaultLocale });
    this.#env = new nunjucks.Environment(new nunjucks.FileSystemLoader(dirs, { noCache: false }), { autoescape: true, throwOnUndefined: false });
    this.#env.addGlobal('brand', options.title);
    this.#env.addGlobal('assetBase', '/assets');
    // Client metadata URLs end up in href/src: escaping alone would let `javascript:` through.
    this.#env.addFilter('safeUrl', safeUrl);
  }

  /** `context.lang` picks the language (sendPage negotiates it); without it, the default language. */
  render(name: string, context: Record<string, unknown>): string {
    const lang = typeof context.lang === 'string' ? context.lang : this.catalogs.defaultLocale;
    const t = (context.t as Translate | undefined) ?? this.catalogs.translator(lang);
    return this.#env.render(`${name}.njk`, { ...context, t, tStrong: marked(t, 'strong'), tCode: marked(t, 'code'), lang });
  }
}

/**
 * A message whose values are set off in `<tag>` ("Signed in as <strong>Alice</strong>"): the
 * message and each value are escaped, only the wrapping element is markup.
 */
function marked(t: Translate, tag: 'strong' | 'code') {
  return (key: string, values: Record<string, unknown> = {}) => {
    const slots: Record<string, string> = {};
    const names = Object.keys(values);
    for (const [i, name] of names.entries()) slots[name] = `\u0001${i}\u0002`;
    const message = escapeHtml(t(key, slots));
    const html = message.replace(/\u0001(\d+)\u0002/g, (_: string, i: string) => `<${tag}>${escapeHtml(valueText(t, values[names[Number(i)]!]))}</${tag}>`);
    return new nunjucks.runtime.SafeString(html);
  };
}

function valueText(t: Translate, value: unknown): string {
  if (isPageText(value)) return t(value);
  return value == null ? '' : String(value);
}

/** The URL if it is http(s) or a same-origin path, else '' (templates then omit the link). */
function safeUrl(value: unknown): string {
  if (typeof value !== 'string' || value === '') return '';
  if (value.startsWith('/') && !value.startsWith('//') && !value.startsWith('/\\')) return value;
  try {
    const protocol = new URL(value).protocol;
    return protocol === 'https:' || protocol === 'http:' ? value : '';
  } catch {
    return '';
  }
}
