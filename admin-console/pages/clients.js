// OIDC clients: the list (config and Keybridge's own clients read-only), creating one (its
// secret shown once), and one client's page: edit (PATCH with If-Match), new secret, delete.
// Everything goes through /admin/api/v1/clients (docs/admin-api/clients.md).
import { html, Page, Table, Loading, ErrorNotice, FormErrors, Field, ConfirmButton, CopyButton, Badge, Time, Notice, Pager, usePager, useLoad, useAction, useState, api, Loaded } from '../ui.js';
import { ApiError, seg } from '../api.js';

const GRANTS = [
  { value: 'authorization_code', label: 'Authorization code (sign-in)' },
  { value: 'refresh_token', label: 'Refresh token' },
  { value: 'client_credentials', label: 'Client credentials (service)' },
  { value: 'urn:ietf:params:oauth:grant-type:device_code', label: 'Device code' },
];
const AUTH_METHODS = [
  { value: 'client_secret_basic', label: 'Confidential (client_secret_basic)' },
  { value: 'client_secret_post', label: 'Confidential, secret in the body (client_secret_post)' },
  { value: 'none', label: 'Public: browser or mobile app, PKCE (none)' },
];
const OVERLAPS = [
  { value: 0, label: 'stops working now' },
  { value: 3600, label: 'keeps working for 1 hour' },
  { value: 86_400, label: 'keeps working for 24 hours' },
  { value: 7 * 86_400, label: 'keeps working for 7 days' },
];
const grantLabel = (g) => (g.startsWith('urn:') ? 'device_code' : g);
const clientHref = (id) => `/admin/clients/${seg(id)}`;

/** Where a client comes from, as a badge: only stored clients can be changed here. */
export function SourceBadge({ client }) {
  if (client.source === 'config') return html`<${Badge} tone="neutral" title="Declared in the config file: change it there.">managed by config<//>`;
  if (client.source === 'internal') return html`<${Badge} tone="neutral" title="Keybridge registers this client itself.">managed by Keybridge<//>`;
  return html`<${Badge} tone="ok">stored<//>`;
}

const TypeBadge = ({ client }) => (client.tokenEndpointAuthMethod === 'none' ? html`<${Badge} tone="neutral">public<//>` : html`<${Badge} tone="neutral">confidential<//>`);

export default function ClientsPage({ segments, navigate }) {
  if (!segments.length) return html`<${ClientList} />`;
  if (segments.length === 1 && segments[0] === 'new') return html`<${NewClient} navigate=${navigate} />`;
  return html`<${ClientDetail} key=${segments[0]} id=${segments[0]} navigate=${navigate} />`;
}

function ClientList() {
  const pager = usePager();
  const list = useLoad(async () => (await api('GET', '/clients', { params: { limit: 50, cursor: pager.cursor } })).body, [pager.cursor]);
  return html`<${Page} title="Clients" actions=${html`<a class="button primary" href="/admin/clients/new">New client</a>`}>
    <p class="muted">Applications that sign people in with Keybridge (OpenID Connect) or call APIs with its tokens. Clients from the config file and Keybridge's own are shown read-only.</p>
    <${ErrorNotice} error=${list.error} />
    <${Loaded} state=${list}>${() => html`<${Table}
            caption="OIDC clients"
            rows=${list.data.items}
            empty="No clients yet."
            columns=${[
              { key: 'id', label: 'Client', render: (c) => html`<div><a href=${clientHref(c.id)}><strong>${c.name}</strong></a><div class="sub"><code>${c.id}</code></div></div>` },
              { key: 'type', label: 'Type', render: (c) => html`<${TypeBadge} client=${c} />` },
              { key: 'grantTypes', label: 'Grant types', render: (c) => c.grantTypes.map(grantLabel).join(', ') },
              { key: 'redirectUris', label: 'Redirect URIs', render: (c) => String(c.redirectUris.length) },
              { key: 'source', label: 'Source', render: (c) => html`<${SourceBadge} client=${c} />` },
              { key: 'enabled', label: 'State', render: (c) => (c.enabled ? html`<${Badge} tone="ok">enabled<//>` : html`<${Badge} tone="danger">disabled<//>`) },
            ]}
          />
          <${Pager} pager=${pager} nextCursor=${list.data.nextCursor} />`}<//>
  <//>`;
}

