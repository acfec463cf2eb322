// The account console's entry: finishes a sign-in on /account/callback, makes sure there is a
// token, loads the person's account (GET /me), then renders the layout and the page the URL
// names. Pages are modules loaded when first visited: /account/<page> renders page-<page>.js.
import { html, useState, ErrorNotice, Loading } from './ui.js';
import { createRouter, usePageModule } from './common/router.js';
import { api } from './api.js';
import { t } from './i18n.js';
import * as auth from './auth.js';
import { signInWorked, signOut } from './auth.js';
import { bootConsole, ConsoleFrame } from './common/frame.js';

export const PAGES = [
  { id: 'profile', path: '/account/profile' },
  { id: 'sign-in', path: '/account/sign-in' },
  { id: 'sessions', path: '/account/sessions' },
  { id: 'log', path: '/account/log' },
  { id: 'data', path: '/account/data' },
];
const site = document.querySelector('meta[name="keybridge-title"]')?.content || 'Keybridge';

function parseLocation() {
  const id = location.pathname.replace(/^\/account\/?/, '').replace(/\/$/, '') || 'profile';
  return { id, query: new URLSearchParams(location.search), key: location.pathname + location.search };
}

export const { navigate, useLocation } = createRouter({ parse: parseLocation, owns: (a) => PAGES.some((p) => a.pathname === p.path) });

function PageHost({ loc, me, refresh }) {
  const known = PAGES.some((p) => p.id === loc.id);
  const state = usePageModule(loc.id, known, (id) => import(`./page-${id}.js`));
  if (!known) return html`<section class="console-page"><h1 id="page-title">${t('notFound.title')}</h1><p><a href="/account/profile">${t('notFound.back')}</a></p></section>`;
  if (state.error && state.id === loc.id) return html`<${ErrorNotice} error=${state.error} />`;
  if (!state.Page || state.id !== loc.id) return html`<${Loading} />`;
  const { Page } = state;
  return html`<${Page} key=${loc.id} query=${loc.query} me=${me} refresh=${refresh} navigate=${navigate} />`;
}

function Layout({ initial }) {
  const loc = useLocation();
  const [me, setMe] = useState(initial);
  const refresh = async () => setMe((await api('GET', '/me')).body);
  return html`<${ConsoleFrame}
    brand=${{ href: '/account/profile', site, suffix: t('nav.brand') }}
    labels=${{ skip: t('nav.skip'), menu: t('nav.menu'), nav: t('nav.label'), signOut: t('nav.signOut') }}
    items=${PAGES.map((p) => ({ ...p, label: t(`nav.${p.id}`) }))}
    current=${loc.id}
    locKey=${loc.key}
    user=${me.name || me.username}
    onSignOut=${signOut}
  ><${PageHost} loc=${loc} me=${me} refresh=${refresh} /><//>`;
}

function Failure({ error }) {
  return html`<main class="card">
    <h1>${t('failure.title')}</h1>
    <${ErrorNotice} error=${error} />
    <div class="actions"><a class="button primary" href="/account/">${t('failure.retry')}</a></div>
  </main>`;
}

async function start() {
  const me = (await api('GET', '/me')).body;
  signInWorked();
  if (location.pathname === '/account' || location.pathname === '/account/') history.replaceState(null, '', '/account/profile');
  return html`<${Layout} initial=${me} />`;
}

bootConsole({
  auth,
  landing: (next) => (next === '/account/' || next === '/account' ? '/account/profile' : next),
  start,
  failure: (error) => html`<${Failure} error=${error} />`,
});
