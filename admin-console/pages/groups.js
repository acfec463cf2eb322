// Groups: /admin/groups (the tree of nested groups, a search, a new-group form) and
// /admin/groups/<id> (source, parents, subgroups, members by page; adding and removing members
// and subgroups; deleting a local group). Groups from the config file or an upstream are
// read-only here, and say so.
import { html, Fragment, Page, Table, Loading, ErrorNotice, FormErrors, Field, ConfirmButton, Badge, Notice, Link, useLoad, useAction, useState, usePager, Pager, api } from '../ui.js';
import { getAll, seg } from '../api.js';

// The tree is drawn from the group list and the nesting pairs; past this many groups the page
// lists them by name instead (search narrows them down).
const TREE_LIMIT = 1000;

export default function GroupsPage({ segments, query, navigate }) {
  if (segments.length) return html`<${GroupPage} key=${segments[0]} id=${segments[0]} navigate=${navigate} />`;
  return html`<${GroupList} key=${query.toString()} query=${query} navigate=${navigate} />`;
}

const href = (g) => `/admin/groups/${seg(g.id)}`;

/** Where a group comes from, and why it may be read-only. */
function SourceBadge({ group }) {
  if (group.source === 'local') return html`<${Badge}>local<//>`;
  if (group.source === 'config') return html`<${Badge} tone="warn" title="Declared in the config file; change it there">managed by config<//>`;
  return html`<${Badge} tone="warn" title=${`Brought in by the connector ${group.source}; it changes there`}>from ${group.source}<//>`;
}

function readOnlyReason(group) {
  if (group.source === 'config') return 'This group comes from the config file (users[].groups): its members and name change there, not here.';
  return `This group was brought in by the connector ${group.source} (a directory sync or a group mapper): its name and members change upstream, not here. It can still be nested inside a local group or hold one.`;
}

// ---- The tree and the list ----

async function loadTree() {
  const [groups, nesting] = await Promise.all([getAll('/groups', {}, TREE_LIMIT + 1), api('GET', '/group-nesting')]);
  if (groups.length > TREE_LIMIT) return { groups, tree: null };
  const byId = new Map(groups.map((g) => [g.id, g]));
  const children = new Map();
  const hasParent = new Set();
  for (const { parentId, childId } of nesting.body.items) {
    if (!byId.has(parentId) || !byId.has(childId)) continue;
    children.set(parentId, [...(children.get(parentId) ?? []), byId.get(childId)]);
    hasParent.add(childId);
  }
  for (const list of children.values()) list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { groups, tree: { children, roots: groups.filter((g) => !hasParent.has(g.id)) } };
}

/** Nested lists of links: a group under each of its parents (a group may have several). */
function Tree({ tree }) {
  const branch = (group, path) => {
    const kids = (tree.children.get(group.id) ?? []).filter((c) => !path.has(c.id));
    return html`<li key=${group.id}>
      <${Link} href=${href(group)}>${group.name}<//> <${SourceBadge} group=${group} />
      ${kids.length ? html`<ul>${kids.map((c) => branch(c, new Set([...path, c.id])))}</ul>` : null}
    </li>`;
  };
  return html`<nav class="group-tree" aria-label="Groups, nested">
    <ul>${tree.roots.map((g) => branch(g, new Set([g.id])))}</ul>
  </nav>`;
}

