// Dashboard: sign-ins of the last 24 hours and 7 days per connector (charts with their numbers
// as tables), the most frequent failure reasons, connectors that need attention, the signing
// keys' age and a list of risky settings (GET /stats/hints).
import { html, Page, Loaded, ErrorNotice, Badge, useLoad, api } from '../ui.js';
import { getAll } from '../api.js';
import { LoginChart, LoginTable, loginGrid } from '../chart.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const KEY_AGE_WARNING_DAYS = 90;
const SEVERITY_TONE = { danger: 'danger', warning: 'warn', info: 'neutral' };

const hourLabel = (t) => new Date(t).toLocaleString(undefined, { weekday: 'short', hour: '2-digit', minute: '2-digit' });
const dayLabel = (t) => new Date(t).toLocaleDateString(undefined, { weekday: 'short', day: 'numeric', month: 'short', timeZone: 'UTC' });

async function loadLogins() {
  const now = Date.now();
  // Seven whole UTC days, today included.
  const weekStart = new Date(Math.floor(now / DAY) * DAY - 6 * DAY).toISOString();
  const [hours, days] = await Promise.all([api('GET', '/stats/logins', { params: { bucket: 'hour' } }), api('GET', '/stats/logins', { params: { bucket: 'day', from: weekStart } })]);
  return { hours: loginGrid(hours.body, HOUR), days: loginGrid(days.body, DAY) };
}

function Section({ title, id, children, className }) {
  return html`<section class=${`panel ${className ?? ''}`} aria-labelledby=${id}>
    <h2 id=${id}>${title}</h2>
    ${children}
  </section>`;
}

/** A part of the page that loads on its own: its error does not hide the rest. */
function Part({ state, children }) {
  if (state.error && !state.data) return html`<${ErrorNotice} error=${state.error} title="Could not load this" />`;
  return html`<${Loaded} state=${state}>${children}<//>`;
}

function Charts({ logins }) {
  return html`<div class="grid">
    <${Section} title="Sign-ins, last 24 hours" id="logins-24h-title">
      <${Part} state=${logins}>${(d) => html`
        <${LoginChart} grid=${d.hours} label="Sign-ins per hour over the last 24 hours, successes and failures per connector" tableId="logins-24h" unit="hour" />
        <${LoginTable} grid=${d.hours} id="logins-24h" caption="Sign-ins in the last 24 hours per connector" bucketLabel="hour" formatBucket=${hourLabel} />`}<//>
    <//>
    <${Section} title="Sign-ins, last 7 days" id="logins-7d-title">
      <${Part} state=${logins}>${(d) => html`
        <${LoginChart} grid=${d.days} label="Sign-ins per day over the last 7 days, successes and failures per connector" tableId="logins-7d" unit="day" />
        <${LoginTable} grid=${d.days} id="logins-7d" caption="Sign-ins in the last 7 days per connector" bucketLabel="day" formatBucket=${dayLabel} />`}<//>
    <//>
  </div>`;
}

function FailureReasons({ overview }) {
  return html`<${Section} title="Top failure reasons, last 7 days" id="failures-title">
    <${Part} state=${overview}>${(o) =>
      o.topFailureReasons.length
        ? html`<div class="table-wrap"><table class="data" data-testid="failure-reasons">
            <caption class="visually-hidden">Failure reasons of the last 7 days</caption>
            <thead><tr><th scope="col">Reason</th><th scope="col" class="num">Failures</th><th scope="col"><span class="visually-hidden">Audit log</span></th></tr></thead>
            <tbody>${o.topFailureReasons.map((r) => html`<tr key=${r.reason}>
              <td data-label="Reason"><code>${r.reason}</code></td>
              <td class="num" data-label="Failures">${r.count}</td>
              <td data-label="Audit log"><a href=${`/admin/audit?outcome=failure&type=login.*&since=${encodeURIComponent(new Date(Date.parse(o.at) - 7 * DAY).toISOString())}`}>Failed sign-ins</a></td>
            </tr>`)}</tbody>
          </table></div>`
        : html`<p class="muted empty">No failed sign-ins in the last 7 days.</p>`}<//>
  <//>`;
}

/**
 * Connectors that need a look: disabled ones, ones whose latest error (status.lastError, from
 * the audit trail) came after their latest successful sign-in, and ones whose sign-ins of the
 * last 24 hours mostly failed.
 */
