// Profile: names, username and email. Fields an upstream (or the config file) owns are shown
// read-only with their source; an email change sends a verification link to the new address.
import { html, useState, Page, Field, ErrorNotice, Notice, Recent } from './ui.js';
import { api } from './api.js';
import { t } from './i18n.js';

function EmailChange({ me }) {
  const [email, setEmail] = useState('');
  const [state, setState] = useState({ error: null, sent: false, busy: false });
  if (!me.features.emailChange) return html`<p class="muted" data-testid="email-unavailable">${t('profile.emailUnavailable')}</p>`;
  const submit = async (event) => {
    event.preventDefault();
    setState({ error: null, sent: false, busy: true });
    try {
      await api('POST', '/me/email', { body: { email } });
      setState({ error: null, sent: true, busy: false });
    } catch (error) {
      setState({ error, sent: false, busy: false });
    }
  };
  return html`<${Recent} me=${me}>
    <form onSubmit=${submit} class="stack" data-testid="email-form">
      ${state.sent ? html`<${Notice} testid="email-sent">${t('profile.emailSent', { email })}<//>` : null}
      <${ErrorNotice} error=${state.error} />
      <${Field} id="new-email" type="email" label=${t('profile.newEmail')} value=${email} onInput=${setEmail} error=${state.error} path="body.email" autocomplete="email" required />
      <div class="actions"><button type="submit" class="primary" disabled=${state.busy}>${t('profile.sendLink')}</button></div>
    </form>
  <//>`;
}

export default function ProfilePage({ me, refresh }) {
  const [form, setForm] = useState({ name: me.name ?? '', givenName: me.givenName ?? '', familyName: me.familyName ?? '', username: me.username });
  const [state, setState] = useState({ error: null, saved: false, busy: false });
  const readOnly = me.readOnly;
  const set = (key) => (value) => setForm({ ...form, [key]: value });
  const save = async (event) => {
    event.preventDefault();
    setState({ error: null, saved: false, busy: true });
    try {
      await api('PATCH', '/me', { body: form });
      await refresh();
      setState({ error: null, saved: true, busy: false });
    } catch (error) {
      setState({ error, saved: false, busy: false });
    }
  };
  return html`<${Page} title=${t('profile.title')}>
    <div class="grid">
      <div class="panel" data-testid="profile">
        <h2>${t('profile.details')}</h2>
        ${readOnly ? html`<${Notice} testid="read-only">${t('profile.readOnly', { source: readOnly.source.name })}<//>` : null}
        ${state.saved ? html`<${Notice} testid="saved">${t('profile.saved')}<//>` : null}
        <${ErrorNotice} error=${state.error} />
        <form onSubmit=${save}>
          <${Field} id="username" label=${t('profile.username')} value=${form.username} onInput=${set('username')} error=${state.error} path="body.username" readOnly=${Boolean(readOnly)} autocomplete="username" hint=${readOnly ? null : t('profile.usernameHint')} />
          <${Field} id="name" label=${t('profile.name')} value=${form.name} onInput=${set('name')} error=${state.error} path="body.name" readOnly=${Boolean(readOnly)} autocomplete="name" />
          <${Field} id="given-name" label=${t('profile.givenName')} value=${form.givenName} onInput=${set('givenName')} error=${state.error} path="body.givenName" readOnly=${Boolean(readOnly)} autocomplete="given-name" />
          <${Field} id="family-name" label=${t('profile.familyName')} value=${form.familyName} onInput=${set('familyName')} error=${state.error} path="body.familyName" readOnly=${Boolean(readOnly)} autocomplete="family-name" />
          ${readOnly ? null : html`<div class="actions"><button type="submit" class="primary" disabled=${state.busy}>${t('profile.save')}</button></div>`}
        </form>
      </div>
      <div class="panel">
        <h2>${t('profile.email')}</h2>
        <dl class="kv">
          <dt>${t('profile.email')}</dt><dd data-testid="email">${me.email ?? t('profile.noEmail')}</dd>
          <dt>${t('profile.verified')}</dt><dd>${me.email ? (me.emailVerified ? t('yes') : t('no')) : '—'}</dd>
        </dl>
        ${readOnly ? null : html`<h2>${t('profile.changeEmail')}</h2><${EmailChange} me=${me} />`}
      </div>
    </div>
  <//>`;
}
