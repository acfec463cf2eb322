// Renders the pages a person sees from nunjucks templates (autoescaped). A theme folder is
// searched first, so a theme can override any single template.
import path from 'node:path';
import nunjucks from 'nunjucks';

const REPO_ROOT = path.resolve(import.meta.dirname, '../..');

export class PageRenderer {
  readonly #env: nunjucks.Environment;

  constructor(options: { templatesDir?: string; themeDir?: string; title: string }) {
    const dirs = [options.templatesDir ?? path.join(REPO_ROOT, 'templates')];
    if (options.themeDir) dirs.unshift(path.resolve(options.themeDir, 'templates'), path.resolve(options.themeDir));
    this.#env = new nunjucks.Environment(new nunjucks.FileSystemLoader(dirs, { noCache: false }), { autoescape: true, throwOnUndefined: false });
    this.#env.addGlobal('brand', options.title);
    this.#env.addGlobal('assetBase', '/assets');
  }

  render(name: string, context: Record<string, unknown>): string {
    return this.#env.render(`${name}.njk`, context);
  }
}
