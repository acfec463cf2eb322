// A form generated from a JSON Schema (what GET /connector-types gives for each type's config):
// strings, numbers, booleans, enums as selects, arrays of strings one per line, nested objects
// as fieldsets, secrets as password inputs, anything else as JSON. The value is a plain object;
// a field left empty is left out, so the type's defaults apply. Errors come from the API (paths
// like body.config.bindDn) and show at their field.
import { html, Field, useState } from './ui.js';

/** The variant of an anyOf/oneOf a form can edit: a string first (ldap `url`), then anything not null. */
export function editable(schema) {
  if (!schema || typeof schema !== 'object') return {};
  const options = schema.anyOf ?? schema.oneOf;
  if (!options) return schema;
  const usable = options.filter((o) => o.type !== 'null');
  const chosen = usable.find((o) => o.type === 'string') ?? usable[0] ?? {};
  return { ...chosen, description: schema.description ?? chosen.description, default: schema.default ?? chosen.default };
}

const kindOf = (schema) => {
  const s = editable(schema);
  if (Array.isArray(s.enum) && s.enum.every((v) => typeof v === 'string')) return 'enum';
  if (s.type === 'string') return (s.maxLength ?? 0) > 4096 ? 'text' : 'string';
  if (s.type === 'integer' || s.type === 'number') return 'number';
  if (s.type === 'boolean') return 'boolean';
  if (s.type === 'array' && ['string', undefined].includes(editable(s.items).type) && !editable(s.items).properties) return 'lines';
  if (s.type === 'object' && s.properties) return 'object';
  return 'json';
};

const at = (obj, key) => (obj && typeof obj === 'object' ? obj[key] : undefined);
const without = (obj, key) => {
  const { [key]: _, ...rest } = obj ?? {};
  return rest;
};
const isEmptyObject = (v) => v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0;

/** Does the error name `path` or something below it? */
const errorsUnder = (error, path) => Boolean(error?.errors?.some((e) => e.path === path || e.path.startsWith(`${path}.`)));

/** The words under a field: its description, its default, and what a secret does when left empty. */
function hintOf(schema, { secret, isSet }) {
  const s = editable(schema);
  const parts = [];
  if (s.description) parts.push(s.description);
  if (s.default !== undefined && typeof s.default !== 'object') parts.push(`Default: ${String(s.default)}.`);
  if (secret) parts.push(isSet ? 'Write-only: a value is stored; leave empty to keep it.' : 'Write-only: never shown again once saved.');
  return parts.join(' ') || undefined;
}

function Label({ name, required }) {
  return html`${name}${required ? html` <span class="required">(required)</span>` : null}`;
}

/** A JSON value in a textarea: parsed as it is typed; until it parses, the field says why. */
function JsonControl({ value, onChange, control, disabled }) {
  const [text, setText] = useState(() => (value === undefined ? '' : JSON.stringify(value, null, 2)));
  const [problem, setProblem] = useState(null);
  const change = (t) => {
    setText(t);
    if (!t.trim()) {
      setProblem(null);
      return onChange(undefined);
    }
    try {
      onChange(JSON.parse(t));
      setProblem(null);
    } catch (err) {
      setProblem(`Not valid JSON yet: ${err.message}`);
    }
  };
  return html`<textarea ...${control} class="code" rows="4" disabled=${disabled} value=${text} onInput=${(e) => change(e.currentTarget.value)}></textarea>
    ${problem ? html`<div class="field-error">${problem}</div>` : null}`;
}

/** One value per line; the text is kept as typed (a new empty line stays while typing). */
function LinesControl({ value, onChange, control }) {
  const [text, setText] = useState(() => (Array.isArray(value) ? value.join('\n') : ''));
  return html`<textarea ...${control} rows="3" value=${text}
    onInput=${(e) => {
      setText(e.currentTarget.value);
      const lines = e.currentTarget.value.split('\n').map((l) => l.trim()).filter(Boolean);
      onChange(lines.length ? lines : undefined);
    }}></textarea>`;
}

/** A long text (SAML metadata XML) with a file it can be loaded from. */
function TextControl({ value, onChange, control, disabled, name }) {
  const load = async (e) => {
    const file = e.currentTarget.files?.[0];
    if (file) onChange(await file.text());
  };
  return html`<textarea ...${control} class="code" rows="6" disabled=${disabled} value=${value ?? ''} onInput=${(e) => onChange(e.currentTarget.value || undefined)}></textarea>
    <label class="file-load">Load ${name} from a file <input type="file" disabled=${disabled} onChange=${load} /></label>`;
}

