// Shared pieces of the console's pages: htm bound to Preact, data hooks, tables, fields with
// their API errors, confirmation dialogs, copy buttons and notices. Styles live in the one
// stylesheet (/assets/keybridge.css, section "admin console"); nothing here sets a style inline.
import { h, render, Fragment } from './vendor/preact.js';
import { useCallback, useEffect, useLayoutEffect, useRef, useState } from './vendor/preact-hooks.js';
import htm from './vendor/htm.js';
import { ApiError, api } from './api.js';

export const html = htm.bind(h);
export { h, render, Fragment, useCallback, useEffect, useLayoutEffect, useRef, useState };

export { useLoad } from './common/use-load.js';

let headingFocusPending = false;
/** After an in-app navigation, the next page heading to render takes focus (screen readers announce it). */
export function focusNextHeading() {
  headingFocusPending = true;
}

/** A page: its heading (also the document title), optional actions beside it, then content. */
export function Page({ title, actions, children }) {
  const heading = useRef(null);
  useEffect(() => {
    document.title = `${title} · Admin console`;
    if (headingFocusPending && heading.current) {
      headingFocusPending = false;
      heading.current.focus({ preventScroll: true });
    }
  }, [title]);
  return html`<section class="console-page" aria-labelledby="page-title">
    <div class="page-head">
      <h1 id="page-title" tabindex="-1" ref=${heading}>${title}</h1>
      ${actions ? html`<div class="page-actions">${actions}</div>` : null}
    </div>
    ${children}
  </section>`;
}

export const Loading = ({ label = 'Loading…' }) => html`<p class="muted loading" role="status">${label}</p>`;

/** A useLoad state: "Loading…" until its data first arrives, then `children(data)` (errors are the caller's ErrorNotice). */
export function Loaded({ state, children }) {
  if (state.data) return children(state.data);
  return state.loading ? html`<${Loading} />` : null;
}

/** An error from the API (or anything else), with the request id to look up in the log. */
export function ErrorNotice({ error, title }) {
  if (!error) return null;
  const id = error instanceof ApiError ? error.requestId : null;
  return html`<div class="alert" role="alert">
    ${title ? html`<strong>${title}: </strong>` : null}${error.message}
    ${id ? html`<div class="fine">Request id <code>${id}</code></div>` : null}
  </div>`;
}

export function Notice({ tone = 'notice', children }) {
  return html`<div class=${tone === 'danger' ? 'alert' : 'notice'} role=${tone === 'danger' ? 'alert' : 'status'}>${children}</div>`;
}

export function Badge({ tone = 'neutral', children, title }) {
  return html`<span class=${`badge badge-${tone}`} title=${title}>${children}</span>`;
}

/** columns: [{ key, label, render?(row), className? }]; rows keyed by `rowKey(row)`. */
export function Table({ columns, rows, rowKey = (r) => r.id, empty = 'Nothing here yet.', caption }) {
  if (!rows?.length) return html`<p class="muted empty">${empty}</p>`;
  return html`<div class="table-wrap"><table class="data">
    ${caption ? html`<caption class="visually-hidden">${caption}</caption>` : null}
    <thead><tr>${columns.map((c) => html`<th scope="col" class=${c.className}>${c.label}</th>`)}</tr></thead>
    <tbody>${rows.map((row) => html`<tr key=${rowKey(row)}>${columns.map((c) => html`<td class=${c.className} data-label=${c.label}>${c.render ? c.render(row) : String(row[c.key] ?? '')}</td>`)}</tr>`)}</tbody>
  </table></div>`;
}

/** Cursor paging: "First page" and "Next page"; `cursors` is the stack of cursors visited. */
export function usePager() {
  const [cursors, setCursors] = useState([undefined]);
  const cursor = cursors[cursors.length - 1];
  return {
    cursor,
    page: cursors.length,
    next: (nextCursor) => setCursors((c) => [...c, nextCursor]),
    previous: () => setCursors((c) => (c.length > 1 ? c.slice(0, -1) : c)),
    reset: () => setCursors([undefined]),
  };
}

export function Pager({ pager, nextCursor }) {
  if (pager.page === 1 && !nextCursor) return null;
  return html`<nav class="pager" aria-label="Pages">
    <button type="button" class="secondary" disabled=${pager.page === 1} onClick=${pager.previous}>Previous page</button>
    <span class="muted">Page ${pager.page}</span>
    <button type="button" class="secondary" disabled=${!nextCursor} onClick=${() => pager.next(nextCursor)}>Next page</button>
  </nav>`;
}

