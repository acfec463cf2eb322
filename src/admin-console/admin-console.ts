// The admin console at /admin: a browser app (Preact + htm ES modules, no build step) that signs
// in to Keybridge itself as the public client `keybridge-admin-console` (code + PKCE) and then
// talks only to the admin REST API with the administrator's token. This server side does nothing
// but serve the page shell, its scripts and their vendored libraries: it never reads storage.
//
// Served by src/http/console-shell.ts: /admin, /admin/<page path>, /admin/callback: the shell;
// /admin/assets/<name>.js and /admin/assets/pages/<name>.js: the console's own modules;
// /admin/assets/common/<name>.js: the modules it shares with the account console;
// /admin/assets/vendor/<name>.js: Preact, its hooks, htm and uPlot. /admin/api/... belongs to
// the admin API and is never answered here.
import path from 'node:path';
import type { Config } from '../config/schema.ts';
import { consoleShell } from '../http/console-shell.ts';

export const CONSOLE_DIR = path.resolve(import.meta.dirname, '../../admin-console');

/** Where the console lives and where Keybridge sends the administrator back after sign-in. */
export const CONSOLE_PATH = '/admin';
export const CONSOLE_CALLBACK_PATH = '/admin/callback';

const OWN_MODULE = /^(?:pages\/)?[a-z][a-z0-9-]{0,63}\.js$/;
// A page path: letters, digits and a few separators; ids are percent-encoded by the console.
const PAGE_PATH = /^\/admin(?:\/(?!api(?:\/|$)|assets(?:\/|$))[A-Za-z0-9._~%@:+-]*(?:\/[A-Za-z0-9._~%@:+-]*)*)?\/?$/;
// `.` and `..` segments (also percent-encoded) are never a console page.
const DOT_SEGMENT = /(?:^|\/)(?:\.|%2e){1,2}(?:\/|$)/i;
const NOSCRIPT = '<h1>JavaScript is needed</h1><p>The admin console is a browser app on the admin API; turn on JavaScript for this site, or use the API (<a href="/admin/api/docs">reference</a>).</p>';

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
  const { config } = options;
  const clientId = config.admin.consoleClients[0] ?? '';
  return consoleShell({
    enabled: config.admin.console.enabled,
    base: CONSOLE_PATH,
    dir: CONSOLE_DIR,
    vendor: ['preact.js', 'preact-hooks.js', 'htm.js', 'uplot.js'],
    ownModule: OWN_MODULE,
    isPage: (p) => PAGE_PATH.test(p) && !DOT_SEGMENT.test(p),
    passes: (p) => p === `${CONSOLE_PATH}/api` || p.startsWith(`${CONSOLE_PATH}/api/`),
    shell: () => ({
      lang: 'en',
      title: `Admin console · ${config.ui.title}`,
      site: config.ui.title,
      clientId,
      issuer: config.issuer,
      loading: 'Loading the admin console…',
      noscriptHtml: NOSCRIPT,
    }),
  });
}