function GroupList({ query, navigate }) {
  const q = query.get('q') ?? '';
  const pager = usePager();
  const [creating, setCreating] = useState(false);
  const searched = useLoad(async () => (q ? (await api('GET', '/groups', { params: { q, cursor: pager.cursor, limit: 50 } })).body : null), [q, pager.cursor]);
  const tree = useLoad(async () => (q ? null : loadTree()), [q]);

  const search = (e) => {
    e.preventDefault();
    const value = String(new FormData(e.currentTarget).get('q') ?? '').trim();
    navigate(`/admin/groups${value ? `?${new URLSearchParams({ q: value })}` : ''}`, { replace: true });
  };

  const columns = [
    { key: 'name', label: 'Name', render: (g) => html`<${Link} href=${href(g)}>${g.name}<//>` },
    { key: 'description', label: 'Description', render: (g) => g.description ?? html`<span class="muted">—</span>` },
    { key: 'source', label: 'Source', render: (g) => html`<${SourceBadge} group=${g} />` },
  ];

  return html`<${Page} title="Groups" actions=${html`<button type="button" class="primary" aria-expanded=${creating ? 'true' : 'false'} onClick=${() => setCreating(!creating)}>New group</button>`}>
    ${creating ? html`<${NewGroupForm} onCancel=${() => setCreating(false)} onCreated=${(g) => navigate(href(g))} />` : null}
    <form class="toolbar" role="search" aria-label="Search groups" onSubmit=${search}>
      <${Field} label="Search" hint="Part of a name or description" path="query.q" error=${searched.error}>${(p) => html`<input type="search" name="q" ...${p} value=${q} />`}<//>
      <button type="submit" class="secondary">Search</button>
      ${q ? html`<${Link} href="/admin/groups">Show the whole tree<//>` : null}
    </form>
    ${q
      ? html`<${ErrorNotice} error=${searched.error} />
          ${searched.loading && !searched.data ? html`<${Loading} />` : html`<${Table} caption="Groups found" rows=${searched.data?.items} empty="No group matches." columns=${columns} />`}
          <${Pager} pager=${pager} nextCursor=${searched.data?.nextCursor} />`
      : html`<${ErrorNotice} error=${tree.error} />
          ${!tree.data
            ? html`<${Loading} />`
            : !tree.data.groups.length
              ? html`<p class="muted empty">No groups yet.</p>`
              : tree.data.tree
                ? html`<div class="panel"><${Tree} tree=${tree.data.tree} /></div>`
                : html`<${Notice}>More than ${TREE_LIMIT} groups: listed by name without nesting. Search to narrow them down; each group's page shows its parents and subgroups.<//>
                    <${Table} caption="Groups" rows=${tree.data.groups} columns=${columns} />`}`}
  <//>`;
}

function NewGroupForm({ onCancel, onCreated }) {
  const action = useAction();
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const submit = async (e) => {
    e.preventDefault();
    const res = await action.run(() => api('POST', '/groups', { body: { name, ...(description.trim() ? { description } : {}) } }));
    if (res) onCreated(res.body);
  };
  return html`<form class="panel" aria-labelledby="new-group-title" onSubmit=${submit}>
    <h2 class="panel-title" id="new-group-title">New local group</h2>
    <div class="grid">
      <${Field} label="Name" path="body.name" error=${action.error} hint="Shown in the groups claim; unique regardless of case">${(p) => html`<input type="text" required ...${p} value=${name} onInput=${(e) => setName(e.currentTarget.value)} />`}<//>
      <${Field} label="Description" path="body.description" error=${action.error}>${(p) => html`<input type="text" ...${p} value=${description} onInput=${(e) => setDescription(e.currentTarget.value)} />`}<//>
    </div>
    <${FormErrors} error=${action.error} shown=${['body.name', 'body.description']} />
    <div class="actions">
      <button type="button" class="secondary" onClick=${onCancel}>Cancel</button>
      <button type="submit" class="primary" disabled=${action.busy}>${action.busy ? 'Creating…' : 'Create group'}</button>
    </div>
  </form>`;
}

// ---- One group ----

function GroupPage({ id, navigate }) {
  const loaded = useLoad(async () => {
    const res = await api('GET', `/groups/${seg(id)}`);
    return { group: res.body, etag: res.etag };
  }, [id]);
  if (!loaded.data) return html`<${Page} title="Group">${loaded.error ? html`<${ErrorNotice} error=${loaded.error} />` : html`<${Loading} />`}<p><${Link} href="/admin/groups">All groups<//></p><//>`;
  const { group, etag } = loaded.data;
  const remove = async () => {
    await api('DELETE', `/groups/${seg(group.id)}`, { ifMatch: etag });
    navigate('/admin/groups');
  };
  const actions = group.readOnly
    ? null
    : html`<${ConfirmButton} label="Delete group" title=${`Delete the group ${group.name}?`} message="Its memberships and nesting go with it; members lose it from their groups claim at their next sign-in or refresh." confirmLabel="Delete group" danger onConfirm=${remove} />`;
  return html`<${Page} title=${group.name} actions=${actions}>
    <p class="user-badges"><${Link} href="/admin/groups">All groups<//> <${SourceBadge} group=${group} /></p>
    ${group.readOnly ? html`<div class="notice" role="note" data-testid="read-only">${readOnlyReason(group)}</div>` : null}
    ${group.description ? html`<p class="group-description">${group.description}</p>` : null}
    <div class="grid">
      ${group.readOnly ? null : html`<${GroupEdit} group=${group} etag=${etag} accept=${(g, e) => loaded.setData({ group: g, etag: e })} reload=${loaded.reload} />`}
      <${Nesting} group=${group} reload=${loaded.reload} />
    </div>
    <${Members} group=${group} />
  <//>`;
}

