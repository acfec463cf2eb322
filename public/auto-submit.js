// Submits a form marked data-auto-submit as soon as the page loads (SAML HTTP-POST binding).
// A file, not inline script, so the page keeps a CSP without 'unsafe-inline'.
'use strict';
const form = document.querySelector('form[data-auto-submit]');
if (form) form.submit();
