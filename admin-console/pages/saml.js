// SAML apps: Keybridge's own IdP metadata (what a service provider needs to trust us), the
// service providers it signs in to (config-declared ones read-only), adding one from a metadata
// URL or its metadata XML (pasted, or a file read here in the browser), and removing one.
// Through /admin/api/v1/saml-idp and /admin/api/v1/saml-service-providers (docs/admin-api/saml.md).
import { html, Page, Table, Loading, ErrorNotice, FormErrors, Field, ConfirmButton, CopyButton, Badge, Time, Notice, Pager, usePager, useLoad, useAction, useState, api, Loaded } from '../ui.js';
import { ApiError, seg } from '../api.js';

const DAY = 86_400_000;
const MAX_FILE = 1_000_000;

export default function SamlPage() {
  const pager = usePager();
  const list = useLoad(async () => (await api('GET', '/saml-service-providers', { params: { limit: 50, cursor: pager.cursor } })).body, [pager.cursor]);
  const [added, setAdded] = useState(null);
  const [removed, setRemoved] = useState(null);
  const afterAdd = (sp) => {
    setRemoved(null);
    setAdded(sp);
    list.reload();
  };
  const remove = async (sp) => {
    await api('DELETE', `/saml-service-providers/${seg(sp.entityId)}`);
    setAdded(null);
    setRemoved(sp);
    await list.reload();
  };
  return html`<${Page} title="SAML apps">
    <p class="muted">Applications (SAML service providers) that people sign in to with Keybridge acting as their SAML identity provider.</p>
    <${IdpPanel} />
    <h2>Service providers</h2>
    ${added ? html`<${Notice}>Added ${added.name ?? added.entityId}.${added.warning ? html` <strong>Warning:</strong> ${added.warning}` : null}<//>` : null}
    ${removed ? html`<${Notice}>Removed ${removed.name ?? removed.entityId}.<//>` : null}
    <${ErrorNotice} error=${list.error} />
    <${Loaded} state=${list}>${() => html`<${Table}
            caption="SAML service providers"
            rowKey=${(sp) => sp.entityId}
            rows=${list.data.items}
            empty="No service providers yet."
            columns=${[
              { key: 'entityId', label: 'Service provider', render: (sp) => html`<div><strong>${sp.name ?? sp.entityId}</strong><div class="sub"><code>${sp.entityId}</code></div></div>` },
              { key: 'acs', label: 'Assertion consumer', render: (sp) => (sp.assertionConsumerServices ? html`<div>${sp.assertionConsumerServices.map((u) => html`<div><code>${u}</code></div>`)}</div>` : html`<span class="muted">read from the metadata URL when used</span>`) },
              { key: 'metadata', label: 'Metadata', render: (sp) => (sp.metadata.from === 'url' ? html`URL <code>${sp.metadata.url}</code>` : sp.metadata.from === 'xml' ? 'XML' : sp.metadata.from) },
              { key: 'source', label: 'Source', render: (sp) => (sp.readOnly ? html`<${Badge} tone="neutral" title="Declared in the config file: change it there.">managed by config<//>` : html`<${Badge} tone="ok">stored<//>`) },
              { key: 'enabled', label: 'State', render: (sp) => (sp.enabled ? html`<${Badge} tone="ok">enabled<//>` : html`<${Badge} tone="danger">disabled<//>`) },
              { key: 'createdAt', label: 'Added', render: (sp) => (sp.createdAt ? html`<${Time} value=${sp.createdAt} />` : html`<span class="muted">—</span>`) },
              {
                key: 'actions',
                label: 'Actions',
                render: (sp) =>
                  sp.readOnly
                    ? html`<span class="muted">—</span>`
                    : html`<${ConfirmButton}
                        label="Delete"
                        title=${`Remove ${sp.name ?? sp.entityId}?`}
                        message=${`The service provider “${sp.name ?? sp.entityId}” (${sp.entityId}) is removed: Keybridge no longer signs anyone in to it.`}
                        confirmLabel="Remove"
                        danger=${true}
                        onConfirm=${() => remove(sp)}
                      />`,
              },
            ]}
          />
          <${Pager} pager=${pager} nextCursor=${list.data.nextCursor} />`}<//>
    <${AddServiceProvider} onAdded=${afterAdd} />
  <//>`;
}

function IdpPanel() {
  const idp = useLoad(async () => {
    try {
      return (await api('GET', '/saml-idp')).body;
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return { disabled: error.message };
      throw error;
    }
  });
  return html`<section class="panel idp-panel" aria-labelledby="idp-title">
    <h2 id="idp-title">Our IdP metadata</h2>
    <${ErrorNotice} error=${idp.error} />
    ${idp.loading && !idp.data
      ? html`<${Loading} />`
      : idp.data?.disabled
        ? html`<${Notice}>${idp.data.disabled} Service providers listed below cannot sign anyone in until it is enabled.<//>`
        : idp.data
          ? html`<dl class="kv" data-testid="idp-metadata">
              <dt>Entity ID</dt><dd><code data-testid="idp-entity-id">${idp.data.entityId}</code></dd>
              <dt>Metadata URL</dt><dd class="with-copy"><a href=${idp.data.metadataUrl} target="_blank" rel="noopener noreferrer">${idp.data.metadataUrl}</a> <${CopyButton} value=${idp.data.metadataUrl} label="Copy URL" /></dd>
              <dt>Single sign-on</dt><dd><code>${idp.data.endpoints.singleSignOn}</code></dd>
              <dt>Single logout</dt><dd><code>${idp.data.endpoints.singleLogout}</code></dd>
              <dt>Signing certificate</dt><dd><${CertificateExpiry} certificate=${idp.data.signingCertificate} /></dd>
              <dt>SHA-256 fingerprint</dt><dd><code>${idp.data.signingCertificate.sha256Fingerprint}</code></dd>
            </dl>`
          : null}
  </section>`;
}

function CertificateExpiry({ certificate }) {
  const left = Date.parse(certificate.notAfter) - Date.now();
  const badge = left <= 0 ? html`<${Badge} tone="danger">expired<//>` : left < 30 * DAY ? html`<${Badge} tone="warn">expires in ${Math.ceil(left / DAY)} d<//>` : html`<${Badge} tone="ok">valid<//>`;
  return html`<span data-testid="idp-certificate-expiry">expires <${Time} value=${certificate.notAfter} /></span> ${badge}`;
}

