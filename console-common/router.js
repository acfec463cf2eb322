// In-page navigation for both consoles: history entries without reloads, the console's own links
// caught, a hook for the current location, and page modules loaded when first visited.
import { useEffect, useLayoutEffect, useState } from '../vendor/preact-hooks.js';

/**
 * `parse()`: the current location as the console sees it (with a `key` that changes with it);
 * `owns(a)`: whether a same-origin link is one of the console's pages; `onNavigate()`: called
 * before every navigation (the admin console moves focus to the next heading).
 */
export function createRouter({ parse, owns, onNavigate = () => {} }) {
  const listeners = new Set();
  /** Goes to a console URL without reloading the page. `replace` keeps history clean for redirects. */
  function navigate(href, { replace = false } = {}) {
    onNavigate();
    if (replace) history.replaceState(null, '', href);
    else history.pushState(null, '', href);
    for (const l of listeners) l();
  }
  addEventListener('popstate', () => {
    onNavigate();
    listeners.forEach((l) => l());
  });
  document.addEventListener('click', (event) => {
    const a = event.target instanceof Element ? event.target.closest('a[href]') : null;
    if (!a || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    if (a.target || a.hasAttribute('download') || a.origin !== location.origin || !owns(a)) return;
    event.preventDefault();
    navigate(a.pathname + a.search);
  });

  function useLocation() {
    const [loc, setLoc] = useState(parse);
    useEffect(() => {
      const update = () => setLoc(parse());
      listeners.add(update);
      return () => listeners.delete(update);
    }, []);
    return loc;
  }

  return { navigate, useLocation };
}

const modules = new Map();
/**
 * The page module `id` (imported by `load(id)` once, again after a failure) when `wanted`:
 * { id, Page, error }, where `id` says which page the state belongs to.
 */
export function usePageModule(id, wanted, load) {
  const [state, setState] = useState({ id: null, Page: null, error: null });
  // A layout effect: the page module's request starts at once, not after the next frame.
  useLayoutEffect(() => {
    if (!wanted) return;
    let live = true;
    const loading = modules.get(id) ?? load(id);
    modules.set(id, loading);
    loading.then(
      (m) => live && setState({ id, Page: m.default, error: null }),
      (error) => {
        modules.delete(id);
        if (live) setState({ id, Page: null, error });
      },
    );
    return () => {
      live = false;
    };
  }, [id, wanted]);
  return state;
}
