// Security log: what happened to this account in the last 90 days (sign-ins, failures, factor
// and password changes, links), newest first, a page at a time.
import { html, useState, Page, ErrorNotice, Loading, useLoad } from './ui.js';
import { get } from './api.js';
import { has, t, when } from './i18n.js';

const label = (type) => (has(`log.event.${type}`) ? t(`log.event.${type}`) : type);

export default function LogPage() {
  const [cursors, setCursors] = useState([undefined]);
  const cursor = cursors.at(-1);
  const page = useLoad(async () => (await get('/security-log', { limit: 25, cursor })).body, [cursor]);
  return html`<${Page} title=${t('log.title')}>
    <p class="muted">${t('log.explain')}</p>
    <${ErrorNotice} error=${page.error} />
    ${!page.data ? html`<${Loading} />` : page.data.items.length === 0 ? html`<p data-testid="log-empty">${t('log.empty')}</p>` : html`<div class="table-wrap"><table class="data" data-testid="security-log">
      <thead><tr><th>${t('log.when')}</th><th>${t('log.what')}</th><th>${t('log.outcome')}</th><th>${t('log.ip')}</th></tr></thead>
      <tbody>${page.data.items.map((e) => html`<tr data-type=${e.type}>
        <td>${when(e.at)}</td>
        <td>${label(e.type)}${e.details.reason ? html` <span class="muted">(${e.details.reason})</span>` : null}</td>
        <td><span class=${`badge ${e.outcome === 'success' ? 'badge-ok' : 'badge-danger'}`}>${t(`log.${e.outcome}`)}</span></td>
        <td>${e.ip ?? '—'}</td>
      </tr>`)}</tbody>
    </table></div>`}
    <div class="pager">
      ${cursors.length > 1 ? html`<button type="button" class="secondary" onClick=${() => setCursors(cursors.slice(0, -1))}>${t('log.newer')}</button>` : null}
      ${page.data?.nextCursor ? html`<button type="button" class="secondary" onClick=${() => setCursors([...cursors, page.data.nextCursor])}>${t('log.older')}</button>` : null}
    </div>
  <//>`;
}