const SHOWN = ['body.entityId', 'body.name', 'body.metadataUrl', 'body.metadataXml'];

function AddServiceProvider({ onAdded }) {
  const empty = { entityId: '', name: '', from: 'xml', metadataUrl: '', metadataXml: '' };
  const [form, setForm] = useState(empty);
  const [fileError, setFileError] = useState(null);
  const [fileKey, setFileKey] = useState(0);
  const action = useAction();
  const set = (k) => (e) => {
    const value = e.currentTarget.value;
    setForm((f) => ({ ...f, [k]: value }));
  };
  const setXml = (xml) =>
    setForm((f) => {
      // Offer the entity ID the metadata names (read as text: the XML is parsed only by the API).
      const named = f.entityId === '' ? /<(?:[\w-]+:)?EntityDescriptor\b[^>]*\bentityID\s*=\s*"([^"]{1,1024})"/.exec(xml)?.[1] : undefined;
      return { ...f, metadataXml: xml, ...(named ? { entityId: named } : {}) };
    });
  const readFile = (e) => {
    const file = e.currentTarget.files?.[0];
    setFileError(null);
    if (!file) return;
    if (file.size > MAX_FILE) return void setFileError(`The file is larger than ${MAX_FILE / 1_000_000} MB.`);
    const reader = new FileReader();
    reader.onload = () => setXml(String(reader.result));
    reader.onerror = () => setFileError('The file could not be read.');
    reader.readAsText(file);
  };
  const submit = (e) => {
    e.preventDefault();
    action.run(async () => {
      const body = { entityId: form.entityId.trim(), ...(form.name.trim() ? { name: form.name.trim() } : {}), ...(form.from === 'url' ? { metadataUrl: form.metadataUrl.trim() } : { metadataXml: form.metadataXml }) };
      const { body: sp } = await api('POST', '/saml-service-providers', { body });
      setForm(empty);
      setFileKey((k) => k + 1);
      onAdded(sp);
    });
  };
  return html`<form class="panel add-sp" onSubmit=${submit} novalidate aria-labelledby="add-sp-title">
    <h2 id="add-sp-title">Add a service provider</h2>
    <${FormErrors} error=${action.error} shown=${SHOWN} />
    <div class="grid">
      <div>
        <${Field} label="Entity ID" path="body.entityId" error=${action.error} hint="The SP's entityID, as its metadata states it.">
          ${(p) => html`<input type="text" name="entityId" autocomplete="off" spellcheck="false" value=${form.entityId} onInput=${set('entityId')} ...${p} />`}
        <//>
        <${Field} label="Name" path="body.name" error=${action.error} hint="Optional; shown to people signing in.">
          ${(p) => html`<input type="text" name="name" autocomplete="off" value=${form.name} onInput=${set('name')} ...${p} />`}
        <//>
        <fieldset class="field metadata-from">
          <legend>Metadata</legend>
          <label class="checkbox"><input type="radio" name="from" value="xml" checked=${form.from === 'xml'} onChange=${() => setForm((f) => ({ ...f, from: 'xml' }))} /> Paste or upload the XML</label>
          <label class="checkbox"><input type="radio" name="from" value="url" checked=${form.from === 'url'} onChange=${() => setForm((f) => ({ ...f, from: 'url' }))} /> Read it from a URL</label>
        </fieldset>
      </div>
      <div>
        ${form.from === 'url'
          ? html`<${Field} label="Metadata URL" path="body.metadataUrl" error=${action.error} hint="Read now, and again when the SP is first used if it cannot be read now.">
              ${(p) => html`<input type="url" name="metadataUrl" autocomplete="off" spellcheck="false" value=${form.metadataUrl} onInput=${set('metadataUrl')} ...${p} />`}
            <//>`
          : html`
            <${Field} label="Metadata XML" path="body.metadataXml" error=${action.error} hint="The SP's EntityDescriptor with an HTTP-POST AssertionConsumerService.">
              ${(p) => html`<textarea name="metadataXml" rows="8" spellcheck="false" value=${form.metadataXml} onInput=${(e) => setXml(e.currentTarget.value)} ...${p}></textarea>`}
            <//>
            <div class=${`field${fileError ? ' field-invalid' : ''}`}>
              <label for="metadata-file">Or upload a metadata file</label>
              <input key=${fileKey} type="file" id="metadata-file" accept=".xml,application/xml,text/xml,application/samlmetadata+xml" onChange=${readFile} aria-describedby=${fileError ? 'metadata-file-error' : undefined} />
              ${fileError ? html`<div class="field-error" id="metadata-file-error" role="alert">${fileError}</div>` : null}
            </div>`}
      </div>
    </div>
    <div class="actions"><button type="submit" class="primary" disabled=${action.busy}>${action.busy ? 'Adding…' : 'Add service provider'}</button></div>
  </form>`;
}
