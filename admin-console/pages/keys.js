// Keys: the published signing keys with their age and state, and rotation.
import { html, Page, Table, Loading, ErrorNotice, ConfirmButton, Badge, Time, useLoad, api, Notice, useState } from '../ui.js';

const DAY = 86_400;
const age = (seconds) => (seconds >= DAY ? `${Math.floor(seconds / DAY)} d` : seconds >= 3600 ? `${Math.floor(seconds / 3600)} h` : `${Math.floor(seconds / 60)} min`);

export default function KeysPage() {
  const keys = useLoad(async () => (await api('GET', '/keys')).body.items);
  const [rotated, setRotated] = useState(null);
  const rotate = async () => {
    const { body } = await api('POST', '/keys/rotate');
    keys.setData(body.items);
    setRotated(body);
  };
  return html`<${Page} title="Signing keys" actions=${html`<${ConfirmButton} label="Rotate keys" title="Rotate the signing keys?" message="A new key per algorithm starts signing now. The current keys stay published until every token they signed has expired, so nothing signed in stops working." confirmLabel="Rotate" onConfirm=${rotate} />`}>
    <p class="muted">Keybridge signs ID tokens, JWT access tokens and logout tokens with these keys; apps fetch the public halves from the JWKS endpoint.</p>
    ${rotated ? html`<${Notice}>Rotated. Retired keys stay published for ${Math.round(rotated.graceSeconds / 3600)} h.<//>` : null}
    <${ErrorNotice} error=${keys.error} />
    ${keys.loading && !keys.data ? html`<${Loading} />` : html`<${Table}
      caption="Signing keys"
      rowKey=${(k) => k.kid}
      rows=${keys.data}
      columns=${[
        { key: 'kid', label: 'Key id', render: (k) => html`<code>${k.kid}</code>` },
        { key: 'alg', label: 'Algorithm' },
        { key: 'status', label: 'State', render: (k) => html`<${Badge} tone=${k.status === 'active' ? 'ok' : 'neutral'}>${k.status}<//>` },
        { key: 'ageSeconds', label: 'Age', render: (k) => age(k.ageSeconds) },
        { key: 'createdAt', label: 'Created', render: (k) => html`<${Time} value=${k.createdAt} />` },
        { key: 'removeAfter', label: 'Unpublished after', render: (k) => (k.removeAfter ? html`<${Time} value=${k.removeAfter} />` : html`<span class="muted">—</span>`) },
      ]}
    />`}
  <//>`;
}
