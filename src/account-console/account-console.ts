// The account console at /account: a browser app (Preact + htm ES modules, no build step) where
// a person manages their own account. It signs in to Keybridge itself as the public first-party
// client `keybridge-account-console` (code + PKCE) and then talks only to the account API
// (/account/api, src/account-api) with the person's own token. This server side serves the
// page shell (in the person's language, with that language's messages as a JSON data block),
// the console's modules and their vendored libraries; it never reads storage.
//
// Served by src/http/console-shell.ts: /account, /account/<page>, /account/callback: the shell;
// /account/assets/<name>.js: the console's modules; /account/assets/common/<name>.js: the
// modules it shares with the admin console; /account/assets/vendor/<name>.js: Preact, its hooks
// and htm. /account/api/... and /account/link/... are answered elsewhere.
import path from 'node:path';
import type { Context } from 'koa';
import type { Config } from '../config/schema.ts';
import type { MessageCatalogs } from '../i18n/messages.ts';
import { consoleShell, type ShellValues } from '../http/console-shell.ts';
import { escapeHtml } from '../http/escape-html.ts';

export const ACCOUNT_CONSOLE_DIR = path.resolve(import.meta.dirname, '../../account-console');

export const ACCOUNT_CONSOLE_PATH = '/account';
export const ACCOUNT_CALLBACK_PATH = '/account/callback';
/** The console's OIDC client id (a config client with this id replaces the built-in one). */
export const ACCOUNT_CONSOLE_CLIENT_ID = 'keybridge-account-console';

const OWN_MODULE = /^[a-z][a-z0-9-]{0,63}\.js$/;
const PAGE_PATH = /^\/account(?:\/(?:callback|profile|sign-in|sessions|log|data))?\/?$/;
/** JSON inside a <script type="application/json"> block: nothing in it may close the element. */
const scriptJson = (value: unknown) => JSON.stringify(value).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');

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
  // Each language's console messages (account.*) and the password policy's refusals.
  const headOf = new Map<string, string>();

  /** The console's messages in a language, as the JSON block the app reads (made once per language). */
  function messagesHead(locale: string): string {
    let found = headOf.get(locale);
    if (!found) {
      const t = catalogs.translator(locale);
      const keys = new Set([...catalogs.keys('en'), ...catalogs.keys(locale)].filter((k) => k.startsWith('account.') || k.startsWith('password.problem.')));
      const messages = Object.fromEntries([...keys].sort().map((k) => [k, t(k)]));
      found = `  <script type="application/json" id="keybridge-messages">${scriptJson({ locale, messages })}</script>\n`;
      headOf.set(locale, found);
    }
    return found;
  }

  // The language: ?ui_locales= (as a login would pass it), then Accept-Language.
  function shell(ctx: Context): ShellValues {
    const uiLocales = typeof ctx.query.ui_locales === 'string' ? ctx.query.ui_locales.slice(0, 200) : undefined;
    const locale = catalogs.negotiate({ uiLocales, acceptLanguage: ctx.get('accept-language') });
    const t = catalogs.translator(locale);
    ctx.set('Content-Language', locale);
    ctx.vary('Accept-Language');
    return {
      lang: locale,
      title: t('account.title', { site: config.ui.title }),
      site: config.ui.title,
      clientId: ACCOUNT_CONSOLE_CLIENT_ID,
      issuer: config.issuer,
      loading: t('account.loading'),
      noscriptHtml: `<p>${escapeHtml(t('account.noscript'))}</p>`,
      // The console's messages in this language, as data (no inline script runs).
      headHtml: messagesHead(locale),
    };
  }

  return consoleShell({
    enabled: config.account.enabled,
    base: ACCOUNT_CONSOLE_PATH,
    dir: ACCOUNT_CONSOLE_DIR,
    vendor: ['preact.js', 'preact-hooks.js', 'htm.js'],
    ownModule: OWN_MODULE,
    isPage: (p) => PAGE_PATH.test(p),
    passes: (p) => p === '/account/api' || p.startsWith('/account/api/') || p.startsWith('/account/link/'),
    shell,
  });
}
