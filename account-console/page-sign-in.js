// Sign-in methods: the password, linked identities (link another: that connector's sign-in runs
// and its account is linked to this one; unlink: never the last way in), and second factors
// (authenticator app, passkeys, recovery codes shown once).
import { html, useState, Page, ErrorNotice, Loading, Notice, Field, Recent, ConfirmButton, useLoad } from './ui.js';
import { api, get, seg } from './api.js';
import { t, when } from './i18n.js';

function Password({ me, refresh }) {
  const [form, setForm] = useState({ currentPassword: '', newPassword: '', confirm: '', signOutOtherSessions: false });
  const [state, setState] = useState({ error: null, done: false, busy: false, mismatch: false });
  if (me.readOnly) return html`<div class="panel"><h2>${t('pw.title')}</h2><p class="muted" data-testid="password-managed">${t('pw.managed', { source: me.readOnly.source.name })}</p></div>`;
  const submit = async (event) => {
    event.preventDefault();
    if (form.newPassword !== form.confirm) return setState({ error: null, done: false, busy: false, mismatch: true });
    setState({ error: null, done: false, busy: true, mismatch: false });
    try {
      const { currentPassword, newPassword, signOutOtherSessions } = form;
      await api('POST', '/me/password', { body: { ...(me.hasPassword ? { currentPassword } : {}), newPassword, signOutOtherSessions } });
      setForm({ currentPassword: '', newPassword: '', confirm: '', signOutOtherSessions: false });
      setState({ error: null, done: true, busy: false, mismatch: false });
      await refresh();
    } catch (error) {
      setState({ error, done: false, busy: false, mismatch: false });
    }
  };
  const set = (key) => (value) => setForm({ ...form, [key]: value });
  return html`<div class="panel">
    <h2>${me.hasPassword ? t('pw.title') : t('pw.setTitle')}</h2>
    <${Recent} me=${me}>
      <form onSubmit=${submit} data-testid="password-form">
        ${state.done ? html`<${Notice} testid="password-changed">${t('pw.changed')}<//>` : null}
        <${ErrorNotice} error=${state.error} />
        ${me.hasPassword ? html`<${Field} id="current-password" type="password" label=${t('pw.current')} value=${form.currentPassword} onInput=${set('currentPassword')} error=${state.error} path="body.currentPassword" autocomplete="current-password" required />` : null}
        <${Field} id="new-password" type="password" label=${t('pw.new')} value=${form.newPassword} onInput=${set('newPassword')} error=${state.error} path="body.newPassword" autocomplete="new-password" required />
        <${Field} id="confirm-password" type="password" label=${t('pw.confirm')} value=${form.confirm} onInput=${set('confirm')} autocomplete="new-password" required />
        ${state.mismatch ? html`<p class="field-error" role="alert">${t('pw.mismatch')}</p>` : null}
        <label class="checkbox"><input type="checkbox" checked=${form.signOutOtherSessions} onChange=${(e) => setForm({ ...form, signOutOtherSessions: e.currentTarget.checked })} /> ${t('pw.signOutOthers')}</label>
        <div class="actions"><button type="submit" class="primary" disabled=${state.busy}>${t('pw.save')}</button></div>
      </form>
    <//>
  </div>`;
}

const LINK_RESULTS = new Set(['linked', 'already_yours', 'linked_elsewhere', 'failed', 'unavailable', 'expired', 'wrong_browser', 'signed_out']);

function Identities({ me, query, refresh }) {
  const list = useLoad(async () => (await get('/identities')).body.items);
  const [state, setState] = useState({ error: null, message: null });
  const result = query.get('link');
  const connectorName = (id) => me.features.linkableConnectors.find((c) => c.id === id)?.name ?? id;
  const unlink = async (identity) => {
    setState({ error: null, message: null });
    try {
      await api('DELETE', `/identities/${seg(identity.id)}`);
      setState({ error: null, message: t('identities.unlinked', { name: identity.connector.name }) });
      await list.reload();
      await refresh();
    } catch (error) {
      setState({ error, message: null });
    }
  };
  const link = async (connector) => {
    setState({ error: null, message: null });
    try {
      const { body } = await api('POST', '/identities/link', { body: { connectorId: connector.id } });
      location.assign(body.url);
    } catch (error) {
      setState({ error, message: null });
    }
  };
  const linked = new Set((list.data ?? []).map((i) => i.connector.id));
  const linkable = me.features.linkableConnectors.filter((c) => !linked.has(c.id));
  return html`<div class="panel">
    <h2>${t('identities.title')}</h2>
    ${result && LINK_RESULTS.has(result) ? html`<div class=${result === 'linked' || result === 'already_yours' ? 'notice' : 'alert'} role="status" data-testid="link-result" data-result=${result}>${t(`identities.result.${result}`, { name: connectorName(query.get('connector') ?? '') })}</div>` : null}
    ${state.message ? html`<${Notice} testid="identities-notice">${state.message}<//>` : null}
    <${ErrorNotice} error=${state.error || list.error} />
    ${!list.data ? html`<${Loading} />` : list.data.length === 0 ? html`<p class="muted" data-testid="no-identities">${t('identities.none')}</p>` : html`<ul class="plain-list" data-testid="identities">${list.data.map((i) => html`<li data-connector=${i.connector.id}>
      <strong>${i.connector.name}</strong> ${i.username || i.email ? html`<span class="muted">${i.username ?? i.email}</span>` : null}
      <div class="muted">${t('identities.linkedAt', { when: when(i.linkedAt) })}</div>
      <${Recent} me=${me}><div class="actions"><${ConfirmButton} testid=${`unlink-${i.connector.id}`} label=${t('identities.unlink')} question=${t('identities.unlinkQuestion', { name: i.connector.name })} onConfirm=${() => unlink(i)} /></div><//>
    </li>`)}</ul>`}
    ${linkable.length ? html`<h2>${t('identities.linkTitle')}</h2><${Recent} me=${me}><div class="actions">${linkable.map((c) => html`<button type="button" class="secondary" data-testid=${`link-${c.id}`} onClick=${() => link(c)}>${t('identities.linkWith', { name: c.name })}</button>`)}</div><//>` : null}
  </div>`;
}

function RecoveryCodes({ codes }) {
  if (!codes) return null;
  return html`<div class="notice" data-testid="recovery-codes">
    <p><strong>${t('mfa.recoveryShownOnce')}</strong></p>
    <ol class="recovery-codes">${codes.map((c) => html`<li><code>${c}</code></li>`)}</ol>
  </div>`;
}

function TotpEnrol({ onDone }) {
  const [pending, setPending] = useState(null);
  const [code, setCode] = useState('');
  const [error, setError] = useState(null);
  const start = async () => {
    setError(null);
    try {
      setPending((await api('POST', '/mfa/totp')).body);
    } catch (e) {
      setError(e);
    }
  };
  const confirm = async (event) => {
    event.preventDefault();
    setError(null);
    try {
      const { body } = await api('POST', `/mfa/totp/${seg(pending.factorId)}/confirm`, { body: { code } });
      setPending(null);
      setCode('');
      onDone(body.recoveryCodes, t('mfa.totpAdded'));
    } catch (e) {
      setError(e);
    }
  };
  if (!pending) return html`<div><${ErrorNotice} error=${error} /><button type="button" class="secondary" data-testid="add-totp" onClick=${start}>${t('mfa.addTotp')}</button></div>`;
  return html`<form onSubmit=${confirm} class="stack" data-testid="totp-enrol">
    <p>${t('mfa.scan')}</p>
    <img class="qr" alt=${t('mfa.qrAlt')} width="200" height="200" src=${`data:image/svg+xml;charset=utf-8,${encodeURIComponent(pending.qrSvg)}`} />
    <p class="muted">${t('mfa.secret')} <code data-testid="totp-secret">${pending.secret}</code></p>
    <${ErrorNotice} error=${error} />
    <${Field} id="totp-code" label=${t('mfa.code')} value=${code} onInput=${setCode} error=${error} path="body.code" autocomplete="one-time-code" required />
    <div class="actions"><button type="submit" class="primary">${t('mfa.confirm')}</button><button type="button" class="secondary" onClick=${() => setPending(null)}>${t('cancel')}</button></div>
  </form>`;
}

function PasskeyAdd({ onDone }) {
  const [name, setName] = useState('');
  const [error, setError] = useState(null);
  const add = async (event) => {
    event.preventDefault();
    setError(null);
    try {
      const { startRegistration } = await import('/assets/simplewebauthn-browser.js');
      const { body: optionsJSON } = await api('POST', '/mfa/passkeys/options');
      let credential;
      try {
        credential = await startRegistration({ optionsJSON });
      } catch {
        throw new Error(t('mfa.passkeyCancelled'));
      }
      const { body } = await api('POST', '/mfa/passkeys', { body: { name: name.trim() || 'Passkey', credential } });
      setName('');
      onDone(body.recoveryCodes, t('mfa.passkeyAdded'));
    } catch (e) {
      setError(e);
    }
  };
  return html`<form onSubmit=${add} data-testid="passkey-add">
    <${ErrorNotice} error=${error} />
    <${Field} id="passkey-name" label=${t('mfa.passkeyName')} value=${name} onInput=${setName} error=${error} path="body.name" autocomplete="off" />
    <button type="submit" class="secondary">${t('mfa.addPasskey')}</button>
  </form>`;
}

function Factors({ me }) {
  const list = useLoad(async () => (await get('/mfa')).body);
  const [state, setState] = useState({ error: null, message: null, codes: null });
  const done = async (codes, message) => {
    setState({ error: null, message, codes: codes ?? null });
    await list.reload();
  };
  const remove = async (f) => {
    setState({ error: null, message: null, codes: null });
    try {
      await api('DELETE', `/mfa/factors/${seg(f.id)}`);
      await done(null, t('mfa.removed', { name: f.name }));
    } catch (error) {
      setState({ error, message: null, codes: null });
    }
  };
  const regenerate = async () => {
    setState({ error: null, message: null, codes: null });
    try {
      const { body } = await api('POST', '/mfa/recovery-codes');
      await done(body.codes, t('mfa.newCodes'));
    } catch (error) {
      setState({ error, message: null, codes: null });
    }
  };
  return html`<div class="panel">
    <h2>${t('mfa.title')}</h2>
    ${state.message ? html`<${Notice} testid="mfa-notice">${state.message}<//>` : null}
    <${RecoveryCodes} codes=${state.codes} />
    <${ErrorNotice} error=${state.error || list.error} />
    ${!list.data ? html`<${Loading} />` : html`
      ${list.data.factors.length === 0 ? html`<p class="muted">${t('mfa.none')}</p>` : html`<ul class="plain-list" data-testid="factors">${list.data.factors.map((f) => html`<li data-type=${f.type}>
        <strong>${f.type === 'totp' ? t('mfa.totp') : f.name}</strong> <span class="muted">${f.type === 'totp' ? '' : t('mfa.passkey')}</span>
        <div class="muted">${t('mfa.added', { when: when(f.createdAt) })} · ${t('mfa.lastUsed', { when: when(f.lastUsedAt) })}</div>
        <${Recent} me=${me}><div class="actions"><${ConfirmButton} testid="remove-factor" label=${t('mfa.remove')} question=${t('mfa.removeQuestion')} onConfirm=${() => remove(f)} /></div><//>
      </li>`)}</ul>`}
      <p class="muted" data-testid="codes-left">${t('mfa.codesLeft', { count: list.data.recoveryCodesLeft })}</p>
      <${Recent} me=${me}>
        <div class="stack">
          <${TotpEnrol} onDone=${done} />
          ${list.data.passkeys ? html`<${PasskeyAdd} onDone=${done} />` : null}
          ${list.data.factors.length ? html`<button type="button" class="secondary" data-testid="regenerate-codes" onClick=${regenerate}>${t('mfa.regenerate')}</button>` : null}
        </div>
      <//>
    `}
  </div>`;
}

export default function SignInPage({ me, query, refresh }) {
  return html`<${Page} title=${t('signIn.title')}>
    <div class="grid">
      <${Password} me=${me} refresh=${refresh} />
      <${Identities} me=${me} query=${query} refresh=${refresh} />
      <${Factors} me=${me} />
    </div>
  <//>`;
}