function connectorProblems(connectors, overview) {
  const totals = new Map(overview.last24h.map((t) => [t.connectorId, t]));
  const problems = [];
  for (const c of connectors) {
    const t = totals.get(c.id);
    const reasons = [];
    if (!c.enabled) reasons.push({ tone: 'neutral', text: 'disabled' });
    // Failing right now: its latest error is newer than its latest successful sign-in.
    const { lastError, lastSuccessAt } = c.status ?? {};
    if (lastError && (!lastSuccessAt || Date.parse(lastError.at) > Date.parse(lastSuccessAt))) reasons.push({ tone: 'danger', text: `last error: ${lastError.message}` });
    if (t && t.failure > 0 && t.failure >= t.success) reasons.push({ tone: 'warn', text: `${t.failure} of ${t.failure + t.success} sign-ins failed in 24 h` });
    if (reasons.length) problems.push({ connector: c, reasons });
  }
  return problems;
}

function ConnectorHealth({ connectors, overview }) {
  const state = { data: connectors.data && overview.data ? { connectors: connectors.data, overview: overview.data } : null, error: connectors.error ?? overview.error };
  return html`<${Section} title="Connectors needing attention" id="connectors-title">
    <${Part} state=${state}>${(d) => {
      const problems = connectorProblems(d.connectors, d.overview);
      if (!problems.length) return html`<p class="muted empty" data-testid="connector-problems">All ${d.connectors.length} connectors are enabled and their recent sign-ins mostly succeed.</p>`;
      return html`<ul class="plain-list" data-testid="connector-problems">${problems.map((p) => html`<li key=${p.connector.id}>
        <a href=${`/admin/connectors/${encodeURIComponent(p.connector.id)}`}>${p.connector.name || p.connector.id}</a>
        ${' '}<span class="muted">(${p.connector.id})</span>
        ${p.reasons.map((r) => html` <${Badge} tone=${r.tone}>${r.text}<//>`)}
      </li>`)}</ul>`;
    }}<//>
  <//>`;
}

function KeyAge({ keys }) {
  return html`<${Section} title="Signing keys" id="keys-title">
    <${Part} state=${keys}>${(items) => {
      const active = items.filter((k) => k.status === 'active');
      if (!active.length) return html`<p class="muted empty">No active signing key.</p>`;
      return html`<ul class="plain-list" data-testid="key-ages">${active.map((k) => {
        const days = Math.floor(k.ageSeconds / 86_400);
        const old = days >= KEY_AGE_WARNING_DAYS;
        return html`<li key=${k.kid}>
          <code>${k.kid}</code> (${k.alg}): <strong>${days} ${days === 1 ? 'day' : 'days'} old</strong>
          ${old ? html` <${Badge} tone="warn">older than ${KEY_AGE_WARNING_DAYS} days: rotate<//>` : null}
        </li>`;
      })}</ul>
      <p><a href="/admin/keys">Manage signing keys</a></p>`;
    }}<//>
  <//>`;
}

/** Only console pages are links; anything else from the API stays text. */
const consoleLink = (link) => typeof link === 'string' && /^\/admin\/[^/]/.test(link) && !link.startsWith('//');

function Hints({ hints }) {
  return html`<${Section} title="Settings to review" id="hints-title" className="risk-hints">
    <${Part} state=${hints}>${(items) =>
      items.length
        ? html`<ul class="hint-list" data-testid="hints">${items.map((h) => html`<li key=${h.id} data-hint=${h.id} class=${`risk-hint risk-hint-${h.severity}`}>
            <div><${Badge} tone=${SEVERITY_TONE[h.severity] ?? 'neutral'}>${h.severity}<//> <strong>${h.title}</strong></div>
            <p>${h.detail}</p>
            ${consoleLink(h.link) ? html`<a href=${h.link}>Review</a>` : null}
          </li>`)}</ul>`
        : html`<p class="muted empty">Nothing to review.</p>`}<//>
  <//>`;
}

export default function DashboardPage() {
  const logins = useLoad(loadLogins);
  const overview = useLoad(async () => (await api('GET', '/stats/overview')).body);
  const connectors = useLoad(() => getAll('/connectors'));
  const keys = useLoad(async () => (await api('GET', '/keys')).body.items);
  const hints = useLoad(async () => (await api('GET', '/stats/hints')).body.items);
  const refresh = () => [logins, overview, connectors, keys, hints].forEach((s) => s.reload());
  const busy = [logins, overview, connectors, keys, hints].some((s) => s.loading);
  return html`<${Page} title="Dashboard" actions=${html`<button type="button" class="secondary" disabled=${busy} onClick=${refresh}>${busy ? 'Loading…' : 'Refresh'}</button>`}>
    <${Charts} logins=${logins} />
    <div class="grid">
      <${FailureReasons} overview=${overview} />
      <${ConnectorHealth} connectors=${connectors} overview=${overview} />
      <${KeyAge} keys=${keys} />
    </div>
    <${Hints} hints=${hints} />
  <//>`;
}
