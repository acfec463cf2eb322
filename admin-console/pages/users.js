// Users: /admin/users (search, pages, a new-user form) and /admin/users/<id> (profile with
// If-Match, enable/disable, passwords, groups, linked identities, two-step verification, sessions,
// grants, recent audit).
// Users declared in config are read-only (the API answers 409 read_only): they show why instead
// of offering changes; users whose profile an upstream owns may still be disabled or deleted.
import { html, Page, Table, Loading, ErrorNotice, FormErrors, Field, ConfirmButton, CopyButton, Badge, Time, Notice, Link, useLoad, useAction, useState, useEffect, usePager, Pager, api } from '../ui.js';
import { seg } from '../api.js';

export default function UsersPage({ segments, query, navigate }) {
  if (segments.length) return html`<${UserPage} key=${segments[0]} id=${segments[0]} navigate=${navigate} />`;
  return html`<${UserList} key=${query.toString()} query=${query} navigate=${navigate} />`;
}

/** The user's origin as a badge: config (read-only), upstream (profile owned by a connector) or local. */
function SourceBadge({ user }) {
  if (user.source === 'config') return html`<${Badge} tone="warn" title="Declared in the config file; change it there">managed by config<//>`;
  if (user.source === 'upstream') return html`<${Badge} tone="neutral" title="The profile comes from this connector">managed by ${user.managedBy}<//>`;
  return html`<${Badge}>local<//>`;
}

const EnabledBadge = ({ user }) => (user.enabled ? html`<${Badge} tone="ok">enabled<//>` : html`<${Badge} tone="danger">disabled<//>`);

// ---- The list ----

function UserList({ query, navigate }) {
  const q = query.get('q') ?? '';
  const enabled = query.get('enabled') ?? '';
  const group = query.get('group') ?? '';
  const pager = usePager();
  const users = useLoad(async () => (await api('GET', '/users', { params: { q: q || undefined, enabled: enabled || undefined, group: group || undefined, cursor: pager.cursor, limit: 50 } })).body, [q, enabled, group, pager.cursor]);
  const [creating, setCreating] = useState(false);

  const search = (e) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    const params = new URLSearchParams();
    for (const key of ['q', 'enabled', 'group']) {
      const value = String(form.get(key) ?? '').trim();
      if (value) params.set(key, value);
    }
    navigate(`/admin/users${params.size ? `?${params}` : ''}`, { replace: true });
  };

  return html`<${Page} title="Users" actions=${html`<button type="button" class="primary" aria-expanded=${creating ? 'true' : 'false'} onClick=${() => setCreating(!creating)}>New user</button>`}>
    ${creating ? html`<${NewUserForm} onCancel=${() => setCreating(false)} onCreated=${(u) => navigate(`/admin/users/${seg(u.id)}`)} />` : null}
    <form class="toolbar" role="search" aria-label="Search users" onSubmit=${search}>
      <${Field} label="Search" hint="Start of a username, email or name" path="query.q" error=${users.error}>${(p) => html`<input type="search" name="q" ...${p} value=${q} />`}<//>
      <${Field} label="Status" path="query.enabled" error=${users.error}>${(p) => html`<select name="enabled" ...${p} value=${enabled}>
        <option value="">Any</option><option value="true">Enabled</option><option value="false">Disabled</option>
      </select>`}<//>
      <${Field} label="Group" hint="Exact group name" path="query.group" error=${users.error}>${(p) => html`<input type="search" name="group" ...${p} value=${group} />`}<//>
      <button type="submit" class="secondary">Search</button>
    </form>
    <${ErrorNotice} error=${users.error} />
    ${users.loading && !users.data
      ? html`<${Loading} />`
      : html`<${Table}
          caption="Users"
          rows=${users.data?.items}
          empty=${q || enabled || group ? 'No user matches.' : 'No users yet.'}
          columns=${[
            { key: 'username', label: 'Username', render: (u) => html`<${Link} href=${`/admin/users/${seg(u.id)}`}>${u.username}<//>` },
            { key: 'name', label: 'Name', render: (u) => u.name ?? html`<span class="muted">—</span>` },
            { key: 'email', label: 'Email', render: (u) => u.email ?? html`<span class="muted">—</span>` },
            { key: 'enabled', label: 'Status', render: (u) => html`<${EnabledBadge} user=${u} />` },
            { key: 'source', label: 'Source', render: (u) => html`<${SourceBadge} user=${u} />` },
            { key: 'hasPassword', label: 'Password', render: (u) => (u.hasPassword ? 'set' : html`<span class="muted">none</span>`) },
          ]}
        />`}
    <${Pager} pager=${pager} nextCursor=${users.data?.nextCursor} />
  <//>`;
}