/** A secret the API returned once: shown with a copy button and a clear warning. */
function SecretOnce({ secret, clientId }) {
  return html`<div class="panel secret-panel" role="status">
    <h2>Client secret</h2>
    <p><strong>Copy it now: it will not be shown again.</strong> Keybridge keeps only a hash of it. If it is lost, give the client a new secret.</p>
    <div class="secret-row">
      <code class="secret-once" data-testid="client-secret">${secret}</code>
      <${CopyButton} value=${secret} label="Copy secret" />
    </div>
    <p class="fine">Client id <code data-testid="client-id">${clientId}</code></p>
  </div>`;
}

/** Lines of a one-URI-per-line text area, with their line numbers (blank lines skipped). */
function uriLines(text) {
  return text
    .split('\n')
    .map((value, i) => ({ value: value.trim(), line: i + 1 }))
    .filter((l) => l.value !== '');
}

/** A one-URI-per-line list whose API errors (body.<field>.<index>) are shown at their line. */
function UriListField({ label, field, value, onInput, error, hint }) {
  const path = `body.${field}`;
  const [id] = useState(() => `uris-${field}`);
  const lines = uriLines(value);
  const problems = error instanceof ApiError ? error.errors.filter((e) => e.path === path || e.path.startsWith(`${path}.`)) : [];
  const messages = problems.map((e) => {
    const index = e.path === path ? null : Number(e.path.slice(path.length + 1).split('.')[0]);
    const at = index === null ? null : lines[index];
    return { key: e.path + e.message, line: at?.line ?? null, text: at ? `Line ${at.line} (${at.value.length > 80 ? `${at.value.slice(0, 80)}…` : at.value}): ${e.message}` : e.message };
  });
  return html`<div class=${`field${messages.length ? ' field-invalid' : ''}`} data-path=${path}>
    <label for=${id}>${label}</label>
    <textarea id=${id} rows="4" spellcheck="false" autocomplete="off" value=${value} onInput=${(e) => onInput(e.currentTarget.value)} aria-describedby=${`${id}-hint${messages.length ? ` ${id}-error` : ''}`} aria-invalid=${messages.length ? 'true' : undefined}></textarea>
    <div class="hint" id=${`${id}-hint`}>${hint ?? 'One absolute URI per line, without a fragment (#).'}</div>
    ${messages.length ? html`<ul class="field-error uri-errors" id=${`${id}-error`} role="alert">${messages.map((m) => html`<li key=${m.key} data-line=${m.line ?? undefined}>${m.text}</li>`)}</ul>` : null}
  </div>`;
}

const formOf = (client) => ({
  id: '',
  name: client?.name ?? '',
  tokenEndpointAuthMethod: client?.tokenEndpointAuthMethod ?? 'client_secret_basic',
  grantTypes: client?.grantTypes ?? ['authorization_code', 'refresh_token'],
  redirectUris: (client?.redirectUris ?? []).join('\n'),
  postLogoutRedirectUris: (client?.postLogoutRedirectUris ?? []).join('\n'),
  backchannelLogoutUri: client?.backchannelLogoutUri ?? '',
  scopes: (client?.scopes ?? []).join(' '),
  firstParty: client?.firstParty ?? false,
  enabled: client?.enabled ?? true,
});

/** A form's values in API terms; empty text is null. */
function fieldsOf(form) {
  return {
    name: form.name.trim() === '' ? null : form.name,
    tokenEndpointAuthMethod: form.tokenEndpointAuthMethod,
    grantTypes: form.grantTypes,
    redirectUris: uriLines(form.redirectUris).map((l) => l.value),
    postLogoutRedirectUris: uriLines(form.postLogoutRedirectUris).map((l) => l.value),
    backchannelLogoutUri: form.backchannelLogoutUri.trim() === '' ? null : form.backchannelLogoutUri.trim(),
    scopes: form.scopes.trim() === '' ? null : form.scopes.trim().split(/\s+/),
    firstParty: form.firstParty,
    enabled: form.enabled,
  };
}

