// Connectors: the list (type, state, where each is declared, how its logins went lately), adding
// one (choose a type or preset, then a form generated from the type's JSON Schema), and one
// connector's page: edit, test the connection (a failed step shows at the field it names),
// enable or disable, delete, and import a directory's users with a progress bar.
// Config-file connectors are shown read-only.
import { html, Page, Table, Loading, ErrorNotice, FormErrors, ConfirmButton, Badge, Time, Field, Notice, useLoad, useAction, useState, useEffect, useRef, api, Loaded } from '../ui.js';
import { ApiError, getAll, seg } from '../api.js';
import { SchemaForm, schemaPaths } from '../schema-form.js';

const SLUG = /^[a-z0-9][a-z0-9-]{0,63}$/;

const loadTypes = async () => (await api('GET', '/connector-types')).body.items;

export default function ConnectorsPage({ segments, query, navigate }) {
  const [first] = segments;
  if (!first) return html`<${ConnectorList} />`;
  if (first === 'new' && segments.length === 1) return html`<${NewConnector} key=${query.toString()} query=${query} navigate=${navigate} />`;
  return html`<${ConnectorDetail} key=${first} id=${first} query=${query} navigate=${navigate} />`;
}

function StatusCell({ status }) {
  if (!status) return null;
  return html`<div class="connector-status">
    <div>Last success: <${Time} value=${status.lastSuccessAt} /></div>
    ${status.lastError ? html`<div class="connector-error">Last error: <${Time} value=${status.lastError.at} /> — ${status.lastError.message}</div>` : null}
  </div>`;
}

const SourceBadge = ({ c }) =>
  c.source === 'config' ? html`<${Badge} tone="neutral" title="Declared in the configuration file: change it there">managed by config<//>` : html`<${Badge} tone="neutral">database<//>`;
const EnabledBadge = ({ enabled }) => html`<${Badge} tone=${enabled ? 'ok' : 'warn'}>${enabled ? 'enabled' : 'disabled'}<//>`;

function ConnectorList() {
  const data = useLoad(async () => {
    const [items, types] = await Promise.all([getAll('/connectors'), loadTypes().catch(() => [])]);
    return { items, labels: new Map(types.map((t) => [t.type, t.label])) };
  });
  return html`<${Page} title="Connectors" actions=${html`<a class="button primary" href="/admin/connectors/new">Add connector</a>`}>
    <p class="muted">Where people sign in: directories (LDAP, Active Directory), OpenID Connect and OAuth 2.0 providers, SAML identity providers.</p>
    <${ErrorNotice} error=${data.error} />
    <${Loaded} state=${data}>${() => html`<${Table}
            caption="Connectors"
            rows=${data.data.items}
            empty="No connectors yet."
            columns=${[
              { key: 'name', label: 'Connector', render: (c) => html`<div><a href=${`/admin/connectors/${seg(c.id)}`}>${c.name}</a><div class="fine connector-list-id"><code>${c.id}</code></div></div>` },
              { key: 'type', label: 'Type', render: (c) => data.data.labels.get(c.type) ?? c.type },
              { key: 'enabled', label: 'State', render: (c) => html`<div><${EnabledBadge} enabled=${c.enabled} /></div>` },
              { key: 'source', label: 'Source', render: (c) => html`<div><${SourceBadge} c=${c} /></div>` },
              { key: 'status', label: 'Status', render: (c) => html`<${StatusCell} status=${c.status} />` },
            ]}
          />`}<//>
  <//>`;
}

/** Chooses a type (and preset), then shows the form for it. */
function NewConnector({ query, navigate }) {
  const types = useLoad(loadTypes);
  const typeName = query.get('type');
  const presetName = query.get('preset');
  const type = types.data?.find((t) => t.type === typeName);
  const preset = type?.presets.find((p) => p.name === presetName);
  return html`<${Page} title=${type ? `Add ${preset ? preset.label : type.label} connector` : 'Add connector'}>
    <${ErrorNotice} error=${types.error} />
    ${types.loading && !types.data ? html`<${Loading} />` : null}
    ${types.data && !type ? html`<${TypeChooser} types=${types.data} />` : null}
    ${type
      ? html`<p><a href="/admin/connectors/new">Choose another type</a></p>
          ${preset?.hint ? html`<${Notice}>${preset.hint}<//>` : null}
          <${ConnectorForm} type=${type} initial=${{ id: '', name: '', enabled: false, config: preset?.config ?? {} }} navigate=${navigate} />`
      : null}
  <//>`;
}