const orNull = (v) => (v.trim() === '' ? null : v);

function NewUserForm({ onCancel, onCreated }) {
  const action = useAction();
  const [form, setForm] = useState({ username: '', name: '', email: '', password: '' });
  const set = (key) => (e) => setForm({ ...form, [key]: e.currentTarget.value });
  const submit = async (e) => {
    e.preventDefault();
    const body = { username: form.username, name: orNull(form.name), email: orNull(form.email) };
    if (form.password) body.password = form.password;
    const res = await action.run(() => api('POST', '/users', { body }));
    if (res) onCreated(res.body);
  };
  const shown = ['body.username', 'body.name', 'body.email', 'body.password'];
  return html`<form class="panel" aria-labelledby="new-user-title" novalidate onSubmit=${submit}>
    <h2 class="panel-title" id="new-user-title">New local user</h2>
    <div class="grid">
      <${Field} label="Username" path="body.username" error=${action.error} hint="No @ and no spaces">${(p) => html`<input type="text" required autocomplete="off" ...${p} value=${form.username} onInput=${set('username')} />`}<//>
      <${Field} label="Name" path="body.name" error=${action.error}>${(p) => html`<input type="text" ...${p} value=${form.name} onInput=${set('name')} />`}<//>
      <${Field} label="Email" path="body.email" error=${action.error}>${(p) => html`<input type="email" ...${p} value=${form.email} onInput=${set('email')} />`}<//>
      <${Field} label="Initial password" path="body.password" error=${action.error} hint="Optional; at least 12 characters">${(p) => html`<input type="password" autocomplete="new-password" ...${p} value=${form.password} onInput=${set('password')} />`}<//>
    </div>
    <${FormErrors} error=${action.error} shown=${shown} />
    <div class="actions">
      <button type="button" class="secondary" onClick=${onCancel}>Cancel</button>
      <button type="submit" class="primary" disabled=${action.busy}>${action.busy ? 'Creating…' : 'Create user'}</button>
    </div>
  </form>`;
}

// ---- One user ----

function UserPage({ id, navigate }) {
  const loaded = useLoad(async () => {
    const res = await api('GET', `/users/${seg(id)}`);
    return { user: res.body, etag: res.etag };
  }, [id]);
  // Bumped after anything that may end sessions or grants, so those panels read again.
  const [generation, setGeneration] = useState(0);
  const [notice, setNotice] = useState(null);
  const bump = () => setGeneration((g) => g + 1);

  if (!loaded.data) return html`<${Page} title="User">${loaded.error ? html`<${ErrorNotice} error=${loaded.error} />` : html`<${Loading} />`}<p><${Link} href="/admin/users">All users<//></p><//>`;
  const { user, etag } = loaded.data;
  const accept = (u, newEtag) => loaded.setData({ user: u, etag: newEtag });
  // After a change whose answer has no ETag (passwords): read the user again for a fresh one.
  const refresh = async () => {
    const res = await api('GET', `/users/${seg(id)}`).catch(() => null);
    if (res) accept(res.body, res.etag);
  };
  const configured = user.source === 'config';

  const setEnabled = async (on) => {
    const res = await api('POST', `/users/${seg(user.id)}/${on ? 'enable' : 'disable'}`, { ifMatch: etag });
    accept(res.body.user, res.etag);
    const ended = res.body.ended;
    setNotice(on ? 'Enabled: the user can sign in again.' : `Disabled. ${ended ? `${ended.sessions.length} session(s) ended, ${ended.grantsRevoked} grant record(s) revoked.` : ''}`);
    bump();
  };
  const remove = async () => {
    await api('DELETE', `/users/${seg(user.id)}`, { ifMatch: etag });
    navigate('/admin/users');
  };

  const actions = configured
    ? null
    : html`${user.enabled
        ? html`<${ConfirmButton} label="Disable" title=${`Disable ${user.username}?`} message="They can no longer sign in, every browser session of theirs ends now and every grant is revoked with its tokens." confirmLabel="Disable" danger onConfirm=${() => setEnabled(false)} />`
        : html`<${ConfirmButton} label="Enable" title=${`Enable ${user.username}?`} message="They can sign in again with their password or linked identities." confirmLabel="Enable" onConfirm=${() => setEnabled(true)} />`}
      <${ConfirmButton} label="Delete" title=${`Delete ${user.username}?`} message="Ends their sessions and grants, then deletes the user with their linked identities, password and memberships. This cannot be undone." confirmLabel="Delete user" danger onConfirm=${remove} />`;

  return html`<${Page} title=${user.username} actions=${actions}>
    <p class="user-badges"><${Link} href="/admin/users">All users<//> <${EnabledBadge} user=${user} /> <${SourceBadge} user=${user} /></p>
    ${configured ? html`<${Notice}>This user is declared in the config file: the profile, password and status can only be changed there. Sessions and grants can still be ended here.<//>` : null}
    ${user.source === 'upstream' ? html`<${Notice}>The profile and password belong to the connector <code>${user.managedBy}</code>; they change there. The user can still be disabled or deleted here.<//>` : null}
    ${notice ? html`<${Notice}>${notice}<//>` : null}
    <div class="grid">
      <${Profile} user=${user} etag=${etag} accept=${accept} reload=${loaded.reload} />
      <div>
        ${user.source === 'local' ? html`<${Passwords} user=${user} refresh=${refresh} onEnded=${bump} />` : null}
        <${Groups} user=${user} generation=${generation} />
      </div>
    </div>
    <${Identities} user=${user} generation=${generation} onChange=${bump} />
    <${TwoStep} user=${user} generation=${generation} onChange=${bump} />
    <${Sessions} user=${user} generation=${generation} onChange=${bump} />
    <${Grants} user=${user} generation=${generation} onChange=${bump} />
    <${RecentAudit} user=${user} generation=${generation} />
  <//>`;
}

