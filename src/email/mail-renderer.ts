// Renders a mail from `templates/email/<name>.txt.njk` and `<name>.html.njk` (a theme's
// `templates/email/` first) in the recipient's language. The subject is the message
// `email.<name>.subject`. Text bodies are not HTML-escaped (they are plain text); HTML bodies are.
import path from 'node:path';
import nunjucks from 'nunjucks';
import type { MessageCatalogs } from '../i18n/messages.ts';

const REPO_ROOT = path.resolve(import.meta.dirname, '../..');

export interface RenderedMail {
  subject: string;
  text: string;
  html: string;
}

export class MailRenderer {
  readonly #text: nunjucks.Environment;
  readonly #html: nunjucks.Environment;
  readonly #catalogs: MessageCatalogs;
  readonly #brand: string;

  constructor(options: { catalogs: MessageCatalogs; brand: string; themeDir?: string; templatesDir?: string }) {
    const dirs = [options.templatesDir ?? path.join(REPO_ROOT, 'templates')];
    if (options.themeDir) dirs.unshift(path.resolve(options.themeDir, 'templates'), path.resolve(options.themeDir));
    const loader = () => new nunjucks.FileSystemLoader(dirs, { noCache: false });
    this.#text = new nunjucks.Environment(loader(), { autoescape: false, throwOnUndefined: false });
    this.#html = new nunjucks.Environment(loader(), { autoescape: true, throwOnUndefined: false });
    this.#catalogs = options.catalogs;
    this.#brand = options.brand;
  }

  /** The language a mail goes out in: a catalog's language, else English. */
  locale(requested: string | null | undefined): string {
    return this.#catalogs.negotiate({ uiLocales: requested ?? undefined });
  }

  render(name: string, locale: string, values: Record<string, unknown>): RenderedMail {
    const lang = this.locale(locale);
    const t = this.#catalogs.translator(lang);
    const context = { ...values, brand: this.#brand, lang, t };
    return {
      // A value with a line break could otherwise become a header of its own (the outbox refuses it too).
      subject: t(`email.${name}.subject`, { ...values, brand: this.#brand }).replace(/[\r\n\0]+/g, ' ').trim(),
      text: this.#text.render(`email/${name}.txt.njk`, context),
      html: this.#html.render(`email/${name}.html.njk`, context),
    };
  }
}
