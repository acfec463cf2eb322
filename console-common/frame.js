// The frame both consoles render around their pages (skip link, brand, the menu that folds on
// narrow screens, navigation, who is signed in, sign out), and their start-up: finish a sign-in
// on the callback path, make sure there is a token, then show what `start` renders, or
// `failure(error)` when anything on the way fails.
import { h, render } from '../vendor/preact.js';
import { useEffect, useState } from '../vendor/preact-hooks.js';
import htm from '../vendor/htm.js';

const html = htm.bind(h);

/**
 * `brand`: { href, site, suffix }; `labels`: { skip, menu, nav, signOut }; `items`: [{ id, path,
 * label }] with `current` the id shown; `locKey` closes the menu when it changes; `user`: the
 * signed-in name.
 */
export function ConsoleFrame({ brand, labels, items, current, locKey, user, onSignOut, children }) {
  const [menuOpen, setMenuOpen] = useState(false);
  useEffect(() => setMenuOpen(false), [locKey]);
  return html`<div class="console-shell">
    <a class="skip-link" href="#content">${labels.skip}</a>
    <header class="console-header">
      <a class="console-brand" href=${brand.href}><span class="brand-mark" aria-hidden="true"></span>${brand.site} <span class="muted">${brand.suffix}</span></a>
      <button type="button" class="secondary menu-toggle" aria-expanded=${menuOpen ? 'true' : 'false'} aria-controls="console-nav" onClick=${() => setMenuOpen(!menuOpen)}>${labels.menu}</button>
      <nav id="console-nav" class=${`console-nav${menuOpen ? ' open' : ''}`} aria-label=${labels.nav}>
        <ul>${items.map((i) => html`<li><a href=${i.path} aria-current=${current === i.id ? 'page' : undefined}>${i.label}</a></li>`)}</ul>
      </nav>
      <div class="console-user">
        <span class="muted" data-testid="signed-in-as">${user}</span>
        <button type="button" class="secondary" onClick=${() => onSignOut()}>${labels.signOut}</button>
      </div>
    </header>
    <main id="content" class="console-main">${children}</main>
  </div>`;
}

/**
 * `auth`: the console's auth.js; `landing(next)`: where a finished sign-in goes (default: where
 * it started); `start()`: resolves to what to render once signed in; `failure(error)`: what to
 * render when that fails.
 */
export async function bootConsole({ auth, landing = (next) => next, start, failure }) {
  const root = document.getElementById('app');
  // The "Loading…" line of the shell goes before the first render (Preact would keep it).
  const show = (vnode) => {
    root.textContent = '';
    render(vnode, root);
  };
  try {
    if (location.pathname === auth.CALLBACK_PATH) {
      const next = await auth.completeSignIn();
      history.replaceState(null, '', landing(next));
    }
    if (!auth.currentToken()) return void (await auth.signIn());
    show(await start());
  } catch (error) {
    show(failure(error));
  }
}