const PROFILE_FIELDS = [
  ['username', 'Username', 'text'],
  ['name', 'Name', 'text'],
  ['givenName', 'Given name', 'text'],
  ['familyName', 'Family name', 'text'],
  ['email', 'Email', 'email'],
];

function formOf(user) {
  return { username: user.username, name: user.name ?? '', givenName: user.givenName ?? '', familyName: user.familyName ?? '', email: user.email ?? '', emailVerified: user.emailVerified };
}

function Profile({ user, etag, accept, reload }) {
  const [form, setForm] = useState(() => formOf(user));
  const [saved, setSaved] = useState(false);
  const action = useAction();
  const editable = user.source === 'local';
  // Another panel changed the user (a password, a status): show the stored profile again.
  useEffect(() => setForm(formOf(user)), [user.updatedAt]);
  const set = (key) => (e) => {
    setSaved(false);
    setForm({ ...form, [key]: e.currentTarget.type === 'checkbox' ? e.currentTarget.checked : e.currentTarget.value });
  };
  const submit = async (e) => {
    e.preventDefault();
    setSaved(false);
    // Only what changed, so a save cannot overwrite fields someone else edited (If-Match guards the rest).
    const initial = formOf(user);
    const body = {};
    for (const [key] of PROFILE_FIELDS) if (form[key] !== initial[key]) body[key] = key === 'username' ? form[key] : orNull(form[key]);
    if (form.emailVerified !== initial.emailVerified) body.emailVerified = form.emailVerified;
    if (!Object.keys(body).length) return setSaved(true);
    const res = await action.run(() => api('PATCH', `/users/${seg(user.id)}`, { body, ifMatch: etag }));
    if (res) {
      accept(res.body, res.etag);
      setForm(formOf(res.body));
      setSaved(true);
    }
  };
  const reloadLatest = async () => {
    action.setError(null);
    const res = await api('GET', `/users/${seg(user.id)}`).catch((err) => (action.setError(err), null));
    if (res) {
      accept(res.body, res.etag);
      setForm(formOf(res.body));
    }
  };

  if (!editable) {
    return html`<section class="panel" aria-labelledby="profile-title">
      <h2 class="panel-title" id="profile-title">Profile</h2>
      <dl class="kv">
        <dt>Username</dt><dd>${user.username}</dd>
        <dt>Name</dt><dd>${user.name ?? '—'}</dd>
        <dt>Given name</dt><dd>${user.givenName ?? '—'}</dd>
        <dt>Family name</dt><dd>${user.familyName ?? '—'}</dd>
        <dt>Email</dt><dd>${user.email ?? '—'} ${user.email ? (user.emailVerified ? '(verified)' : '(not verified)') : ''}</dd>
        <dt>Password</dt><dd>${user.hasPassword ? 'set' : 'none'}</dd>
        <dt>Created</dt><dd><${Time} value=${user.createdAt} /></dd>
        <dt>Id</dt><dd><code>${user.id}</code></dd>
      </dl>
    </section>`;
  }
  const stale = action.error?.status === 412;
  return html`<form class="panel" aria-labelledby="profile-title" novalidate onSubmit=${submit} data-testid="profile-form">
    <h2 class="panel-title" id="profile-title">Profile</h2>
    ${PROFILE_FIELDS.map(([key, label, type]) => html`<${Field} key=${key} label=${label} path=${`body.${key}`} error=${action.error}>${(p) => html`<input type=${type} name=${key} ...${p} value=${form[key]} onInput=${set(key)} />`}<//>`)}
    <label class="checkbox"><input type="checkbox" name="emailVerified" checked=${form.emailVerified} onChange=${set('emailVerified')} /> Email address verified</label>
    <dl class="kv profile-meta">
      <dt>Password</dt><dd>${user.hasPassword ? 'set' : 'none'}</dd>
      <dt>Created</dt><dd><${Time} value=${user.createdAt} /></dd>
      <dt>Updated</dt><dd><${Time} value=${user.updatedAt} /></dd>
      <dt>Id</dt><dd><code>${user.id}</code></dd>
    </dl>
    ${stale
      ? html`<div class="alert" role="alert" data-testid="stale">This user was changed meanwhile by someone else, so your change was not saved. Reload to see the current version, then make your change again.
          <div class="actions"><button type="button" class="secondary" onClick=${reloadLatest}>Reload</button></div></div>`
      : html`<${FormErrors} error=${action.error} shown=${PROFILE_FIELDS.map(([k]) => `body.${k}`)} />`}
    ${saved ? html`<${Notice}>Saved.<//>` : null}
    <div class="actions">
      <button type="button" class="secondary" onClick=${() => (action.setError(null), setSaved(false), setForm(formOf(user)), reload())}>Discard changes</button>
      <button type="submit" class="primary" disabled=${action.busy}>${action.busy ? 'Saving…' : 'Save profile'}</button>
    </div>
  </form>`;
}

function Passwords({ user, refresh, onEnded }) {
  const [generated, setGenerated] = useState(null);
  const [password, setPassword] = useState('');
  const [endSessions, setEndSessions] = useState(false);
  const [done, setDone] = useState(null);
  const action = useAction();
  const reset = async () => {
    const res = await api('POST', `/users/${seg(user.id)}/password/reset`);
    setGenerated(res.body.password);
    await refresh();
    setDone(null);
    onEnded();
  };
  const submit = async (e) => {
    e.preventDefault();
    setDone(null);
    const res = await action.run(() => api('PUT', `/users/${seg(user.id)}/password`, { body: { password, endSessions } }));
    if (res) {
      await refresh();
      setPassword('');
      setGenerated(null);
      setDone(endSessions ? 'Password set; the user was signed out everywhere.' : 'Password set.');
      if (endSessions) onEnded();
    }
  };
  return html`<section class="panel" aria-labelledby="password-title">
    <h2 class="panel-title" id="password-title">Password</h2>
    <p class="muted">${user.hasPassword ? 'The user has a password.' : 'The user has no password (they sign in through a linked identity, if any).'}</p>
    ${generated
      ? html`<div class="notice" role="status" data-testid="generated-password">
          <p><strong>New password, shown once.</strong> Give it to the user over a safe channel; it cannot be shown again.</p>
          <p class="secret-once"><code>${generated}</code></p>
          <div class="actions"><${CopyButton} value=${generated} label="Copy password" /><button type="button" class="secondary" onClick=${() => setGenerated(null)}>Done, hide it</button></div>
        </div>`
      : null}
    <${ConfirmButton} label="Reset password" title=${`Reset the password of ${user.username}?`} message="A random password replaces the current one and is shown once. Every session and grant of the user ends." confirmLabel="Reset password" danger onConfirm=${reset} />
    <form class="set-password" onSubmit=${submit}>
      <${Field} label="Set a new password" path="body.password" error=${action.error} hint="At least 12 characters, not a well-known password, not containing the username">${(p) => html`<input type="password" autocomplete="new-password" required ...${p} value=${password} onInput=${(e) => setPassword(e.currentTarget.value)} />`}<//>
      <label class="checkbox"><input type="checkbox" checked=${endSessions} onChange=${(e) => setEndSessions(e.currentTarget.checked)} /> Also sign the user out everywhere</label>
      <${FormErrors} error=${action.error} shown=${['body.password']} />
      ${done ? html`<${Notice}>${done}<//>` : null}
      <div class="actions"><button type="submit" class="secondary" disabled=${action.busy}>Set password</button></div>
    </form>
  </section>`;
}

function Groups({ user, generation }) {
  const groups = useLoad(async () => (await api('GET', `/users/${seg(user.id)}/groups`)).body.items, [user.id, user.username, generation]);
  return html`<section class="panel" aria-labelledby="groups-title">
    <h2 class="panel-title" id="groups-title">Groups</h2>
    <${ErrorNotice} error=${groups.error} />
    ${!groups.data
      ? html`<${Loading} />`
      : groups.data.length
        ? html`<ul class="user-groups">${groups.data.map((g) => html`<li key=${g.name}><${Link} href=${`/admin/groups?q=${encodeURIComponent(g.name)}`}>${g.name}<//> ${g.sources.map((s) => html`<${Badge} key=${s} tone=${s === 'local' ? 'neutral' : 'warn'}>${s}<//> `)}</li>`)}</ul>`
        : html`<p class="muted empty">Not in any group.</p>`}
  </section>`;
}

function Identities({ user, generation, onChange }) {
  const identities = useLoad(async () => (await api('GET', `/users/${seg(user.id)}/identities`)).body.items, [user.id, generation]);
  const [notice, setNotice] = useState(null);
  const unlink = async (identity) => {
    const res = await api('DELETE', `/users/${seg(user.id)}/identities/${seg(identity.id)}`);
    identities.setData(identities.data.filter((i) => i.id !== identity.id));
    setNotice(res.body.canSignIn ? `Unlinked ${identity.connectorId} identity ${identity.subject}.` : `Unlinked ${identity.connectorId} identity ${identity.subject}. The user now has no way to sign in (no password, no other linked identity).`);
    onChange();
  };
  return html`<section aria-labelledby="identities-title">
    <h2 id="identities-title">Linked identities</h2>
    ${notice ? html`<${Notice}>${notice}<//>` : null}
    <${ErrorNotice} error=${identities.error} />
    ${!identities.data
      ? html`<${Loading} />`
      : html`<${Table}
          caption="Linked identities"
          rows=${identities.data}
          empty="No linked identities."
          columns=${[
            { key: 'connectorId', label: 'Connector', render: (i) => html`<code>${i.connectorId}</code>` },
            { key: 'subject', label: 'Subject', render: (i) => html`<code>${i.subject}</code>` },
            { key: 'username', label: 'Upstream user', render: (i) => [i.username, i.email].filter(Boolean).join(' · ') || html`<span class="muted">—</span>` },
            { key: 'createdAt', label: 'Linked', render: (i) => html`<${Time} value=${i.createdAt} />` },
            { key: 'lastLoginAt', label: 'Last sign-in', render: (i) => html`<${Time} value=${i.lastLoginAt} />${i.removedAt ? html` <${Badge} tone="warn">gone upstream<//>` : null}` },
            { key: 'actions', label: 'Actions', render: (i) => html`<${ConfirmButton} label="Unlink" title=${`Unlink ${i.connectorId} identity ${i.subject}?`} message="The user and their subject identifier stay; the groups this connector asserted go. They can link again by signing in through the connector, unless linking needs an existing account." confirmLabel="Unlink" danger onConfirm=${() => unlink(i)} />` },
          ]}
        />`}
  </section>`;
}

const FACTOR_TYPES = { totp: 'Authenticator app', webauthn: 'Passkey / security key' };

// For a person who lost their authenticator: remove that factor, or reset everything (factors
// and recovery codes) so they enrol again. Secrets are never shown; the API does not return them.
function TwoStep({ user, generation, onChange }) {
  const mfa = useLoad(async () => (await api('GET', `/users/${seg(user.id)}/mfa`)).body, [user.id, generation]);
  const [notice, setNotice] = useState(null);
  const removeFactor = async (f) => {
    await api('DELETE', `/users/${seg(user.id)}/mfa/${seg(f.id)}`);
    mfa.setData({ ...mfa.data, factors: mfa.data.factors.filter((x) => x.id !== f.id) });
    setNotice(`Removed ${f.name}.`);
    onChange();
  };
  const reset = async () => {
    const res = await api('POST', `/users/${seg(user.id)}/mfa/reset`);
    mfa.setData({ factors: [], recoveryCodesLeft: 0 });
    setNotice(`Two-step verification reset: ${res.body.factors.length} factor(s) and ${res.body.recoveryCodes} recovery code(s) removed.`);
    onChange();
  };
  const hasAny = mfa.data && (mfa.data.factors.length || mfa.data.recoveryCodesLeft);
  return html`<section aria-labelledby="mfa-title" data-testid="mfa">
    <div class="page-head section-head">
      <h2 id="mfa-title">Two-step verification</h2>
      ${hasAny ? html`<${ConfirmButton} label="Reset two-step verification" title=${`Reset two-step verification of ${user.username}?`} message="Every authenticator app, passkey and recovery code of the user is removed. Where two-step verification is required, they set it up again at their next sign-in." confirmLabel="Reset" danger onConfirm=${reset} />` : null}
    </div>
    ${notice ? html`<${Notice}>${notice}<//>` : null}
    <${ErrorNotice} error=${mfa.error} />
    ${!mfa.data
      ? html`<${Loading} />`
      : html`<${Table}
          caption="Second factors"
          rows=${mfa.data.factors}
          empty="No second factors."
          columns=${[
            { key: 'name', label: 'Name', render: (f) => html`${f.name}${f.confirmed ? null : html` <${Badge} tone="warn">not confirmed<//>`}` },
            { key: 'type', label: 'Type', render: (f) => FACTOR_TYPES[f.type] ?? f.type },
            { key: 'createdAt', label: 'Added', render: (f) => html`<${Time} value=${f.createdAt} />` },
            { key: 'lastUsedAt', label: 'Last used', render: (f) => html`<${Time} value=${f.lastUsedAt} />` },
            { key: 'actions', label: 'Actions', render: (f) => html`<${ConfirmButton} label="Remove" title=${`Remove ${f.name}?`} message="The user can no longer use it to sign in." confirmLabel="Remove" danger onConfirm=${() => removeFactor(f)} />` },
          ]}
        />
        <p class="muted">Recovery codes left: ${mfa.data.recoveryCodesLeft}</p>`}
  </section>`;
}

function Sessions({ user, generation, onChange }) {
  const sessions = useLoad(async () => (await api('GET', `/users/${seg(user.id)}/sessions`)).body.items, [user.id, generation]);
  const end = async (s) => {
    await api('DELETE', `/users/${seg(user.id)}/sessions/${seg(s.uid)}`);
    onChange();
  };
  const endAll = async () => {
    await api('DELETE', `/users/${seg(user.id)}/sessions`);
    onChange();
  };
  return html`<section aria-labelledby="sessions-title" data-testid="sessions">
    <div class="page-head section-head">
      <h2 id="sessions-title">Browser sessions</h2>
      ${sessions.data?.length ? html`<${ConfirmButton} label="End all sessions" title="End every session?" message="Each client of each session gets a back-channel logout; grants without offline access are revoked." confirmLabel="End all" danger onConfirm=${endAll} />` : null}
    </div>
    <${ErrorNotice} error=${sessions.error} />
    ${!sessions.data
      ? html`<${Loading} />`
      : html`<${Table}
          caption="Browser sessions"
          rowKey=${(s) => s.uid}
          rows=${sessions.data}
          empty="No live sessions."
          columns=${[
            { key: 'authenticatedAt', label: 'Signed in', render: (s) => html`<${Time} value=${s.authenticatedAt} />` },
            { key: 'lastUsedAt', label: 'Last used', render: (s) => html`<${Time} value=${s.lastUsedAt} />` },
            { key: 'clients', label: 'Clients', render: (s) => (s.clients.length ? s.clients.join(', ') : html`<span class="muted">none</span>`) },
            { key: 'connectorId', label: 'Connector', render: (s) => s.connectorId ?? '—' },
            { key: 'ip', label: 'Address', render: (s) => s.ip ?? '—' },
            { key: 'expiresAt', label: 'Expires', render: (s) => html`<${Time} value=${s.expiresAt} />` },
            { key: 'actions', label: 'Actions', render: (s) => html`<${ConfirmButton} label="End" title="End this session?" message="The session's clients get a back-channel logout; its grants without offline access are revoked." confirmLabel="End session" danger onConfirm=${() => end(s)} />` },
          ]}
        />`}
  </section>`;
}

function Grants({ user, generation, onChange }) {
  const grants = useLoad(async () => (await api('GET', `/users/${seg(user.id)}/grants`)).body.items, [user.id, generation]);
  const revoke = async (g) => {
    await api('DELETE', `/users/${seg(user.id)}/grants/${seg(g.id)}`);
    onChange();
  };
  const revokeAll = async () => {
    await api('DELETE', `/users/${seg(user.id)}/grants`);
    onChange();
  };
  return html`<section aria-labelledby="grants-title" data-testid="grants">
    <div class="page-head section-head">
      <h2 id="grants-title">Grants</h2>
      ${grants.data?.length ? html`<${ConfirmButton} label="Revoke all grants" title="Revoke every grant?" message="Every code, access token and refresh token issued under them stops working at once." confirmLabel="Revoke all" danger onConfirm=${revokeAll} />` : null}
    </div>
    <${ErrorNotice} error=${grants.error} />
    ${!grants.data
      ? html`<${Loading} />`
      : html`<${Table}
          caption="Grants"
          rows=${grants.data}
          empty="No grants."
          columns=${[
            { key: 'clientId', label: 'Client', render: (g) => html`<code>${g.clientId}</code>` },
            { key: 'scopes', label: 'Scopes', render: (g) => g.scopes.join(' ') },
            { key: 'resources', label: 'Resource servers', render: (g) => Object.entries(g.resources).map(([r, s]) => `${r}: ${s.join(' ')}`).join('; ') || html`<span class="muted">—</span>` },
            { key: 'createdAt', label: 'Granted', render: (g) => html`<${Time} value=${g.createdAt} />` },
            { key: 'expiresAt', label: 'Expires', render: (g) => html`<${Time} value=${g.expiresAt} />` },
            { key: 'actions', label: 'Actions', render: (g) => html`<${ConfirmButton} label="Revoke" title=${`Revoke the grant of ${g.clientId}?`} message="Its codes, access tokens and refresh tokens stop working at once." confirmLabel="Revoke grant" danger onConfirm=${() => revoke(g)} />` },
          ]}
        />`}
  </section>`;
}

const summary = (type, details) => {
  if (!details || typeof details !== 'object') return '';
  const parts = [];
  const actor = details.actor;
  if (actor) parts.push(`by ${actor.username ?? actor.clientId}`);
  if (details.changes && !type.endsWith('.create')) parts.push(`changed ${Object.keys(details.changes).join(', ')}`);
  if (details.reason) parts.push(String(details.reason));
  if (details.clientId && !actor) parts.push(`client ${details.clientId}`);
  return parts.join('; ');
};

function RecentAudit({ user, generation }) {
  const filter = new URLSearchParams({ userId: user.id });
  const events = useLoad(async () => (await api('GET', '/audit', { params: { userId: user.id, limit: 20 } })).body.items, [user.id, generation, user.updatedAt, user.enabled]);
  return html`<section aria-labelledby="audit-title">
    <div class="page-head section-head">
      <h2 id="audit-title">Recent events</h2>
      <${Link} href=${`/admin/audit?${filter}`}>Full audit log for this user<//>
    </div>
    <${ErrorNotice} error=${events.error} />
    ${!events.data
      ? html`<${Loading} />`
      : html`<${Table}
          caption="Recent audit events"
          rows=${events.data}
          empty="No events recorded for this user."
          columns=${[
            { key: 'at', label: 'When', render: (e) => html`<${Time} value=${e.at} />` },
            { key: 'type', label: 'Event', className: 'event-type', render: (e) => html`<code>${e.type}</code>` },
            { key: 'outcome', label: 'Outcome', render: (e) => html`<${Badge} tone=${e.outcome === 'success' ? 'ok' : 'danger'}>${e.outcome}<//>` },
            { key: 'clientId', label: 'Client', render: (e) => e.clientId ?? '—' },
            { key: 'ip', label: 'Address', render: (e) => e.ip ?? '—' },
            { key: 'details', label: 'Details', render: (e) => summary(e.type, e.details) },
          ]}
        />`}
  </section>`;
}
