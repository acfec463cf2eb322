// The console's SAML apps section in Chromium: our IdP's metadata panel (entity ID, endpoints,
// certificate expiry, a link and a copy button for the metadata URL), the service providers
// (config ones read-only), adding one from pasted or uploaded metadata XML or from its URL, deleting one
// after a confirmation, hostile metadata refused with the API's reason at the XML field, and the
// panel saying so when the IdP is disabled.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser as Chromium, Page } from 'playwright-core';
import { chromiumMissing } from '../helpers/chromium.ts';
import { skipLoudly } from '../helpers/skip.ts';
import type { TestBroker } from '../helpers/test-broker.ts';
import { ADMIN, assertFitsPhone, assertOnlyApiAndSignIn, launchChromium, openConsolePage, screenshot, signInToConsole, startConsoleBroker, unexpectedErrors, type ConsoleSession } from '../helpers/admin-console.ts';

const CONFIGURED = 'https://configured.example/sp';

function metadata(entityId: string, acs = `${entityId}/acs`): string {
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="${entityId}">` +
    `<md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">` +
    `<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="${acs}" index="1"/>` +
    `</md:SPSSODescriptor></md:EntityDescriptor>`
  );
}

const row = (page: Page, entityId: string) => page.locator('table.data tbody tr', { has: page.locator(`code:text-is("${entityId}")`) });

