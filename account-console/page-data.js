// Your data: a JSON download of everything Keybridge stores about you (GDPR Art. 15 and 20), and
// deleting the account where the server allows it (after signing in again and typing the username).
import { html, useState, Page, ErrorNotice, Field, Recent } from './ui.js';
import { api } from './api.js';
import { t } from './i18n.js';
import { signOut, forgetToken } from './auth.js';

function Export() {
  const [state, setState] = useState({ error: null, busy: false });
  const download = async () => {
    setState({ error: null, busy: true });
    try {
      const res = await api('GET', '/export', { raw: true });
      const blob = await res.blob();
      const name = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') ?? '')?.[1] ?? 'keybridge-account.json';
      const url = URL.createObjectURL(blob);
      const a = document.createElement('a');
      a.href = url;
      a.download = name;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      setState({ error: null, busy: false });
    } catch (error) {
      setState({ error, busy: false });
    }
  };
  return html`<div class="panel">
    <h2>${t('data.exportTitle')}</h2>
    <p>${t('data.exportExplain')}</p>
    <${ErrorNotice} error=${state.error} />
    <div class="actions"><button type="button" class="primary" data-testid="export" disabled=${state.busy} onClick=${download}>${t('data.exportButton')}</button></div>
  </div>`;
}

function Delete({ me }) {
  const [confirm, setConfirm] = useState('');
  const [state, setState] = useState({ error: null, busy: false, done: false });
  if (!me.features.selfDeletion) return html`<div class="panel"><h2>${t('data.deleteTitle')}</h2><p class="muted" data-testid="delete-disabled">${t('data.deleteDisabled')}</p></div>`;
  const submit = async (event) => {
    event.preventDefault();
    setState({ error: null, busy: true, done: false });
    try {
      await api('DELETE', '/me', { body: { confirm } });
      forgetToken();
      setState({ error: null, busy: false, done: true });
    } catch (error) {
      setState({ error, busy: false, done: false });
    }
  };
  if (state.done) return html`<div class="panel"><h2>${t('data.deleteTitle')}</h2><p data-testid="deleted">${t('data.deleted')}</p><div class="actions"><button type="button" class="secondary" onClick=${() => signOut()}>${t('nav.signOut')}</button></div></div>`;
  return html`<div class="panel">
    <h2>${t('data.deleteTitle')}</h2>
    <p>${t('data.deleteExplain')}</p>
    <${Recent} me=${me}>
      <form onSubmit=${submit}>
        <${ErrorNotice} error=${state.error} />
        <${Field} id="confirm-username" label=${t('data.deleteConfirm', { username: me.username })} value=${confirm} onInput=${setConfirm} error=${state.error} path="body.confirm" autocomplete="off" />
        <div class="actions"><button type="submit" class="danger" data-testid="delete" disabled=${state.busy || confirm !== me.username}>${t('data.deleteButton')}</button></div>
      </form>
    <//>
  </div>`;
}

export default function DataPage({ me }) {
  return html`<${Page} title=${t('data.title')}>
    <div class="grid"><${Export} /><${Delete} me=${me} /></div>
  <//>`;
}
