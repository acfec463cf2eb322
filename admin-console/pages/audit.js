// Audit log: the trail newest first, filtered by what GET /audit supports, the filters kept in
// the URL (a filtered view can be linked), cursor pages, live updates on the first page (new
// events are polled for and prepended, paused while the tab is hidden), each event's details
// unfolded on demand, and exports of the current filter as CSV or JSON lines.
import { html, Page, ErrorNotice, FormErrors, Field, Badge, Time, Loading, Pager, usePager, useEffect, useRef, useState, useAction, api } from '../ui.js';
import { ApiError } from '../api.js';

/** The query parameters the page reads and writes, in the order the form shows them. */
const FILTERS = ['type', 'outcome', 'username', 'userId', 'actor', 'clientId', 'connectorId', 'ip', 'since', 'until'];
const PAGE_SIZE = 50;
const POLL_MS = 3000;
const FRESH_MS = 15_000;
const COMMON_TYPES = ['login.*', 'login.success', 'login.failure', 'login.error', 'login.rejected', 'login.throttled', 'logout.*', 'identity.*', 'admin.*', 'admin.forbidden', 'admin.unauthenticated'];

function filterOf(query) {
  const filter = {};
  for (const name of FILTERS) {
    const value = query.get(name);
    if (value) filter[name] = value;
  }
  return filter;
}

const hrefOf = (filter) => {
  const q = new URLSearchParams(Object.entries(filter).filter(([, v]) => v));
  return q.size ? `/admin/audit?${q}` : '/admin/audit';
};