function Property({ name, schema, value, onChange, path, dotted, required, ctx }) {
  const s = editable(schema);
  const kind = kindOf(schema);
  const secret = ctx.secretFields.includes(dotted);
  const label = html`<${Label} name=${name} required=${required} />`;
  if (kind === 'object') {
    const open = required || value !== undefined || errorsUnder(ctx.error, path);
    // Inside a <details>, its summary already names the group: the legend stays for screen readers.
    const body = html`<fieldset class="schema-object" data-path=${path}>
      <legend class=${required ? undefined : 'visually-hidden'}><${Label} name=${name} required=${required} /></legend>
      ${s.description ? html`<p class="hint">${s.description}</p>` : null}
      <${Properties} schema=${s} value=${value} onChange=${(v) => onChange(isEmptyObject(v) ? undefined : v)} path=${path} dotted=${dotted} ctx=${ctx} />
    </fieldset>`;
    return required ? body : html`<details class="schema-optional" open=${open}><summary>${name} <span class="required">(optional group)</span></summary>${body}</details>`;
  }
  const hint = hintOf(schema, { secret, isSet: ctx.secretsSet.includes(dotted) });
  if (kind === 'boolean') {
    const checked = value ?? s.default ?? false;
    return html`<${Field} label=${label} path=${path} error=${ctx.error} hint=${hint}>
      ${(control) => html`<span class="checkbox"><input type="checkbox" ...${control} name=${dotted} disabled=${ctx.disabled} checked=${checked} onChange=${(e) => onChange(e.currentTarget.checked)} /> ${checked ? 'on' : 'off'}</span>`}
    <//>`;
  }
  return html`<${Field} label=${label} path=${path} error=${ctx.error} hint=${hint}>
    ${(control) => {
      const common = { ...control, name: dotted, disabled: ctx.disabled };
      if (kind === 'enum') {
        return html`<select ...${common} value=${value ?? ''} onChange=${(e) => onChange(e.currentTarget.value || undefined)}>
          <option value="">${required ? '— choose —' : s.default !== undefined ? `— default (${s.default}) —` : '— none —'}</option>
          ${s.enum.map((v) => html`<option value=${v}>${v}</option>`)}
        </select>`;
      }
      if (kind === 'number') {
        return html`<input type="number" ...${common} min=${s.minimum} max=${s.maximum} step=${s.type === 'integer' ? 1 : 'any'} value=${value ?? ''}
          onInput=${(e) => {
            const t = e.currentTarget.value;
            onChange(t === '' ? undefined : Number(t));
          }} />`;
      }
      if (kind === 'lines') return html`<${LinesControl} value=${value} onChange=${onChange} control=${common} />`;
      if (kind === 'text') return html`<${TextControl} value=${value} onChange=${onChange} control=${common} disabled=${ctx.disabled} name=${name} />`;
      if (kind === 'json') return html`<${JsonControl} value=${value} onChange=${onChange} control=${common} disabled=${ctx.disabled} />`;
      return html`<input type=${secret ? 'password' : 'text'} ...${common} autocomplete=${secret ? 'new-password' : 'off'} spellcheck="false"
        value=${typeof value === 'string' ? value : value === undefined ? '' : String(value)}
        onInput=${(e) => onChange(e.currentTarget.value === '' ? undefined : e.currentTarget.value)} />`;
    }}
  <//>`;
}

function Properties({ schema, value, onChange, path, dotted, ctx }) {
  const required = new Set(schema.required ?? []);
  // Top-level fields that do not apply (another preset's own) are hidden unless they hold something.
  const entries = Object.entries(schema.properties ?? {}).filter(
    ([name]) => dotted || !ctx.hidden.has(name) || at(value, name) !== undefined || errorsUnder(ctx.error, `${path}.${name}`),
  );
  // Required fields first, then the rest in the schema's order.
  entries.sort(([a], [b]) => Number(required.has(b)) - Number(required.has(a)));
  return entries.map(([name, prop]) => html`<${Property}
    key=${name}
    name=${name}
    schema=${prop}
    value=${at(value, name)}
    required=${required.has(name)}
    path=${`${path}.${name}`}
    dotted=${dotted ? `${dotted}.${name}` : name}
    ctx=${ctx}
    onChange=${(v) => onChange(v === undefined ? without(value, name) : { ...(value ?? {}), [name]: v })}
  />`);
}

/**
 * The whole config form. `path` is where the API reports this object's errors (body.config);
 * `error` is an ApiError (or anything with `errors` and `fieldErrors`) whose paths lie below it.
 */
export function SchemaForm({ schema, value, onChange, path = 'body.config', error, secretFields = [], secretsSet = [], disabled = false, hidden = [] }) {
  const ctx = { error, secretFields, secretsSet, disabled, hidden: new Set(hidden) };
  return html`<div class="schema-form"><${Properties} schema=${editable(schema)} value=${value ?? {}} onChange=${onChange} path=${path} dotted="" ctx=${ctx} /></div>`;
}

/** Every path a generated form shows a field for (so FormErrors can list only the others). */
export function schemaPaths(schema, path = 'body.config') {
  const s = editable(schema);
  const out = [];
  for (const [name, prop] of Object.entries(s.properties ?? {})) {
    const p = `${path}.${name}`;
    if (kindOf(prop) === 'object') out.push(...schemaPaths(prop, p));
    else out.push(p);
  }
  return out;
}