function TypeChooser({ types }) {
  const creatable = types.filter((t) => t.type !== 'local');
  return html`<div class="grid connector-types">
    ${creatable.map(
      (t) => html`<section class="panel" key=${t.type} aria-labelledby=${`type-${t.type}`}>
        <h2 id=${`type-${t.type}`}>${t.label}</h2>
        <p class="fine">
          <code>${t.type}</code>${t.test ? ' · can be tested' : ''}${t.sync ? ' · imports its directory' : ''}
        </p>
        <ul class="preset-list">
          ${t.presets.length
            ? t.presets.map((p) => html`<li key=${p.name}><a href=${`/admin/connectors/new?type=${encodeURIComponent(t.type)}&preset=${encodeURIComponent(p.name)}`}>${p.label}</a></li>`)
            : html`<li><a href=${`/admin/connectors/new?type=${encodeURIComponent(t.type)}`}>Add ${t.label}</a></li>`}
        </ul>
      </section>`,
    )}
  </div>`;
}

/** The preset a config is in (by its `preset` field; none is the preset with an empty config), if the type has presets. */
const presetOf = (type, config) => type.presets.find((p) => p.config.preset === config?.preset) ?? null;

/** The test result as an ApiError-like value, so each failed step shows at the field it names. */
function testErrors(result) {
  if (!result) return null;
  const errors = result.steps.filter((s) => !s.ok && s.field).map((s) => ({ path: `body.${s.field}`, message: `${s.name} failed: ${s.detail}` }));
  return errors.length ? new ApiError(200, { detail: 'The connection test failed.', errors }) : null;
}

/** Save errors and test failures together, for the fields. */
function combined(a, b) {
  if (!a) return b;
  if (!b || !(a instanceof ApiError)) return a;
  const out = new ApiError(a.status, { detail: a.message, instance: a.requestId, errors: [...a.errors, ...b.errors] });
  return out;
}

/**
 * The form of a new or stored connector. A new one is created on "Save" (or, disabled, on "Test
 * connection": the API tests stored connectors only); a stored one is changed with If-Match.
 */
