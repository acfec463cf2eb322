// What Keybridge sends in SAML, validated against the OASIS SAML 2.0 XSDs with xmllint, as
// Shibboleth SP validates metadata (issue 17): the IdP metadata (served over HTTP by a broker),
// the saml connector's SP metadata, and the IdP's Responses (signed, encrypted, status-only),
// LogoutRequests and LogoutResponses, plus the connector's logout messages. The schemas are
// Debian's (opensaml-schemas, xmltooling-schemas; installed here when missing, as root); the
// W3C imports (xmldsig, xenc, xml.xsd) resolve to the local copies through an XML catalog this
// suite writes, and xmllint runs with --nonet. Negative controls prove the validator catches
// the element order samlify used to emit.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { inflateRawSync } from 'node:zlib';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { generateSelfSigned, type SigningMaterial } from '../../src/saml-idp/signing-key.ts';
import { OutboundMessages, type Outgoing } from '../../src/saml-idp/outbound.ts';
import type { ServiceProvider } from '../../src/saml-idp/service-providers.ts';
import { DEFAULT_ATTRIBUTES } from '../../src/saml-idp/saml-idp-config.ts';
import { spMetadataXml } from '../../connectors/saml/sp-metadata.ts';
import { logoutRequestXml, logoutResponseXml } from '../../connectors/saml/logout-messages.ts';
import type { KeyPair } from '../../connectors/saml/sp-keys.ts';

const run = promisify(execFile);

const OPENSAML = '/usr/share/xml/opensaml';
const XMLTOOLING = '/usr/share/xml/xmltooling';
const METADATA_XSD = `${OPENSAML}/saml-schema-metadata-2.0.xsd`;
const PROTOCOL_XSD = `${OPENSAML}/saml-schema-protocol-2.0.xsd`;
const NEEDED = [METADATA_XSD, PROTOCOL_XSD, `${OPENSAML}/saml-schema-assertion-2.0.xsd`, `${XMLTOOLING}/xmldsig-core-schema.xsd`, `${XMLTOOLING}/xenc-schema.xsd`, `${XMLTOOLING}/xml.xsd`];
const PACKAGES = ['libxml2-utils', 'opensaml-schemas', 'xmltooling-schemas'];

const TRANSIENT = 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient';
const PERSISTENT = 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent';

function xmllintPath(): string | undefined {
  return ['/usr/bin/xmllint', '/usr/local/bin/xmllint'].find((p) => existsSync(p));
}

/** xmllint and the schemas, installed by apt when missing and we are root; else why not. */
async function ensureTools(): Promise<string | null> {
  const ready = () => xmllintPath() !== undefined && NEEDED.every((f) => existsSync(f));
  if (ready()) return null;
  if (process.getuid?.() !== 0) return `xmllint or the SAML schemas are missing and we are not root to apt-get install ${PACKAGES.join(' ')}`;
  const opts = { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, maxBuffer: 64 << 20 };
  const apt = () => run('apt-get', ['install', '-y', '-q', ...PACKAGES], opts);
  try {
    await apt().catch(() => run('apt-get', ['update', '-q'], opts).then(apt)); // missing/stale package lists
  } catch (err) {
    return `apt-get install ${PACKAGES.join(' ')} failed: ${(err as Error).message.split('\n')[0]}`;
  }
  return ready() ? null : `apt-get install ${PACKAGES.join(' ')} ran but xmllint or a schema is still missing`;
}

/** The schemas import the W3C ones by their web addresses: point those at the local copies. */
function writeCatalog(dir: string): string {
  const map: [string, string][] = [
    ['http://www.w3.org/TR/2002/REC-xmldsig-core-20020212/xmldsig-core-schema.xsd', `${XMLTOOLING}/xmldsig-core-schema.xsd`],
    ['http://www.w3.org/TR/2002/REC-xmlenc-core-20021210/xenc-schema.xsd', `${XMLTOOLING}/xenc-schema.xsd`],
    ['http://www.w3.org/2001/xml.xsd', `${XMLTOOLING}/xml.xsd`],
  ];
  const file = path.join(dir, 'catalog.xml');
  writeFileSync(
    file,
    `<?xml version="1.0"?>\n<catalog xmlns="urn:oasis:names:tc:entity:xmlns:xml:catalog">\n` +
      map.map(([from, to]) => `  <uri name="${from}" uri="file://${to}"/>\n  <system systemId="${from}" uri="file://${to}"/>\n`).join('') +
      `</catalog>\n`,
  );
  return file;
}

