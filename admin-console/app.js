// The console's entry: finishes a sign-in on /admin/callback, makes sure there is a token,
// asks the API who we are (403: "not an administrator"), then renders the layout and the page
// the URL names. Pages are modules under pages/, one per section, loaded when first visited:
// /admin/<section>/<rest...> renders pages/<section>.js with `segments` = the decoded rest.
import { html, useEffect, ErrorNotice, Loading, focusNextHeading } from './ui.js';
import { createRouter, usePageModule } from './common/router.js';
import { api, ApiError } from './api.js';
import * as auth from './auth.js';
import { signInWorked, signOut } from './auth.js';
import { bootConsole, ConsoleFrame } from './common/frame.js';

export const SECTIONS = [
  { id: 'dashboard', path: '/admin/', label: 'Dashboard' },
  { id: 'users', path: '/admin/users', label: 'Users' },
  { id: 'groups', path: '/admin/groups', label: 'Groups' },
  { id: 'clients', path: '/admin/clients', label: 'Clients' },
  { id: 'connectors', path: '/admin/connectors', label: 'Connectors' },
  { id: 'saml', path: '/admin/saml', label: 'SAML apps' },
  { id: 'mfa', path: '/admin/mfa', label: 'MFA' },
  { id: 'audit', path: '/admin/audit', label: 'Audit log' },
  { id: 'keys', path: '/admin/keys', label: 'Keys' },
];
const title = document.querySelector('meta[name="keybridge-title"]')?.content || 'Keybridge';

function parseLocation() {
  const parts = location.pathname.replace(/^\/admin\/?/, '').split('/').filter(Boolean);
  let segments;
  try {
    segments = parts.map((p) => decodeURIComponent(p));
  } catch {
    segments = null;
  }
  const section = parts.length ? parts[0] : 'dashboard';
  return { section, segments: segments ? segments.slice(1) : null, query: new URLSearchParams(location.search), key: location.pathname + location.search };
}

/** Goes to a console URL without reloading the page. `replace` keeps history clean for redirects. */
export const { navigate, useLocation } = createRouter({
  parse: parseLocation,
  owns: (a) => a.pathname.startsWith('/admin/') && !a.pathname.startsWith('/admin/api/'),
  onNavigate: focusNextHeading,
});

function PageHost({ loc, me }) {
  const known = SECTIONS.some((s) => s.id === loc.section);
  const state = usePageModule(loc.section, known && Boolean(loc.segments), (section) => import(`./pages/${section}.js`));
  useEffect(() => {
    scrollTo(0, 0);
  }, [loc.key]);
  if (!known || !loc.segments) return html`<section class="console-page"><h1 id="page-title" tabindex="-1">Page not found</h1><p>The console has no page at this address. <a href="/admin/">Go to the dashboard</a>.</p></section>`;
  if (state.error && state.id === loc.section) return html`<${ErrorNotice} error=${state.error} title="This page could not be loaded" />`;
  if (!state.Page || state.id !== loc.section) return html`<${Loading} />`;
  const { Page } = state;
  return html`<${Page} key=${loc.section} segments=${loc.segments} query=${loc.query} me=${me} navigate=${navigate} />`;
}

function Layout({ me }) {
  const loc = useLocation();
  return html`<${ConsoleFrame}
    brand=${{ href: '/admin/', site: title, suffix: 'admin' }}
    labels=${{ skip: 'Skip to content', menu: 'Menu', nav: 'Console', signOut: 'Sign out' }}
    items=${SECTIONS}
    current=${loc.section}
    locKey=${loc.key}
    user=${me.username ?? me.clientId}
    onSignOut=${signOut}
  ><${PageHost} loc=${loc} me=${me} /><//>`;
}

function NotAdmin({ error }) {
  document.title = 'Not an administrator · Admin console';
  return html`<main class="card not-admin">
    <h1>You are not an administrator</h1>
    <p>${error.message} Your sign-in worked, but your account is not in one of the administrator groups (<code>admin.groups</code> in the config) or is disabled.</p>
    <p>Ask an administrator to add you to an administrator group, or sign out and sign in with another account.</p>
    <div class="actions"><button type="button" class="primary" onClick=${() => signOut()}>Sign out</button></div>
  </main>`;
}

function Failure({ error }) {
  return html`<main class="card">
    <h1>The admin console could not start</h1>
    <${ErrorNotice} error=${error} />
    <div class="actions"><a class="button primary" href="/admin/">Try again</a></div>
  </main>`;
}

async function start() {
  let me;
  try {
    me = (await api('GET', '/me')).body;
  } catch (error) {
    if (error instanceof ApiError && error.status === 403) return html`<${NotAdmin} error=${error} />`;
    throw error;
  }
  signInWorked();
  return html`<${Layout} me=${me} />`;
}

bootConsole({ auth, start, failure: (error) => html`<${Failure} error=${error} />` });
