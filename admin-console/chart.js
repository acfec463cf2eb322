// Login charts drawn with uPlot: successes and failures per connector over time (one colour per
// connector; failures dashed, their points red). The canvas is
// hidden from screen readers; every chart comes with a table of the same numbers (LoginTable)
// that the figure points to. Colours come from the stylesheet's variables, so dark mode works.
import { html, useEffect, useRef } from './ui.js';

// uPlot (145 KB) loads beside the page's API calls, not before them: the import starts when
// this module is first evaluated and each chart awaits it.
let uPlotModule = null;
const loadUPlot = () => (uPlotModule ??= import('./vendor/uplot.js').then((m) => m.default));
loadUPlot();

const PALETTE = ['#2f5bd3', '#0f8a6a', '#8a5cf6', '#c2410c', '#0e7490', '#a21caf', '#4d7c0f', '#b45309'];
const FAILURE = '#c0392b';

/** The label of a connector id (null: the attempt ended before one was chosen). */
export const connectorLabel = (id) => (id === null ? '(no connector)' : id);

/**
 * Turns /stats/logins items into a grid: every bucket from `from` to `to` (empty ones as 0),
 * one row per connector with success and failure counts per bucket.
 */
export function loginGrid(stats, stepMs) {
  const start = Math.floor(Date.parse(stats.from) / stepMs) * stepMs;
  const end = Date.parse(stats.to);
  const buckets = [];
  for (let t = start; t < end; t += stepMs) buckets.push(t);
  const index = new Map(buckets.map((t, i) => [t, i]));
  const rows = new Map();
  for (const item of stats.items) {
    const key = item.connectorId;
    if (!rows.has(key)) rows.set(key, { connectorId: key, success: buckets.map(() => 0), failure: buckets.map(() => 0) });
    const i = index.get(Date.parse(item.bucket));
    if (i !== undefined) rows.get(key)[item.outcome][i] += item.count;
  }
  const connectors = [...rows.values()].sort((a, b) => String(a.connectorId ?? '').localeCompare(String(b.connectorId ?? '')));
  return { buckets, connectors };
}

const sum = (values) => values.reduce((a, b) => a + b, 0);
const cssVar = (name, fallback) => getComputedStyle(document.body).getPropertyValue(name).trim() || fallback;

/** A uPlot line chart of a login grid, resized with its container. */
export function LoginChart({ grid, label, tableId, unit }) {
  const box = useRef(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    const text = cssVar('--muted', '#5b6678');
    const line = cssVar('--border', '#d6dce5');
    const series = [{ label: 'Time' }];
    const data = [grid.buckets.map((t) => t / 1000)];
    grid.connectors.forEach((c, i) => {
      const colour = PALETTE[i % PALETTE.length];
      series.push({ label: `${connectorLabel(c.connectorId)} successes`, stroke: colour, width: 2, points: { show: true, size: 4 } });
      data.push(c.success);
      series.push({ label: `${connectorLabel(c.connectorId)} failures`, stroke: colour, dash: [5, 4], width: 2, points: { show: true, size: 5, fill: FAILURE, stroke: FAILURE } });
      data.push(c.failure);
    });
    const axis = { stroke: text, grid: { stroke: line, width: 1 }, ticks: { stroke: line, width: 1 } };
    const width = () => Math.max(260, Math.floor(el.clientWidth));
    let plot = null;
    let observer = null;
    let cancelled = false;
    loadUPlot().then((uPlot) => {
      if (cancelled) return;
      plot = new uPlot(
        {
          width: width(),
          height: 220,
          series,
          scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
          axes: [{ ...axis, values: unit === 'day' ? '{D} {MMM}' : undefined }, { ...axis, size: 40, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000] }],
          // Day buckets are UTC days: label them as such, whatever the browser's zone.
          ...(unit === 'day' ? { tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC') } : {}),
          legend: { live: false },
          cursor: { drag: { x: false, y: false } },
        },
        data,
        el,
      );
      observer = new ResizeObserver(() => plot.setSize({ width: width(), height: 220 }));
      observer.observe(el);
    });
    return () => {
      cancelled = true;
      observer?.disconnect();
      plot?.destroy();
    };
  }, [grid, unit]);
  return html`<figure class="login-chart" aria-describedby=${tableId}>
    <figcaption class="visually-hidden">${label}: the numbers are in the table that follows.</figcaption>
    <div class="login-chart-canvas" ref=${box} aria-hidden="true"></div>
  </figure>`;
}

/** The chart's numbers: totals per connector, and (folded) every bucket. */
export function LoginTable({ grid, id, caption, bucketLabel, formatBucket }) {
  if (!grid.connectors.length) return html`<p class="muted empty" id=${id}>No sign-ins in this period.</p>`;
  return html`<div id=${id}>
    <div class="table-wrap"><table class="data login-totals" data-testid=${id}>
      <caption class="visually-hidden">${caption}</caption>
      <thead><tr><th scope="col">Connector</th><th scope="col" class="num">Successes</th><th scope="col" class="num">Failures</th></tr></thead>
      <tbody>${grid.connectors.map((c) => html`<tr key=${String(c.connectorId)} data-connector=${c.connectorId ?? ''}>
        <th scope="row" data-label="Connector">${connectorLabel(c.connectorId)}</th>
        <td class="num" data-label="Successes">${sum(c.success)}</td>
        <td class="num" data-label="Failures">${sum(c.failure)}</td>
      </tr>`)}</tbody>
    </table></div>
    <details class="chart-numbers">
      <summary>Numbers per ${bucketLabel}</summary>
      <div class="table-wrap"><table class="data">
        <caption class="visually-hidden">${caption}, per ${bucketLabel}</caption>
        <thead><tr><th scope="col">${bucketLabel[0].toUpperCase()}${bucketLabel.slice(1)}</th>${grid.connectors.map((c) => html`<th scope="col" class="num">${connectorLabel(c.connectorId)} ok / failed</th>`)}</tr></thead>
        <tbody>${grid.buckets.map((t, i) => html`<tr key=${t}>
          <th scope="row" data-label=${bucketLabel}>${formatBucket(t)}</th>
          ${grid.connectors.map((c) => html`<td class="num" data-label=${connectorLabel(c.connectorId)}>${c.success[i]} / ${c.failure[i]}</td>`)}
        </tr>`)}</tbody>
      </table></div>
    </details>
  </div>`;
}
