// Keybridge as a SAML 2.0 IdP, driven by SAML service providers from other code bases than the
// samlify it builds with: @node-saml/node-saml (the core of passport-saml) as the SP for most
// cases, and SimpleSAMLphp's built-in SP. Sign-in goes through Keybridge's real login page;
// node-saml validates our signatures with the certificate from our metadata. Covered: SP- and
// IdP-initiated SSO over both bindings, ForceAuthn, IsPassive, NameID formats, attribute
// mapping, encrypted assertions, a database-registered SP, single logout with back-channel
// logout and a front-channel chain, and the refusals (with their audit reasons), signature
// wrapping (tngan/samlify#634 shapes) and DTDs among them.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createSign, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { SAML, ValidateInResponseTo, generateServiceProviderMetadata, type SamlConfig } from '@node-saml/node-saml';
import { DOMParser } from '@xmldom/xmldom';
import { pino } from 'pino';
import { SignedXml } from 'xml-crypto';
import { startLogoutReceiver, type LogoutReceiver } from '../helpers/logout-receiver.ts';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { Browser, findForm, type Page } from '../helpers/browser.ts';
import { freePort } from '../helpers/free-port.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { SamlAgent, simpleSamlPhpMissing, startSimpleSamlPhp, type SimpleSamlPhp } from '../helpers/simplesamlphp.ts';
import { generateSelfSigned, type SigningMaterial } from '../../src/saml-idp/signing-key.ts';
import { addServiceProvider } from '../../src/cli/saml-sp-command.ts';
import { samlIdpSchema } from '../../src/saml-idp/saml-idp-config.ts';
import { decodePost, decodeRedirect } from '../../src/saml-idp/inbound.ts';
import type { SamlRejected } from '../../src/saml-idp/saml-rejected.ts';
import { base64 as bombBase64, deepMessage, deflated as bombDeflated, wideMessage } from '../connectors/fixtures/saml/bombs.ts';

const APP = 'http://127.0.0.1:9'; // never contacted: the browser stops at the SP's origin
const SP_A = 'https://sp-a.example/saml';
const ACS_A = `${APP}/a/acs`;
const ACS_A2 = `${APP}/a/acs2`;
const SLO_A = `${APP}/a/slo`;
const SP_B = 'https://sp-b.example/saml';
const ACS_B = `${APP}/b/acs`;
const SLO_B = `${APP}/b/slo`;
const SP_MAIL = 'https://sp-mail.example/saml';
const ACS_MAIL = `${APP}/mail/acs`;
const SP_OPEN = 'https://sp-open.example/saml';
const ACS_OPEN = `${APP}/open/acs`;
const SP_DB = 'https://sp-db.example/saml';
const ACS_DB = `${APP}/db/acs`;
// Registered from metadata, as Shibboleth SP and mod_auth_mellon publish it: a signing
// certificate, NameIDFormat elements, AuthnRequestsSigned absent, "false" or "true".
const SP_SHIB = 'https://sp-shib.example/shibboleth';
const ACS_SHIB = `${APP}/shib/SAML2/POST`;
const SP_NOSIG = 'https://sp-nosig.example/saml';
const ACS_NOSIG = `${APP}/nosig/acs`;
const SP_MUSTSIGN = 'https://sp-mustsign.example/saml';
const ACS_MUSTSIGN = `${APP}/mustsign/acs`;

const NAMEID = {
  persistent: 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
  transient: 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient',
  email: 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress',
  unspecified: 'urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified',
};
const PROTOCOL = 'urn:oasis:names:tc:SAML:2.0:protocol';
const ASSERTION = 'urn:oasis:names:tc:SAML:2.0:assertion';
const RSA_SHA256 = 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256';
const EXC_C14N = 'http://www.w3.org/2001/10/xml-exc-c14n#';
const ENVELOPED = 'http://www.w3.org/2000/09/xmldsig#enveloped-signature';

const ALICE = { username: 'alice', password: 'alice-password-1' };
const BOB = { username: 'bob', password: 'bob-password-1' };
const RP = 'http://127.0.0.1:9/rp/cb';
const RP_SECRET = 'rp-secret-for-the-saml-idp-suite';

const xmlOf = (b64: string) => Buffer.from(b64, 'base64').toString('utf8');
const newId = () => `_${randomBytes(16).toString('hex')}`;
const samlTime = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

/** An HTTP-Redirect binding URL, its query signed as an SP would (RSA-SHA256) when a key is given. */
function redirectUrl(endpoint: string, param: 'SAMLRequest' | 'SAMLResponse', xml: string, key?: string, relayState?: string): string {
  let query = `${param}=${encodeURIComponent(deflateRawSync(Buffer.from(xml)).toString('base64'))}`;
  if (relayState) query += `&RelayState=${encodeURIComponent(relayState)}`;
  if (key) {
    query += `&SigAlg=${encodeURIComponent(RSA_SHA256)}`;
    query += `&Signature=${encodeURIComponent(createSign('RSA-SHA256').update(query).sign(key, 'base64'))}`;
  }
  return `${endpoint}?${query}`;
}

/** An enveloped XML signature over the root, after its Issuer, as SPs put it (HTTP-POST binding). */
function signXml(xml: string, root: string, keys: SigningMaterial): string {
  const sig = new SignedXml({ privateKey: keys.privateKeyPem, publicCert: keys.certificatePem, signatureAlgorithm: RSA_SHA256, canonicalizationAlgorithm: EXC_C14N });
  sig.addReference({ xpath: `/*[local-name(.)='${root}']`, transforms: [ENVELOPED, EXC_C14N], digestAlgorithm: 'http://www.w3.org/2001/04/xmlenc#sha256' });
  sig.computeSignature(xml, { prefix: 'ds', location: { reference: `/*[local-name(.)='${root}']/*[local-name(.)='Issuer']`, action: 'after' } });
  return sig.getSignedXml();
}

function authnRequestXml(o: { sso: string; id?: string; issuer?: string; acs?: string; issueInstant?: Date; inner?: string }): string {
  return (
    `<samlp:AuthnRequest xmlns:samlp="${PROTOCOL}" xmlns:saml="${ASSERTION}" ID="${o.id ?? newId()}" Version="2.0" IssueInstant="${samlTime(o.issueInstant ?? new Date())}" Destination="${o.sso}" ` +
    `ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" AssertionConsumerServiceURL="${o.acs ?? ACS_A}"><saml:Issuer>${o.issuer ?? SP_A}</saml:Issuer>${o.inner ?? ''}</samlp:AuthnRequest>`
  );
}

function logoutRequestXml(o: { slo: string; nameId: string; id?: string; issuer?: string; inner?: string }): string {
  return (
    `<samlp:LogoutRequest xmlns:samlp="${PROTOCOL}" xmlns:saml="${ASSERTION}" ID="${o.id ?? newId()}" Version="2.0" IssueInstant="${samlTime(new Date())}" Destination="${o.slo}">` +
    `<saml:Issuer>${o.issuer ?? SP_A}</saml:Issuer>${o.inner ?? ''}<saml:NameID Format="${NAMEID.persistent}">${o.nameId}</saml:NameID></samlp:LogoutRequest>`
  );
}

const withoutDeclaration = (xml: string) => xml.replace(/^<\?xml[^>]*\?>/, '');

/** SP metadata as Shibboleth SP and mod_auth_mellon write it (ACS index 1, a signing key, NameID formats). */
function spMetadataXml(o: { entityId: string; acs: string; cert: string; authnRequestsSigned?: 'true' | 'false'; formats: string[] }): string {
  const body = o.cert.replace(/-----[^-]+-----|\s/g, '');
  return (
    `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="${o.entityId}">` +
    `<md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"${o.authnRequestsSigned ? ` AuthnRequestsSigned="${o.authnRequestsSigned}"` : ''}>` +
    `<md:KeyDescriptor><ds:KeyInfo><ds:X509Data><ds:X509Certificate>${body}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>` +
    o.formats.map((f) => `<md:NameIDFormat>${f}</md:NameIDFormat>`).join('') +
    `<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="${o.acs}" index="1"/>` +
    `</md:SPSSODescriptor></md:EntityDescriptor>`
  );
}

/** Every log line the broker writes, parsed (pino JSON). */
function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { lines, logger };
}
const WARN = 40;
const ERROR = 50;