/** ISO time → the value of a datetime-local input (local time), and back. */
function toLocalInput(iso) {
  const t = Date.parse(iso ?? '');
  if (Number.isNaN(t)) return '';
  const d = new Date(t);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
const fromLocalInput = (value) => (value ? new Date(value).toISOString() : '');

/** Event ids are increasing decimal strings (up to 18 digits). */
const newer = (a, b) => a.length > b.length || (a.length === b.length && a > b);

function Filters({ filter, error, onApply }) {
  const [draft, setDraft] = useState(() => ({ ...filter, since: toLocalInput(filter.since), until: toLocalInput(filter.until) }));
  useEffect(() => setDraft({ ...filter, since: toLocalInput(filter.since), until: toLocalInput(filter.until) }), [JSON.stringify(filter)]);
  // Keybridge refuses a NUL anywhere in a query string before any route reads it, naming no
  // field: the form says which field holds one instead of sending it.
  const [local, setLocal] = useState(null);
  const set = (name) => (event) => setDraft((d) => ({ ...d, [name]: event.currentTarget.value }));
  const submit = (event) => {
    event.preventDefault();
    const next = {};
    const errors = [];
    for (const name of FILTERS) {
      const value = name === 'since' || name === 'until' ? fromLocalInput(draft[name]) : (draft[name] ?? '').trim();
      if (value.includes('\0')) errors.push({ path: `query.${name}`, message: 'must not contain NUL characters' });
      if (value) next[name] = value;
    }
    if (errors.length) return setLocal(new ApiError(400, { detail: 'Some filters are not valid text.', errors }));
    setLocal(null);
    onApply(next);
  };
  error = local ?? error;
  const text = (name, label, hint, extra = {}) => html`<${Field} label=${label} path=${`query.${name}`} error=${error} hint=${hint}>
    ${(a) => html`<input ...${a} ...${extra} name=${name} type="text" value=${draft[name] ?? ''} onInput=${set(name)} autocomplete="off" spellcheck="false" />`}
  <//>`;
  return html`<form class="panel" role="search" aria-label="Filter the audit log" onSubmit=${submit}>
    <div class="audit-filters">
      ${text('type', 'Event type', 'login.failure, or a prefix: login.*', { list: 'audit-types' })}
      <datalist id="audit-types">${COMMON_TYPES.map((t) => html`<option value=${t} />`)}</datalist>
      <${Field} label="Outcome" path="query.outcome" error=${error}>
        ${(a) => html`<select ...${a} name="outcome" value=${draft.outcome ?? ''} onChange=${set('outcome')}>
          <option value="">Any</option><option value="success">Success</option><option value="failure">Failure</option>
        </select>`}
      <//>
      ${text('username', 'Username', 'As typed at sign-in (failed logins name no user id)')}
      ${text('userId', 'User id')}
      ${text('actor', 'Actor', 'Who made an admin change: username, user id or client id')}
      ${text('clientId', 'Client id')}
      ${text('connectorId', 'Connector id')}
      ${text('ip', 'IP address')}
      <${Field} label="From (your time)" path="query.since" error=${error}>
        ${(a) => html`<input ...${a} name="since" type="datetime-local" value=${draft.since ?? ''} onInput=${set('since')} />`}
      <//>
      <${Field} label="Until (your time)" path="query.until" error=${error}>
        ${(a) => html`<input ...${a} name="until" type="datetime-local" value=${draft.until ?? ''} onInput=${set('until')} />`}
      <//>
    </div>
    ${local ? html`<${FormErrors} error=${local} shown=${FILTERS.map((f) => `query.${f}`)} />` : null}
    <div class="actions">
      <button type="submit" class="primary">Apply filters</button>
      <a class="button" href="/admin/audit">Clear</a>
    </div>
  </form>`;
}

const describeActor = (d) => {
  const a = d?.actor;
  if (!a || typeof a !== 'object') return null;
  return a.username ? `${a.username} (via ${a.clientId})` : String(a.clientId ?? a.kind ?? '');
};

function subjectOf(e) {
  const target = e.details?.target;
  const parts = [];
  if (target && typeof target === 'object' && target.id !== undefined) parts.push(`${target.kind ?? 'target'} ${target.id}`);
  if (e.userId) parts.push(`user ${e.userId}`);
  else if (typeof e.details?.username === 'string') parts.push(`username “${e.details.username}”`);
  if (e.clientId) parts.push(`client ${e.clientId}`);
  return parts;
}

function EventRow({ event, fresh, open, onToggle }) {
  const detailsId = `audit-details-${event.id}`;
  const actor = describeActor(event.details);
  return html`<tbody class="audit-event" data-id=${event.id}>
    <tr class=${fresh ? 'audit-new' : undefined}>
      <td data-label="Time"><${Time} value=${event.at} /></td>
      <td data-label="Event"><code>${event.type}</code></td>
      <td data-label="Outcome"><${Badge} tone=${event.outcome === 'success' ? 'ok' : 'danger'}>${event.outcome}<//></td>
      <td data-label="Actor">${actor ?? html`<span class="muted">—</span>`}</td>
      <td data-label="Target / user">${subjectOf(event).map((p, i) => html`${i ? html`<br />` : null}${p}`)}</td>
      <td data-label="Connector">${event.connectorId ?? html`<span class="muted">—</span>`}</td>
      <td data-label="IP">${event.ip ?? html`<span class="muted">—</span>`}</td>
      <td data-label="Details"><button type="button" class="secondary" aria-expanded=${open ? 'true' : 'false'} aria-controls=${detailsId} onClick=${onToggle}>${open ? 'Hide' : 'Details'}<span class="visually-hidden"> of event ${event.id}</span></button></td>
    </tr>
    ${open ? html`<tr id=${detailsId}><td colspan="8" class="audit-details"><pre class="audit-json">${JSON.stringify({ id: event.id, ...event.details }, null, 2)}</pre></td></tr>` : null}
  </tbody>`;
}

function Events({ events, fresh }) {
  const [open, setOpen] = useState(() => new Set());
  const toggle = (id) => setOpen((s) => {
    const next = new Set(s);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    return next;
  });
  if (!events.length) return html`<p class="muted empty" data-testid="audit-empty">No events match these filters.</p>`;
  return html`<div class="table-wrap"><table class="data audit-table">
    <caption class="visually-hidden">Audit events, newest first</caption>
    <thead><tr><th scope="col">Time</th><th scope="col">Event</th><th scope="col">Outcome</th><th scope="col">Actor</th><th scope="col">Target / user</th><th scope="col">Connector</th><th scope="col">IP</th><th scope="col"><span class="visually-hidden">Details</span></th></tr></thead>
    ${events.map((e) => html`<${EventRow} key=${e.id} event=${e} fresh=${fresh.has(e.id)} open=${open.has(e.id)} onToggle=${() => toggle(e.id)} />`)}
  </table></div>`;
}

/** Downloads an export of `filter` as `format` (csv or jsonl) through the API with the token. */
async function download(filter, format) {
  const res = await api('GET', '/audit/export', { params: { ...filter, format }, raw: true });
  const blob = await res.blob();
  const name = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') ?? '')?.[1] ?? `keybridge-audit.${format}`;
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

function Trail({ filter, onApply }) {
  const pager = usePager();
  const [state, setState] = useState({ items: null, nextCursor: null, error: null, loading: true });
  const [fresh, setFresh] = useState(() => new Set());
  const [live, setLive] = useState(true);
  const [hidden, setHidden] = useState(() => document.hidden);
  const items = useRef(null);
  items.current = state.items;
  const exporting = useAction();

  useEffect(() => {
    let current = true;
    setState((s) => ({ ...s, loading: true }));
    api('GET', '/audit', { params: { ...filter, limit: PAGE_SIZE, cursor: pager.cursor } }).then(
      ({ body }) => current && setState({ items: body.items, nextCursor: body.nextCursor, error: null, loading: false }),
      (error) => current && setState((s) => ({ ...s, error, loading: false })),
    );
    return () => {
      current = false;
    };
  }, [pager.cursor]);

  useEffect(() => {
    const onVisibility = () => setHidden(document.hidden);
    document.addEventListener('visibilitychange', onVisibility);
    return () => document.removeEventListener('visibilitychange', onVisibility);
  }, []);

  const polling = live && !hidden && pager.page === 1 && state.items !== null && !state.error;
  useEffect(() => {
    if (!polling) return undefined;
    let stopped = false;
    let timer;
    const poll = async () => {
      try {
        const { body } = await api('GET', '/audit', { params: { ...filter, limit: PAGE_SIZE } });
        if (stopped) return;
        const known = items.current ?? [];
        const top = known[0]?.id;
        const added = top ? body.items.filter((e) => newer(e.id, top)) : body.items;
        if (added.length) {
          // A whole page of new events: there may be more between them and ours; start over.
          if (added.length === body.items.length && top) setState({ items: body.items, nextCursor: body.nextCursor, error: null, loading: false });
          else setState((s) => ({ ...s, items: [...added, ...(s.items ?? [])] }));
          const ids = added.map((e) => e.id);
          setFresh((f) => new Set([...f, ...ids]));
          setTimeout(() => setFresh((f) => new Set([...f].filter((id) => !ids.includes(id)))), FRESH_MS);
        }
      } catch {
        // A failed poll is retried at the next tick; the page keeps what it shows.
      }
      if (!stopped) timer = setTimeout(poll, POLL_MS);
    };
    timer = setTimeout(poll, POLL_MS);
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [polling]);

  const fieldError = state.error instanceof ApiError && state.error.status === 400 ? state.error : null;
  const liveStatus = !live ? 'Live updates off' : pager.page !== 1 ? 'Live updates only on the first page' : hidden ? 'Live updates paused (tab hidden)' : state.error ? 'Live updates paused (the list did not load)' : `Live: new events appear every ${POLL_MS / 1000} s`;
  return html`
    <${Filters} filter=${filter} error=${fieldError} onApply=${onApply} />
    ${fieldError ? html`<${FormErrors} error=${fieldError} shown=${FILTERS.map((f) => `query.${f}`)} />` : html`<${ErrorNotice} error=${state.error} />`}
    <div class="audit-bar">
      <label class="checkbox"><input type="checkbox" checked=${live} onChange=${(e) => setLive(e.currentTarget.checked)} /> Live</label>
      <span class="muted" role="status" data-testid="live-status">${liveStatus}</span>
      <span class="spacer"></span>
      <button type="button" class="secondary" disabled=${exporting.busy} onClick=${() => exporting.run(() => download(filter, 'csv'))}>Export CSV</button>
      <button type="button" class="secondary" disabled=${exporting.busy} onClick=${() => exporting.run(() => download(filter, 'jsonl'))}>Export JSON lines</button>
    </div>
    <${ErrorNotice} error=${exporting.error} title="The export failed" />
    ${state.items === null ? (state.loading ? html`<${Loading} />` : null) : html`<${Events} events=${state.items} fresh=${fresh} />`}
    <${Pager} pager=${pager} nextCursor=${state.nextCursor} />
  `;
}

export default function AuditPage({ query, navigate }) {
  const filter = filterOf(query);
  const key = hrefOf(filter);
  return html`<${Page} title="Audit log">
    <p class="muted">Every sign-in, sign-out and administrative change, newest first. The filters are part of the address: copy it to share this view.</p>
    <${Trail} key=${key} filter=${filter} onApply=${(next) => navigate(hrefOf(next))} />
  <//>`;
}
