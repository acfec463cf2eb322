// The console's Connectors section in Chromium, against a real slapd: an operator adds an LDAP
// connector with a typo in its bind DN, the connection test shows the failure at that field,
// the fixed connector tests fine (with what it found), is enabled, and a directory user signs in
// to a client through it; the import runs with a progress bar to its counts. Hostile values come
// back as the API's errors at their fields with nothing stored, and a config-file connector is
// read-only.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser as Chromium, Page } from 'playwright-core';
import { chromiumMissing } from '../helpers/chromium.ts';
import { skipLoudly } from '../helpers/skip.ts';
import type { TestBroker } from '../helpers/test-broker.ts';
import { startOpenLdap, type OpenLdapServer } from '../helpers/openldap.ts';
import { RP_CLIENT, RP_REDIRECT, offeredConnectors, within } from '../helpers/login-page-connectors.ts';
import { assertOnlyApiAndSignIn, launchChromium, openConsolePage, screenshot, signInToConsole, startConsoleBroker } from '../helpers/admin-console.ts';

const TOKEN_KEY = 'console-connectors-token-key-0123456789abcdef';
const CONFIG_SECRET = 'config-declared-secret-DO-NOT-LEAK-5151';

/** At 390 px (a phone) the page itself never scrolls sideways (wide tables scroll inside .table-wrap). */
async function assertNoSidewaysScroll(page: Page, what: string): Promise<void> {
  const size = page.viewportSize()!;
  await page.setViewportSize({ width: 390, height: 844 });
  const widths = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth }));
  await page.setViewportSize(size);
  assert.ok(widths.scroll <= widths.client, `${what} scrolls sideways at 390 px: ${JSON.stringify(widths)}`);
}

/** The error text shown at the form field for `path` (body.config.bindDn), or null. */
const fieldError = (page: Page, path: string) => page.locator(`.field[data-path="${path}"] .field-error`).textContent({ timeout: 10_000 });