describe('admin console: SAML apps', () => {
  let broker: TestBroker;
  let chromium: Chromium;
  const missing = chromiumMissing();

  before(async () => {
    if (missing) return;
    broker = await startConsoleBroker({ config: { samlIdp: { enabled: true, serviceProviders: [{ entityId: CONFIGURED, name: 'Configured App', metadataXml: metadata(CONFIGURED) }] } } });
    chromium = await launchChromium();
  });
  after(async () => {
    await chromium?.close();
    await broker?.close();
  });

  async function openSaml(session: ConsoleSession): Promise<void> {
    await signInToConsole(session, broker.issuer, ADMIN, '/admin/saml');
    await session.page.waitForSelector('[data-testid=idp-metadata]');
    await session.page.waitForSelector('table.data tbody tr');
  }

  test('our IdP metadata: entity ID, endpoints, certificate expiry, a link to the metadata and a copy button; config SPs read-only', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const session = await openConsolePage(chromium);
    const { page } = session;
    await openSaml(session);
    assert.equal(await page.textContent('h1'), 'SAML apps');
    const metadataUrl = `${broker.issuer}/saml/idp/metadata`;
    assert.equal(await page.textContent('[data-testid=idp-entity-id]'), metadataUrl);
    const panel = (await page.textContent('[data-testid=idp-metadata]'))!;
    assert.ok(panel.includes(`${broker.issuer}/saml/idp/sso`) && panel.includes(`${broker.issuer}/saml/idp/slo`), panel);
    const link = page.locator('[data-testid=idp-metadata] a');
    assert.equal(await link.getAttribute('href'), metadataUrl);
    assert.equal(await link.getAttribute('target'), '_blank');
    assert.match((await link.getAttribute('rel'))!, /noopener/);
    // The expiry shown is the published certificate's (ten years for a generated one).
    const notAfter = await page.getAttribute('[data-testid=idp-certificate-expiry] time', 'datetime');
    const xml = await (await fetch(metadataUrl)).text();
    const { X509Certificate } = await import('node:crypto');
    const published = new X509Certificate(Buffer.from(/<ds:X509Certificate>([^<]+)</.exec(xml)![1], 'base64'));
    assert.equal(notAfter, new Date(published.validTo).toISOString());
    assert.match(panel, /valid/);
    await page.click('button:has-text("Copy URL")');
    await page.waitForSelector('button:has-text("Copied")');
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), metadataUrl);

    const configured = row(page, CONFIGURED);
    assert.match((await configured.textContent())!, /Configured App/);
    assert.match((await configured.textContent())!, /managed by config/);
    assert.equal(await configured.locator('button').count(), 0, 'no delete button on a config SP');
    await screenshot(page, 'saml');
    await assertFitsPhone(page, 'the SAML page');
    assert.deepEqual(session.pageErrors, []);
    assertOnlyApiAndSignIn(session.requests, broker.issuer);
    await session.context.close();
  });

  test('add an SP from pasted metadata XML (its entity ID read from it), see it listed, delete it after a confirmation', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const session = await openConsolePage(chromium);
    const { page } = session;
    await openSaml(session);
    const id = 'https://wiki.example.org/shibboleth';
    await page.fill('textarea[name=metadataXml]', metadata(id, 'https://wiki.example.org/Shibboleth.sso/SAML2/POST'));
    assert.equal(await page.inputValue('input[name=entityId]'), id, 'the entity ID is taken from the metadata');
    await page.fill('input[name=name]', 'Wiki');
    await page.click('button:has-text("Add service provider")');
    await page.waitForSelector('.notice:has-text("Added Wiki")');
    await row(page, id).waitFor();
    assert.match((await row(page, id).textContent())!, /Wiki.*Shibboleth\.sso\/SAML2\/POST/s);
    assert.equal((await broker.store.samlServiceProviders.find(id))?.settings.name, 'Wiki');
    assert.equal(await page.inputValue('textarea[name=metadataXml]'), '', 'the form is cleared for the next one');

    await row(page, id).locator('button:has-text("Delete")').click();
    await page.waitForSelector('dialog[open]');
    assert.match((await page.textContent('dialog[open]'))!, /Wiki.*wiki\.example\.org\/shibboleth/s);
    await page.click('dialog[open] button:has-text("Cancel")');
    assert.ok(await broker.store.samlServiceProviders.find(id), 'cancel removes nothing');
    await row(page, id).locator('button:has-text("Delete")').click();
    await page.click('dialog[open] button:has-text("Remove")');
    await page.waitForSelector('.notice:has-text("Removed Wiki")');
    assert.equal(await row(page, id).count(), 0, 'gone from the list');
    assert.equal(await broker.store.samlServiceProviders.find(id), null, 'gone from the database');
    assert.deepEqual(session.pageErrors, []);
    assertOnlyApiAndSignIn(session.requests, broker.issuer);
    await session.context.close();
  });

  test('add an SP from an uploaded metadata file (read in the browser, sent as text)', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const session = await openConsolePage(chromium);
    const { page } = session;
    await openSaml(session);
    const id = 'https://crm.example.com/saml';
    await page.setInputFiles('#metadata-file', { name: 'crm-metadata.xml', mimeType: 'application/xml', buffer: Buffer.from(metadata(id)) });
    await page.waitForFunction(() => (document.querySelector('textarea[name=metadataXml]') as HTMLTextAreaElement).value.includes('crm.example.com'));
    assert.equal(await page.inputValue('input[name=entityId]'), id);
    await page.click('button:has-text("Add service provider")');
    await row(page, id).waitFor();
    const stored = (await broker.store.samlServiceProviders.find(id))!;
    assert.ok(stored);
    assert.equal(session.requests.filter((r) => r.url.includes('crm-metadata')).length, 0, 'the file never left the browser but as the JSON body');
    assert.deepEqual(session.pageErrors, []);
    assertOnlyApiAndSignIn(session.requests, broker.issuer);
    await session.context.close();
  });

  test('add an SP from its metadata URL: Keybridge reads it (the browser never does)', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const id = 'https://hr.example.net/saml';
    const server = http.createServer((req, res) => {
      res.writeHead(req.url === '/hr-metadata.xml' ? 200 : 404, { 'content-type': 'application/samlmetadata+xml' });
      res.end(req.url === '/hr-metadata.xml' ? metadata(id) : 'not found');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hr-metadata.xml`;
    try {
      const session = await openConsolePage(chromium);
      const { page } = session;
      await openSaml(session);
      await page.fill('input[name=entityId]', id);
      await page.check('input[name=from][value=url]');
      await page.fill('input[name=metadataUrl]', url);
      await page.click('button:has-text("Add service provider")');
      await row(page, id).waitFor();
      const stored = (await broker.store.samlServiceProviders.find(id))!;
      assert.equal(stored.settings.metadataUrl, url);
      assert.equal(session.requests.filter((r) => r.url.startsWith(url)).length, 0, 'the browser did not fetch the metadata itself');
      assert.deepEqual(session.pageErrors, []);
      assertOnlyApiAndSignIn(session.requests, broker.issuer);
      await session.context.close();
    } finally {
      server.close();
    }
  });

  test('hostile or wrong input (a DTD with an entity, deep nesting, a NUL, another entity ID, a 3,000-character entity ID, a javascript: URL) is refused at its field; nothing stored', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const session = await openConsolePage(chromium);
    const { page } = session;
    await openSaml(session);
    const id = 'https://hostile.example/sp';
    const refused = async (xml: string, reason: RegExp) => {
      await page.fill('input[name=entityId]', id);
      await page.fill('textarea[name=metadataXml]', xml);
      await page.click('button:has-text("Add service provider")');
      await page.waitForSelector('[data-path="body.metadataXml"] .field-error');
      const message = (await page.textContent('[data-path="body.metadataXml"] .field-error'))!;
      assert.match(message, reason);
      assert.equal(await page.getAttribute('textarea[name=metadataXml]', 'aria-invalid'), 'true');
      assert.equal(await broker.store.samlServiceProviders.find(id), null, 'nothing stored');
      // Cleared before the next try, so each check sees its own error.
      await page.fill('textarea[name=metadataXml]', '');
    };
    await refused(`<!DOCTYPE md:EntityDescriptor [<!ENTITY boom "<script>alert(1)</script>">]>${metadata(id).replace(/^<\?xml[^>]*>\n/, '')}`, /refused/);
    await refused(`${'<a>'.repeat(500)}${'</a>'.repeat(500)}`, /too deep/);
    await refused(metadata(id).replace('<md:SPSSODescriptor', '\u0000<md:SPSSODescriptor'), /NUL/);
    await refused(metadata('https://someone-else.example/sp'), /no EntityDescriptor with entityID "https:\/\/hostile\.example\/sp"/);
    assert.equal(await page.$('script:has-text("alert(1)")'), null);

    // A 3,000-character entity ID, and a javascript: metadata URL: each at its own field.
    await page.fill('input[name=entityId]', `https://long.example/${'x'.repeat(3000)}`);
    await page.fill('textarea[name=metadataXml]', metadata(id));
    await page.click('button:has-text("Add service provider")');
    await page.waitForSelector('[data-path="body.entityId"] .field-error');
    assert.match((await page.textContent('[data-path="body.entityId"] .field-error'))!, /1024/);
    await page.check('input[name=from][value=url]');
    await page.fill('input[name=entityId]', id);
    await page.fill('input[name=metadataUrl]', 'javascript:alert(1)');
    await page.click('button:has-text("Add service provider")');
    await page.waitForSelector('[data-path="body.metadataUrl"] .field-error');
    assert.match((await page.textContent('[data-path="body.metadataUrl"] .field-error'))!, /http\(s\) URL/);
    assert.equal(await broker.store.samlServiceProviders.find(id), null, 'nothing stored');
    assert.deepEqual(unexpectedErrors(session.pageErrors, [400]), []);
    assertOnlyApiAndSignIn(session.requests, broker.issuer);
    await session.context.close();
  });
});

describe('admin console: SAML apps with the IdP disabled', () => {
  let broker: TestBroker;
  let chromium: Chromium;
  const missing = chromiumMissing();

  before(async () => {
    if (missing) return;
    broker = await startConsoleBroker();
    chromium = await launchChromium();
  });
  after(async () => {
    await chromium?.close();
    await broker?.close();
  });

  test('the metadata panel says the IdP is disabled; the SP list still shows', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const session = await openConsolePage(chromium);
    const { page } = session;
    await signInToConsole(session, broker.issuer, ADMIN, '/admin/saml');
    await page.waitForSelector('.idp-panel .notice');
    assert.match((await page.textContent('.idp-panel'))!, /SAML IdP is disabled.*cannot sign anyone in until it is enabled/s);
    assert.equal(await page.$('[data-testid=idp-metadata]'), null);
    assert.match((await page.textContent('.console-page'))!, /No service providers yet/);
    assert.deepEqual(unexpectedErrors(session.pageErrors, [404]), [], 'only the refused /saml-idp call');
    assertOnlyApiAndSignIn(session.requests, broker.issuer);
    await session.context.close();
  });
});
