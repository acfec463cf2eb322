// The account console's entry: finishes a sign-in on /account/callback, makes sure there is a
// token, loads the person's account (GET /me), then renders the layout and the page the URL
// names. Pages are modules loaded when first visited: /account/<page> renders page-<page>.js.
import { html, render, useEffect, useState, ErrorNotice, Loading } from './ui.js';
import { createRouter, usePageModule } from './common/router.js';
import { api } from './api.js';
import { t } from './i18n.js';
import { CALLBACK_PATH, completeSignIn, currentToken, signIn, signInWorked, signOut } from './auth.js';

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
  const [menuOpen, setMenuOpen] = useState(false);
  useEffect(() => setMenuOpen(false), [loc.key]);
  const refresh = async () => setMe((await api('GET', '/me')).body);
  return html`<div class="console-shell">
    <a class="skip-link" href="#content">${t('nav.skip')}</a>
    <header class="console-header">
      <a class="console-brand" href="/account/profile"><span class="brand-mark" aria-hidden="true"></span>${site} <span class="muted">${t('nav.brand')}</span></a>
      <button type="button" class="secondary menu-toggle" aria-expanded=${menuOpen ? 'true' : 'false'} aria-controls="console-nav" onClick=${() => setMenuOpen(!menuOpen)}>${t('nav.menu')}</button>
      <nav id="console-nav" class=${`console-nav${menuOpen ? ' open' : ''}`} aria-label=${t('nav.label')}>
        <ul>${PAGES.map((p) => html`<li><a href=${p.path} aria-current=${loc.id === p.id ? 'page' : undefined}>${t(`nav.${p.id}`)}</a></li>`)}</ul>
      </nav>
      <div class="console-user">
        <span class="muted" data-testid="signed-in-as">${me.name || me.username}</span>
        <button type="button" class="secondary" onClick=${() => signOut()}>${t('nav.signOut')}</button>
      </div>
    </header>
    <main id="content" class="console-main"><${PageHost} loc=${loc} me=${me} refresh=${refresh} /></main>
  </div>`;
}

function Failure({ error }) {
  return html`<main class="card">
    <h1>${t('failure.title')}</h1>
    <${ErrorNotice} error=${error} />
    <div class="actions"><a class="button primary" href="/account/">${t('failure.retry')}</a></div>
  </main>`;
}

async function boot() {
  const root = document.getElementById('app');
  const show = (vnode) => {
    root.textContent = '';
    render(vnode, root);
  };
  try {
    if (location.pathname === CALLBACK_PATH) {
      const next = await completeSignIn();
      history.replaceState(null, '', next === '/account/' || next === '/account' ? '/account/profile' : next);
    }
    if (!currentToken()) return void (await signIn());
    const me = (await api('GET', '/me')).body;
    signInWorked();
    if (location.pathname === '/account' || location.pathname === '/account/') history.replaceState(null, '', '/account/profile');
    show(html`<${Layout} initial=${me} />`);
  } catch (error) {
    show(html`<${Failure} error=${error} />`);
  }
}

boot();