/** Rename or describe a local group; If-Match keeps another administrator's change. */
function GroupEdit({ group, etag, accept, reload }) {
  const action = useAction();
  const [name, setName] = useState(group.name);
  const [description, setDescription] = useState(group.description ?? '');
  const [saved, setSaved] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setSaved(false);
    const body = {};
    if (name !== group.name) body.name = name;
    if ((description.trim() || null) !== group.description) body.description = description.trim() ? description : null;
    if (!Object.keys(body).length) return setSaved(true);
    const res = await action.run(() => api('PATCH', `/groups/${seg(group.id)}`, { body, ifMatch: etag }));
    if (res) {
      accept(res.body, res.etag);
      setName(res.body.name);
      setDescription(res.body.description ?? '');
      setSaved(true);
    }
  };
  const reloadLatest = async () => {
    action.setError(null);
    const res = await api('GET', `/groups/${seg(group.id)}`).catch((err) => (action.setError(err), null));
    if (res) {
      accept(res.body, res.etag);
      setName(res.body.name);
      setDescription(res.body.description ?? '');
    }
  };
  const stale = action.error?.status === 412;
  return html`<form class="panel" aria-labelledby="group-edit-title" novalidate onSubmit=${submit} data-testid="group-edit">
    <h2 class="panel-title" id="group-edit-title">Name and description</h2>
    <${Field} label="Name" path="body.name" error=${action.error} hint="A rename changes the groups claim of every member">${(p) => html`<input type="text" name="name" ...${p} value=${name} onInput=${(e) => (setSaved(false), setName(e.currentTarget.value))} />`}<//>
    <${Field} label="Description" path="body.description" error=${action.error}>${(p) => html`<input type="text" name="description" ...${p} value=${description} onInput=${(e) => (setSaved(false), setDescription(e.currentTarget.value))} />`}<//>
    ${stale
      ? html`<div class="alert" role="alert" data-testid="stale">This group was changed meanwhile by someone else, so your change was not saved. Reload to see the current version, then make your change again.
          <div class="actions"><button type="button" class="secondary" onClick=${reloadLatest}>Reload</button></div></div>`
      : html`<${FormErrors} error=${action.error} shown=${['body.name', 'body.description']} />`}
    ${saved ? html`<${Notice}>Saved.<//>` : null}
    <div class="actions"><button type="submit" class="primary" disabled=${action.busy}>${action.busy ? 'Saving…' : 'Save'}</button></div>
  </form>`;
}

function Nesting({ group, reload }) {
  const action = useAction();
  const [choice, setChoice] = useState('');
  const all = useLoad(async () => getAll('/groups', {}, 1000), [group.id]);
  const taken = new Set([group.id, ...group.subgroups.map((g) => g.id)]);
  const candidates = (all.data ?? []).filter((g) => !taken.has(g.id));
  const add = async (e) => {
    e.preventDefault();
    if (!choice) return;
    const res = await action.run(() => api('PUT', `/groups/${seg(group.id)}/subgroups/${seg(choice)}`));
    if (res) {
      setChoice('');
      await reload();
    }
  };
  const removeChild = async (child) => {
    await api('DELETE', `/groups/${seg(group.id)}/subgroups/${seg(child.id)}`);
    await reload();
  };
  return html`<${Fragment}>
    <section class="panel" aria-labelledby="parents-title">
      <h2 class="panel-title" id="parents-title">Parent groups</h2>
      ${group.parents.length
        ? html`<ul>${group.parents.map((p) => html`<li key=${p.id}><${Link} href=${href(p)}>${p.name}<//></li>`)}</ul>`
        : html`<p class="muted empty">Not inside another group.</p>`}
      <p class="hint muted">Members of this group are also members of these groups (and of their parents).</p>
    </section>
    <section class="panel" aria-labelledby="subgroups-title" data-testid="subgroups">
      <h2 class="panel-title" id="subgroups-title">Subgroups</h2>
      ${group.subgroups.length
        ? html`<ul class="item-list">${group.subgroups.map((c) => html`<li key=${c.id}><${Link} href=${href(c)}>${c.name}<//>
            <${ConfirmButton} label="Remove" title=${`Take ${c.name} out of ${group.name}?`} message=${`Members of ${c.name} stop being members of ${group.name} through it.`} confirmLabel="Remove subgroup" danger onConfirm=${() => removeChild(c)} /></li>`)}</ul>`
        : html`<p class="muted empty">No subgroups.</p>`}
      <form class="toolbar" onSubmit=${add}>
        <${Field} label="Add a subgroup" path="params.childId" error=${action.error}>${(p) => html`<select ...${p} value=${choice} onChange=${(e) => setChoice(e.currentTarget.value)}>
          <option value="">Choose a group…</option>
          ${candidates.map((g) => html`<option key=${g.id} value=${g.id}>${g.name}</option>`)}
        </select>`}<//>
        <button type="submit" class="secondary" disabled=${action.busy || !choice}>Add subgroup</button>
      </form>
      <${ErrorNotice} error=${all.error} />
      <${FormErrors} error=${action.error} shown=${['params.childId']} />
    </section>
  <//>`;
}

