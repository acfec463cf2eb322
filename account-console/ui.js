// Shared pieces of the account console's pages: htm bound to Preact, a data hook, the page frame,
// notices, form fields with their API errors, and the "confirm it's you" gate in front of
// sensitive changes. Styles come from the one stylesheet (/assets/keybridge.css); none inline.
import { h, render, Fragment } from './vendor/preact.js';
import { useCallback, useEffect, useLayoutEffect, useRef, useState } from './vendor/preact-hooks.js';
import htm from './vendor/htm.js';
import { t } from './i18n.js';
import { signIn } from './auth.js';

export const html = htm.bind(h);
export { h, render, Fragment, useCallback, useEffect, useLayoutEffect, useRef, useState };

export { useLoad } from './common/use-load.js';

/** A page: its heading (also the document title) and content. */
export function Page({ title, children }) {
  useEffect(() => {
    document.title = `${title} · ${t('title', { site: document.querySelector('meta[name="keybridge-title"]')?.content ?? 'Keybridge' })}`;
  }, [title]);
  return html`<section class="console-page" aria-labelledby="page-title">
    <div class="page-head"><h1 id="page-title" tabindex="-1">${title}</h1></div>
    ${children}
  </section>`;
}

export const Loading = () => html`<p class="muted loading" role="status">${t('loading')}</p>`;

/** An error from the API (or anything thrown), in words; with the request id when there is one. */
export function ErrorNotice({ error }) {
  if (!error || error.shownAtField) return null;
  return html`<div class="alert" role="alert" data-testid="error">${error.message}${error.requestId ? html` <span class="fine">(${t('error.reference', { id: error.requestId })})</span>` : null}</div>`;
}

export const Notice = ({ children, testid }) => html`<div class="notice" role="status" data-testid=${testid}>${children}</div>`;

/** A labelled input whose API field errors (by path) show under it. */
export function Field({ id, label, type = 'text', value, onInput, error, path, hint, readOnly, autocomplete, required }) {
  const messages = error?.fieldErrors ? error.fieldErrors(path) : [];
  return html`<div class=${`field${messages.length ? ' field-invalid' : ''}`}>
    <label for=${id}>${label}</label>
    <input id=${id} name=${id} type=${type} value=${value ?? ''} readOnly=${readOnly} required=${required} autocomplete=${autocomplete}
      aria-invalid=${messages.length ? 'true' : undefined} aria-describedby=${messages.length || hint ? `${id}-help` : undefined}
      onInput=${(e) => onInput?.(e.currentTarget.value)} />
    ${messages.length || hint ? html`<span id=${`${id}-help`} class=${messages.length ? 'field-error' : 'hint'}>${messages.length ? messages.join(' ') : hint}</span>` : null}
  </div>`;
}

/** Whether the person signed in recently enough for sensitive changes (the server checks again). */
export function recentlySignedIn(me) {
  const at = Date.parse(me.session?.authenticatedAt ?? '');
  return Number.isFinite(at) && Date.now() - at < (me.features.reauthMaxAge - 15) * 1000;
}

/** Sensitive changes: shown as they are after a recent sign-in, else a button to sign in again first. */
export function Recent({ me, children }) {
  if (recentlySignedIn(me)) return children;
  return html`<div class="stack">
    <p class="muted">${t('reauth.explain')}</p>
    <div class="actions"><button type="button" class="secondary" data-testid="reauth" onClick=${() => signIn(location.pathname + location.search, { reauthenticate: true })}>${t('reauth.button')}</button></div>
  </div>`;
}

/** A button for something that cannot be undone: the first click asks, inline, to confirm. */
export function ConfirmButton({ label, question, onConfirm, testid, kind = 'secondary' }) {
  const [asking, setAsking] = useState(false);
  if (!asking) return html`<button type="button" class=${kind} data-testid=${testid} onClick=${() => setAsking(true)}>${label}</button>`;
  return html`<span class="stack" role="group" aria-label=${question}>
    <span>${question}</span>
    <span class="actions">
      <button type="button" class="danger" data-testid="confirm" onClick=${() => {
        setAsking(false);
        onConfirm();
      }}>${t('confirm.yes')}</button>
      <button type="button" class="secondary" onClick=${() => setAsking(false)}>${t('cancel')}</button>
    </span>
  </span>`;
}
