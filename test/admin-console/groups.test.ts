// The console's Groups section in Chromium, against a real broker: the tree shows a nested group
// under its parent; members are added and removed through the UI and the API sees it; subgroups
// are added (a cycle refused with the API's words) and removed; a local group is created and
// deleted; groups from the config file are read-only and say why.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser as Chromium, Page } from 'playwright-core';
import { chromiumMissing } from '../helpers/chromium.ts';
import { skipLoudly } from '../helpers/skip.ts';
import type { TestBroker } from '../helpers/test-broker.ts';
import { AdminApiClient, adminClientConfig, clientToken } from '../helpers/admin-api.ts';
import { ADMIN, ADMIN_GROUP, PLAIN_USER, assertOnlyApiAndSignIn, launchChromium, openConsolePage, screenshot, signInToConsole, startConsoleBroker, type ConsoleSession, unexpectedErrors } from '../helpers/admin-console.ts';

const PASSWORD = 'correct horse battery staple';

describe('admin console: groups', () => {
  let broker: TestBroker;
  let chromium: Chromium;
  let api: AdminApiClient;
  const missing = chromiumMissing();

  before(async () => {
    if (missing) return;
    broker = await startConsoleBroker({ config: { clients: [adminClientConfig('ops')] } });
    api = new AdminApiClient(broker.issuer, await clientToken(broker.issuer, 'ops', 'admin:read admin:write'));
    chromium = await launchChromium();
  });
  after(async () => {
    await chromium?.close();
    await broker?.close();
  });

  const newGroup = async (name: string, description?: string): Promise<string> => {
    const res = await api.post('/groups', { name, ...(description ? { description } : {}) });
    assert.equal(res.status, 201, res.text);
    return res.body.id;
  };
  const groupId = async (name: string): Promise<string> => (await api.get(`/groups?q=${encodeURIComponent(name)}`)).body.items.find((g: { name: string }) => g.name === name).id;

  const open = () => openConsolePage(chromium);
  const done = (session: ConsoleSession, ...statuses: number[]) => {
    assert.deepEqual(unexpectedErrors(session.pageErrors, statuses), []);
    assertOnlyApiAndSignIn(session.requests, broker.issuer);
  };
  const confirmIn = async (page: Page, within: string, button: string, confirm: string) => {
    await page.click(`${within} button:has-text("${button}")`);
    await page.click(`dialog[open] button:has-text("${confirm}")`);
    await page.waitForSelector('dialog[open]', { state: 'detached' });
  };

  test('the tree shows a nested group under its parent, with each group\'s source; keyboard reaches the groups', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const engineering = await newGroup('engineering', 'Everyone who builds');
    const backend = await newGroup('backend');
    const databases = await newGroup('databases');
    assert.equal((await api.put(`/groups/${engineering}/subgroups/${backend}`)).status, 204);
    assert.equal((await api.put(`/groups/${backend}/subgroups/${databases}`)).status, 204);

    const session = await open();
    const { page } = session;
    await signInToConsole(session, broker.issuer, ADMIN, '/admin/groups');
    await page.waitForSelector('nav.group-tree a:has-text("databases")');
    const parentOf = (name: string) =>
      page.evaluate((n) => {
        const link = [...document.querySelectorAll('nav.group-tree a')].find((a) => a.textContent === n)!;
        return link.closest('ul')!.closest('li')?.querySelector(':scope > a')?.textContent ?? null;
      }, name);
    assert.equal(await parentOf('backend'), 'engineering');
    assert.equal(await parentOf('databases'), 'backend');
    assert.equal(await parentOf('engineering'), null, 'engineering is a root');
    assert.equal(await parentOf('staff'), null);
    // Every group appears once at the top level or under its parent.
    const names = await page.$$eval('nav.group-tree a', (as) => as.map((a) => a.textContent));
    assert.deepEqual([...names].sort(), ['backend', 'databases', 'engineering', ADMIN_GROUP, 'staff'].sort());
    assert.match((await page.textContent(`nav.group-tree li:has(> a:has-text("staff"))`))!, /managed by config/);
    assert.match((await page.textContent(`nav.group-tree li:has(> a:has-text("engineering")) > .badge`))!, /local/);
    await screenshot(page, 'groups');
    await page.setViewportSize({ width: 390, height: 844 });
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 390), 'no horizontal scrolling at 390 px');
    await page.setViewportSize({ width: 1280, height: 900 });

    // Keyboard: Tab reaches the nested group's link, Enter opens it.
    let reached = false;
    for (let i = 0; i < 40 && !reached; i++) {
      await page.keyboard.press('Tab');
      reached = (await page.evaluate(() => document.activeElement?.textContent)) === 'databases';
    }
    assert.ok(reached, 'the nested group is reachable with Tab');
    await page.keyboard.press('Enter');
    await page.waitForFunction((p) => location.pathname === p, `/admin/groups/${databases}`);
    await page.waitForSelector('h1:has-text("databases")');
    assert.match((await page.textContent('section[aria-labelledby=parents-title]'))!, /backend/);

    // Searching lists by name or description.
    await page.goto(`${broker.issuer}/admin/groups?q=builds`);
    await page.waitForSelector('table.data tbody tr');
    assert.deepEqual(await page.$$eval('table.data tbody tr a', (as) => as.map((a) => a.textContent)), ['engineering']);
    done(session);
    await session.context.close();
  });

  test('add a member through the UI (the API sees it), remove it again; members page by 50', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const id = await newGroup('support');
    const user = (await api.post('/users', { username: 'mia-member', name: 'Mia Member', password: PASSWORD })).body;
    await api.post('/users', { username: 'mike-other', password: PASSWORD });
    const session = await open();
    const { page } = session;
    await signInToConsole(session, broker.issuer, ADMIN, `/admin/groups/${id}`);
    await page.waitForSelector('[data-testid=members] :text("No direct members.")');
    await page.fill('.add-member input[type=search]', 'mi');
    await page.click('.add-member button:has-text("Find user")');
    await page.waitForSelector('.add-member li:has-text("mike-other")');
    await page.click('.add-member button:has-text("Add mia-member")');
    await page.waitForSelector('[data-testid=members] table.data a:has-text("mia-member")');
    await page.waitForSelector('.add-member .notice:has-text("Added mia-member")');
    const members = (await api.get(`/groups/${id}/members`)).body.items;
    assert.deepEqual(members.map((m: { userId: string; sources: string[] }) => [m.userId, m.sources]), [[user.id, ['local']]]);
    // The user's page lists the group.
    assert.deepEqual((await api.get(`/users/${user.id}/groups`)).body.items.map((g: { name: string }) => g.name), ['support']);

    await confirmIn(page, '[data-testid=members] tbody', 'Remove', 'Remove member');
    await page.waitForSelector('[data-testid=members] :text("No direct members.")');
    assert.deepEqual((await api.get(`/groups/${id}/members`)).body.items, []);

    // More than a page of members: "Next page" shows the rest.
    for (let i = 0; i < 52; i++) {
      const u = (await api.post('/users', { username: `bulk-${String(i).padStart(2, '0')}` })).body;
      await api.put(`/groups/${id}/members/${u.id}`);
    }
    await page.reload();
    await page.waitForSelector('[data-testid=members] table.data tbody tr');
    assert.equal(await page.$$eval('[data-testid=members] table.data tbody tr', (r) => r.length), 50);
    await page.click('[data-testid=members] button:has-text("Next page")');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=members] table.data tbody tr').length === 2);
    assert.match((await page.textContent('[data-testid=members] tbody'))!, /bulk-51/);
    done(session);
    await session.context.close();
  });

  test('create a local group, nest a subgroup (a cycle is refused with the API\'s words), take it out, delete the group', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const child = await newGroup('interns');
    const session = await open();
    const { page } = session;
    await signInToConsole(session, broker.issuer, ADMIN, '/admin/groups');
    await page.click('button:has-text("New group")');
    // A name with a control character is refused at its field.
    await page.fill('form[aria-labelledby=new-group-title] input >> nth=0', 'bad\u0007name');
    await page.click('button:has-text("Create group")');
    await page.waitForSelector('.field[data-path="body.name"] .field-error');
    await page.fill('form[aria-labelledby=new-group-title] input >> nth=0', 'mentors');
    await page.fill('form[aria-labelledby=new-group-title] input >> nth=1', 'People who mentor');
    await page.click('button:has-text("Create group")');
    await page.waitForSelector('h1:has-text("mentors")');
    const id = await groupId('mentors');
    assert.equal(new URL(page.url()).pathname, `/admin/groups/${id}`);
    assert.equal((await api.get(`/groups/${id}`)).body.description, 'People who mentor');

    await page.selectOption('[data-testid=subgroups] select', child);
    await page.click('[data-testid=subgroups] button:has-text("Add subgroup")');
    await page.waitForSelector('[data-testid=subgroups] li a:has-text("interns")');
    assert.deepEqual((await api.get(`/groups/${id}`)).body.subgroups.map((g: { name: string }) => g.name), ['interns']);

    // interns inside mentors; now mentors inside interns would be a cycle.
    await page.goto(`${broker.issuer}/admin/groups/${child}`);
    await page.waitForSelector('section[aria-labelledby=parents-title] a:has-text("mentors")');
    await page.selectOption('[data-testid=subgroups] select', id);
    await page.click('[data-testid=subgroups] button:has-text("Add subgroup")');
    await page.waitForSelector('[data-testid=subgroups] .alert');
    assert.match((await page.textContent('[data-testid=subgroups] .alert'))!, /mentors/);
    assert.deepEqual((await api.get(`/groups/${child}`)).body.subgroups, []);

    await page.click('section[aria-labelledby=parents-title] a:has-text("mentors")');
    await page.waitForSelector('h1:has-text("mentors")');
    await confirmIn(page, '[data-testid=subgroups]', 'Remove', 'Remove subgroup');
    await page.waitForSelector('[data-testid=subgroups] :text("No subgroups.")');
    assert.deepEqual((await api.get(`/groups/${id}`)).body.subgroups, []);

    // Rename with If-Match: a change made meanwhile by someone else is kept, the stale save refused.
    await page.fill('[data-testid=group-edit] input[name=description]', 'Mentors of interns');
    assert.equal((await api.patch(`/groups/${id}`, { description: 'Changed by another admin' })).status, 200);
    await page.click('[data-testid=group-edit] button[type=submit]');
    await page.waitForSelector('[data-testid=group-edit] [data-testid=stale]');
    assert.equal((await api.get(`/groups/${id}`)).body.description, 'Changed by another admin');
    await page.click('[data-testid=stale] button:has-text("Reload")');
    await page.waitForFunction(() => (document.querySelector('[data-testid=group-edit] input[name=description]') as HTMLInputElement).value === 'Changed by another admin');
    await page.fill('[data-testid=group-edit] input[name=name]', 'mentors-2027');
    await page.click('[data-testid=group-edit] button[type=submit]');
    await page.waitForSelector('h1:has-text("mentors-2027")');
    assert.equal((await api.get(`/groups/${id}`)).body.name, 'mentors-2027');
    await screenshot(page, 'group');

    await confirmIn(page, '.page-actions', 'Delete group', 'Delete group');
    await page.waitForFunction(() => location.pathname === '/admin/groups');
    assert.equal((await api.get(`/groups/${id}`)).status, 404);
    done(session, 400, 409, 412);
    await session.context.close();
  });

  test('a group from the config file is read-only: it says why, offers no member or delete actions, and lists its members with their source', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const staff = await groupId('staff');
    assert.equal((await api.get(`/groups/${staff}`)).body.readOnly, true);
    const session = await open();
    const { page } = session;
    await signInToConsole(session, broker.issuer, ADMIN, `/admin/groups/${staff}`);
    await page.waitForSelector('[data-testid=read-only]');
    assert.match((await page.textContent('[data-testid=read-only]'))!, /config file/);
    assert.match((await page.textContent('.user-badges'))!, /managed by config/);
    assert.equal(await page.$('.page-actions button'), null, 'no delete');
    assert.equal(await page.$('.add-member'), null, 'no add member');
    await page.waitForSelector(`[data-testid=members] table.data a:has-text("${PLAIN_USER.username}")`);
    const row = (await page.textContent(`[data-testid=members] tr:has(a:has-text("${PLAIN_USER.username}"))`))!;
    assert.match(row, /config/);
    assert.equal(await page.$('[data-testid=members] tbody button'), null, 'no remove for a config membership');
    done(session);
    await session.context.close();
  });
});
