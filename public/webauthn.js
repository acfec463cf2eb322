// Passkey forms, wired declaratively (no inline script: the pages' CSP allows 'self' only).
// - <form data-webauthn="register|authenticate" data-webauthn-options="{json}">: on submit, runs
//   the ceremony, puts JSON.stringify(result) into the form's hidden input name="credential",
//   then submits; on failure shows the reason in the form's [data-webauthn-error] and stays.
// - <form data-webauthn="conditional" data-webauthn-options="{json}">: on a page with an
//   <input autocomplete="username webauthn">, offers passkeys in that field's autofill (where
//   the browser can) and submits the form when the person picks one.
// - <form data-webauthn="passkey">: both at once on the login page: passkeys in the username
//   field's autofill, and the form's own button for a passkey chosen in the browser's dialog.
// - Instead of data-webauthn-options, a form may name data-webauthn-options-url: fresh options
//   (a new single-use challenge) are fetched from it for each ceremony.
// - [data-webauthn-only] elements are hidden in browsers without WebAuthn.
import {
  browserSupportsWebAuthn,
  browserSupportsWebAuthnAutofill,
  startAuthentication,
  startRegistration,
} from './simplewebauthn-browser.js';

const supported = browserSupportsWebAuthn();

// Messages by WebAuthnError code or DOMException name; a page can override one with an
// attribute on its error element, e.g. data-message-not-allowed="...".
const MESSAGES = {
  'not-allowed': 'The request was cancelled or timed out.',
  'already-registered': 'This authenticator is already registered.',
  'unsupported': 'This browser does not support passkeys.',
  'bad-options': 'This page could not start the request. Reload it and try again.',
  'failed': 'The authenticator could not complete the request.',
};

function reasonOf(err) {
  // A WebAuthnError has both: its own code and the DOMException's name.
  const names = [err && err.code, err && err.name];
  if (names.includes('ERROR_AUTHENTICATOR_PREVIOUSLY_REGISTERED') || names.includes('InvalidStateError')) return 'already-registered';
  if (names.includes('NotAllowedError') || names.includes('AbortError') || names.includes('ERROR_CEREMONY_ABORTED')) return 'not-allowed';
  if (names.includes('NotSupportedError')) return 'unsupported';
  return 'failed';
}

function showError(form, reason) {
  const box = form.querySelector('[data-webauthn-error]');
  if (!box) return;
  box.textContent = box.getAttribute(`data-message-${reason}`) || MESSAGES[reason];
  box.hidden = false;
}

function clearError(form) {
  const box = form.querySelector('[data-webauthn-error]');
  if (box) {
    box.textContent = '';
    box.hidden = true;
  }
}

async function optionsOf(form) {
  const url = form.getAttribute('data-webauthn-options-url');
  try {
    if (!url) return JSON.parse(form.getAttribute('data-webauthn-options') || '');
    const res = await fetch(url, { credentials: 'same-origin', headers: { accept: 'application/json' } });
    return res.ok ? await res.json() : null;
  } catch {
    return null;
  }
}

function fill(form, result) {
  const field = form.querySelector('input[name="credential"]');
  if (field) field.value = JSON.stringify(result);
  return Boolean(field);
}

function wireCeremony(form, ceremony) {
  let done = false;
  let busy = false;
  form.addEventListener('submit', async (event) => {
    if (done) return; // the second submit, with the credential filled in
    event.preventDefault();
    if (busy) return;
    clearError(form);
    if (!supported) return showError(form, 'unsupported');
    busy = true;
    const optionsJSON = await optionsOf(form);
    if (!optionsJSON) {
      busy = false;
      return showError(form, 'bad-options');
    }
    try {
      const result = await ceremony({ optionsJSON });
      if (!fill(form, result)) return showError(form, 'bad-options');
      done = true;
      form.requestSubmit(event.submitter);
    } catch (err) {
      showError(form, reasonOf(err));
    } finally {
      busy = false;
    }
  });
}

async function wireConditional(form) {
  if (!supported || !(await browserSupportsWebAuthnAutofill())) return;
  const optionsJSON = await optionsOf(form);
  if (!optionsJSON) return;
  try {
    const result = await startAuthentication({ optionsJSON, useBrowserAutofill: true });
    if (fill(form, result)) form.submit();
  } catch (err) {
    // Aborted when the person starts another ceremony on the page: nothing to say then.
    if (reasonOf(err) !== 'not-allowed') showError(form, reasonOf(err));
  }
}

if (!supported) for (const el of document.querySelectorAll('[data-webauthn-only]')) el.hidden = true;

for (const form of document.querySelectorAll('form[data-webauthn]')) {
  const kind = form.getAttribute('data-webauthn');
  if (kind === 'register') wireCeremony(form, startRegistration);
  else if (kind === 'authenticate') wireCeremony(form, startAuthentication);
  else if (kind === 'conditional') wireConditional(form);
  else if (kind === 'passkey') {
    wireCeremony(form, startAuthentication);
    wireConditional(form);
  }
}
