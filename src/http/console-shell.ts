// What the admin console (/admin) and the account console (/account) share on the server side:
// both are browser apps (Preact + htm ES modules, no build step) whose server part only serves
// the page shell with a strict CSP, the console's own modules, the modules both consoles use
// (console-common/, under <base>/assets/common/) and vendored libraries from node_modules. It
// never reads storage. Each console says where it lives, which page paths it has, which paths
// under it belong to someone else, and fills its shell's placeholders.
//
// Routes (GET and HEAD only; anything else is a 405):
// - <base>/assets/<name>.js: the console's own modules (ownModule decides which names);
// - <base>/assets/common/<name>.js: the shared modules;
// - <base>/assets/vendor/<name>.js: the vendored libraries the console asked for;
// - every page path (isPage): the shell, console-common/index.html with the console's values.
import path from 'node:path';
import type { Context, Next } from 'koa';
import { addCspSources, markPage } from './security-headers.ts';
import { readAsset, sendAsset, type Asset } from './static-assets.ts';
import { escapeHtml } from './escape-html.ts';

const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
const MODULES = path.join(REPO_ROOT, 'node_modules');
/** The browser modules both consoles load. */
export const COMMON_CONSOLE_DIR = path.join(REPO_ROOT, 'console-common');

// preact/hooks imports the bare specifier "preact", which a browser cannot resolve without an
// import map (an inline script the CSP forbids): it is rewritten to the sibling file.
const VENDOR = {
  'preact.js': { file: path.join(MODULES, 'preact/dist/preact.mjs') },
  'preact-hooks.js': { file: path.join(MODULES, 'preact/hooks/dist/hooks.mjs'), rewrite: (s: string) => s.replace(/from\s*"preact"/g, 'from"./preact.js"') },
  'htm.js': { file: path.join(MODULES, 'htm/dist/htm.mjs') },
  'uplot.js': { file: path.join(MODULES, 'uplot/dist/uPlot.esm.js') },
} satisfies Record<string, { file: string; rewrite?: (source: string) => string }>;
export type VendorModule = keyof typeof VENDOR;

// What every shell asks the browser to fetch at once: the module graph below app.js, which would
// otherwise be discovered one import at a time.
const PRELOADS = ['vendor/preact.js', 'vendor/preact-hooks.js', 'vendor/htm.js', 'ui.js', 'api.js', 'auth.js', 'common/pkce-sign-in.js', 'common/api-call.js', 'common/router.js', 'common/use-load.js', 'common/frame.js'];

const COMMON_MODULE = /^[a-z][a-z0-9-]{0,63}\.js$/;
const JS = 'text/javascript; charset=utf-8';


type TypedAsset = Asset & { type: string };

export interface ConsoleShellOptions {
  enabled: boolean;
  /** Where the console lives, e.g. `/admin`. */
  base: string;
  /** The console's folder: its own modules, app.js (the entry), ui.js, api.js and auth.js. */
  dir: string;
  vendor: readonly VendorModule[];
  /** Which names under <base>/assets/ are the console's own modules. */
  ownModule: RegExp;
  /** Whether a path (under base, not an asset) is one of the console's pages. */
  isPage: (path: string) => boolean;
  /** Paths under base that other middleware answers (the console's API, ...). */
  passes: (path: string) => boolean;
  /** What the shell says for this request (the console may also set headers). */
  shell: (ctx: Context) => ShellValues;
}

export interface ShellValues {
  lang: string;
  /** The document title. */
  title: string;
  /** The site's name (config ui.title). */
  site: string;
  clientId: string;
  issuer: string;
  /** The line shown until the app renders. */
  loading: string;
  /** HTML: what the page says without JavaScript. */
  noscriptHtml: string;
  /** HTML: more elements in the head, before the entry script. */
  headHtml?: string;
}

export function consoleShell(options: ConsoleShellOptions) {
  const { base } = options;
  const assets = `${base}/assets/`;
  const cache = new Map<string, TypedAsset>();

  async function load(key: string, file: string, type: string, rewrite?: (s: string) => string): Promise<TypedAsset | null> {
    const hit = cache.get(key);
    if (hit) return hit;
    const read = await readAsset(file, rewrite);
    if (!read) return null;
    const asset = { ...read, type };
    cache.set(key, asset);
    return asset;
  }

  async function module(name: string): Promise<TypedAsset | null> {
    if (name.startsWith('vendor/')) {
      const vendor = name.slice('vendor/'.length) as VendorModule;
      if (!options.vendor.includes(vendor) || !Object.hasOwn(VENDOR, vendor)) return null;
      const found: { file: string; rewrite?: (s: string) => string } = VENDOR[vendor];
      return load(name, found.file, JS, found.rewrite);
    }
    if (name.startsWith('common/')) {
      const common = name.slice('common/'.length);
      return COMMON_MODULE.test(common) ? load(name, path.join(COMMON_CONSOLE_DIR, common), JS) : null;
    }
    return options.ownModule.test(name) ? load(name, path.join(options.dir, name), JS) : null;
  }

  const notFound = (ctx: Context) => {
    ctx.status = 404;
    ctx.type = 'text/plain';
    ctx.body = 'not found';
  };

  return async function serveConsole(ctx: Context, next: Next) {
    const p = ctx.path;
    if (!options.enabled || (p !== base && !p.startsWith(`${base}/`)) || options.passes(p)) return next();
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      ctx.status = 405;
      ctx.set('Allow', 'GET, HEAD');
      ctx.type = 'text/plain';
      ctx.body = 'method not allowed';
      return;
    }
    if (p.startsWith(assets)) {
      const asset = await module(p.slice(assets.length));
      if (!asset) return notFound(ctx);
      // Revalidated on every load: the consoles change with each Keybridge release.
      return sendAsset(ctx, asset, asset.type, 'no-cache');
    }
    if (!options.isPage(p)) return notFound(ctx);
    const shell = await load('index.html', path.join(COMMON_CONSOLE_DIR, 'index.html'), 'text/html; charset=utf-8');
    if (!shell) return notFound(ctx);
    const values = options.shell(ctx);
    const text: Record<string, string> = { lang: values.lang, title: values.title, site: values.site, clientId: values.clientId, issuer: values.issuer, loading: values.loading, base };
    const body = shell.body.toString('utf8').replace(/\{\{([a-zA-Z]+)\}\}/g, (placeholder, name: string) => {
      if (name === 'noscript') return values.noscriptHtml;
      if (name === 'head') return values.headHtml ?? '';
      if (name === 'preloads') return PRELOADS.map((m) => `  <link rel="modulepreload" href="${escapeHtml(`${assets}${m}`)}">\n`).join('');
      return Object.hasOwn(text, name) ? escapeHtml(text[name]!) : placeholder;
    });
    markPage(ctx);
    addCspSources(ctx, 'script-src', "'self'");
    addCspSources(ctx, 'connect-src', "'self'");
    ctx.status = 200;
    ctx.type = shell.type;
    ctx.body = body;
  };
}