/** The API body: for a new client, every field given (an empty one takes its default); for an edit, the fields that changed. */
function bodyOf(form, initial) {
  const now = fieldsOf(form);
  if (!initial) {
    const body = Object.fromEntries(Object.entries(now).filter(([, v]) => v !== null));
    return form.id.trim() === '' ? body : { id: form.id.trim(), ...body };
  }
  const before = fieldsOf(initial);
  // An emptied scope list is not sent: a stored client always has its scopes.
  return Object.fromEntries(Object.entries(now).filter(([k, v]) => JSON.stringify(v) !== JSON.stringify(before[k]) && !(k === 'scopes' && v === null)));
}

const SHOWN = ['body.id', 'body.name', 'body.tokenEndpointAuthMethod', 'body.grantTypes', 'body.redirectUris', 'body.postLogoutRedirectUris', 'body.backchannelLogoutUri', 'body.scopes', 'body.firstParty', 'body.enabled'];

function ClientForm({ initial, error, busy, onSubmit, submitLabel }) {
  const [form, setForm] = useState(() => formOf(initial));
  const set = (k) => (v) => setForm((f) => ({ ...f, [k]: v }));
  const text = (k) => (e) => set(k)(e.currentTarget.value);
  const toggleGrant = (g) => (e) => setForm((f) => ({ ...f, grantTypes: e.currentTarget.checked ? [...f.grantTypes, g] : f.grantTypes.filter((x) => x !== g) }));
  const submit = (e) => {
    e.preventDefault();
    onSubmit(bodyOf(form, initial ? formOf(initial) : null));
  };
  return html`<form class="panel client-form" onSubmit=${submit} novalidate>
    <${FormErrors} error=${error} shown=${SHOWN} />
    <div class="grid">
      <div>
        ${initial
          ? null
          : html`<${Field} label="Client id" path="body.id" error=${error} hint="Letters, digits and . _ ~ -, up to 128. Leave empty for a random id.">
              ${(p) => html`<input type="text" name="id" autocomplete="off" spellcheck="false" value=${form.id} onInput=${text('id')} ...${p} />`}
            <//>`}
        <${Field} label="Name" path="body.name" error=${error} hint="Shown on the consent and sign-out pages; defaults to the id.">
          ${(p) => html`<input type="text" name="name" autocomplete="off" value=${form.name} onInput=${text('name')} ...${p} />`}
        <//>
        <${Field} label="Client type" path="body.tokenEndpointAuthMethod" error=${error} hint="A confidential client (a server-side app) gets a secret; a public one signs in with PKCE only.">
          ${(p) => html`<select name="tokenEndpointAuthMethod" value=${form.tokenEndpointAuthMethod} onChange=${text('tokenEndpointAuthMethod')} ...${p}>
            ${AUTH_METHODS.map((m) => html`<option value=${m.value} selected=${m.value === form.tokenEndpointAuthMethod}>${m.label}</option>`)}
            ${AUTH_METHODS.some((m) => m.value === form.tokenEndpointAuthMethod) ? null : html`<option value=${form.tokenEndpointAuthMethod} selected>${form.tokenEndpointAuthMethod}</option>`}
          </select>`}
        <//>
        <fieldset class=${`field grant-types${error instanceof ApiError && error.fieldErrors('body.grantTypes').length ? ' field-invalid' : ''}`} data-path="body.grantTypes">
          <legend>Grant types</legend>
          ${GRANTS.map((g) => html`<label class="checkbox"><input type="checkbox" name="grantTypes" value=${g.value} checked=${form.grantTypes.includes(g.value)} onChange=${toggleGrant(g.value)} /> ${g.label}</label>`)}
          ${error instanceof ApiError && error.fieldErrors('body.grantTypes').length ? html`<div class="field-error" role="alert">${error.fieldErrors('body.grantTypes').join('; ')}</div>` : null}
        </fieldset>
        <${Field} label="Scopes" path="body.scopes" error=${error} hint=${initial ? 'Separated by spaces.' : "Separated by spaces. Leave empty for every scope Keybridge offers (no admin scope)."}>
          ${(p) => html`<input type="text" name="scopes" autocomplete="off" spellcheck="false" value=${form.scopes} onInput=${text('scopes')} ...${p} />`}
        <//>
      </div>
      <div>
        <${UriListField} label="Redirect URIs" field="redirectUris" value=${form.redirectUris} onInput=${set('redirectUris')} error=${error} hint="Where Keybridge sends people back after sign-in. One absolute URI per line, without a fragment (#); required for the authorization code grant." />
        <${UriListField} label="Post-logout redirect URIs" field="postLogoutRedirectUris" value=${form.postLogoutRedirectUris} onInput=${set('postLogoutRedirectUris')} error=${error} />
        <${Field} label="Back-channel logout URI" path="body.backchannelLogoutUri" error=${error} hint="Optional. Keybridge posts a logout token here when a session ends (public addresses only).">
          ${(p) => html`<input type="url" name="backchannelLogoutUri" autocomplete="off" spellcheck="false" value=${form.backchannelLogoutUri} onInput=${text('backchannelLogoutUri')} ...${p} />`}
        <//>
        <div class="field" data-path="body.firstParty">
          <label class="checkbox"><input type="checkbox" name="firstParty" checked=${form.firstParty} onChange=${(e) => set('firstParty')(e.currentTarget.checked)} /> First-party application (no consent screen)</label>
        </div>
        <div class="field" data-path="body.enabled">
          <label class="checkbox"><input type="checkbox" name="enabled" checked=${form.enabled} onChange=${(e) => set('enabled')(e.currentTarget.checked)} /> Enabled</label>
          <div class="hint">Disabling a client revokes its tokens, codes and grants.</div>
        </div>
      </div>
    </div>
    <div class="actions"><button type="submit" class="primary" disabled=${busy}>${busy ? 'Saving…' : submitLabel}</button></div>
  </form>`;
}

function NewClient({ navigate }) {
  const action = useAction();
  const [created, setCreated] = useState(null);
  const create = (body) =>
    action.run(async () => {
      const { body: client } = await api('POST', '/clients', { body });
      setCreated(client);
    });
  if (created) {
    return html`<${Page} title=${`Client ${created.name} created`}>
      ${created.clientSecret ? html`<${SecretOnce} secret=${created.clientSecret} clientId=${created.id} />` : html`<${Notice}>This client has no secret (${created.tokenEndpointAuthMethod}). Client id <code data-testid="client-id">${created.id}</code><//>`}
      <div class="actions"><a class="button primary" href=${clientHref(created.id)}>Go to the client</a><a class="button" href="/admin/clients">Back to the list</a></div>
    <//>`;
  }
  return html`<${Page} title="New client" actions=${html`<a class="button" href="/admin/clients">Cancel</a>`}>
    <p class="muted">A confidential client gets a generated secret, shown once after creation.</p>
    <${ClientForm} error=${action.error} busy=${action.busy} onSubmit=${create} submitLabel="Create client" />
  <//>`;
}

