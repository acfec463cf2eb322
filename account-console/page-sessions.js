// Sessions and apps: where you are signed in (sign out one, or everywhere else), and the
// applications you gave access to (revoke ends the access and every token issued under it).
import { html, useState, Page, ErrorNotice, Loading, Notice, ConfirmButton, useLoad } from './ui.js';
import { api, get, seg } from './api.js';
import { t, when } from './i18n.js';
import { forgetToken } from './auth.js';

/** "Firefox on Windows" from a User-Agent, or null; a rough guess, the full string is in the title. */
export function deviceOf(ua) {
  if (!ua) return null;
  const browser = /Edg\//.test(ua) ? 'Edge' : /OPR\//.test(ua) ? 'Opera' : /Firefox\//.test(ua) ? 'Firefox' : /Chrom(e|ium)\//.test(ua) ? 'Chrome' : /Safari\//.test(ua) ? 'Safari' : null;
  const os = /Android/.test(ua) ? 'Android' : /iPhone|iPad|iPod/.test(ua) ? 'iOS' : /Windows/.test(ua) ? 'Windows' : /Mac OS X|Macintosh/.test(ua) ? 'macOS' : /CrOS/.test(ua) ? 'ChromeOS' : /Linux/.test(ua) ? 'Linux' : null;
  if (browser && os) return t('sessions.device', { browser, os });
  return browser ?? os ?? null;
}

function Sessions() {
  const list = useLoad(async () => (await get('/sessions')).body.items);
  const [state, setState] = useState({ error: null, message: null });
  const run = async (fn, message) => {
    setState({ error: null, message: null });
    try {
      await fn();
      setState({ error: null, message });
      await list.reload();
    } catch (error) {
      setState({ error, message: null });
    }
  };
  const end = (s) =>
    s.current
      ? run(async () => {
          // This session is gone already: nothing left to end at Keybridge, so just start over.
          await api('DELETE', `/sessions/${seg(s.id)}`);
          forgetToken();
          location.assign('/account/');
        })
      : run(() => api('DELETE', `/sessions/${seg(s.id)}`), t('sessions.ended'));
  return html`<div class="panel">
    <h2>${t('sessions.title')}</h2>
    ${state.message ? html`<${Notice} testid="sessions-notice">${state.message}<//>` : null}
    <${ErrorNotice} error=${state.error || list.error} />
    ${!list.data ? html`<${Loading} />` : html`<ul class="plain-list" data-testid="sessions">${list.data.map((s) => html`<li data-current=${s.current ? 'true' : 'false'}>
      <strong>${s.current ? t('sessions.current') : t('sessions.otherSession')}</strong>
      <span class="muted" title=${s.userAgent ?? ''} data-testid="device"> · ${deviceOf(s.userAgent) ?? t('sessions.unknownDevice')}</span>
      ${s.connector ? html` · ${s.connector.name}` : null}
      <div class="muted">${t('sessions.signedIn', { when: when(s.signedInAt) })} · ${t('sessions.lastSeen', { when: when(s.lastSeenAt) })}${s.ip ? ` · ${t('sessions.ip', { ip: s.ip })}` : ''}</div>
      ${s.applications.length ? html`<div class="muted">${t('sessions.apps', { apps: s.applications.map((a) => a.name).join(', ') })}</div>` : null}
      <div class="actions"><button type="button" class="secondary" onClick=${() => end(s)}>${s.current ? t('sessions.signOutHere') : t('sessions.signOut')}</button></div>
    </li>`)}</ul>`}
    ${list.data && list.data.some((s) => !s.current) ? html`<div class="actions"><${ConfirmButton} kind="danger" testid="end-others" label=${t('sessions.signOutOthers')} question=${t('sessions.signOutOthersQuestion')} onConfirm=${() => run(() => api('POST', '/sessions/end-others'), t('sessions.othersEnded'))} /></div>` : null}
  </div>`;
}

function Apps() {
  const list = useLoad(async () => (await get('/apps')).body.items);
  const [state, setState] = useState({ error: null, message: null });
  const revoke = async (app) => {
    setState({ error: null, message: null });
    try {
      await api('DELETE', `/apps/${seg(app.id)}`);
      if (app.current) {
        // This page's own access ended: it signs in anew (the browser session stays).
        forgetToken();
        return location.assign('/account/sessions');
      }
      setState({ error: null, message: t('apps.revoked', { name: app.name }) });
      await list.reload();
    } catch (error) {
      setState({ error, message: null });
    }
  };
  return html`<div class="panel">
    <h2>${t('apps.title')}</h2>
    ${state.message ? html`<${Notice} testid="apps-notice">${state.message}<//>` : null}
    <${ErrorNotice} error=${state.error || list.error} />
    ${!list.data ? html`<${Loading} />` : list.data.length === 0 ? html`<p class="muted">${t('apps.none')}</p>` : html`<ul class="plain-list" data-testid="apps">${list.data.map((app) => html`<li data-client=${app.clientId}>
      <strong>${app.name}</strong>${app.current ? html` <span class="badge badge-neutral">${t('apps.thisConsole')}</span>` : null}
      <div class="muted">${t('apps.scopes', { scopes: app.scopes.join(' ') || '—' })}</div>
      <div class="muted">${t('apps.granted', { when: when(app.grantedAt) })}</div>
      <div class="actions"><${ConfirmButton} kind="danger" testid=${`revoke-${app.clientId}`} label=${t('apps.revoke')} question=${t('apps.revokeQuestion', { name: app.name })} onConfirm=${() => revoke(app)} /></div>
    </li>`)}</ul>`}
  </div>`;
}

export default function SessionsPage() {
  return html`<${Page} title=${t('sessions.pageTitle')}>
    <div class="grid"><${Sessions} /><${Apps} /></div>
  <//>`;
}