describe('admin console: connectors', () => {
  let broker: TestBroker;
  let chromium: Chromium;
  let ldap: OpenLdapServer | undefined;
  let skipReason = chromiumMissing() ?? '';

  before(async () => {
    if (skipReason) return;
    const started = await startOpenLdap();
    if ('skip' in started) {
      skipReason = started.skip;
      return;
    }
    ldap = started;
    broker = await startConsoleBroker({
      connectorPollMs: 200,
      config: {
        secrets: { tokenKeys: [TOKEN_KEY] },
        clients: [RP_CLIENT],
        connectors: [{ id: 'gh', type: 'oauth2', name: 'GitHub', config: { preset: 'github', clientId: 'gh-client', clientSecret: CONFIG_SECRET } }],
      },
    });
    chromium = await launchChromium();
  });
  after(async () => {
    await chromium?.close();
    await broker?.close();
    await ldap?.stop();
  });

  test('add an LDAP connector with a typo in the bind DN: the test shows it at the field; fixed, tested, enabled, a directory user signs in through it; sync runs to its counts', async (t) => {
    if (skipReason) return skipLoudly(t, skipReason);
    const directory = ldap!;
    const session = await openConsolePage(chromium);
    const { page } = session;
    // The only 4xx answers this page may get: "no import yet" (404) for the new connector's sync.
    const refused: string[] = [];
    page.on('response', (r) => {
      if (r.status() >= 400) refused.push(`${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`);
    });
    await signInToConsole(session, broker.issuer, undefined, '/admin/connectors');
    await page.waitForSelector('table.data tbody tr');
    await page.click('a:has-text("Add connector")');
    await page.waitForSelector('.connector-types');
    assert.ok(await page.isVisible('a:has-text("Google")'), 'the OIDC presets are offered');
    assert.ok(await page.isVisible('a:has-text("GitHub")'), 'the OAuth 2.0 presets are offered');
    await page.click('a[href="/admin/connectors/new?type=ldap"]');
    await page.waitForSelector('input[name="bindDn"]');
    assert.equal(await page.textContent('h1'), 'Add LDAP connector');
    // Generated from the JSON Schema: a secret is a password input, nested objects are fieldsets, required is marked.
    assert.equal(await page.getAttribute('input[name="bindPassword"]', 'type'), 'password');
    assert.ok(await page.isVisible('fieldset.schema-object:has(input[name="users.baseDn"]) legend:has-text("(required)")'));
    assert.equal(await page.getAttribute('input[name="startTls"]', 'type'), 'checkbox');

    const typo = directory.serviceDn.replace(/^cn=/, 'cn=svc-typo-');
    await page.fill('input[name="id"]', 'corp');
    await page.fill('input[name="name"]', 'Corporate directory');
    await page.fill('input[name="url"]', directory.url);
    await page.check('input[name="startTls"]');
    await page.click('details:has(input[name="tls.caFile"]) > summary');
    await page.fill('input[name="tls.caFile"]', directory.caFile);
    await page.fill('input[name="bindDn"]', typo);
    await page.fill('input[name="bindPassword"]', directory.servicePassword);
    await page.fill('input[name="users.baseDn"]', `ou=people,${directory.baseDn}`);
    // An array of strings is one per line, typed as a person types it (Enter starts a new line).
    await page.click('textarea[name="users.loginAttributes"]');
    await page.keyboard.type('uid');
    await page.keyboard.press('Enter');
    await page.keyboard.type('mail');
    await screenshot(page, 'connector-new');
    await assertNoSidewaysScroll(page, 'the new connector form');

    // Saved disabled, then tested: the bind fails, and the bind DN field says so.
    await page.click('button:has-text("Save disabled and test connection")');
    await page.waitForSelector('.test-report[data-ok="false"]', { timeout: 30_000 });
    assert.equal(new URL(page.url()).pathname, '/admin/connectors/corp');
    assert.match((await fieldError(page, 'body.config.bindDn'))!, /bind failed/);
    assert.equal(await page.$('.field[data-path="body.config.users.baseDn"] .field-error'), null, 'only the field at fault');
    assert.match((await page.textContent('.test-steps .step-failed'))!, /bind/);
    await screenshot(page, 'connector-test-failed');
    const stored = await broker.store.connectors.find('corp');
    assert.equal(stored?.enabled, false);
    assert.deepEqual((stored?.config.users as { loginAttributes?: string[] }).loginAttributes, ['uid', 'mail']);
    assert.ok(!JSON.stringify(stored?.config).includes(directory.servicePassword), 'the bind password is not in the stored config');
    assert.ok(!(await page.content()).includes(directory.servicePassword), 'the bind password is shown');

    // Fixed (the stored password kept): the test passes and shows what it found.
    await page.fill('input[name="bindDn"]', directory.serviceDn);
    await page.click('button:has-text("Test connection")');
    await page.waitForSelector('.test-report[data-ok="true"]', { timeout: 30_000 });
    assert.equal(await page.$('.field[data-path="body.config.bindDn"] .field-error'), null);
    assert.equal((await broker.store.connectors.find('corp'))?.config.bindDn, directory.serviceDn, 'the fix was saved');
    const found = (await page.textContent('.test-found'))!;
    assert.match(found, /usersFound/);
    assert.match(found, /ou=people,dc=example,dc=org/);
    assert.deepEqual(await page.$$eval('.test-steps li', (items) => items.map((li) => li.className)), ['step-ok', 'step-ok', 'step-ok']);

    // Enabled: the login page offers it, and a directory user signs in to the client through it.
    await page.click('.page-actions button:has-text("Enable")');
    await page.waitForSelector('.connector-summary .badge-ok');
    assert.equal((await broker.store.connectors.find('corp'))?.enabled, true);
    await within(3000, async () => (await offeredConnectors(broker.issuer)).includes('corp'), 'the login page offers corp');
    const person = await chromium.newContext();
    const login = await person.newPage();
    await login.route(`${RP_REDIRECT}**`, (route) => route.fulfill({ status: 200, contentType: 'text/plain', body: 'client callback' }));
    const authorize = new URL(`${broker.issuer}/auth`);
    for (const [k, v] of Object.entries({ client_id: RP_CLIENT.id, response_type: 'code', redirect_uri: RP_REDIRECT, scope: 'openid profile', state: 'st-1', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' })) authorize.searchParams.set(k, v);
    await login.goto(authorize.href);
    await login.selectOption('#connector', 'corp');
    await login.fill('#username', 'alice');
    await login.fill('#password', 'alicepass');
    await login.click('button[type=submit].primary');
    await login.waitForURL(`${RP_REDIRECT}**`);
    const back = new URL(login.url());
    assert.ok(back.searchParams.get('code'), 'a code at the redirect URI');
    assert.equal(back.searchParams.get('state'), 'st-1');
    await person.close();

    // Import: the progress bar runs to the end, with the counts.
    await page.click('button:has-text("Sync now")');
    await page.waitForSelector('.sync-state[data-state="succeeded"]', { timeout: 30_000 });
    const bar = await page.$eval('#sync-progress', (p) => ({ value: (p as HTMLProgressElement).value, max: (p as HTMLProgressElement).max }));
    assert.equal(bar.value, bar.max, 'the bar is full');
    const processed = Number(await page.textContent('dd[data-count="processed"]'));
    const created = Number(await page.textContent('dd[data-count="created"]'));
    assert.ok(processed >= 5, `processed ${processed}`);
    assert.ok(created >= 1, `created ${created}`);
    assert.ok(await broker.store.users.findByUsername('bob'), 'the directory users were imported');
    await page.reload();
    await page.waitForSelector('.connector-summary');
    assert.match((await page.textContent('.connector-summary'))!, /Last success: (?!never)/, 'the status shows the login');
    await screenshot(page, 'connector');
    await assertNoSidewaysScroll(page, 'the connector page');

    await page.click('a:has-text("All connectors")');
    await page.waitForSelector('table.data tbody tr:has-text("Corporate directory")');
    const row = (await page.textContent('table.data tbody tr:has-text("Corporate directory")'))!;
    assert.match(row, /enabled/);
    assert.match(row, /database/);
    assert.doesNotMatch(row, /Last success: never/);
    await screenshot(page, 'connectors');
    await assertNoSidewaysScroll(page, 'the connector list');
    assert.ok(refused.length > 0 && refused.every((r) => r === '404 GET /admin/api/v1/connectors/corp/sync'), refused.join(', '));
    assert.deepEqual(session.pageErrors.filter((e) => !/status of 404/.test(e)), []);
    assertOnlyApiAndSignIn(session.requests, broker.issuer);
    await session.context.close();
  });

  test('hostile values (NUL, 3,000 characters, RTL override) come back as the API errors at their fields, and nothing is stored', async (t) => {
    if (skipReason) return skipLoudly(t, skipReason);
    const session = await openConsolePage(chromium);
    const { page } = session;
    await signInToConsole(session, broker.issuer, undefined, '/admin/connectors/new?type=oidc&preset=google');
    await page.waitForSelector('select[name="preset"]');
    assert.equal(await page.inputValue('select[name="preset"]'), 'google', 'the preset fills the form');
    // Other presets' own fields are hidden, and follow the preset select.
    assert.equal(await page.$('input[name="tenant"]'), null, "Entra's tenant is hidden for Google");
    await page.selectOption('select[name="preset"]', 'entra');
    await page.waitForSelector('input[name="tenant"]');
    assert.equal(await page.$('input[name="realm"]'), null, "Keycloak's realm is hidden for Entra");
    await page.selectOption('select[name="preset"]', 'google');
    await page.waitForSelector('input[name="tenant"]', { state: 'detached' });
    // A NUL: refused before anything else, at the field that holds it.
    await page.fill('input[name="id"]', 'hostile');
    await page.fill('input[name="name"]', 'Hostile');
    await page.fill('input[name="clientId"]', 'client\u0000id');
    await page.fill('input[name="clientSecret"]', 'a-secret');
    await page.click('button:has-text("Save connector")');
    assert.match((await fieldError(page, 'body.config.clientId'))!, /NUL/);
    assert.equal(await page.inputValue('input[name="clientId"]'), 'client\u0000id', 'the values stay in the form');
    // An RTL override in the id and 3,000 characters in the name.
    await page.fill('input[name="clientId"]', 'client-id');
    await page.fill('input[name="id"]', 'hostile\u202Eevil');
    await page.fill('input[name="name"]', 'x'.repeat(3000));
    await page.click('button:has-text("Save connector")');
    assert.match((await fieldError(page, 'body.id'))!, /lowercase/);
    assert.match((await fieldError(page, 'body.name'))!, /100/);
    assert.equal(await page.$('.field[data-path="body.config.clientId"] .field-error'), null, 'the fixed field is clear');
    // 3,000 characters in a config field: the type's own schema refuses it there.
    await page.fill('input[name="id"]', 'hostile');
    await page.fill('input[name="name"]', 'Hostile');
    await page.fill('input[name="clientId"]', 'c'.repeat(3000));
    await page.click('button:has-text("Save connector")');
    assert.match((await fieldError(page, 'body.config.clientId'))!, /1024/);
    assert.equal(await broker.store.connectors.find('hostile'), null, 'nothing stored');
    assert.equal(new URL(page.url()).pathname, '/admin/connectors/new', 'still on the form');
    // The API refused with 400: those console messages are expected, nothing else.
    assert.deepEqual(session.pageErrors.filter((e) => !/status of 400/.test(e)), []);
    assertOnlyApiAndSignIn(session.requests, broker.issuer);
    await session.context.close();
  });

  test('SAML: the IdP metadata loaded from a file; a stored connector disabled, then deleted after a confirmation (a stale ETag refused, nothing changed)', async (t) => {
    if (skipReason) return skipLoudly(t, skipReason);
    const session = await openConsolePage(chromium);
    const { page } = session;
    const refused: string[] = [];
    page.on('response', (r) => {
      if (r.status() >= 400) refused.push(`${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`);
    });
    await signInToConsole(session, broker.issuer, undefined, '/admin/connectors/new');
    await page.click('a[href="/admin/connectors/new?type=saml"]');
    await page.waitForSelector('input[name="idp.metadataUrl"]');
    const xml = '<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example/">&lt;script&gt;</EntityDescriptor>';
    await page.setInputFiles('.field[data-path="body.config.idp.metadataXml"] input[type=file]', { name: 'idp.xml', mimeType: 'text/xml', buffer: Buffer.from(xml) });
    await page.waitForFunction(() => (document.querySelector('textarea[name="idp.metadataXml"]') as HTMLTextAreaElement | null)?.value.includes('EntityDescriptor'));
    assert.equal(await page.inputValue('textarea[name="idp.metadataXml"]'), xml, 'the file was loaded as text');
    assert.equal(await page.$('script:has-text("EntityDescriptor")'), null);

    // A stored connector (created through the API as another administrator would) disabled and deleted here.
    const row = { id: 'spare', type: 'local', name: 'Spare', enabled: true, config: {}, secrets: null, policy: null, position: 0 };
    await broker.store.connectors.insert(row);
    await page.goto(`${broker.issuer}/admin/connectors/spare`);
    await page.waitForSelector('.connector-summary');
    await page.click('.page-actions button:has-text("Disable")');
    await page.waitForSelector('.connector-summary .badge-warn');
    assert.equal((await broker.store.connectors.find('spare'))?.enabled, false);
    // Someone else changes it meanwhile: this page's ETag is stale, the delete is refused (412) and nothing changes.
    await broker.store.connectors.update('spare', { name: 'Spare (renamed elsewhere)' });
    await page.click('.page-actions button:has-text("Delete")');
    await page.click('dialog.confirm button:has-text("Delete connector")');
    await page.waitForSelector('dialog.confirm .alert');
    assert.ok(await broker.store.connectors.find('spare'), 'not deleted on a stale ETag');
    await page.click('dialog.confirm button:has-text("Cancel")');
    await page.reload();
    await page.waitForSelector('h1:has-text("Spare (renamed elsewhere)")');
    await page.click('.page-actions button:has-text("Delete")');
    await page.click('dialog.confirm button:has-text("Delete connector")');
    await page.waitForURL(`${broker.issuer}/admin/connectors`);
    assert.equal(await broker.store.connectors.find('spare'), null);
    assert.deepEqual(refused.filter((r) => !r.endsWith('/sync')), ['412 DELETE /admin/api/v1/connectors/spare']);
    assert.deepEqual(session.pageErrors.filter((e) => !/status of (404|412)/.test(e)), []);
    assertOnlyApiAndSignIn(session.requests, broker.issuer);
    await session.context.close();
  });

  test('a connector from the config file is read-only: badge, disabled form, no save, enable or delete; its secret never reaches the page', async (t) => {
    if (skipReason) return skipLoudly(t, skipReason);
    const session = await openConsolePage(chromium);
    const { page } = session;
    // Its latest login error (from the audit trail) shows in the list, as text.
    await broker.store.audit.record({ type: 'login.failure', outcome: 'failure', connectorId: 'gh', details: { reason: 'upstream_error', detail: 'GitHub answered <b>500</b>' } });
    await signInToConsole(session, broker.issuer, undefined, '/admin/connectors');
    await page.waitForSelector('table.data tbody tr:has-text("GitHub")');
    const ghRow = (await page.textContent('table.data tbody tr:has-text("GitHub")'))!;
    assert.match(ghRow, /managed by config/);
    assert.match(ghRow, /Last error: .*GitHub answered <b>500<\/b>/);
    assert.equal(await page.$('table.data b'), null, 'the message is text, not HTML');
    await page.click('table.data a:has-text("GitHub")');
    await page.waitForSelector('input[name="clientId"]');
    assert.equal(await page.inputValue('input[name="clientId"]'), 'gh-client');
    assert.ok(await page.isDisabled('input[name="clientId"]'), 'the form is disabled');
    assert.ok(await page.isDisabled('select[name="preset"]'));
    assert.match((await page.textContent('.connector-summary'))!, /managed by config/);
    assert.match((await page.textContent('.notice'))!, /read-only/);
    for (const label of ['Save changes', 'Enable', 'Disable', 'Delete']) assert.equal(await page.$(`button:has-text("${label}")`), null, `no ${label} button`);
    assert.ok(await page.isVisible('button:has-text("Test connection")'), 'a test is still possible');
    assert.ok(!(await page.content()).includes(CONFIG_SECRET), 'the config secret reached the page');
    assert.deepEqual(session.pageErrors, []);
    assertOnlyApiAndSignIn(session.requests, broker.issuer);
    await session.context.close();
  });
});