describe('SAML messages and metadata against the OASIS SAML 2.0 schemas', () => {
  let missing: string | null = null;
  let dir: string;
  let catalog: string;
  let broker: TestBroker;
  let idpMaterial: SigningMaterial;
  let spMaterial: SigningMaterial;
  let outbound: OutboundMessages;
  let sp: ServiceProvider;
  let count = 0;

  /** xmllint's verdict on `xml` against `xsd`, offline; `errors` are its validity messages. */
  async function validate(xml: string, xsd: string): Promise<{ ok: boolean; errors: string }> {
    const file = path.join(dir, `doc-${count++}.xml`);
    writeFileSync(file, xml);
    try {
      await run(xmllintPath()!, ['--nonet', '--noout', '--schema', xsd, file], { env: { ...process.env, XML_CATALOG_FILES: catalog } });
      return { ok: true, errors: '' };
    } catch (err) {
      const stderr = String((err as { stderr?: string }).stderr ?? '');
      // A schema that failed to load is not a verdict on the document.
      assert.doesNotMatch(stderr, /failed to load|Failed to parse the XML resource|WXS schema .* failed to compile/i, stderr);
      return { ok: false, errors: stderr.split('\n').filter((l) => !/parser warning|Skipping import/.test(l)).join('\n') };
    }
  }
  async function assertValid(xml: string, xsd: string, what: string) {
    const { ok, errors } = await validate(xml, xsd);
    assert.ok(ok, `${what} is not schema-valid:\n${errors}\n${xml.slice(0, 2000)}`);
  }

  const pair = (m: SigningMaterial): KeyPair => ({ privateKey: createPrivateKey(m.privateKeyPem), privateKeyPem: m.privateKeyPem, certificate: new X509Certificate(m.certificatePem), certificatePem: m.certificatePem });
  const decoded = (b64: string) => Buffer.from(b64, 'base64').toString('utf8');
  /** The XML of a message we send, by either binding. */
  const messageOf = (out: Outgoing, param: 'SAMLRequest' | 'SAMLResponse') =>
    out.binding === 'redirect' ? inflateRawSync(Buffer.from(new URL(out.url).searchParams.get(param)!, 'base64')).toString('utf8') : decoded(out.fields[param]);

  before(async () => {
    missing = await ensureTools();
    if (missing) return;
    dir = mkdtempSync(path.join(os.tmpdir(), 'kb-saml-xsd-'));
    catalog = writeCatalog(dir);
    [idpMaterial, spMaterial] = await Promise.all([generateSelfSigned('idp.example'), generateSelfSigned('sp.example')]);
    broker = await startTestBroker({ config: { samlIdp: { enabled: true, serviceProviders: [{ entityId: 'https://sp.example/saml', assertionConsumerServices: [{ url: 'https://sp.example/acs' }] }] } } });
    outbound = new OutboundMessages({ endpoints: { entityId: 'https://idp.example/saml/idp/metadata', ssoUrl: 'https://idp.example/saml/idp/sso', sloUrl: 'https://idp.example/saml/idp/slo' }, material: idpMaterial, signatureAlgorithm: 'rsa-sha256', wantAuthnRequestsSigned: true });
    sp = {
      entityId: 'https://sp.example/saml',
      name: 'SP',
      source: 'config',
      acs: [{ url: 'https://sp.example/acs', index: 0, isDefault: true }],
      slo: { url: 'https://sp.example/slo', responseUrl: 'https://sp.example/slo/response', binding: 'redirect' },
      signingCerts: [spMaterial.certificatePem],
      encryptionCert: spMaterial.certificatePem,
      requireSignedRequests: false,
      nameIdFormats: [],
      signResponse: true,
      signAssertion: true,
      encryptAssertions: false,
      encryptionAlgorithm: 'aes256-gcm',
      nameId: { format: 'persistent' },
      attributes: DEFAULT_ATTRIBUTES,
      idpInitiated: { enabled: false },
    };
  });

  after(async () => {
    await broker?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const loginInput = () => ({
    acsUrl: 'https://sp.example/acs',
    inResponseTo: '_req1',
    nameId: { value: 'opaque-id', format: PERSISTENT },
    authnInstant: new Date(),
    authnContext: 'urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport',
    sessionIndex: '_session1',
    sessionNotOnOrAfter: new Date(Date.now() + 3600_000),
    attributes: [
      { name: 'mail', nameFormat: 'urn:oasis:names:tc:SAML:2.0:attrname-format:basic', values: ['alice@example.org'] },
      { name: 'groups', nameFormat: 'urn:oasis:names:tc:SAML:2.0:attrname-format:basic', values: ['R&D', 'Ärzte'] },
    ],
    lifetimeSeconds: 300,
    clockSkewSeconds: 60,
  });

  test('the IdP metadata a broker serves is valid; the old element order (SingleLogoutService after SingleSignOnService) is not', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const metadata = await (await fetch(`${broker.issuer}/saml/idp/metadata`)).text();
    await assertValid(metadata, METADATA_XSD, 'IdP metadata');
    // Negative control: samlify's order, SingleLogoutService moved after SingleSignOnService.
    const slos = metadata.match(/<md:SingleLogoutService [^>]*\/>\n?/g)!;
    assert.equal(slos.length, 2);
    const misordered = slos.reduce((xml, s) => xml.replace(s, ''), metadata).replace('</md:IDPSSODescriptor>', `${slos.join('')}</md:IDPSSODescriptor>`);
    const verdict = await validate(misordered, METADATA_XSD);
    assert.equal(verdict.ok, false, 'the validator refuses SingleLogoutService after SingleSignOnService');
    assert.match(verdict.errors, /SingleLogoutService': This element is not expected/);
    // And NameIDFormat before SingleLogoutService (samlify's other misplacement).
    const formats = metadata.match(/<md:NameIDFormat>[^<]*<\/md:NameIDFormat>\n?/g)!;
    const early = formats.reduce((xml, f) => xml.replace(f, ''), metadata).replace(slos[0], `${formats.join('')}${slos[0]}`);
    assert.equal((await validate(early, METADATA_XSD)).ok, false, 'the validator refuses NameIDFormat before SingleLogoutService');
  });

  test('the saml connector\'s SP metadata is valid, with keys and SLO and without; a misplaced AssertionConsumerService is not', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const full = spMetadataXml({ entityId: 'https://kb.example/connectors/s/metadata', callbackUrl: 'https://kb.example/cb', logoutUrl: 'https://kb.example/logout', signing: pair(spMaterial), decryption: pair(idpMaterial), authnRequestsSigned: true, wantAssertionsSigned: true, nameIdFormat: PERSISTENT });
    await assertValid(full, METADATA_XSD, 'SP metadata with keys');
    const bare = spMetadataXml({ entityId: 'urn:example:kb', callbackUrl: 'https://kb.example/cb', logoutUrl: 'https://kb.example/logout', signing: null, decryption: null, authnRequestsSigned: false, wantAssertionsSigned: false, nameIdFormat: TRANSIENT });
    await assertValid(bare, METADATA_XSD, 'SP metadata without keys');
    const acs = full.match(/<md:AssertionConsumerService [^>]*\/>\n?/)![0];
    const misordered = full.replace(acs, '').replace('<md:SingleLogoutService', `${acs}<md:SingleLogoutService`);
    const verdict = await validate(misordered, METADATA_XSD);
    assert.equal(verdict.ok, false, 'the validator refuses AssertionConsumerService before SingleLogoutService');
  });

  test('login Responses are valid: signed response and assertion, encrypted assertion, status-only; a misplaced Issuer is not', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const signed = decoded(await outbound.loginResponse(sp, loginInput()));
    assert.equal(signed.match(/<ds:Signature[ >]/g)?.length, 2);
    await assertValid(signed, PROTOCOL_XSD, 'signed Response');
    for (const encryptionAlgorithm of ['aes256-gcm', 'aes128-cbc'] as const) {
      const encrypted = decoded(await outbound.loginResponse({ ...sp, encryptAssertions: true, encryptionAlgorithm }, loginInput()));
      assert.match(encrypted, /EncryptedAssertion/);
      await assertValid(encrypted, PROTOCOL_XSD, `Response with an ${encryptionAlgorithm} EncryptedAssertion`);
    }
    const transient = decoded(await outbound.loginResponse({ ...sp, signResponse: false }, { ...loginInput(), inResponseTo: null, nameId: { value: '_t1', format: TRANSIENT }, attributes: [] }));
    await assertValid(transient, PROTOCOL_XSD, 'unsolicited Response, assertion signed only, no attributes');
    const status = decoded(outbound.statusResponse({ acsUrl: 'https://sp.example/acs', inResponseTo: '_req2', status: 'urn:oasis:names:tc:SAML:2.0:status:Requester', subStatus: 'urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy', message: 'no' }));
    await assertValid(status, PROTOCOL_XSD, 'status-only Response');
    // Negative control: the Issuer after the Status.
    const issuer = status.match(/<saml:Issuer>[^<]*<\/saml:Issuer>/)![0];
    const misordered = status.replace(issuer, '').replace('</samlp:Status>', `</samlp:Status>${issuer}`).replace(/<ds:Signature[\s\S]*<\/ds:Signature>/, '');
    assert.equal((await validate(misordered, PROTOCOL_XSD)).ok, false, 'the validator refuses an Issuer after the Status');
  });

  test('LogoutRequests and LogoutResponses the IdP sends are valid, by both bindings', async (t) => {
    if (missing) return skipLoudly(t, missing);
    for (const binding of ['redirect', 'post'] as const) {
      const target = { ...sp, slo: { ...sp.slo!, binding } };
      const request = outbound.logoutRequest(target, { nameId: 'opaque-id', nameIdFormat: PERSISTENT, sessionIndex: '_session1', relayState: 'handle' });
      const requestXml = messageOf(request, 'SAMLRequest');
      assert.match(requestXml, /^(<\?xml[^>]*\?>)?<samlp:LogoutRequest/);
      await assertValid(requestXml, PROTOCOL_XSD, `LogoutRequest (${binding})`);
      const response = outbound.logoutResponse(target, { inResponseTo: '_lr1', relayState: 'r', status: 'urn:oasis:names:tc:SAML:2.0:status:Success', subStatus: 'urn:oasis:names:tc:SAML:2.0:status:PartialLogout' });
      await assertValid(messageOf(response, 'SAMLResponse'), PROTOCOL_XSD, `LogoutResponse (${binding})`);
    }
  });

  test('the saml connector\'s LogoutRequest and LogoutResponse are valid', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const now = new Date();
    const request = logoutRequestXml({ id: '_c1', issuer: 'https://kb.example/sp', destination: 'https://idp.example/slo', session: { nameID: 'a&b', nameIDFormat: PERSISTENT, nameQualifier: 'https://idp.example', spNameQualifier: 'https://kb.example/sp', sessionIndex: '_s' }, now });
    await assertValid(request, PROTOCOL_XSD, 'connector LogoutRequest');
    await assertValid(logoutResponseXml({ id: '_c2', inResponseTo: '_r', issuer: 'https://kb.example/sp', destination: 'https://idp.example/slo', ended: false, now }), PROTOCOL_XSD, 'connector LogoutResponse');
  });
});
