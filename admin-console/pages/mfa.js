// Two-step verification: /admin/mfa lists every level that sets a second-factor mode (global,
// clients, connectors, groups), from the config file and stored, and sets or clears a stored
// mode. Config entries other than the global default are read-only here, and say so.
import { html, Page, Table, ErrorNotice, Notice, FormErrors, Field, ConfirmButton, Badge, Loaded, useLoad, useAction, useState, api } from '../ui.js';
import { seg } from '../api.js';

const MODES = [
  { value: 'required', label: 'Required', hint: 'every sign-in asks for a second factor; people without one set it up first' },
  { value: 'optional', label: 'Optional', hint: 'asked of people who have set up a second factor' },
  { value: 'off', label: 'Off', hint: 'never asked' },
];
const KINDS = [
  { value: 'group', label: 'Group', hint: 'A group name as in the groups claim; members of its subgroups count too. It need not exist yet.' },
  { value: 'client', label: 'Client', hint: 'The id of an existing client.' },
  { value: 'connector', label: 'Connector', hint: 'The id of an existing connector.' },
  { value: 'global', label: 'Everyone (global)', hint: "Replaces the config file's mfa.mode until cleared." },
];
const LEVEL = { global: 'Everyone', client: 'Client', connector: 'Connector', group: 'Group' };
const TONE = { required: 'ok', optional: 'neutral', off: 'warn' };

const pathOf = (p) => (p.kind === 'global' ? '/mfa-policies/global' : `/mfa-policies/${seg(p.kind)}/${seg(p.target)}`);
const rowKey = (p) => `${p.kind}:${p.target}`;

function SourceBadge({ policy }) {
  if (policy.source === 'stored') return html`<${Badge}>set here<//>`;
  if (policy.readOnly) return html`<${Badge} tone="warn" title="Declared in the config file (mfa); change it there">managed by config<//>`;
  return html`<${Badge} title="The config file's mfa.mode, used until a mode is set here">config default<//>`;
}

export default function MfaPage() {
  const policies = useLoad(async () => (await api('GET', '/mfa-policies')).body.items);
  const clear = async (policy) => {
    await api('DELETE', pathOf(policy));
    await policies.reload();
  };
  const columns = [
    { key: 'kind', label: 'Level', render: (p) => LEVEL[p.kind] },
    { key: 'target', label: 'Applies to', render: (p) => (p.kind === 'global' ? html`<span class="muted">every sign-in</span>` : html`<code>${p.target}</code>`) },
    { key: 'mode', label: 'Second factor', render: (p) => html`<${Badge} tone=${TONE[p.mode]}>${p.mode}<//>` },
    { key: 'source', label: 'Source', render: (p) => html`<${SourceBadge} policy=${p} />` },
    {
      key: 'actions',
      label: 'Actions',
      render: (p) =>
        p.source === 'stored'
          ? html`<${ConfirmButton}
              label="Clear"
              title=${p.kind === 'global' ? 'Clear the global mode?' : `Clear the mode of ${p.kind} ${p.target}?`}
              message=${p.kind === 'global' ? "Sign-ins fall back to the config file's global mode." : 'This level stops setting a mode; the other levels still apply.'}
              confirmLabel="Clear"
              onConfirm=${() => clear(p)}
            />`
          : html`<span class="muted">—</span>`,
    },
  ];
  return html`<${Page} title="Two-step verification">
    <p class="muted">Each level below sets a mode for the sign-ins it covers; a sign-in gets the strictest of the levels that apply to it (required, then optional, then off).</p>
    <${PolicyForm} onSaved=${() => policies.reload()} />
    <${ErrorNotice} error=${policies.error} />
    <${Loaded} state=${policies}>${(items) => html`<${Table} caption="Second-factor policies" rowKey=${rowKey} rows=${items} columns=${columns} />`}<//>
  <//>`;
}

function PolicyForm({ onSaved }) {
  const action = useAction();
  const [kind, setKind] = useState('group');
  const [target, setTarget] = useState('');
  const [mode, setMode] = useState('required');
  const [saved, setSaved] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    setSaved(null);
    const res = await action.run(() => api('PUT', pathOf({ kind, target }), { body: { mode } }));
    if (!res) return;
    setSaved(res.body);
    setTarget('');
    await onSaved();
  };
  const kindInfo = KINDS.find((k) => k.value === kind);
  return html`<form class="panel" aria-labelledby="mfa-set-title" onSubmit=${submit}>
    <h2 class="panel-title" id="mfa-set-title">Set a mode</h2>
    <div class="grid">
      <${Field} label="Level" hint=${kindInfo.hint}>${(p) => html`<select ...${p} name="kind" value=${kind} onChange=${(e) => setKind(e.currentTarget.value)}>
        ${KINDS.map((k) => html`<option value=${k.value}>${k.label}</option>`)}
      </select>`}<//>
      ${kind === 'global' ? null : html`<${Field} label=${`${kindInfo.label} name or id`} path="params.target" error=${action.error}>${(p) => html`<input type="text" name="target" required ...${p} value=${target} onInput=${(e) => setTarget(e.currentTarget.value)} />`}<//>`}
      <${Field} label="Second factor" path="body.mode" error=${action.error} hint=${MODES.find((m) => m.value === mode).hint}>${(p) => html`<select ...${p} name="mode" value=${mode} onChange=${(e) => setMode(e.currentTarget.value)}>
        ${MODES.map((m) => html`<option value=${m.value}>${m.label}</option>`)}
      </select>`}<//>
    </div>
    <${FormErrors} error=${action.error} shown=${['params.target', 'body.mode']} />
    ${saved ? html`<${Notice}>Saved: ${saved.kind === 'global' ? 'everyone' : `${saved.kind} ${saved.target}`} is now ${saved.mode}.<//>` : null}
    <div class="actions"><button type="submit" class="primary" disabled=${action.busy}>${action.busy ? 'Saving…' : 'Save'}</button></div>
  </form>`;
}