let fieldIds = 0;
/** A labelled control with its hint and the API's errors for `path` (e.g. body.redirectUris). */
export function Field({ label, path, error, hint, children, id }) {
  const [fallbackId] = useState(() => `f${++fieldIds}`);
  const controlId = id ?? fallbackId;
  const messages = error instanceof ApiError && path ? error.fieldErrors(path) : [];
  const describedBy = [hint ? `${controlId}-hint` : null, messages.length ? `${controlId}-error` : null].filter(Boolean).join(' ') || undefined;
  const control = typeof children === 'function' ? children({ id: controlId, 'aria-describedby': describedBy, 'aria-invalid': messages.length ? 'true' : undefined }) : children;
  return html`<div class=${`field${messages.length ? ' field-invalid' : ''}`} data-path=${path}>
    <label for=${controlId}>${label}</label>
    ${control}
    ${hint ? html`<div class="hint" id=${`${controlId}-hint`}>${hint}</div>` : null}
    ${messages.length ? html`<div class="field-error" id=${`${controlId}-error`} role="alert">${messages.join('; ')}</div>` : null}
  </div>`;
}

/** Errors the form's fields did not show (paths no field claimed), or the problem's detail. */
export function FormErrors({ error, shown = [] }) {
  if (!error) return null;
  if (!(error instanceof ApiError) || !error.errors.length) return html`<${ErrorNotice} error=${error} />`;
  const rest = error.errors.filter((e) => !shown.some((p) => e.path === p || e.path.startsWith(`${p}.`)));
  return html`<div class="alert" role="alert">${error.message}${rest.length ? html`<ul>${rest.map((e) => html`<li><code>${e.path}</code>: ${e.message}</li>`)}</ul>` : null}</div>`;
}

/** A button that asks first, in a modal dialog (Escape cancels; focus returns to the button). */
export function ConfirmButton({ label, title, message, confirmLabel, danger = false, onConfirm, disabled, className }) {
  const dialog = useRef(null);
  const [titleId] = useState(() => `confirm-${++fieldIds}`);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const open = () => {
    setError(null);
    dialog.current?.showModal();
  };
  const confirm = async () => {
    setBusy(true);
    setError(null);
    try {
      await onConfirm();
      dialog.current?.close();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<${Fragment}>
    <button type="button" class=${className ?? (danger ? 'danger' : 'secondary')} disabled=${disabled} onClick=${open}>${label}</button>
    <dialog ref=${dialog} class="confirm" aria-labelledby=${titleId}>
      <h2 class="dialog-title" id=${titleId}>${title ?? label}</h2>
      <p>${message}</p>
      <${ErrorNotice} error=${error} />
      <div class="actions">
        <button type="button" class="secondary" onClick=${() => dialog.current?.close()}>Cancel</button>
        <button type="button" class=${danger ? 'danger' : 'primary'} disabled=${busy} onClick=${confirm}>${busy ? 'Working…' : confirmLabel ?? label}</button>
      </div>
    </dialog>
  <//>`;
}

/** Copies `value` to the clipboard and says so. */
export function CopyButton({ value, label = 'Copy' }) {
  const [done, setDone] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(value);
      setDone(true);
      setTimeout(() => setDone(false), 2000);
    } catch {
      setDone(false);
    }
  };
  return html`<button type="button" class="secondary copy" onClick=${copy} aria-live="polite">${done ? 'Copied' : label}</button>`;
}

/** A date-time in the browser's locale, with the ISO value as a tooltip. */
export function Time({ value }) {
  if (!value) return html`<span class="muted">never</span>`;
  const d = new Date(value);
  return html`<time datetime=${value} title=${value}>${d.toLocaleString()}</time>`;
}

/** Runs an API call from a button or form: { busy, error, run }. */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const run = async (fn) => {
    setBusy(true);
    setError(null);
    try {
      return await fn();
    } catch (err) {
      setError(err);
      return undefined;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run, setError };
}

/** A link inside the console (the router intercepts it: no page reload). */
export const Link = ({ href, children, className, ...rest }) => html`<a href=${href} class=${className} ...${rest}>${children}</a>`;

export { api };