function ReadOnlyClient({ client }) {
  return html`<div class="panel">
    <p>${client.source === 'config' ? 'This client is declared in the config file: change it there.' : 'Keybridge registers this client itself; it cannot be changed here.'}</p>
    <dl class="kv">
      <dt>Client id</dt><dd><code>${client.id}</code></dd>
      <dt>Type</dt><dd><${TypeBadge} client=${client} /> <span class="muted">${client.tokenEndpointAuthMethod}</span></dd>
      <dt>Grant types</dt><dd>${client.grantTypes.map(grantLabel).join(', ')}</dd>
      <dt>Redirect URIs</dt><dd>${client.redirectUris.length ? html`<ul class="plain">${client.redirectUris.map((u) => html`<li><code>${u}</code></li>`)}</ul>` : html`<span class="muted">none</span>`}</dd>
      <dt>Post-logout URIs</dt><dd>${client.postLogoutRedirectUris.length ? html`<ul class="plain">${client.postLogoutRedirectUris.map((u) => html`<li><code>${u}</code></li>`)}</ul>` : html`<span class="muted">none</span>`}</dd>
      <dt>Scopes</dt><dd>${client.scopes ? client.scopes.join(' ') : html`<span class="muted">every scope Keybridge offers</span>`}</dd>
      <dt>First party</dt><dd>${client.firstParty ? 'yes (no consent screen)' : 'no'}</dd>
      <dt>State</dt><dd>${client.enabled ? 'enabled' : 'disabled'}</dd>
    </dl>
  </div>`;
}