function ConnectorForm({ type, initial, connector, etag, onSaved, navigate, testResult, onTest, readOnly = false }) {
  const [id, setId] = useState(initial.id);
  const [name, setName] = useState(initial.name);
  const [enabled, setEnabled] = useState(initial.enabled);
  const [config, setConfig] = useState(initial.config);
  const [dirty, setDirty] = useState(false);
  const save = useAction();
  const isNew = !connector;
  const change = (setter) => (v) => {
    setter(v);
    setDirty(true);
  };

  const create = async (asEnabled) => {
    const body = { id, type: type.type, enabled: asEnabled, config };
    if (name) body.name = name;
    return (await api('POST', '/connectors', { body })).body;
  };
  const update = async () => {
    const res = await api('PATCH', `/connectors/${seg(connector.id)}`, { body: { name: name || connector.id, config }, ifMatch: etag });
    setDirty(false);
    onSaved(res.body, res.etag);
    return res.body;
  };
  const submit = (e) => {
    e.preventDefault();
    save.run(async () => {
      if (isNew) {
        const created = await create(enabled);
        navigate(`/admin/connectors/${seg(created.id)}`, { replace: true });
      } else {
        await update();
      }
    });
  };
  const test = () =>
    save.run(async () => {
      if (isNew) {
        // Saved disabled first: the API tests stored connectors. The connector page runs the test.
        const created = await create(false);
        navigate(`/admin/connectors/${seg(created.id)}?test=1`, { replace: true });
        return;
      }
      if (dirty) await update();
      await onTest();
    });

  const fieldError = combined(save.error, testErrors(testResult));
  const shown = ['body.id', 'body.name', ...schemaPaths(type.configSchema)];
  return html`<form class="panel connector-form" onSubmit=${submit} novalidate>
    <fieldset class="plain" disabled=${readOnly}>
      <legend class="visually-hidden">Connector</legend>
      ${isNew
        ? html`<${Field} label=${html`id <span class="required">(required)</span>`} path="body.id" error=${save.error} hint="Lowercase letters, digits and '-'; used in URLs (/callback/<id>); cannot be changed.">
            ${(control) => html`<input type="text" ...${control} name="id" required pattern=${SLUG.source} spellcheck="false" autocomplete="off" value=${id} onInput=${(e) => change(setId)(e.currentTarget.value)} />`}
          <//>`
        : null}
      <${Field} label="Name" path="body.name" error=${save.error} hint="Shown on the login page; defaults to the id.">
        ${(control) => html`<input type="text" ...${control} name="name" value=${name} onInput=${(e) => change(setName)(e.currentTarget.value)} />`}
      <//>
      ${isNew
        ? html`<div class="field"><label class="checkbox"><input type="checkbox" name="enabled" checked=${enabled} onChange=${(e) => setEnabled(e.currentTarget.checked)} /> Enabled (offered on the login page once saved)</label></div>`
        : null}
      <h2>${type.label} settings</h2>
      <${SchemaForm} schema=${type.configSchema} value=${config} onChange=${change(setConfig)} error=${fieldError} secretFields=${type.secretFields} secretsSet=${connector?.secretsSet ?? []} disabled=${readOnly} hidden=${presetOf(type, config)?.hide ?? []} />
    </fieldset>
    <${FormErrors} error=${save.error} shown=${shown} />
    ${readOnly
      ? null
      : html`<div class="actions form-actions">
          <button type="submit" class="primary" disabled=${save.busy}>${save.busy ? 'Saving…' : isNew ? 'Save connector' : 'Save changes'}</button>
          ${type.test ? html`<button type="button" class="secondary" disabled=${save.busy} onClick=${test}>${isNew ? 'Save disabled and test connection' : 'Test connection'}</button>` : null}
        </div>`}
  </form>`;
}

function TestReport({ result }) {
  if (!result) return null;
  const found = Object.entries(result.found ?? {});
  return html`<section class="panel test-report" aria-labelledby="test-title" data-ok=${String(result.ok)}>
    <h2 id="test-title">Connection test: ${result.ok ? html`<${Badge} tone="ok">passed<//>` : html`<${Badge} tone="danger">failed<//>`}</h2>
    ${result.supported ? null : html`<p class="muted">This type of connector has no test.</p>`}
    <ol class="test-steps">
      ${result.steps.map(
        (s) => html`<li key=${s.name} class=${s.ok ? 'step-ok' : 'step-failed'}>
          <${Badge} tone=${s.ok ? 'ok' : 'danger'}>${s.ok ? 'ok' : 'failed'}<//> <strong>${s.name}</strong> <span class="muted">${s.ms} ms</span>
          <div>${s.detail}</div>
          ${s.field ? html`<div class="fine">Field: <code>${s.field}</code></div>` : null}
        </li>`,
      )}
    </ol>
    ${found.length
      ? html`<h3>Found</h3><dl class="kv test-found">${found.map(([k, v]) => html`<dt key=${`k-${k}`}>${k}</dt><dd key=${`v-${k}`}>${typeof v === 'object' && v !== null ? html`<code>${JSON.stringify(v)}</code>` : String(v)}</dd>`)}</dl>`
      : null}
    <p class="fine">Tested <${Time} value=${result.testedAt} /></p>
  </section>`;
}

const COUNTS = ['total', 'processed', 'created', 'updated', 'unchanged', 'disabled', 'enabled', 'groups'];

/** Import a directory: start, poll the progress until it ends, show the counts. */
function SyncPanel({ connector }) {
  const [sync, setSync] = useState(null);
  const [loaded, setLoaded] = useState(false);
  const action = useAction();
  const timer = useRef(null);
  const path = `/connectors/${seg(connector.id)}/sync`;
  const poll = async () => {
    try {
      const { body } = await api('GET', path);
      setSync(body);
      if (body.state === 'running') timer.current = setTimeout(poll, 400);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) action.setError(err);
    } finally {
      setLoaded(true);
    }
  };
  useEffect(() => {
    poll();
    return () => clearTimeout(timer.current);
  }, [connector.id]);
  const start = () =>
    action.run(async () => {
      clearTimeout(timer.current);
      const { body } = await api('POST', path);
      setSync(body);
      timer.current = setTimeout(poll, 300);
    });
  const p = sync?.progress ?? {};
  const running = sync?.state === 'running';
  const max = typeof p.total === 'number' && p.total > 0 ? p.total : undefined;
  const value = running ? (max ? Math.min(p.processed ?? 0, max) : undefined) : 1;
  return html`<section class="panel sync-panel" aria-labelledby="sync-title">
    <h2 id="sync-title">Directory import</h2>
    <p class="muted">Imports every user of the directory now (and their groups); users gone from it are disabled.</p>
    <div class="actions"><button type="button" class="secondary" disabled=${action.busy || running || !connector.enabled} onClick=${start}>${running ? 'Importing…' : 'Sync now'}</button></div>
    ${connector.enabled ? null : html`<p class="fine">Enable the connector to import its users.</p>`}
    <${ErrorNotice} error=${action.error} />
    ${!loaded ? html`<${Loading} />` : null}
    ${sync
      ? html`<div class="sync-state" data-state=${sync.state}>
          <label for="sync-progress">${running ? 'Importing' : sync.state === 'succeeded' ? 'Last import succeeded' : 'Last import failed'}</label>
          <progress id="sync-progress" class="progress" max=${running ? max : 1} value=${value}></progress>
          ${sync.error ? html`<div class="alert" role="alert">${sync.error}</div>` : null}
          <dl class="kv sync-counts">
            ${COUNTS.filter((k) => typeof p[k] === 'number').map((k) => html`<dt key=${`k-${k}`}>${k}</dt><dd key=${`v-${k}`} data-count=${k}>${p[k]}</dd>`)}
            <dt>Started</dt><dd><${Time} value=${sync.startedAt} /></dd>
            <dt>Finished</dt><dd>${sync.finishedAt ? html`<${Time} value=${sync.finishedAt} />` : '—'}</dd>
          </dl>
        </div>`
      : loaded
        ? html`<p class="muted">No import has run yet.</p>`
        : null}
  </section>`;
}

function ConnectorDetail({ id, query, navigate }) {
  const data = useLoad(async () => {
    const [res, types] = await Promise.all([api('GET', `/connectors/${seg(id)}`), loadTypes()]);
    return { connector: res.body, etag: res.etag, type: types.find((t) => t.type === res.body.type) };
  });
  const [testResult, setTestResult] = useState(null);
  const tester = useAction();
  const toggler = useAction();
  const autoTest = useRef(query.get('test') === '1');

  const runTest = async () => {
    setTestResult(null);
    const { body } = await api('POST', `/connectors/${seg(id)}/test`);
    setTestResult(body);
  };
  useEffect(() => {
    if (data.data && autoTest.current) {
      autoTest.current = false;
      navigate(`/admin/connectors/${seg(id)}`, { replace: true });
      tester.run(runTest);
    }
  }, [data.data]);

  if (!data.data) return html`<${Page} title="Connector">${data.error ? html`<${ErrorNotice} error=${data.error} />` : html`<${Loading} />`}<//>`;
  const { connector, etag, type } = data.data;
  const saved = (body, newEtag) => data.setData({ ...data.data, connector: body, etag: newEtag });
  const setEnabled = (on) =>
    toggler.run(async () => {
      const res = await api('POST', `/connectors/${seg(id)}/${on ? 'enable' : 'disable'}`, { ifMatch: etag });
      saved(res.body, res.etag);
    });
  const remove = async () => {
    await api('DELETE', `/connectors/${seg(id)}`, { ifMatch: etag });
    navigate('/admin/connectors');
  };
  const readOnly = connector.readOnly;
  const actions = readOnly
    ? null
    : html`${connector.enabled
          ? html`<button type="button" class="secondary" disabled=${toggler.busy} onClick=${() => setEnabled(false)}>Disable</button>`
          : html`<button type="button" class="primary" disabled=${toggler.busy} onClick=${() => setEnabled(true)}>Enable</button>`}
        <${ConfirmButton} label="Delete" danger title=${`Delete connector ${connector.name}?`} message="Every instance stops offering it within 2 s. Its users and their links stay, but they can no longer sign in through it." confirmLabel="Delete connector" onConfirm=${remove} />`;

  return html`<${Page} title=${connector.name} actions=${actions}>
    <p><a href="/admin/connectors">All connectors</a></p>
    <dl class="kv panel connector-summary">
      <dt>id</dt><dd><code>${connector.id}</code></dd>
      <dt>Type</dt><dd>${type?.label ?? connector.type} <code>${connector.type}</code></dd>
      <dt>State</dt><dd><${EnabledBadge} enabled=${connector.enabled} /></dd>
      <dt>Source</dt><dd><${SourceBadge} c=${connector} /></dd>
      <dt>Status</dt><dd><${StatusCell} status=${connector.status} /></dd>
      ${connector.updatedAt ? html`<dt>Changed</dt><dd><${Time} value=${connector.updatedAt} /></dd>` : null}
    </dl>
    ${readOnly ? html`<${Notice}>This connector is declared in the configuration file and is read-only here: change it in the file. You can still test it${type?.sync ? ' and import its directory' : ''}.<//>` : null}
    <${ErrorNotice} error=${toggler.error} />
    <${ErrorNotice} error=${tester.error} title="The test could not run" />
    ${readOnly && type?.test ? html`<div class="actions"><button type="button" class="secondary" disabled=${tester.busy} onClick=${() => tester.run(runTest)}>Test connection</button></div>` : null}
    ${tester.busy ? html`<${Loading} label="Testing the connection…" />` : null}
    <${TestReport} result=${testResult} />
    ${type
      ? html`<${ConnectorForm}
          type=${type}
          connector=${connector}
          etag=${etag}
          readOnly=${readOnly}
          initial=${{ id: connector.id, name: connector.name, enabled: connector.enabled, config: connector.config }}
          onSaved=${(body, newEtag) => {
            saved(body, newEtag);
          }}
          onTest=${runTest}
          testResult=${testResult}
          navigate=${navigate}
        />`
      : html`<${Notice} tone="danger">The type <code>${connector.type}</code> is not loaded by this broker; its settings cannot be shown.<//>`}
    ${type?.sync ? html`<${SyncPanel} connector=${connector} />` : null}
  <//>`;
}