function Members({ group }) {
  const pager = usePager();
  const [generation, setGeneration] = useState(0);
  const members = useLoad(async () => (await api('GET', `/groups/${seg(group.id)}/members`, { params: { cursor: pager.cursor, limit: 50 } })).body, [group.id, pager.cursor, generation]);
  const removeMember = async (m) => {
    await api('DELETE', `/groups/${seg(group.id)}/members/${seg(m.userId)}`);
    setGeneration((g) => g + 1);
  };
  return html`<section aria-labelledby="members-title" data-testid="members">
    <h2 id="members-title">Members</h2>
    <p class="muted">Direct members; members of subgroups are listed on the subgroup's page.</p>
    ${group.readOnly ? null : html`<${AddMember} group=${group} onAdded=${() => (pager.reset(), setGeneration((g) => g + 1))} />`}
    <${ErrorNotice} error=${members.error} />
    ${members.loading && !members.data
      ? html`<${Loading} />`
      : html`<${Table}
          caption="Members"
          rowKey=${(m) => m.userId}
          rows=${members.data?.items}
          empty="No direct members."
          columns=${[
            { key: 'username', label: 'User', render: (m) => html`<${Link} href=${`/admin/users/${seg(m.userId)}`}>${m.username}<//>` },
            { key: 'sources', label: 'Asserted by', render: (m) => m.sources.map((s) => html`<${Badge} key=${s} tone=${s === 'local' ? 'neutral' : 'warn'}>${s}<//> `) },
            {
              key: 'actions',
              label: 'Actions',
              render: (m) =>
                m.readOnly
                  ? html`<span class="muted">${`Asserted by ${m.sources.join(', ')}; removed there`}</span>`
                  : html`<${ConfirmButton} label="Remove" title=${`Remove ${m.username} from ${group.name}?`} message=${m.sources.length > 1 ? `Only the local membership goes; ${m.sources.filter((s) => s !== 'local').join(', ')} still asserts it, so the API may refuse.` : 'They lose this group from their groups claim at their next sign-in or refresh.'} confirmLabel="Remove member" danger onConfirm=${() => removeMember(m)} />`,
            },
          ]}
        />`}
    <${Pager} pager=${pager} nextCursor=${members.data?.nextCursor} />
  </section>`;
}

/** Finds users by the start of their username, name or email, and adds one. */
function AddMember({ group, onAdded }) {
  const [q, setQ] = useState('');
  const [found, setFound] = useState(null);
  const [added, setAdded] = useState(null);
  const search = useAction();
  const add = useAction();
  const find = async (e) => {
    e.preventDefault();
    setAdded(null);
    const res = await search.run(() => api('GET', '/users', { params: { q: q.trim(), limit: 10 } }));
    if (res) setFound(res.body.items);
  };
  const addUser = async (u) => {
    const res = await add.run(() => api('PUT', `/groups/${seg(group.id)}/members/${seg(u.id)}`));
    if (res) {
      setAdded(u.username);
      setFound(null);
      setQ('');
      onAdded();
    }
  };
  return html`<div class="panel add-member">
    <form class="toolbar" role="search" aria-label="Find a user to add" onSubmit=${find}>
      <${Field} label="Add a member" hint="Start of a username, name or email" path="query.q" error=${search.error}>${(p) => html`<input type="search" required ...${p} value=${q} onInput=${(e) => setQ(e.currentTarget.value)} />`}<//>
      <button type="submit" class="secondary" disabled=${search.busy}>Find user</button>
    </form>
    <${FormErrors} error=${search.error} shown=${['query.q']} />
    <${ErrorNotice} error=${add.error} />
    ${added ? html`<${Notice}>Added ${added}.<//>` : null}
    ${found
      ? found.length
        ? html`<ul class="item-list" aria-label="Users found">${found.map((u) => html`<li key=${u.id}><span>${u.username}${u.name ? html` <span class="muted">(${u.name})</span>` : null}</span>
            <button type="button" class="secondary" disabled=${add.busy} onClick=${() => addUser(u)}>Add ${u.username}</button></li>`)}</ul>`
        : html`<p class="muted empty">No user matches.</p>`
      : null}
  </div>`;
}
