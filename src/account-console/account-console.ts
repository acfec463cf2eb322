// The account console at /account: a browser app (Preact + htm ES modules, no build step) where
// a person manages their own account. It signs in to Keybridge itself as the public first-party
// client `keybridge-account-console` (code + PKCE) and then talks only to the account API
// (/account/api, src/account-api) with the person's own token. This server side serves the
// page shell (in the person's language, with that language's messages as a JSON data block),
// the console's modules and their vendored libraries; it never reads storage.
//
// Routes (GET and HEAD only): /account, /account/<page>, /account/callback: the shell;
// /account/assets/<name>.js: the console's modules; /account/assets/vendor/<name>.js: Preact,
// its hooks and htm. /account/api/... and /account/link/... are answered elsewhere.
import path from 'node:path';
import type { Context, Next } from 'koa';
import type { Config } from '../config/schema.ts';
import type { MessageCatalogs } from '../i18n/messages.ts';
import { addCspSources, markPage } from '../http/security-headers.ts';
import { readAsset, sendAsset, type Asset } from '../http/static-assets.ts';

const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
export const ACCOUNT_CONSOLE_DIR = path.join(REPO_ROOT, 'account-console');
const MODULES = path.join(REPO_ROOT, 'node_modules');

export const ACCOUNT_CONSOLE_PATH = '/account';
export const ACCOUNT_CALLBACK_PATH = '/account/callback';
/** The console's OIDC client id (a config client with this id replaces the built-in one). */
export const ACCOUNT_CONSOLE_CLIENT_ID = 'keybridge-account-console';

// preact/hooks imports the bare specifier "preact", which a browser cannot resolve without an
// import map (an inline script the CSP forbids): it is rewritten to the sibling file.
const VENDOR: Record<string, { file: string; rewrite?: (source: string) => string }> = {
  'preact.js': { file: path.join(MODULES, 'preact/dist/preact.mjs') },
  'preact-hooks.js': { file: path.join(MODULES, 'preact/hooks/dist/hooks.mjs'), rewrite: (s) => s.replace(/from\s*"preact"/g, 'from"./preact.js"') },
  'htm.js': { file: path.join(MODULES, 'htm/dist/htm.mjs') },
};

const OWN_MODULE = /^[a-z][a-z0-9-]{0,63}\.js$/;
const PAGE_PATH = /^\/account(?:\/(?:callback|profile|sign-in|sessions|log|data))?\/?$/;
const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
/** JSON inside a <script type="application/json"> block: nothing in it may close the element. */
const scriptJson = (value: unknown) => JSON.stringify(value).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');

type TypedAsset = Asset & { type: string };

/** The console's OIDC client, registered by Keybridge itself (unless the config declares one with that id). */
export function accountConsoleClient(config: Config): Record<string, unknown> | null {
  if (!config.account.enabled || config.clients.some((c) => c.id === ACCOUNT_CONSOLE_CLIENT_ID)) return null;
  return {
    client_id: ACCOUNT_CONSOLE_CLIENT_ID,
    client_name: `${config.ui.title} account`,
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: [`${config.issuer}${ACCOUNT_CALLBACK_PATH}`],
    post_logout_redirect_uris: [`${config.issuer}${ACCOUNT_CONSOLE_PATH}/`],
    scope: 'openid profile email',
    first_party: true,
  };
}

export function accountConsole(options: { config: Config; catalogs: MessageCatalogs }) {
  const { config, catalogs } = options;
  const cache = new Map<string, TypedAsset>();
  // Each language's console messages (account.*) and the password policy's refusals.
  const messagesOf = new Map<string, Record<string, string>>();

  function messages(locale: string): Record<string, string> {
    let found = messagesOf.get(locale);
    if (!found) {
      const t = catalogs.translator(locale);
      const keys = new Set([...catalogs.keys('en'), ...catalogs.keys(locale)].filter((k) => k.startsWith('account.') || k.startsWith('password.problem.')));
      found = Object.fromEntries([...keys].sort().map((k) => [k, t(k)]));
      messagesOf.set(locale, found);
    }
    return found;
  }

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

  return async function serveAccountConsole(ctx: Context, next: Next) {
    const p = ctx.path;
    if (!config.account.enabled || (p !== ACCOUNT_CONSOLE_PATH && !p.startsWith(`${ACCOUNT_CONSOLE_PATH}/`))) return next();
    if (p === '/account/api' || p.startsWith('/account/api/') || p.startsWith('/account/link/')) return next();
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      ctx.status = 405;
      ctx.set('Allow', 'GET, HEAD');
      ctx.type = 'text/plain';
      ctx.body = 'method not allowed';
      return;
    }
    if (p.startsWith(`${ACCOUNT_CONSOLE_PATH}/assets/`)) {
      const name = p.slice(`${ACCOUNT_CONSOLE_PATH}/assets/`.length);
      let asset: TypedAsset | null = null;
      if (name.startsWith('vendor/')) {
        const vendor = Object.hasOwn(VENDOR, name.slice(7)) ? VENDOR[name.slice(7)] : undefined;
        if (vendor) asset = await load(name, vendor.file, 'text/javascript; charset=utf-8', vendor.rewrite);
      } else if (OWN_MODULE.test(name)) {
        asset = await load(name, path.join(ACCOUNT_CONSOLE_DIR, name), 'text/javascript; charset=utf-8');
      }
      if (!asset) return notFound(ctx);
      return sendAsset(ctx, asset, asset.type, 'no-cache');
    }
    if (!PAGE_PATH.test(p)) return notFound(ctx);
    const shell = await load('index.html', path.join(ACCOUNT_CONSOLE_DIR, 'index.html'), 'text/html; charset=utf-8');
    if (!shell) return notFound(ctx);
    // The language: ?ui_locales= (as a login would pass it), then Accept-Language.
    const uiLocales = typeof ctx.query.ui_locales === 'string' ? ctx.query.ui_locales.slice(0, 200) : undefined;
    const locale = catalogs.negotiate({ uiLocales, acceptLanguage: ctx.get('accept-language') });
    const t = catalogs.translator(locale);
    const body = shell.body
      .toString('utf8')
      .replaceAll('{{lang}}', escapeHtml(locale))
      .replaceAll('{{clientId}}', escapeHtml(ACCOUNT_CONSOLE_CLIENT_ID))
      .replaceAll('{{issuer}}', escapeHtml(config.issuer))
      .replaceAll('{{title}}', escapeHtml(t('account.title', { site: config.ui.title })))
      .replaceAll('{{site}}', escapeHtml(config.ui.title))
      .replaceAll('{{loading}}', escapeHtml(t('account.loading')))
      .replaceAll('{{noscript}}', escapeHtml(t('account.noscript')))
      .replace('{{messages}}', () => scriptJson({ locale, messages: messages(locale) }));
    markPage(ctx);
    addCspSources(ctx, 'script-src', "'self'");
    addCspSources(ctx, 'connect-src', "'self'");
    ctx.status = 200;
    ctx.type = shell.type;
    ctx.set('Content-Language', locale);
    ctx.vary('Accept-Language');
    ctx.body = body;
  };
}
