// Renders the pages a person sees from nunjucks templates (autoescaped). A theme folder is
// searched first, so a theme can override any single template and inherit the rest.
import path from 'node:path';
import nunjucks from 'nunjucks';
import { LOCALES_DIR, MessageCatalogs } from '../i18n/messages.ts';

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
   */
  constructor(options: { templatesDir?: string; themeDir?: string; title: string }) {
    const dirs = [options.templatesDir ?? path.join(REPO_ROOT, 'templates')];
    if (options.themeDir) dirs.unshift(path.resolve(options.themeDir, 'templates'), path.resolve(options.themeDir));
    this.catalogs = new MessageCatalogs(options.themeDir ? [path.resolve(options.themeDir, 'locales'), LOCALES_DIR] : [LOCALES_DIR]);
    this.#env = new nunjucks.Environment(new nunjucks.FileSystemLoader(dirs, { noCache: false }), { autoescape: true, throwOnUndefined: false });
    this.#env.addGlobal('brand', options.title);
    this.#env.addGlobal('assetBase', '/assets');
    // Client metadata URLs end up in href/src: escaping alone would let `javascript:` through.
    this.#env.addFilter('safeUrl', safeUrl);
  }

  render(name: string, context: Record<string, unknown>): string {
    return this.#env.render(`${name}.njk`, context);
  }
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