describe('Keybridge as a SAML IdP (node-saml service providers)', () => {
  let broker: TestBroker;
  let idpCert: string;
  let idpEntityId: string;
  let sso: string;
  let slo: string;
  let keysA: SigningMaterial;
  let keysB: SigningMaterial;
  let keysEnc: SigningMaterial;
  let keysDb: SigningMaterial;
  let aliceId: string;
  let logoutReceiver: LogoutReceiver;
  let logoutTokens: string[] = [];
  let keysShib: SigningMaterial;
  const logs = capturingLogger();

  before(async () => {
    [keysA, keysB, keysEnc, keysDb, keysShib] = await Promise.all(['sp-a', 'sp-b', 'sp-enc', 'sp-db', 'sp-shib'].map((cn) => generateSelfSigned(cn)));
    logoutReceiver = await startLogoutReceiver('/bcl');
    logoutTokens = logoutReceiver.tokens;
    const bcl = logoutReceiver.url;

    broker = await startTestBroker({
      logger: logs.logger,
      config: {
        // Every request of this suite comes from one address: the per-IP budgets of the SAML
        // endpoints (60 a minute by default) and of the login form (30) are not what it tests.
        limits: { ip: { callback: { points: 100_000 }, login: { points: 100_000 } } },
        clients: [{ id: 'rp', secret: RP_SECRET, name: 'Relying Party', redirectUris: [RP], firstParty: true, backchannelLogoutUri: bcl }],
        users: [
          { username: 'alice', password: ALICE.password, email: 'alice@example.org', name: 'Alice Liddell', givenName: 'Alice', familyName: 'Liddell', groups: ['admins', 'staff'] },
          { username: 'bob', password: BOB.password, email: 'bob@example.org', groups: [] },
        ],
        samlIdp: {
          enabled: true,
          serviceProviders: [
            {
              entityId: SP_A,
              name: 'App A',
              assertionConsumerServices: [{ url: ACS_A, index: 0, isDefault: true }, { url: ACS_A2, index: 1 }],
              singleLogoutService: { url: SLO_A },
              certificates: [keysA.certificatePem],
              // No metadata to say AuthnRequestsSigned: the operator requires signed requests.
              requireSignedRequests: true,
            },
            {
              entityId: SP_B,
              name: 'App B',
              assertionConsumerServices: [{ url: ACS_B }],
              singleLogoutService: { url: SLO_B },
              certificates: [keysB.certificatePem],
              attributes: [
                { name: 'urn:oid:0.9.2342.19200300.100.1.3', from: 'email', nameFormat: 'uri' },
                { name: 'memberOf', from: 'groups' },
                { name: 'login', from: 'username' },
                { name: 'cn', from: 'name' },
              ],
              idpInitiated: { enabled: true, defaultRelayState: '/home' },
            },
            {
              entityId: SP_MAIL,
              assertionConsumerServices: [{ url: ACS_MAIL }],
              certificates: [{ pem: keysA.certificatePem, use: 'signing' }, { pem: keysEnc.certificatePem, use: 'encryption' }],
              nameId: { format: 'emailAddress' },
              encryptAssertions: true,
            },
            { entityId: SP_OPEN, assertionConsumerServices: [{ url: ACS_OPEN }], nameId: { format: 'unspecified' }, signResponse: false },
            { entityId: SP_SHIB, name: 'Shib App', metadataXml: spMetadataXml({ entityId: SP_SHIB, acs: ACS_SHIB, cert: keysShib.certificatePem, formats: [NAMEID.transient, NAMEID.email] }) },
            { entityId: SP_NOSIG, metadataXml: spMetadataXml({ entityId: SP_NOSIG, acs: ACS_NOSIG, cert: keysShib.certificatePem, authnRequestsSigned: 'false', formats: [] }) },
            { entityId: SP_MUSTSIGN, name: 'Strict App', metadataXml: spMetadataXml({ entityId: SP_MUSTSIGN, acs: ACS_MUSTSIGN, cert: keysShib.certificatePem, authnRequestsSigned: 'true', formats: [] }) },
          ],
        },
      },
    });
    aliceId = (await broker.store.users.findByUsername('alice'))!.id;
    sso = `${broker.issuer}/saml/idp/sso`;
    slo = `${broker.issuer}/saml/idp/slo`;
    const metadata = await (await fetch(`${broker.issuer}/saml/idp/metadata`)).text();
    const doc = new DOMParser().parseFromString(metadata, 'text/xml');
    idpEntityId = doc.documentElement!.getAttribute('entityID')!;
    idpCert = doc.getElementsByTagNameNS('http://www.w3.org/2000/09/xmldsig#', 'X509Certificate')[0].textContent!.trim();
  });

  after(async () => {
    await broker?.close();
    logoutReceiver?.close();
  });

  /** A node-saml SP registered with the broker; signs its requests when it has keys. */
  function serviceProvider(entityId: string, acs: string, keys: SigningMaterial | null, extra: Partial<SamlConfig> = {}): SAML {
    return new SAML({
      entryPoint: sso,
      logoutUrl: slo,
      issuer: entityId,
      callbackUrl: acs,
      audience: entityId,
      idpCert,
      idpIssuer: idpEntityId,
      // node-saml's default digest for POST signatures is SHA-1, which Keybridge refuses.
      ...(keys ? { privateKey: keys.privateKeyPem, signatureAlgorithm: 'sha256' as const, digestAlgorithm: 'sha256' } : {}),
      wantAssertionsSigned: true,
      wantAuthnResponseSigned: true,
      validateInResponseTo: ValidateInResponseTo.always,
      identifierFormat: NAMEID.persistent,
      acceptedClockSkewMs: 2000,
      ...extra,
    });
  }

  async function start(browser: Browser, saml: SAML, options: { binding?: 'redirect' | 'post'; relayState?: string } = {}): Promise<Page> {
    if (options.binding === 'post') {
      const form = findForm(await saml.getAuthorizeFormAsync(options.relayState ?? ''), '/saml/idp/sso');
      assert.ok(form, 'node-saml built a POST form');
      return browser.go(form.action, { method: 'POST', form: form.hidden });
    }
    return browser.go(await saml.getAuthorizeUrlAsync(options.relayState ?? '', undefined, {}));
  }

  /** From the page after the SP's request: the login form if shown, then the page posting to the ACS. */
  async function finish(browser: Browser, page: Page, acs: string, user = ALICE) {
    let sawLogin = false;
    if (/name="password"/.test(page.html)) {
      sawLogin = true;
      page = await browser.submit(page, '/login', user);
    }
    assert.equal(page.status, 200, `expected the SAML POST page, got ${page.status} at ${page.url}: ${page.html.slice(0, 600)}`);
    const form = findForm(page.html, acs);
    assert.ok(form, `no form posting to ${acs} on ${page.url}: ${page.html.slice(0, 600)}`);
    assert.equal(form.action, acs);
    return { page, sawLogin, SAMLResponse: form.hidden.SAMLResponse, RelayState: form.hidden.RelayState, xml: xmlOf(form.hidden.SAMLResponse) };
  }

  async function signIn(saml: SAML, acs: string, options: { browser?: Browser; user?: typeof ALICE; binding?: 'redirect' | 'post'; relayState?: string } = {}) {
    const browser = options.browser ?? new Browser(broker.issuer);
    const done = await finish(browser, await start(browser, saml, options), acs, options.user);
    const { profile } = await saml.validatePostResponseAsync({ SAMLResponse: done.SAMLResponse, ...(done.RelayState ? { RelayState: done.RelayState } : {}) });
    assert.ok(profile, 'node-saml accepted the response');
    return { ...done, browser, profile };
  }

  async function lastRejection() {
    const [event] = await broker.store.audit.list({ type: 'saml.request_rejected', limit: 1 });
    return event?.details as { sp: string | null; reason: string } | undefined;
  }

  /** A refused message: an error page with the status and wording, no redirect, and the audit reason. */
  async function assertRefused(page: Page, status: number, text: RegExp, reason: string, sp?: string | null) {
    assert.equal(page.status, status, `expected ${status}, got ${page.status} at ${page.url}: ${page.html.slice(0, 400)}`);
    assert.match(page.html, text);
    assert.doesNotMatch(page.html, /SAMLResponse/);
    const event = await lastRejection();
    assert.equal(event?.reason, reason);
    if (sp !== undefined) assert.equal(event?.sp, sp);
  }

  // --------------------------------------------------------------------------------- metadata

  test('metadata: an EntityDescriptor with SSO and SLO endpoints, the signing certificate and NameID formats', async () => {
    const res = await fetch(`${broker.issuer}/saml/idp/metadata`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/samlmetadata\+xml/);
    const doc = new DOMParser().parseFromString(await res.text(), 'text/xml');
    assert.equal(idpEntityId, `${broker.issuer}/saml/idp/metadata`);
    const idp = doc.getElementsByTagNameNS('urn:oasis:names:tc:SAML:2.0:metadata', 'IDPSSODescriptor')[0];
    assert.equal(idp.getAttribute('WantAuthnRequestsSigned'), 'true');
    const endpoints = (name: string) => [...Array.from(idp.getElementsByTagNameNS('urn:oasis:names:tc:SAML:2.0:metadata', name))].map((e) => `${e.getAttribute('Binding')!.split(':').pop()} ${e.getAttribute('Location')}`).sort();
    assert.deepEqual(endpoints('SingleSignOnService'), [`HTTP-POST ${sso}`, `HTTP-Redirect ${sso}`]);
    assert.deepEqual(endpoints('SingleLogoutService'), [`HTTP-POST ${slo}`, `HTTP-Redirect ${slo}`]);
    const formats = [...Array.from(idp.getElementsByTagNameNS('urn:oasis:names:tc:SAML:2.0:metadata', 'NameIDFormat'))].map((e) => e.textContent);
    for (const f of Object.values(NAMEID)) assert.ok(formats.includes(f), f);
    // The SAML 2.0 metadata schema's order (IDPSSODescriptor: KeyDescriptor*, ArtifactResolutionService*,
    // SingleLogoutService*, ManageNameIDService*, NameIDFormat*, SingleSignOnService+): Shibboleth SP refuses any other.
    const order = Array.from(idp.childNodes).filter((n) => n.nodeType === 1).map((n) => (n as Element).localName);
    assert.deepEqual(order, ['KeyDescriptor', 'SingleLogoutService', 'SingleLogoutService', 'NameIDFormat', 'NameIDFormat', 'NameIDFormat', 'NameIDFormat', 'SingleSignOnService', 'SingleSignOnService']);
    const key = idp.getElementsByTagNameNS('urn:oasis:names:tc:SAML:2.0:metadata', 'KeyDescriptor')[0];
    assert.equal(key.getAttribute('use'), 'signing');
    assert.ok(idpCert.length > 500, 'the certificate is in the metadata');
    // The generated key is kept in the database: every instance publishes the same one.
    const stored = await broker.store.secrets.get<{ certificatePem: string }>('saml-idp-signing-key');
    assert.equal(stored!.certificatePem.replace(/-----[^-]+-----|\s/g, ''), idpCert);
  });

  // ---------------------------------------------------------------------------------- sign-in

  test('SP-initiated SSO (HTTP-Redirect): login page, then a signed response node-saml validates', async () => {
    const spA = serviceProvider(SP_A, ACS_A, keysA);
    const { profile, sawLogin, RelayState, xml, page } = await signIn(spA, ACS_A, { relayState: 'state-123' });
    assert.ok(sawLogin, 'the login page was shown');
    assert.equal(RelayState, 'state-123');
    assert.equal(profile.issuer, idpEntityId);
    assert.equal(profile.nameIDFormat, NAMEID.persistent);
    assert.equal(profile.spNameQualifier, SP_A);
    assert.equal(profile.uid, 'alice');
    assert.equal(profile.mail, 'alice@example.org');
    assert.equal(profile.displayName, 'Alice Liddell');
    assert.equal(profile.givenName, 'Alice');
    assert.equal(profile.sn, 'Liddell');
    assert.deepEqual(profile.groups, ['admins', 'staff']);
    assert.ok(profile.sessionIndex);
    // Both the response and the assertion are signed; the response goes to the ACS, answering the request.
    assert.match(xml, /^<samlp:Response[^>]+Destination="http:\/\/127\.0\.0\.1:9\/a\/acs"[^>]+InResponseTo="_/);
    assert.equal(xml.match(/<ds:Signature /g)?.length, 2);
    assert.match(xml, /PasswordProtectedTransport/);
    // The page posts by a same-origin script only: no inline script allowed.
    const csp = page.headers.get('content-security-policy') ?? '';
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline/);
    const [event] = await broker.store.audit.list({ type: 'saml.sso', limit: 1 });
    assert.equal(event.userId, aliceId);
    assert.deepEqual({ sp: event.details.sp, nameIdFormat: event.details.nameIdFormat }, { sp: SP_A, nameIdFormat: 'persistent' });
  });

  test('SP-initiated SSO (HTTP-POST with an enveloped signature, plain and DEFLATEd)', async () => {
    for (const skipRequestCompression of [true, false]) {
      const spA = serviceProvider(SP_A, ACS_A, keysA, { authnRequestBinding: 'HTTP-POST', skipRequestCompression });
      const { profile, RelayState } = await signIn(spA, ACS_A, { binding: 'post', relayState: 'post-state' });
      assert.equal(profile.mail, 'alice@example.org');
      assert.equal(RelayState, 'post-state');
    }
  });

  test('an already signed-in browser gets the response without the login page; ForceAuthn shows it again', async () => {
    const spA = serviceProvider(SP_A, ACS_A, keysA);
    const first = await signIn(spA, ACS_A);
    assert.ok(first.sawLogin);
    const again = await signIn(spA, ACS_A, { browser: first.browser });
    assert.equal(again.sawLogin, false, 'no login page for a signed-in browser');
    assert.equal(again.profile.nameID, first.profile.nameID);
    assert.equal(again.profile.sessionIndex, first.profile.sessionIndex, 'one SessionIndex per browser session and SP');

    const forced = await signIn(serviceProvider(SP_A, ACS_A, keysA, { forceAuthn: true }), ACS_A, { browser: first.browser });
    assert.ok(forced.sawLogin, 'ForceAuthn asks for the password again');
    assert.equal(forced.profile.nameID, first.profile.nameID);
  });

  test('IsPassive: NoPassive without a session, a silent response with one', async () => {
    const passive = serviceProvider(SP_A, ACS_A, keysA, { passive: true });
    const browser = new Browser(broker.issuer);
    const page = await start(browser, passive);
    assert.doesNotMatch(page.html, /name="password"/, 'no login page for a passive request');
    const done = await finish(browser, page, ACS_A);
    assert.match(done.xml, /urn:oasis:names:tc:SAML:2.0:status:Responder"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:NoPassive"/);
    const result = await passive.validatePostResponseAsync({ SAMLResponse: done.SAMLResponse });
    assert.equal(result.profile, null, 'node-saml reads a signed NoPassive');

    // Signed in through another app (an OIDC client) only: passive SAML sign-in still works.
    const auth = new URL(`${broker.issuer}/auth`);
    auth.search = new URLSearchParams({ client_id: 'rp', redirect_uri: RP, response_type: 'code', scope: 'openid', state: 's', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' }).toString();
    const login = await browser.go(auth.href);
    const back = await browser.submit(login, '/login', ALICE);
    assert.ok(back.url.startsWith(RP), `signed in to the OIDC client: ${back.url}`);
    const silent = await finish(browser, await start(browser, passive), ACS_A);
    const { profile } = await passive.validatePostResponseAsync({ SAMLResponse: silent.SAMLResponse });
    assert.equal(profile?.uid, 'alice');
  });

  test('persistent NameIDs: stable across logins, opaque, different at another SP and for another user', async () => {
    const a1 = await signIn(serviceProvider(SP_A, ACS_A, keysA), ACS_A);
    const a2 = await signIn(serviceProvider(SP_A, ACS_A, keysA), ACS_A);
    assert.equal(a1.profile.nameID, a2.profile.nameID, 'stable across logins');
    for (const revealing of [aliceId, 'alice', 'alice@example.org']) assert.ok(!a1.profile.nameID.includes(revealing), 'opaque');
    const b = await signIn(serviceProvider(SP_B, ACS_B, keysB), ACS_B);
    assert.notEqual(b.profile.nameID, a1.profile.nameID, 'pairwise: another SP gets another id');
    const bob = await signIn(serviceProvider(SP_A, ACS_A, keysA), ACS_A, { user: BOB });
    assert.notEqual(bob.profile.nameID, a1.profile.nameID);
  });

  test('mapped attributes: the names, formats and sources the SP is configured with', async () => {
    const { profile, xml } = await signIn(serviceProvider(SP_B, ACS_B, keysB), ACS_B);
    assert.equal(profile['urn:oid:0.9.2342.19200300.100.1.3'], 'alice@example.org');
    assert.deepEqual(profile.memberOf, ['admins', 'staff']);
    assert.equal(profile.login, 'alice');
    assert.equal(profile.cn, 'Alice Liddell');
    assert.equal(profile.uid, undefined, 'the default attributes are replaced');
    assert.match(xml, /Name="urn:oid:0\.9\.2342\.19200300\.100\.1\.3" NameFormat="urn:oasis:names:tc:SAML:2\.0:attrname-format:uri"/);
  });

  test('emailAddress NameID with an encrypted assertion, decrypted by node-saml', async () => {
    const spMail = serviceProvider(SP_MAIL, ACS_MAIL, keysA, { identifierFormat: NAMEID.email, decryptionPvk: keysEnc.privateKeyPem });
    const { profile, xml } = await signIn(spMail, ACS_MAIL);
    assert.match(xml, /<saml:EncryptedAssertion/);
    assert.doesNotMatch(xml, /alice@example\.org/, 'nothing readable without the key');
    assert.equal(profile.nameIDFormat, NAMEID.email);
    assert.equal(profile.nameID, 'alice@example.org');
    assert.deepEqual(profile.groups, ['admins', 'staff']);
  });

  test('an SP without certificates may send unsigned requests; unspecified NameID is the username', async () => {
    const open = serviceProvider(SP_OPEN, ACS_OPEN, null, { identifierFormat: null, wantAuthnResponseSigned: false });
    const { profile, xml } = await signIn(open, ACS_OPEN);
    assert.equal(profile.nameIDFormat, NAMEID.unspecified);
    assert.equal(profile.nameID, 'alice');
    assert.equal(xml.match(/<ds:Signature /g)?.length, 1, 'signResponse: false signs the assertion only');
  });

  test('a NameID format other than the configured one is answered with InvalidNameIDPolicy', async () => {
    const spA = serviceProvider(SP_A, ACS_A, keysA, { identifierFormat: NAMEID.email });
    const browser = new Browser(broker.issuer);
    const done = await finish(browser, await start(browser, spA), ACS_A);
    await assert.rejects(spA.validatePostResponseAsync({ SAMLResponse: done.SAMLResponse }), /InvalidNameIDPolicy/);
    assert.equal((await lastRejection())?.reason, 'invalid_nameid_policy');
  });

  // ------------------------------------------------- NameID policy, unsigned requests (issue 17)

  /** The warn lines logged since `mark` (asserting there is no error line among them). */
  function warnLinesSince(mark: number) {
    const since = logs.lines.slice(mark);
    assert.deepEqual(since.filter((l) => (l.level as number) >= ERROR).map((l) => l.msg), [], 'no error-level line');
    return since.filter((l) => l.level === WARN);
  }

  /** The ID of the AuthnRequest in an HTTP-Redirect URL. */
  const requestIdOf = (url: string) => /ID="([^"]+)"/.exec(inflateRawSync(Buffer.from(new URL(url).searchParams.get('SAMLRequest')!, 'base64')).toString('utf8'))![1];

  test('NameID policy: a requested transient is honoured, whatever format the SP is configured with', async () => {
    const spA = serviceProvider(SP_A, ACS_A, keysA, { identifierFormat: NAMEID.transient });
    const first = await signIn(spA, ACS_A);
    assert.equal(first.profile.nameIDFormat, NAMEID.transient);
    assert.match(first.profile.nameID, /^_[0-9a-f]{40}$/);
    assert.equal((await broker.store.audit.list({ type: 'saml.sso', limit: 1 }))[0].details.nameIdFormat, 'transient');
    const second = await signIn(spA, ACS_A);
    assert.notEqual(second.profile.nameID, first.profile.nameID, 'a new transient id each time');
  });

  test('NameID policy: a format the SP metadata lists is used; unspecified or no NameIDPolicy gets the configured format', async () => {
    // SP_SHIB's metadata lists transient and emailAddress; its configured format is the default, persistent.
    const shib = (identifierFormat: string | null) => serviceProvider(SP_SHIB, ACS_SHIB, null, { identifierFormat });
    const email = await signIn(shib(NAMEID.email), ACS_SHIB);
    assert.equal(email.profile.nameIDFormat, NAMEID.email);
    assert.equal(email.profile.nameID, 'alice@example.org');
    const withoutFormat = await shib(null).getAuthorizeUrlAsync('', undefined, {});
    assert.match(inflateRawSync(Buffer.from(new URL(withoutFormat).searchParams.get('SAMLRequest')!, 'base64')).toString(), /<samlp:NameIDPolicy [^>]*AllowCreate="true"\/>/, 'node-saml: a NameIDPolicy without Format');
    // No NameIDPolicy at all (a hand-made request).
    const browser = new Browser(broker.issuer);
    const bare = await finish(browser, await browser.go(redirectUrl(sso, 'SAMLRequest', authnRequestXml({ sso, issuer: SP_SHIB, acs: ACS_SHIB }))), ACS_SHIB);
    assert.match(bare.xml, /<saml:NameID Format="urn:oasis:names:tc:SAML:2\.0:nameid-format:persistent"/);
    for (const format of [NAMEID.unspecified, null]) {
      const { profile, xml } = await signIn(shib(format), ACS_SHIB);
      assert.equal(profile.nameIDFormat, NAMEID.persistent, `NameIDPolicy ${format}`);
      assert.ok(!profile.nameID.includes('alice'), 'opaque');
      assert.match(xml, /nameid-format:persistent/);
    }
  });

  test('NameID policy: an unlisted persistent is honoured (opaque and pairwise); an unlisted, unconfigured emailAddress is refused', async () => {
    // SP_OPEN is configured for unspecified (the username) and has no metadata.
    const open = serviceProvider(SP_OPEN, ACS_OPEN, null, { identifierFormat: NAMEID.persistent, wantAuthnResponseSigned: false });
    const { profile } = await signIn(open, ACS_OPEN);
    assert.equal(profile.nameIDFormat, NAMEID.persistent);
    assert.ok(!profile.nameID.includes('alice'), 'opaque: nameId.from applies to the configured format only');
    // SP_A (persistent, no metadata) asking emailAddress: the test above this block, InvalidNameIDPolicy.
    const browser = new Browser(broker.issuer);
    const page = await start(browser, serviceProvider(SP_A, ACS_A, keysA, { identifierFormat: NAMEID.email }));
    assert.match(page.html, /NameID format urn:oasis:names:tc:SAML:1\.1:nameid-format:emailAddress is not one Keybridge can produce for this application/);
  });

  test('NameID policy: a format Keybridge cannot produce gets InvalidNameIDPolicy at the ACS, one warn line and a page saying why', async () => {
    const X509 = 'urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName';
    const spA = serviceProvider(SP_A, ACS_A, keysA, { identifierFormat: X509 });
    const url = await spA.getAuthorizeUrlAsync('', undefined, {});
    const browser = new Browser(broker.issuer);
    const mark = logs.lines.length;
    const page = await browser.go(url);
    const done = await finish(browser, page, ACS_A);
    assert.doesNotMatch(page.html, /name="password"/, 'refused before any login');
    await assert.rejects(spA.validatePostResponseAsync({ SAMLResponse: done.SAMLResponse }), /InvalidNameIDPolicy/);
    assert.match(page.html, /“App A” asked for a kind of user identifier that Keybridge does not provide to it\. For the administrator: The NameID format urn:oasis:names:tc:SAML:1\.1:nameid-format:X509SubjectName is not one Keybridge can produce/);
    const warns = warnLinesSince(mark);
    assert.equal(warns.length, 1, JSON.stringify(warns));
    assert.deepEqual({ sp: warns[0].sp, samlRequestId: warns[0].samlRequestId, reason: warns[0].reason }, { sp: SP_A, samlRequestId: requestIdOf(url), reason: 'invalid_nameid_policy' });
    assert.match(String(warns[0].msg), /X509SubjectName is not one Keybridge can produce/);
    assert.equal((await lastRejection())?.reason, 'invalid_nameid_policy');
  });

  test('unsigned sign-in requests: accepted when the SP metadata does not ask for signing (AuthnRequestsSigned absent or "false") and the ACS is registered', async () => {
    // SP_SHIB (attribute absent, a signing certificate in its metadata, as Shibboleth SP publishes): by URL.
    const shib = await signIn(serviceProvider(SP_SHIB, ACS_SHIB, null, { identifierFormat: null }), ACS_SHIB);
    assert.equal(shib.profile.uid, 'alice');
    // SP_NOSIG (AuthnRequestsSigned="false").
    const nosig = await signIn(serviceProvider(SP_NOSIG, ACS_NOSIG, null, { identifierFormat: null }), ACS_NOSIG);
    assert.equal(nosig.profile.uid, 'alice');
    // By the index its metadata gives, unsigned, by both bindings.
    const byIndex = () => authnRequestXml({ sso, issuer: SP_SHIB }).replace(/ ProtocolBinding="[^"]*" AssertionConsumerServiceURL="[^"]*"/, ' AssertionConsumerServiceIndex="1"');
    const browser = new Browser(broker.issuer);
    await finish(browser, await browser.go(redirectUrl(sso, 'SAMLRequest', byIndex())), ACS_SHIB, ALICE);
    await finish(browser, await browser.go(sso, { method: 'POST', form: { SAMLRequest: Buffer.from(byIndex()).toString('base64') } }), ACS_SHIB, ALICE);
  });

  test('unsigned sign-in requests: refused when the ACS URL or index is not in the SP metadata', async () => {
    const mark = logs.lines.length;
    await assertRefused(
      await start(new Browser(broker.issuer), serviceProvider(SP_SHIB, `${APP}/elsewhere/acs`, null)),
      400,
      /“Shib App” asks to send the response to an address the application did not register\. For the administrator: The ACS URL \(AssertionConsumerServiceURL or index\) of the request is not in the SP/,
      'acs_not_registered',
      SP_SHIB,
    );
    assert.equal(warnLinesSince(mark).length, 1);
    const byIndex = authnRequestXml({ sso, issuer: SP_NOSIG }).replace(/ ProtocolBinding="[^"]*" AssertionConsumerServiceURL="[^"]*"/, ' AssertionConsumerServiceIndex="0"');
    await assertRefused(await new Browser(broker.issuer).go(redirectUrl(sso, 'SAMLRequest', byIndex)), 400, /did not register/, 'acs_not_registered', SP_NOSIG);
  });

  test('unsigned sign-in requests: refused when the SP metadata says AuthnRequestsSigned="true" (signed ones are accepted)', async () => {
    const url = await serviceProvider(SP_MUSTSIGN, ACS_MUSTSIGN, null).getAuthorizeUrlAsync('', undefined, {});
    const mark = logs.lines.length;
    await assertRefused(
      await new Browser(broker.issuer).go(url),
      400,
      /The sign-in request from “Strict App” is not signed\. For the administrator: The application&#39;s SAML request was not signed, but Keybridge requires signed requests for it: configure the application to sign its requests, or check AuthnRequestsSigned/,
      'unsigned',
      SP_MUSTSIGN,
    );
    const warns = warnLinesSince(mark);
    assert.equal(warns.length, 1);
    assert.deepEqual({ sp: warns[0].sp, samlRequestId: warns[0].samlRequestId, reason: warns[0].reason }, { sp: SP_MUSTSIGN, samlRequestId: requestIdOf(url), reason: 'unsigned' });
    const signed = await signIn(serviceProvider(SP_MUSTSIGN, ACS_MUSTSIGN, keysShib, { identifierFormat: null }), ACS_MUSTSIGN);
    assert.equal(signed.profile.uid, 'alice');
  });

  test('a signed sign-in request must verify even where signatures are optional', async () => {
    // Signed with a key that is not the one in SP_SHIB's metadata: refused, by both bindings.
    await assertRefused(await start(new Browser(broker.issuer), serviceProvider(SP_SHIB, ACS_SHIB, keysB, { identifierFormat: null })), 400, /“Shib App” has an invalid signature\. For the administrator/, 'bad_signature', SP_SHIB);
    const post = (keys: SigningMaterial) => new Browser(broker.issuer).go(sso, { method: 'POST', form: { SAMLRequest: Buffer.from(signXml(authnRequestXml({ sso, issuer: SP_SHIB, acs: ACS_SHIB }), 'AuthnRequest', keys)).toString('base64') } });
    await assertRefused(await post(keysB), 400, /invalid signature/, 'bad_signature', SP_SHIB);
    // Tampered after signing (the ACS is still a registered one).
    const url = new URL(await serviceProvider(SP_SHIB, ACS_SHIB, keysShib, { identifierFormat: null }).getAuthorizeUrlAsync('', undefined, {}));
    await assertRefused(await new Browser(broker.issuer).go(url.href.replace('SigAlg=', 'RelayState=injected&SigAlg=')), 400, /invalid signature/, 'bad_signature', SP_SHIB);
    // Control: the right key.
    assert.match((await post(keysShib)).html, /name="password"/);
  });

  test('every refusal writes exactly one warn line (SP, request ID, reason) and no error line; the page names the application and what to check', async () => {
    const get = (url: string) => new Browser(broker.issuer).go(url);
    const cases: { name: string; send: () => Promise<Page>; status: number; sp: string | null; requestId: string | null; reason: string; page: RegExp }[] = [];
    const unknownId = newId();
    cases.push({ name: 'SSO from an unknown SP', send: () => get(redirectUrl(sso, 'SAMLRequest', authnRequestXml({ sso, issuer: 'https://nobody.example/sp', id: unknownId }))), status: 403, sp: 'https://nobody.example/sp', requestId: unknownId, reason: 'unknown_sp', page: /not registered here \(“https:\/\/nobody\.example\/sp”\)\. For the administrator: No enabled SAML service provider has this entity ID/ });
    const staleId = newId();
    cases.push({ name: 'SSO stale', send: () => get(redirectUrl(sso, 'SAMLRequest', authnRequestXml({ sso, id: staleId, issueInstant: new Date(Date.now() - 3600_000) }), keysA.privateKeyPem)), status: 400, sp: SP_A, requestId: staleId, reason: 'stale', page: /has expired\. Go back to the application and start again\. For the administrator: If this keeps happening, check the clocks/ });
    cases.push({ name: 'SSO not base64', send: () => new Browser(broker.issuer).go(sso, { method: 'POST', form: { SAMLRequest: '!!!' } }), status: 400, sp: null, requestId: null, reason: 'malformed', page: /The sign-in request from this application is not a valid SAML message\. For the administrator/ });
    const logoutId = newId();
    cases.push({ name: 'SLO unsigned', send: () => get(redirectUrl(slo, 'SAMLRequest', logoutRequestXml({ slo, nameId: 'someone', id: logoutId }))), status: 400, sp: SP_A, requestId: logoutId, reason: 'unsigned', page: /sign-out request from “App A” is not signed\. For the administrator: Keybridge accepts only signed sign-out messages/ });
    cases.push({ name: 'SLO unsolicited response', send: () => get(`${slo}?SAMLResponse=${encodeURIComponent(deflateRawSync(Buffer.from(`<samlp:LogoutResponse xmlns:samlp="${PROTOCOL}" xmlns:saml="${ASSERTION}" ID="_lr1" Version="2.0" IssueInstant="${samlTime(new Date())}"><saml:Issuer>${SP_B}</saml:Issuer></samlp:LogoutResponse>`)).toString('base64'))}`), status: 400, sp: SP_B, requestId: '_lr1', reason: 'unsolicited', page: /does not answer a request from here/ });
    cases.push({ name: 'IdP-initiated, disabled', send: () => get(`${broker.issuer}/saml/idp/init?sp=${encodeURIComponent(SP_A)}`), status: 403, sp: SP_A, requestId: null, reason: 'idp_initiated_disabled', page: /“App A” does not accept sign-ins started here\. Go to the application and sign in from there\. For the administrator: IdP-initiated sign-in is off for this SP/ });
    cases.push({ name: 'continue, unknown state', send: () => get(`${broker.issuer}/saml/idp/continue?state=nothing`), status: 400, sp: null, requestId: null, reason: 'unknown_state', page: /This sign-in expired or was already completed/ });
    for (const c of cases) {
      const mark = logs.lines.length;
      const page = await c.send();
      assert.equal(page.status, c.status, `${c.name}: ${page.html.slice(0, 300)}`);
      assert.match(page.html, c.page, c.name);
      assert.doesNotMatch(page.html, /\bat [A-Za-z.<>]+ \(|node_modules|SamlRejected/, `${c.name}: no internals on the page`);
      const warns = warnLinesSince(mark);
      assert.equal(warns.length, 1, `${c.name}: ${JSON.stringify(logs.lines.slice(mark))}`);
      assert.deepEqual({ sp: warns[0].sp, samlRequestId: warns[0].samlRequestId, reason: warns[0].reason }, { sp: c.sp, samlRequestId: c.requestId, reason: c.reason }, c.name);
      assert.equal(warns[0].err, undefined, 'no stack trace');
      // The page's reference is the log line's: an operator finds one from the other.
      assert.ok(page.html.includes(String(warns[0].requestId)), `${c.name}: the page shows the reference`);
      assert.equal((await lastRejection())?.reason, c.reason);
    }
  });

  test('AssertionConsumerServiceIndex selects a registered address', async () => {
    const browser = new Browser(broker.issuer);
    const xml = authnRequestXml({ sso }).replace(/ ProtocolBinding="[^"]*" AssertionConsumerServiceURL="[^"]*"/, ' AssertionConsumerServiceIndex="1"');
    const page = await browser.go(redirectUrl(sso, 'SAMLRequest', xml, keysA.privateKeyPem));
    const done = await finish(browser, page, ACS_A2);
    assert.match(done.xml, /Destination="http:\/\/127\.0\.0\.1:9\/a\/acs2"/);
  });

  test('IdP-initiated SSO: allowed SPs get an unsolicited response, others a refusal', async () => {
    const spB = serviceProvider(SP_B, ACS_B, keysB, { validateInResponseTo: ValidateInResponseTo.ifPresent });
    const browser = new Browser(broker.issuer);
    const done = await finish(browser, await browser.go(`${broker.issuer}/saml/idp/init?sp=${encodeURIComponent(SP_B)}`), ACS_B);
    assert.equal(done.RelayState, '/home', 'the configured default RelayState');
    assert.doesNotMatch(done.xml, /InResponseTo/);
    const { profile } = await spB.validatePostResponseAsync({ SAMLResponse: done.SAMLResponse });
    assert.equal(profile?.login, 'alice');
    const [event] = await broker.store.audit.list({ type: 'saml.sso', limit: 1 });
    assert.equal(event.details.initiated, 'idp');

    const own = await finish(browser, await browser.go(`${broker.issuer}/saml/idp/init?sp=${encodeURIComponent(SP_B)}&RelayState=${encodeURIComponent(`${APP}/b/page`)}`), ACS_B);
    assert.equal(own.RelayState, `${APP}/b/page`, 'a RelayState on the SP\'s own origin');
    await assertRefused(await browser.go(`${broker.issuer}/saml/idp/init?sp=${encodeURIComponent(SP_B)}&RelayState=${encodeURIComponent('https://evil.example/')}`), 400, /return address/, 'relay_state_not_allowed', SP_B);
    await assertRefused(await browser.go(`${broker.issuer}/saml/idp/init?sp=${encodeURIComponent(SP_A)}`), 403, /does not accept sign-ins started here/, 'idp_initiated_disabled', SP_A);
    await assertRefused(await browser.go(`${broker.issuer}/saml/idp/init?sp=${encodeURIComponent('https://nobody.example')}`), 403, /not registered/, 'unknown_sp', 'https://nobody.example');
  });

  test('an SP registered in the database from its metadata signs in (and must sign its requests)', async () => {
    const metadataXml = generateServiceProviderMetadata({ issuer: SP_DB, callbackUrl: ACS_DB, publicCerts: keysDb.certificatePem, privateKey: keysDb.privateKeyPem, wantAssertionsSigned: true, identifierFormat: NAMEID.persistent });
    await addServiceProvider(broker.store, broker.config, { entityId: SP_DB, name: 'Database App', metadataXml });
    await assert.rejects(addServiceProvider(broker.store, broker.config, { entityId: SP_DB, metadataXml }), /already exists/);
    await assert.rejects(addServiceProvider(broker.store, broker.config, { entityId: 'https://other.example', metadataXml }), /no EntityDescriptor with entityID/);
    await assert.rejects(addServiceProvider(broker.store, broker.config, { entityId: SP_A, metadataXml }), /defined in the config file/);

    const { profile, page } = await signIn(serviceProvider(SP_DB, ACS_DB, keysDb), ACS_DB);
    assert.equal(profile.mail, 'alice@example.org');
    assert.match(page.html, /Signing you in to Database App/);
    await assertRefused(await start(new Browser(broker.issuer), serviceProvider(SP_DB, ACS_DB, null)), 400, /not signed/, 'unsigned', SP_DB);

    await broker.store.samlServiceProviders.update(SP_DB, { enabled: false });
    await assertRefused(await start(new Browser(broker.issuer), serviceProvider(SP_DB, ACS_DB, keysDb)), 403, /not registered/, 'unknown_sp', SP_DB);
  });

  test('an SP whose metadata URL cannot be fetched: the page says the application is unavailable (503)', async () => {
    const entityId = 'https://sp-url.example/saml';
    const dead = `http://127.0.0.1:${await freePort()}/metadata`;
    const { warning } = await addServiceProvider(broker.store, broker.config, { entityId, metadataUrl: dead });
    assert.match(warning ?? '', /cannot be used right now/);
    const page = await start(new Browser(broker.issuer), serviceProvider(entityId, `${APP}/url/acs`, keysA));
    await assertRefused(page, 503, /This application is unavailable right now/, 'sp_unavailable', entityId);
  });

  // ------------------------------------------------------------------------------------ logout

  test('SLO: the SP\'s signed LogoutRequest ends the session (back-channel logout to OIDC apps, front-channel to other SPs) and gets a signed LogoutResponse', async () => {
    const spA = serviceProvider(SP_A, ACS_A, keysA, { logoutCallbackUrl: SLO_A });
    const spB = serviceProvider(SP_B, ACS_B, keysB);
    const browser = new Browser(broker.issuer);
    // One browser session: an OIDC client and two SAML SPs.
    const auth = new URL(`${broker.issuer}/auth`);
    auth.search = new URLSearchParams({ client_id: 'rp', redirect_uri: RP, response_type: 'code', scope: 'openid', state: 's', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' }).toString();
    const back = await browser.submit(await browser.go(auth.href), '/login', ALICE);
    assert.ok(back.url.startsWith(RP));
    const a = await signIn(spA, ACS_A, { browser });
    const b = await signIn(spB, ACS_B, { browser });
    assert.equal(a.sawLogin || b.sawLogin, false);
    logoutTokens.length = 0;

    // SP A asks; Keybridge ends the session and sends the browser to SP B with a LogoutRequest.
    const toB = await browser.go(await spA.getLogoutUrlAsync(a.profile, 'slo-relay', {}));
    assert.ok(toB.url.startsWith(`${SLO_B}?`), `front-channel LogoutRequest to SP B, got ${toB.url}`);
    const queryB = new URL(toB.url).searchParams;
    assert.ok(queryB.get('Signature') && queryB.get('SigAlg') === RSA_SHA256, 'signed by the IdP');
    const requestB = await spB.validateRedirectAsync(Object.fromEntries(queryB), new URL(toB.url).search.slice(1));
    assert.equal(requestB.loggedOut, true);
    assert.equal(requestB.profile?.nameID, b.profile.nameID);
    assert.equal(requestB.profile?.sessionIndex, b.profile.sessionIndex);

    // SP B answers; Keybridge answers SP A.
    const answer = await spB.getLogoutResponseUrlAsync(requestB.profile!, queryB.get('RelayState')!, {}, true);
    const toA = await browser.go(answer);
    assert.ok(toA.url.startsWith(`${SLO_A}?`), `LogoutResponse to SP A, got ${toA.url} ${toA.status} ${toA.html.slice(0, 300)}`);
    const queryA = new URL(toA.url).searchParams;
    assert.equal(queryA.get('RelayState'), 'slo-relay');
    assert.ok(queryA.get('Signature'), 'signed by the IdP');
    const responseA = await spA.validateRedirectAsync(Object.fromEntries(queryA), new URL(toA.url).search.slice(1));
    assert.equal(responseA.loggedOut, true);

    // The OIDC client heard about it by back-channel logout.
    for (let i = 0; i < 50 && logoutTokens.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(logoutTokens.length, 1, 'one logout_token delivered');
    // The session is gone: the browser's cookie is cleared and the next sign-in asks for the password.
    assert.equal(browser.cookies.has('kb_session'), false);
    const again = await start(browser, spA);
    assert.match(again.html, /name="password"/);
    const [event] = await broker.store.audit.list({ type: 'saml.slo', limit: 1 });
    assert.equal(event.userId, aliceId);
    assert.deepEqual(event.details.otherServiceProviders, [SP_B]);
  });

  test('signing out of Keybridge itself sends each SAML SP of the session a signed LogoutRequest, then finishes the sign-out', async () => {
    const spB = serviceProvider(SP_B, ACS_B, keysB);
    const browser = new Browser(broker.issuer);
    const b = await signIn(spB, ACS_B, { browser });
    const confirm = await browser.go(`${broker.issuer}/session/end`);
    const form = findForm(confirm.html, '/session/end/confirm');
    assert.ok(form, `a sign-out confirmation: ${confirm.html.slice(0, 300)}`);
    const toB = await browser.go(new URL(form.action, confirm.url).href, { method: 'POST', form: { ...form.hidden, logout: 'yes' } });
    assert.ok(toB.url.startsWith(`${SLO_B}?`), `front-channel LogoutRequest to SP B, got ${toB.url} ${toB.status}`);
    const query = new URL(toB.url).searchParams;
    const request = await spB.validateRedirectAsync(Object.fromEntries(query), new URL(toB.url).search.slice(1));
    assert.equal(request.loggedOut, true);
    assert.equal(request.profile?.nameID, b.profile.nameID);
    // SP B answers; the sign-out finishes on Keybridge's own "signed out" page.
    const done = await browser.go(await spB.getLogoutResponseUrlAsync(request.profile!, query.get('RelayState')!, {}, true));
    assert.equal(done.status, 200);
    assert.match(done.html, /signed out/i);
    assert.equal((await broker.store.audit.list({ type: 'saml.slo', limit: 1 }))[0].details.initiated, 'idp');
    assert.match((await start(browser, spB)).html, /name="password"/);
  });

  test('a signed POST LogoutRequest is accepted; an unsigned one is refused', async () => {
    const xml = logoutRequestXml({ slo, nameId: 'nobody-in-particular' });
    const accepted = await new Browser(broker.issuer).go(slo, { method: 'POST', form: { SAMLRequest: Buffer.from(signXml(xml, 'LogoutRequest', keysA)).toString('base64') } });
    assert.ok(accepted.url.startsWith(`${SLO_A}?SAMLResponse=`), `answered: ${accepted.url} ${accepted.status}`);
    const unsigned = await new Browser(broker.issuer).go(redirectUrl(slo, 'SAMLRequest', logoutRequestXml({ slo, nameId: 'x' })));
    await assertRefused(unsigned, 400, /sign-out request from “App A” is not signed\. For the administrator: Keybridge accepts only signed sign-out messages/, 'unsigned', SP_A);
  });

  // --------------------------------------------------------------------------------- refusals

  test('refused: a request from an unregistered SP', async () => {
    const stranger = serviceProvider('https://stranger.example/saml', `${APP}/x/acs`, keysA);
    await assertRefused(await start(new Browser(broker.issuer), stranger), 403, /comes from an application that is not registered here/, 'unknown_sp', 'https://stranger.example/saml');
  });

  test('refused: an AssertionConsumerServiceURL the SP did not register (no response is sent anywhere)', async () => {
    const page = await start(new Browser(broker.issuer), serviceProvider(SP_A, 'https://evil.example/acs', keysA));
    await assertRefused(page, 400, /asks to send the response to an address the application did not register/, 'acs_not_registered', SP_A);
    const byIndex = authnRequestXml({ sso }).replace(/ ProtocolBinding="[^"]*" AssertionConsumerServiceURL="[^"]*"/, ' AssertionConsumerServiceIndex="7"');
    await assertRefused(await new Browser(broker.issuer).go(redirectUrl(sso, 'SAMLRequest', byIndex, keysA.privateKeyPem)), 400, /did not register/, 'acs_not_registered');
  });

  test('refused: an unsigned request when the SP must sign, a tampered or foreign signature, SHA-1', async () => {
    await assertRefused(await start(new Browser(broker.issuer), serviceProvider(SP_A, ACS_A, null)), 400, /sign-in request from “App A” is not signed\. For the administrator: The application&#39;s SAML request was not signed, but Keybridge requires signed requests for it/, 'unsigned', SP_A);

    const url = new URL(await serviceProvider(SP_A, ACS_A, keysA).getAuthorizeUrlAsync('', undefined, {}));
    const signature = url.searchParams.get('Signature')!;
    const tampered = url.href.replace(encodeURIComponent(signature), encodeURIComponent(`${signature[0] === 'A' ? 'B' : 'A'}${signature.slice(1)}`));
    await assertRefused(await new Browser(broker.issuer).go(tampered), 400, /has an invalid signature/, 'bad_signature', SP_A);
    // A changed RelayState breaks the query signature too.
    await assertRefused(await new Browser(broker.issuer).go(`${url.href.replace('SigAlg=', 'RelayState=injected&SigAlg=')}`), 400, /invalid signature/, 'bad_signature');
    // Signed with another SP's key.
    await assertRefused(await start(new Browser(broker.issuer), serviceProvider(SP_A, ACS_A, keysB)), 400, /invalid signature/, 'bad_signature', SP_A);
    await assertRefused(await start(new Browser(broker.issuer), serviceProvider(SP_A, ACS_A, keysA, { signatureAlgorithm: 'sha1' })), 400, /RSA-SHA256 or stronger/, 'weak_signature_algorithm', SP_A);
    // POST binding with node-saml's default SHA-1 digest.
    const sha1Digest = serviceProvider(SP_A, ACS_A, keysA, { authnRequestBinding: 'HTTP-POST', digestAlgorithm: 'sha1' });
    await assertRefused(await start(new Browser(broker.issuer), sha1Digest, { binding: 'post' }), 400, /RSA-SHA256 or stronger/, 'weak_signature_algorithm', SP_A);

    // POST binding: the signed XML changed after signing.
    const signed = signXml(authnRequestXml({ sso }), 'AuthnRequest', keysA).replace(`AssertionConsumerServiceURL="${ACS_A}"`, `AssertionConsumerServiceURL="${ACS_A2}"`);
    await assertRefused(await new Browser(broker.issuer).go(sso, { method: 'POST', form: { SAMLRequest: Buffer.from(signed).toString('base64') } }), 400, /invalid signature/, 'bad_signature', SP_A);
    // POST binding signed by another key that the message itself carries in KeyInfo: never trusted.
    const foreign = signXml(authnRequestXml({ sso }), 'AuthnRequest', keysB);
    assert.match(foreign, /<ds:X509Certificate>/);
    await assertRefused(await new Browser(broker.issuer).go(sso, { method: 'POST', form: { SAMLRequest: Buffer.from(foreign).toString('base64') } }), 400, /invalid signature/, 'bad_signature', SP_A);
  });

  test('refused: signature wrapping of an AuthnRequest (tngan/samlify#634 shapes)', async () => {
    const post = (xml: string) => new Browser(broker.issuer).go(sso, { method: 'POST', form: { SAMLRequest: Buffer.from(xml).toString('base64') } });
    // Control: the genuine signed request is accepted.
    const genuine = withoutDeclaration(signXml(authnRequestXml({ sso, id: '_genuine1' }), 'AuthnRequest', keysA));
    const accepted = await new Browser(broker.issuer).request(sso, { method: 'POST', form: { SAMLRequest: Buffer.from(genuine).toString('base64') } });
    assert.equal(accepted.status, 303);

    // 1. The signed request hidden inside an unsigned one carrying the attacker's values.
    const hidden = withoutDeclaration(signXml(authnRequestXml({ sso, id: '_genuine2' }), 'AuthnRequest', keysA));
    const wrapped = authnRequestXml({ sso, id: '_evil1', acs: ACS_A2, inner: `<samlp:Extensions>${hidden}</samlp:Extensions>` });
    await assertRefused(await post(wrapped), 400, /not signed/, 'unsigned', SP_A);

    // 2. The signature moved onto the attacker's root, still pointing at the hidden genuine element:
    //    a verifier that only asks "is some referenced element validly signed?" says yes.
    const genuine3 = withoutDeclaration(signXml(authnRequestXml({ sso, id: '_genuine3' }), 'AuthnRequest', keysA));
    const sig = genuine3.match(/<ds:Signature[\s\S]*<\/ds:Signature>/)![0];
    const unsignedGenuine = genuine3.replace(sig, '');
    const moved = authnRequestXml({ sso, id: '_evil2', acs: ACS_A2, inner: `${sig}<samlp:Extensions>${unsignedGenuine}</samlp:Extensions>` });
    const naive = new SignedXml({ publicCert: keysA.certificatePem, getCertFromKeyInfo: () => null });
    naive.loadSignature(sig);
    assert.equal(naive.checkSignature(moved), true, 'the wrapped document fools a naive verifier');
    await assertRefused(await post(moved), 400, /invalid signature/, 'bad_signature', SP_A);
  });

  test('refused: signature wrapping of a LogoutRequest naming someone else (tngan/samlify#634 shape)', async () => {
    // A victim with a live session at SP A.
    const victim = await signIn(serviceProvider(SP_A, ACS_A, keysA), ACS_A);
    // The attacker holds a genuine signed LogoutRequest for their own NameID...
    const own = withoutDeclaration(signXml(logoutRequestXml({ slo, nameId: 'attackers-own-id', id: '_own' }), 'LogoutRequest', keysA));
    const sig = own.match(/<ds:Signature[\s\S]*<\/ds:Signature>/)![0];
    // ...and wraps it: the outer request names the victim.
    const shapes: [string, string][] = [
      // The signed request hidden inside an unsigned one.
      [`<samlp:Extensions>${own}</samlp:Extensions>`, 'unsigned'],
      // The signature on the outer root, still referencing the hidden signed element.
      [`${sig}<samlp:Extensions>${own.replace(sig, '')}</samlp:Extensions>`, 'bad_signature'],
    ];
    for (const [inner, reason] of shapes) {
      const wrapped = logoutRequestXml({ slo, nameId: victim.profile.nameID, id: newId(), inner });
      const page = await new Browser(broker.issuer).go(slo, { method: 'POST', form: { SAMLRequest: Buffer.from(wrapped).toString('base64') } });
      await assertRefused(page, 400, /sign-out request from “App A”/, reason, SP_A);
    }
    // The victim is still signed in.
    const still = await signIn(serviceProvider(SP_A, ACS_A, keysA), ACS_A, { browser: victim.browser });
    assert.equal(still.sawLogin, false);
  });

  test('refused fast: DTDs, entity expansion (billion laughs), external entities and DEFLATE bombs', async () => {
    const lol = `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">${Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i || ''};`.repeat(10)}">`).join('')}]>`;
    const bomb = `${lol}${authnRequestXml({ sso }).replace('</samlp:AuthnRequest>', '&lol9;</samlp:AuthnRequest>')}`;
    const started = performance.now();
    await assertRefused(await new Browser(broker.issuer).go(redirectUrl(sso, 'SAMLRequest', bomb, keysA.privateKeyPem)), 400, /not a valid SAML message/, 'dtd_forbidden');
    assert.ok(performance.now() - started < 1000, 'refused before any expansion');
    const xxe = `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>${authnRequestXml({ sso }).replace('</saml:Issuer>', '&x;</saml:Issuer>')}`;
    await assertRefused(await new Browser(broker.issuer).go(sso, { method: 'POST', form: { SAMLRequest: Buffer.from(xxe).toString('base64') } }), 400, /not a valid SAML message/, 'dtd_forbidden');
    const pi = `<?xml version="1.0"?><?xml-stylesheet href="http://evil.example/x.xsl"?>${authnRequestXml({ sso })}`;
    await assertRefused(await new Browser(broker.issuer).go(redirectUrl(sso, 'SAMLRequest', pi, keysA.privateKeyPem)), 400, /not a valid SAML message/, 'dtd_forbidden');
    // 20 MB that DEFLATE to about 20 kB: inflated only up to the message size limit.
    const inflated = `${authnRequestXml({ sso }).replace('</samlp:AuthnRequest>', `<samlp:Extensions>${' '.repeat(20_000_000)}</samlp:Extensions></samlp:AuthnRequest>`)}`;
    const deflated = deflateRawSync(Buffer.from(inflated)).toString('base64');
    await assertRefused(await new Browser(broker.issuer).go(sso, { method: 'POST', form: { SAMLRequest: deflated } }), 400, /too large/, 'too_large');
  });

  test('refused fast: XML nested 25,000 deep (a fake Signature block) or 60,000 wide, by Redirect and POST, before any parser; /healthz stays responsive', async () => {
    const deep = deepMessage(25_000, 'AuthnRequest', SP_A);
    // The guard itself, measured around the decoding of the Redirect binding (inflation included).
    const query = new URL(redirectUrl(sso, 'SAMLRequest', deep, keysA.privateKeyPem)).search.slice(1);
    assert.ok(query.length < 1500, `an ${query.length}-byte query`);
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      assert.throws(() => decodeRedirect(query, ['AuthnRequest']), (err: SamlRejected) => err.reason === 'too_large' && /too deep/.test(String(err.detail?.guard)));
      const ms = performance.now() - started;
      assert.ok(ms < 50, `refused in ${ms.toFixed(1)} ms`);
    }
    const started = performance.now();
    assert.throws(() => decodePost({ SAMLRequest: bombBase64(deep) }, ['AuthnRequest']), (err: SamlRejected) => err.reason === 'too_large');
    assert.ok(performance.now() - started < 50, 'POST binding refused in < 50 ms');

    // Over HTTP: a 400 page, audited with the limit that was broken.
    const refusedFor = async (page: Page, limit: RegExp) => {
      await assertRefused(page, 400, /too large/, 'too_large');
      const [event] = await broker.store.audit.list({ type: 'saml.request_rejected', limit: 1 });
      assert.match(String(event.details.detail), limit);
    };
    await refusedFor(await new Browser(broker.issuer).go(redirectUrl(sso, 'SAMLRequest', deep, keysA.privateKeyPem)), /^too deep: elements nested more than 64 levels$/);
    await refusedFor(await new Browser(broker.issuer).go(sso, { method: 'POST', form: { SAMLRequest: bombBase64(deep) } }), /^too deep/);
    await refusedFor(await new Browser(broker.issuer).go(sso, { method: 'POST', form: { SAMLRequest: bombDeflated(deep) } }), /^too deep/);
    await refusedFor(await new Browser(broker.issuer).go(redirectUrl(slo, 'SAMLRequest', deepMessage(25_000, 'LogoutRequest', SP_A), keysA.privateKeyPem)), /^too deep/);
    await refusedFor(await new Browser(broker.issuer).go(redirectUrl(sso, 'SAMLRequest', wideMessage(60_000, 'AuthnRequest', SP_A), keysA.privateKeyPem)), /^too many elements: more than 5000$/);
    await refusedFor(await new Browser(broker.issuer).go(sso, { method: 'POST', form: { SAMLRequest: bombBase64(wideMessage(60_000, 'AuthnRequest', SP_A)) } }), /^too many elements/);

    // Bombs in flight do not stall the process: /healthz answers among them (the issue saw 4.8 s).
    const bombs = Array.from({ length: 4 }, (_, i) => fetch(i % 2 ? `${sso}?${query}` : sso, i % 2 ? {} : { method: 'POST', body: new URLSearchParams({ SAMLRequest: bombBase64(deep) }) }));
    const asked = performance.now();
    const health = await fetch(`${broker.issuer}/healthz`);
    const waited = performance.now() - asked;
    assert.equal(health.status, 200);
    assert.ok(waited < 1000, `/healthz answered in ${waited.toFixed(0)} ms`);
    for (const res of await Promise.all(bombs)) assert.equal(res.status, 400);
  });

  test('refused as a bad signature, not as stale: a request signed with a foreign key and an old IssueInstant', async () => {
    const stale = () => authnRequestXml({ sso, issueInstant: new Date(Date.now() - 3600_000) });
    // Control: with the SP's own key the same request is stale.
    await assertRefused(await new Browser(broker.issuer).go(redirectUrl(sso, 'SAMLRequest', stale(), keysA.privateKeyPem)), 400, /has expired/, 'stale', SP_A);
    await assertRefused(await new Browser(broker.issuer).go(redirectUrl(sso, 'SAMLRequest', stale(), keysB.privateKeyPem)), 400, /invalid signature/, 'bad_signature', SP_A);
    const post = (xml: string) => new Browser(broker.issuer).go(sso, { method: 'POST', form: { SAMLRequest: Buffer.from(xml).toString('base64') } });
    await assertRefused(await post(signXml(stale(), 'AuthnRequest', keysA)), 400, /has expired/, 'stale', SP_A);
    await assertRefused(await post(signXml(stale(), 'AuthnRequest', keysB)), 400, /invalid signature/, 'bad_signature', SP_A);
    // The same for a sign-out request.
    const staleLogout = logoutRequestXml({ slo, nameId: 'someone' }).replace(/IssueInstant="[^"]*"/, `IssueInstant="${samlTime(new Date(Date.now() - 3600_000))}"`);
    await assertRefused(await new Browser(broker.issuer).go(redirectUrl(slo, 'SAMLRequest', staleLogout, keysB.privateKeyPem)), 400, /invalid signature/, 'bad_signature', SP_A);
  });

  test('NUL bytes, control characters and invalid UTF-8 in SAMLRequest, SAMLResponse or RelayState: a clean 400, never a 500', async () => {
    const open = () => authnRequestXml({ sso, issuer: SP_OPEN, acs: ACS_OPEN });
    const get = (url: string) => fetch(url, { redirect: 'manual' });
    const postRaw = (url: string, body: string | Buffer) => fetch(url, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: typeof body === 'string' ? body : new Uint8Array(body) });
    /** Refused by the SAML endpoint itself: its page, and a `malformed` audit event. */
    const malformed = async (res: Response) => {
      const body = await res.text();
      assert.equal(res.status, 400, body.slice(0, 300));
      assert.match(body, /not a valid SAML message|request cannot be completed/);
      assert.equal((await lastRejection())?.reason, 'malformed');
    };
    /** Percent-encoded NUL or invalid UTF-8: the edge input guard may answer before the SAML endpoint does; either way a 400. */
    const clean400 = async (res: Response) => {
      const body = await res.text();
      assert.equal(res.status, 400, body.slice(0, 300));
      assert.doesNotMatch(body, /\bat [A-Za-z.<>]+ \(|server_error/);
    };
    // Control: the SP that may send unsigned requests is accepted with an ordinary RelayState.
    assert.equal((await get(redirectUrl(sso, 'SAMLRequest', open(), undefined, 'ok'))).status, 303);

    // RelayState, in the query and in a form.
    await clean400(await get(redirectUrl(sso, 'SAMLRequest', open(), undefined, 'a\u0000b')));
    await clean400(await get(`${redirectUrl(sso, 'SAMLRequest', open())}&RelayState=%FF%FE`));
    await clean400(await postRaw(sso, `SAMLRequest=${encodeURIComponent(bombBase64(open()))}&RelayState=a%00b`));
    await clean400(await postRaw(sso, Buffer.concat([Buffer.from(`SAMLRequest=${encodeURIComponent(bombBase64(open()))}&RelayState=a`), Buffer.from([0xff, 0xfe]), Buffer.from('b')])));
    await clean400(await get(`${slo}?SAMLResponse=${encodeURIComponent(bombDeflated('<x/>'))}&RelayState=%00`));
    // What gets past a byte check: other control characters, and U+FFFD (what invalid UTF-8 decodes to).
    await malformed(await get(redirectUrl(sso, 'SAMLRequest', open(), undefined, 'a\u001bb')));
    await malformed(await get(redirectUrl(sso, 'SAMLRequest', open(), undefined, 'a\uFFFDb')));
    await malformed(await postRaw(sso, `SAMLRequest=${encodeURIComponent(bombBase64(open()))}&RelayState=a%1Bb`));

    // The message itself (base64, so no byte check at the edge sees inside it): a NUL or a
    // reference to one, bytes that are not UTF-8 (plain and DEFLATEd), base64 that is not.
    await malformed(await get(redirectUrl(sso, 'SAMLRequest', open().replace('</saml:Issuer>', '\u0000</saml:Issuer>'))));
    await malformed(await get(redirectUrl(sso, 'SAMLRequest', open().replace('</saml:Issuer>', '&#0;</saml:Issuer>'))));
    await malformed(await postRaw(sso, `SAMLRequest=${encodeURIComponent(bombBase64(open().replace('</saml:Issuer>', '&#x1b;</saml:Issuer>')))}`));
    const notUtf8 = Buffer.concat([Buffer.from(open().replace(/<\/samlp:AuthnRequest>$/, '<samlp:Extensions>')), Buffer.from([0xc3, 0x28]), Buffer.from('</samlp:Extensions></samlp:AuthnRequest>')]);
    await malformed(await postRaw(sso, `SAMLRequest=${encodeURIComponent(notUtf8.toString('base64'))}`));
    await malformed(await postRaw(sso, `SAMLRequest=${encodeURIComponent(deflateRawSync(notUtf8).toString('base64'))}`));
    await malformed(await get(`${sso}?SAMLRequest=${encodeURIComponent(deflateRawSync(notUtf8).toString('base64'))}`));
    await malformed(await postRaw(sso, 'SAMLRequest=PHI%2B%1B'));
    await clean400(await get(`${sso}?SAMLRequest=%00`));
    await clean400(await get(`${sso}?SAMLRequest=%FF`));

    // IdP-initiated sign-in: the SP and RelayState parameters.
    const init = `${broker.issuer}/saml/idp/init`;
    await clean400(await get(`${init}?sp=a%00b`));
    await clean400(await get(`${init}?sp=%FF`));
    await clean400(await get(`${init}?sp=${encodeURIComponent(SP_B)}&RelayState=%00`));
    const initMalformed = async (url: string) => {
      const res = await get(url);
      assert.equal(res.status, 400, (await res.text()).slice(0, 300));
      assert.equal((await lastRejection())?.reason, 'malformed');
    };
    await initMalformed(`${init}?sp=a%1Bb`);
    await initMalformed(`${init}?sp=${encodeURIComponent(SP_B)}&RelayState=%1B`);
    await initMalformed(`${init}?sp=${encodeURIComponent(SP_B)}&RelayState=%EF%BF%BD`);
  });

  test('refused: a replayed request and a stale one', async () => {
    const url = await serviceProvider(SP_A, ACS_A, keysA).getAuthorizeUrlAsync('', undefined, {});
    assert.equal((await new Browser(broker.issuer).request(url)).status, 303);
    await assertRefused(await new Browser(broker.issuer).go(url), 400, /was already used/, 'replayed', SP_A);
    const stale = authnRequestXml({ sso, issueInstant: new Date(Date.now() - 3600_000) });
    await assertRefused(await new Browser(broker.issuer).go(redirectUrl(sso, 'SAMLRequest', stale, keysA.privateKeyPem)), 400, /has expired/, 'stale', SP_A);
    const future = authnRequestXml({ sso, issueInstant: new Date(Date.now() + 3600_000) });
    await assertRefused(await new Browser(broker.issuer).go(redirectUrl(sso, 'SAMLRequest', future, keysA.privateKeyPem)), 400, /has expired/, 'stale', SP_A);
    const elsewhere = authnRequestXml({ sso: 'https://other-idp.example/sso' });
    await assertRefused(await new Browser(broker.issuer).go(redirectUrl(sso, 'SAMLRequest', elsewhere, keysA.privateKeyPem)), 400, /addressed to a different server/, 'wrong_destination', SP_A);
  });

  test('refused: a sign-in finished in another browser, or finished twice', async () => {
    const browser = new Browser(broker.issuer);
    const login = await start(browser, serviceProvider(SP_A, ACS_A, keysA));
    const res = await browser.request(new URL(findForm(login.html, '/login')!.action, login.url).href, { form: { ...findForm(login.html, '/login')!.hidden, ...ALICE } });
    // Follow the redirects by hand up to /saml/idp/continue.
    let location = res.headers.get('location')!;
    while (!location.includes('/saml/idp/continue')) location = (await browser.request(new URL(location, broker.issuer).href)).headers.get('location')!;
    const other = new Browser(broker.issuer);
    await assertRefused(await other.go(new URL(location, broker.issuer).href), 400, /expired or was already completed/, 'unknown_state', SP_A);
    // The record was used up by that attempt: the right browser cannot finish it afterwards either.
    await assertRefused(await browser.go(new URL(location, broker.issuer).href), 400, /expired or was already completed/, 'unknown_state');
  });
});

describe('Keybridge as a SAML IdP: the operator requires signed requests (samlIdp.requireSignedRequests)', () => {
  let broker: TestBroker;
  let keys: SigningMaterial;
  const ACS = `${APP}/strict/acs`;
  const SP_EXEMPT = 'https://sp-exempt.example/saml';

  before(async () => {
    keys = await generateSelfSigned('sp-strict');
    broker = await startTestBroker({
      config: {
        limits: { ip: { callback: { points: 100_000 } } },
        users: [{ username: 'alice', password: ALICE.password, email: 'alice@example.org' }],
        samlIdp: {
          enabled: true,
          requireSignedRequests: true,
          serviceProviders: [
            // Its metadata does not ask for signed requests; the operator does.
            { entityId: SP_SHIB, name: 'Shib App', metadataXml: spMetadataXml({ entityId: SP_SHIB, acs: ACS, cert: keys.certificatePem, formats: [] }) },
            // Exempted by its own setting.
            { entityId: SP_EXEMPT, assertionConsumerServices: [{ url: ACS }], requireSignedRequests: false },
          ],
        },
      },
    });
  });
  after(async () => broker?.close());

  test('an unsigned request is refused unless the SP is exempted; a signed one is accepted; the metadata asks for signing', async () => {
    const sso = `${broker.issuer}/saml/idp/sso`;
    const unsigned = await new Browser(broker.issuer).go(redirectUrl(sso, 'SAMLRequest', authnRequestXml({ sso, issuer: SP_SHIB, acs: ACS })));
    assert.equal(unsigned.status, 400);
    assert.match(unsigned.html, /The sign-in request from “Shib App” is not signed\./);
    assert.equal((await broker.store.audit.list({ type: 'saml.request_rejected', limit: 1 }))[0].details.reason, 'unsigned');
    const signed = await new Browser(broker.issuer).go(redirectUrl(sso, 'SAMLRequest', authnRequestXml({ sso, issuer: SP_SHIB, acs: ACS }), keys.privateKeyPem));
    assert.match(signed.html, /name="password"/);
    const exempt = await new Browser(broker.issuer).go(redirectUrl(sso, 'SAMLRequest', authnRequestXml({ sso, issuer: SP_EXEMPT, acs: ACS })));
    assert.match(exempt.html, /name="password"/);
    const metadata = await (await fetch(`${broker.issuer}/saml/idp/metadata`)).text();
    assert.match(metadata, /WantAuthnRequestsSigned="true"/);
  });

  test('config: requireSignedRequests with an SP that cannot sign, or with wantAuthnRequestsSigned: false, is refused with its path', () => {
    const sp = { entityId: 'https://x.example/sp', assertionConsumerServices: [{ url: 'https://x.example/acs' }] };
    const paths = (input: Record<string, unknown>) => {
      const parsed = samlIdpSchema.safeParse(input);
      return parsed.success ? [] : parsed.error.issues.map((i) => i.path.join('.'));
    };
    assert.deepEqual(paths({ enabled: true, requireSignedRequests: true, serviceProviders: [sp] }), ['serviceProviders.0.requireSignedRequests']);
    assert.deepEqual(paths({ enabled: true, requireSignedRequests: true, serviceProviders: [{ ...sp, requireSignedRequests: false }] }), []);
    assert.deepEqual(paths({ enabled: true, requireSignedRequests: true, wantAuthnRequestsSigned: false }), ['wantAuthnRequestsSigned']);
    // Backwards compatible: the old settings alone still parse, to the old defaults.
    const old = samlIdpSchema.parse({ enabled: true, wantAuthnRequestsSigned: false, serviceProviders: [{ ...sp, requireSignedRequests: true, certificates: [keys.certificatePem] }] });
    assert.equal(old.requireSignedRequests, undefined);
    assert.equal(old.serviceProviders[0].requireSignedRequests, true);
  });
});

describe('Keybridge as a SAML IdP for SimpleSAMLphp\'s service provider', () => {
  let missing: string | null = null;
  let ssp: SimpleSamlPhp;
  let broker: TestBroker;

  before(async () => {
    missing = simpleSamlPhpMissing();
    if (missing) return;
    const port = await freePort();
    const issuer = `http://127.0.0.1:${port}`;
    // SimpleSAMLphp reads our metadata per request, so it can start before the broker.
    ssp = await startSimpleSamlPhp({ serviceProviders: [], externalIdp: { entityId: `${issuer}/saml/idp/metadata`, metadataUrl: `${issuer}/saml/idp/metadata` } });
    broker = await startTestBroker({
      port,
      config: {
        users: [{ username: 'alice', password: ALICE.password, email: 'alice@example.org', name: 'Alice Liddell', groups: ['admins', 'staff'] }],
        samlIdp: {
          enabled: true,
          // SimpleSAMLphp's default-sp asks for transient NameIDs.
          serviceProviders: [{ entityId: ssp.spEntityId, name: 'SimpleSAMLphp', metadataUrl: ssp.spMetadataUrl, nameId: { format: 'transient' } }],
        },
      },
    });
  });

  after(async () => {
    await broker?.close();
    await ssp?.stop();
  });

  test('SimpleSAMLphp signs in through Keybridge and validates the signed response', async (t) => {
    if (missing) return skipLoudly(t, `SimpleSAMLphp: ${missing}`);
    const agent = new SamlAgent();
    // default-sp sends a signed AuthnRequest (HTTP-Redirect) to our SSO endpoint.
    const login = await agent.go(ssp.spLoginUrl);
    assert.ok(login.url.startsWith(broker.issuer), `at Keybridge, got ${login.url}: ${login.html.slice(0, 500)}\n${await ssp.logs()}`);
    const form = SamlAgent.form(login.html, login.url);
    assert.ok(form && 'password' in form.fields, `our login page, got ${login.html.slice(0, 500)}`);
    const post = await agent.go(form.action, { form: { ...form.fields, username: ALICE.username, password: ALICE.password } });
    const toSp = SamlAgent.form(post.html, post.url);
    assert.ok(toSp && toSp.fields.SAMLResponse, `our SAML POST page, got ${post.status} ${post.url}: ${post.html.slice(0, 500)}`);
    assert.ok(toSp.action.startsWith(ssp.baseUrl), 'posts to SimpleSAMLphp\'s ACS');
    const result = await agent.go(toSp.action, { form: toSp.fields });
    const logs = result.status === 200 && result.html.includes('alice@example.org') ? '' : await ssp.logs();
    assert.equal(result.status, 200, logs);
    assert.match(result.html, /alice@example\.org/, `SimpleSAMLphp shows alice's mail: ${result.html.slice(0, 1500)}\n${logs}`);
    assert.match(result.html, /admins/);
    const [event] = await broker.store.audit.list({ type: 'saml.sso', limit: 1 });
    assert.equal(event.details.sp, ssp.spEntityId);
  });
});

describe('keybridge saml-sp (the CLI)', () => {
  const cli = path.resolve(import.meta.dirname, '../../src/cli/main.ts');
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'kb-saml-sp-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const run = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [cli, ...args, '-c', path.join(dir, 'config.yaml')], { env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c) => (stdout += c));
      child.stderr.on('data', (c) => (stderr += c));
      child.once('error', reject);
      child.once('exit', (code) => resolve({ code, stdout, stderr }));
    });

  test('add from a metadata file, list, refuse what cannot work, remove', async () => {
    const keys = await generateSelfSigned('cli-sp');
    const entityId = 'https://cli-app.example/saml';
    writeFileSync(path.join(dir, 'sp.xml'), generateServiceProviderMetadata({ issuer: entityId, callbackUrl: 'https://cli-app.example/acs', publicCerts: keys.certificatePem, privateKey: keys.privateKeyPem }));
    writeFileSync(
      path.join(dir, 'config.yaml'),
      [
        'issuer: http://127.0.0.1:5556',
        `database: { dataDir: ${JSON.stringify(path.join(dir, 'data'))} }`,
        'samlIdp:',
        '  enabled: true',
        '  serviceProviders:',
        '    - { entityId: "https://configured.example/saml", assertionConsumerServices: [{ url: "https://configured.example/acs" }] }',
      ].join('\n'),
    );
    const file = path.join(dir, 'sp.xml');
    const added = await run(['saml-sp', 'add', '--entity-id', entityId, '--metadata-file', file, '--name', 'CLI App']);
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, /added SAML service provider https:\/\/cli-app\.example\/saml/);

    const again = await run(['saml-sp', 'add', '--entity-id', entityId, '--metadata-file', file]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already exists/);
    const wrong = await run(['saml-sp', 'add', '--entity-id', 'https://other.example/saml', '--metadata-file', file]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /no EntityDescriptor with entityID "https:\/\/other\.example\/saml"/);
    const configured = await run(['saml-sp', 'add', '--entity-id', 'https://configured.example/saml', '--metadata-file', file]);
    assert.match(configured.stderr, /defined in the config file/);
    const usage = await run(['saml-sp', 'add', '--entity-id', entityId]);
    assert.equal(usage.code, 2);

    const list = await run(['saml-sp', 'list']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /https:\/\/configured\.example\/saml\tconfig/);
    assert.match(list.stdout, /https:\/\/cli-app\.example\/saml\tdatabase\tCLI App/);

    const removed = await run(['saml-sp', 'remove', entityId]);
    assert.equal(removed.code, 0, removed.stderr);
    const gone = await run(['saml-sp', 'remove', 'https://configured.example/saml']);
    assert.equal(gone.code, 2);
    assert.match(gone.stderr, /defined in the config file; remove it there/);
  });
});
