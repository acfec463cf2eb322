// The admin console at /admin: a browser app (Preact + htm ES modules, no build step) that signs
// in to Keybridge itself as the public client `keybridge-admin-console` (code + PKCE) and then
// talks only to the admin REST API with the administrator's token. This server side does nothing
// but serve the page shell, its scripts and their vendored libraries: it never reads storage.
//
// Routes (GET and HEAD only):
// - /admin, /admin/<page path>, /admin/callback: the shell (index.html), with a strict CSP;
// - /admin/assets/<name>.js and /admin/assets/pages/<name>.js: the console's own modules;
// - /admin/assets/vendor/<name>.js: Preact, its hooks, htm and uPlot from node_modules.
// /admin/api/... belongs to the admin API and is never answered here.
import path from 'node:path';
import type { Context, Next } from 'koa';
import type { Config } from '../config/schema.ts';
import { addCspSources, markPage } from '../http/security-headers.ts';
import { readAsset, sendAsset, type Asset } from '../http/static-assets.ts';

const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
export const CONSOLE_DIR = path.join(REPO_ROOT, 'admin-console');
const MODULES = path.join(REPO_ROOT, 'node_modules');

/** Where the console lives and where Keybridge sends the administrator back after sign-in. */
export const CONSOLE_PATH = '/admin';
export const CONSOLE_CALLBACK_PATH = '/admin/callback';

// Vendored browser modules. preact/hooks imports the bare specifier "preact", which a browser
// cannot resolve without an import map (an inline script the CSP forbids): it is rewritten to
// the sibling file.
const VENDOR: Record<string, { file: string; rewrite?: (source: string) => string }> = {
  'preact.js': { file: path.join(MODULES, 'preact/dist/preact.mjs') },
  'preact-hooks.js': { file: path.join(MODULES, 'preact/hooks/dist/hooks.mjs'), rewrite: (s) => s.replace(/from\s*"preact"/g, 'from"./preact.js"') },
  'htm.js': { file: path.join(MODULES, 'htm/dist/htm.mjs') },
  'uplot.js': { file: path.join(MODULES, 'uplot/dist/uPlot.esm.js') },
};

const OWN_MODULE = /^(?:pages\/)?[a-z][a-z0-9-]{0,63}\.js$/;
// A page path: letters, digits and a few separators; ids are percent-encoded by the console.
const PAGE_PATH = /^\/admin(?:\/(?!api(?:\/|$)|assets(?:\/|$))[A-Za-z0-9._~%@:+-]*(?:\/[A-Za-z0-9._~%@:+-]*)*)?\/?$/;

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// `.` and `..` segments (also percent-encoded) are never a console page.
const DOT_SEGMENT = /(?:^|\/)(?:\.|%2e){1,2}(?:\/|$)/i;

type TypedAsset = Asset & { type: string };

/** The console's own OIDC client, registered by Keybridge itself (unless the config declares one with that id). */
export function adminConsoleClient(config: Config): Record<string, unknown> | null {
  const clientId = config.admin.consoleClients[0];
  if (!config.admin.console.enabled || !clientId || config.clients.some((c) => c.id === clientId)) return null;
  return {
    client_id: clientId,
    client_name: `${config.ui.title} admin console`,
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: [`${config.issuer}${CONSOLE_CALLBACK_PATH}`],
    post_logout_redirect_uris: [`${config.issuer}${CONSOLE_PATH}/`],
    scope: 'openid profile email',
    first_party: true,
  };
}

export function adminConsole(options: { config: Config }) {
  const enabled = options.config.admin.console.enabled;
  const clientId = options.config.admin.consoleClients[0] ?? '';
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

  const notFound = (ctx: Context) => {
    ctx.status = 404;
    ctx.type = 'text/plain';
    ctx.body = 'not found';
  };

  return async function serveAdminConsole(ctx: Context, next: Next) {
    const p = ctx.path;
    if (!enabled || (p !== CONSOLE_PATH && !p.startsWith(`${CONSOLE_PATH}/`)) || p.startsWith(`${CONSOLE_PATH}/api/`) || p === `${CONSOLE_PATH}/api`) return next();
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      ctx.status = 405;
      ctx.set('Allow', 'GET, HEAD');
      ctx.type = 'text/plain';
      ctx.body = 'method not allowed';
      return;
    }
    if (p.startsWith(`${CONSOLE_PATH}/assets/`)) {
      const name = p.slice(`${CONSOLE_PATH}/assets/`.length);
      let asset: TypedAsset | null = null;
      if (name.startsWith('vendor/')) {
        const vendor = Object.hasOwn(VENDOR, name.slice(7)) ? VENDOR[name.slice(7)] : undefined;
        if (vendor) asset = await load(name, vendor.file, 'text/javascript; charset=utf-8', vendor.rewrite);
      } else if (OWN_MODULE.test(name)) {
        asset = await load(name, path.join(CONSOLE_DIR, name), 'text/javascript; charset=utf-8');
      }
      if (!asset) return notFound(ctx);
      // Revalidated on every load: the console changes with each Keybridge release.
      return sendAsset(ctx, asset, asset.type, 'no-cache');
    }
    if (!PAGE_PATH.test(p) || DOT_SEGMENT.test(p)) return notFound(ctx);
    const shell = await load('index.html', path.join(CONSOLE_DIR, 'index.html'), 'text/html; charset=utf-8', (s) => s.replaceAll('{{clientId}}', escapeHtml(clientId)).replaceAll('{{title}}', escapeHtml(options.config.ui.title)).replaceAll('{{issuer}}', escapeHtml(options.config.issuer)));
    if (!shell) return notFound(ctx);
    markPage(ctx);
    addCspSources(ctx, 'script-src', "'self'");
    addCspSources(ctx, 'connect-src', "'self'");
    ctx.status = 200;
    ctx.type = shell.type;
    ctx.body = shell.body;
  };
}