function ClientDetail({ id, navigate }) {
  const loaded = useLoad(async () => {
    const res = await api('GET', `/clients/${seg(id)}`);
    return { client: res.body, etag: res.etag };
  }, [id]);
  const save = useAction();
  const [secret, setSecret] = useState(null);
  const [saved, setSaved] = useState(false);
  const [formKey, setFormKey] = useState(0);
  const [overlap, setOverlap] = useState(86_400);
  if (loaded.error && !loaded.data) {
    const missing = loaded.error instanceof ApiError && loaded.error.status === 404;
    return html`<${Page} title=${missing ? 'Client not found' : 'Client'}>
      ${missing ? html`<p>There is no client <code>${id}</code> (any more). <a href="/admin/clients">Back to the clients</a>.</p>` : html`<${ErrorNotice} error=${loaded.error} />`}
    <//>`;
  }
  if (!loaded.data) return html`<${Page} title="Client"><${Loading} /><//>`;
  const { client, etag } = loaded.data;
  // After a save the form starts again from what was stored; a new secret leaves unsaved edits alone.
  const accept = (res, { resetForm }) => {
    loaded.setData({ client: res.body, etag: res.etag });
    if (resetForm) setFormKey((k) => k + 1);
    if (res.body.clientSecret) setSecret(res.body.clientSecret);
  };
  const submit = (body) =>
    save.run(async () => {
      setSaved(false);
      const res = await api('PATCH', `/clients/${seg(client.id)}`, { body, ifMatch: etag });
      accept(res, { resetForm: true });
      setSaved(true);
    });
  const rotate = async () => {
    setSaved(false);
    const res = await api('POST', `/clients/${seg(client.id)}/rotate-secret`, { body: { overlapSeconds: overlap }, ifMatch: etag });
    accept(res, { resetForm: false });
  };
  const remove = async () => {
    await api('DELETE', `/clients/${seg(client.id)}`, { ifMatch: etag });
    navigate('/admin/clients', { replace: true });
  };
  const hasSecret = client.tokenEndpointAuthMethod === 'client_secret_basic' || client.tokenEndpointAuthMethod === 'client_secret_post';
  return html`<${Page}
    title=${client.name}
    actions=${client.readOnly ? html`<${SourceBadge} client=${client} />` : html`<${ConfirmButton}
      label="Delete client"
      title=${`Delete the client ${client.name}?`}
      message=${`The client “${client.name}” (${client.id}) is deleted, and every token, code and grant it holds is revoked: the application can no longer sign anyone in or call APIs.`}
      confirmLabel="Delete"
      danger=${true}
      onConfirm=${remove}
    />`}
  >
    <p class="muted"><code>${client.id}</code> · <${TypeBadge} client=${client} /> · <${SourceBadge} client=${client} />${client.updatedAt ? html` · changed <${Time} value=${client.updatedAt} />` : null}</p>
    ${secret ? html`<${SecretOnce} secret=${secret} clientId=${client.id} />` : null}
    ${saved ? html`<${Notice}>Saved.<//>` : null}
    <${ErrorNotice} error=${loaded.error} />
    ${client.readOnly
      ? html`<${ReadOnlyClient} client=${client} />`
      : html`
        <${ClientForm} key=${formKey} initial=${client} error=${save.error} busy=${save.busy} onSubmit=${submit} submitLabel="Save changes" />
        ${hasSecret
          ? html`<section class="panel rotate-panel" aria-labelledby="secret-title">
              <h2 id="secret-title">Secret</h2>
              <p>
                ${client.secretStatus.set ? 'A secret is set.' : 'No secret is set.'}
                ${client.secretStatus.previousValidUntil && Date.parse(client.secretStatus.previousValidUntil) > Date.now() ? html` The previous secret still works until <${Time} value=${client.secretStatus.previousValidUntil} />.` : null}
              </p>
              <div class="toolbar">
                <div class="field">
                  <label for="rotate-overlap">After a new secret, the current one</label>
                  <select id="rotate-overlap" value=${overlap} onChange=${(e) => setOverlap(Number(e.currentTarget.value))}>
                    ${OVERLAPS.map((o) => html`<option value=${o.value} selected=${o.value === overlap}>${o.label}</option>`)}
                  </select>
                </div>
                <${ConfirmButton}
                  label="New secret"
                  title=${`Give ${client.name} a new secret?`}
                  message=${`A new secret is generated and shown once. The current secret ${OVERLAPS.find((o) => o.value === overlap)?.label ?? ''}; the application must be given the new one.`}
                  confirmLabel="Generate new secret"
                  onConfirm=${rotate}
                />
              </div>
            </section>`
          : null}`}
  <//>`;
}
