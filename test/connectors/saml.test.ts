// The saml connector against a real SimpleSAMLphp IdP (test/helpers/simplesamlphp.ts): sign-in
// with both AuthnRequest bindings (the IdP requires our signature), encrypted assertions, IdP
// metadata from URL, file and inline with certificate rollover, IdP-initiated sign-in, single
// logout both ways, and every refusal with the `detail` the broker audits: tampered, unsigned and
// wrapped responses, DTDs, replays, requests that are not ours. Content that only a misbehaving
// IdP would sign (wrong audience, expired, ...) comes from a test key (fixtures/saml/forge.ts).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { inflateRawSync } from 'node:zlib';
import { SAML, ValidateInResponseTo } from '@node-saml/node-saml';
import { DOMParser, XMLSerializer } from '@xmldom/xmldom';
import pino from 'pino';
import { SignedXml } from 'xml-crypto';
import plugin from '../../connectors/saml/index.ts';
import type { SamlConfigInput } from '../../connectors/saml/saml-config.ts';
import { signedAssertionMismatch } from '../../connectors/saml/validate-response.ts';
import type { LoginResult, LogoutMessage, RedirectConnector, ReplayGuard, UpstreamIdentity } from '../../src/connectors/contract.ts';
import { checkConnectorEntries, connectorUrls } from '../../src/connectors/registry.ts';
import { freePort } from '../helpers/free-port.ts';
import { SamlAgent, simpleSamlPhpMissing, startSimpleSamlPhp, type SimpleSamlPhp } from '../helpers/simplesamlphp.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { forgePostMessage, forgeRedirect, forgeResponse, logoutRequestXml, type ForgeKey } from './fixtures/saml/forge.ts';
import { base64 as bombBase64, deepMessage, wideMessage } from './fixtures/saml/bombs.ts';

const run = promisify(execFile);
const BROKER = 'http://127.0.0.1:5556';
const urlsOf = (id: string) => connectorUrls(BROKER, id);
const P = 'urn:oasis:names:tc:SAML:2.0:protocol';
const A = 'urn:oasis:names:tc:SAML:2.0:assertion';
const DS = 'http://www.w3.org/2000/09/xmldsig#';
const PERSISTENT = 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent';
const FORGED_IDP = 'https://idp.forged.example/idp';

interface Pair extends ForgeKey {
  keyFile: string;
  certFile: string;
}

let ssp: SimpleSamlPhp | undefined;
let skipReason = '';
let dir: string;
/** The SP's signing (and decryption) pair; an unrelated certificate; the pretend IdP's pair. */
let sp: Pair, unrelated: Pair, forger: Pair;

async function pair(name: string): Promise<Pair> {
  const keyFile = path.join(dir, `${name}.key`);
  const certFile = path.join(dir, `${name}.crt`);
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-sha256', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-keyout', keyFile, '-out', certFile]);
  return { keyFile, certFile, privateKeyPem: fs.readFileSync(keyFile, 'utf8'), certificatePem: fs.readFileSync(certFile, 'utf8') };
}

/** A replay guard like the broker's, in memory. */
function memoryGuard(): ReplayGuard & { used: Map<string, Date> } {
  const used = new Map<string, Date>();
  return {
    used,
    async firstUse(key, expiresAt) {
      if (used.has(key)) return false;
      used.set(key, expiresAt);
      return true;
    },
  };
}

const guard = memoryGuard();
const spKeys = () => ({ privateKeyFile: sp.keyFile, certificateFile: sp.certFile });

async function connect(id: string, config: SamlConfigInput, fetchFn: typeof fetch = fetch): Promise<RedirectConnector> {
  const parsed = plugin.configSchema.parse(config);
  return (await plugin.create({ id, name: id, config: parsed, logger: pino({ level: 'silent' }), fetch: fetchFn, urls: urlsOf(id), services: { localAccounts: {} as never, replayGuard: guard } })) as RedirectConnector;
}

/** A connector toward SimpleSAMLphp for the SP entry `id`, metadata inline unless `idp` says otherwise. */
const sspConnector = (id: string, extra: Partial<SamlConfigInput> = {}) => connect(id, { idp: { metadataXml: ssp!.metadataXml }, sp: spKeys(), ...extra });

function ok(result: LoginResult, why = ''): UpstreamIdentity {
  assert.ok(result.ok, `expected success${why && ` (${why})`}, got ${JSON.stringify(result)}`);
  return result.identity;
}

function refused(result: LoginResult, detail: RegExp | string, reason = 'upstream_error'): void {
  assert.equal(result.ok, false, `expected a refusal (${detail}), got ${JSON.stringify(result).slice(0, 300)}`);
  if (result.ok) return;
  assert.equal(result.reason, reason, `detail: ${result.detail}`);
  if (typeof detail === 'string') assert.equal(result.detail, detail);
  else assert.match(result.detail ?? '', detail);
}

/** start → SimpleSAMLphp's login page → its auto-submit form, as a browser would (not submitted). */
async function signIn(connector: RedirectConnector, id: string, username = 'alice') {
  const urls = urlsOf(id);
  const state = `state-${Math.random().toString(36).slice(2)}`;
  const started = await connector.start({ callbackUrl: urls.callback, state });
  // The broker stores the context as JSON.
  const context = JSON.parse(JSON.stringify(started.context)) as Record<string, unknown>;
  const agent = new SamlAgent();
  const page = await agent.go(started.location, started.form ? { form: started.form } : {});
  const answer = await agent.login(page, username, `${username}pass`);
  const form = SamlAgent.form(answer.html, answer.url);
  assert.ok(form?.fields.SAMLResponse, `no SAMLResponse form (HTTP ${answer.status}): ${answer.html.slice(0, 400)}\n${await ssp!.logs()}`);
  assert.equal(form.action, urls.callback);
  assert.equal(form.fields.RelayState, state, 'RelayState comes back verbatim');
  return { started, context, agent, fields: form.fields, state };
}

const post = (connector: RedirectConnector, id: string, fields: Record<string, string>, context: Record<string, unknown>, extra: { unsolicited?: boolean; method?: 'GET' | 'POST' } = {}) =>
  connector.callback({ callbackUrl: urlsOf(id).callback, method: extra.method ?? 'POST', params: fields, context, unsolicited: extra.unsolicited });

const xmlOf = (samlResponse: string) => Buffer.from(samlResponse, 'base64').toString('utf8');
const elements = (node: Document | Element, ns: string, name: string) => Array.from(node.getElementsByTagNameNS(ns, name) as unknown as ArrayLike<Element>);

/** Re-serializes a SAMLResponse with xmldom after `edit`. */
function mutate(samlResponse: string, edit: (doc: Document, response: Element) => void): string {
  const doc = new DOMParser().parseFromString(xmlOf(samlResponse), 'text/xml');
  edit(doc, doc.documentElement);
  return Buffer.from(new XMLSerializer().serializeToString(doc), 'utf8').toString('base64');
}

const removeSignatures = (parent: Element) => {
  for (let n = parent.firstChild; n; ) {
    const next = n.nextSibling;
    if (n.nodeType === 1 && (n as Element).localName === 'Signature' && (n as Element).namespaceURI === DS) parent.removeChild(n);
    n = next;
  }
};

/** A copy of the assertion claiming to be mallory, unsigned, with its own ID. */
function forgedCopy(assertion: Element): Element {
  const copy = assertion.cloneNode(true) as Element;
  removeSignatures(copy);
  copy.setAttribute('ID', '_forged0000000000000000000000000000');
  for (const value of elements(copy, A, 'AttributeValue')) if (value.textContent === 'alice') value.textContent = 'mallory';
  for (const nameId of elements(copy, A, 'NameID')) nameId.textContent = 'mallory-subject';
  return copy;
}

/** The same Redirect-binding URL with one bit of its Signature flipped. */
function breakSignature(url: string): string {
  const signature = Buffer.from(new URL(url).searchParams.get('Signature')!, 'base64');
  signature[10] ^= 1;
  return url.replace(/Signature=[^&]*/, `Signature=${encodeURIComponent(signature.toString('base64'))}`);
}

function inflateParam(url: string, name: string): Document {
  const xml = inflateRawSync(Buffer.from(new URL(url).searchParams.get(name)!, 'base64')).toString('utf8');
  return new DOMParser().parseFromString(xml, 'text/xml');
}

const receiveAt = (connector: RedirectConnector, id: string, url: string): Promise<LogoutMessage> => {
  const u = new URL(url);
  return connector.logout!.receive({ returnUrl: urlsOf(id).logout, method: 'GET', params: Object.fromEntries(u.searchParams), query: u.search.slice(1) });
};

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keybridge-saml-test-'));
  [sp, unrelated, forger] = await Promise.all([pair('keybridge-sp'), pair('unrelated'), pair('forged-idp')]);
  const why = simpleSamlPhpMissing();
  if (why) {
    skipReason = why;
    return;
  }
  const entry = (id: string, extra: object = {}) => ({ entityId: urlsOf(id).metadata, acsUrl: urlsOf(id).callback, sloUrl: urlsOf(id).logout, signingCertPem: sp.certificatePem, ...extra });
  ssp = await startSimpleSamlPhp({
    serviceProviders: [
      entry('ssp'),
      entry('ssp-enc', { encryptionCertPem: sp.certificatePem }),
      entry('ssp-assertion-signed', { signResponse: false }),
      entry('ssp-response-signed', { signAssertion: false }),
      // Registered with another ACS URL: its (IdP-initiated) responses name a Recipient that is not ours.
      { ...entry('ssp-enc-elsewhere', { encryptionCertPem: sp.certificatePem }), acsUrl: `${BROKER}/callback/somewhere-else` },
    ],
  });
});

after(async () => {
  await ssp?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('saml connector: sign-in at SimpleSAMLphp', () => {
  test('Redirect binding: a signed AuthnRequest, alice signs in, the identity is complete', async (t) => {
    if (!ssp) return skipLoudly(t, skipReason);
    const connector = await sspConnector('ssp');
    const { started, context, fields } = await signIn(connector, 'ssp');
    const location = new URL(started.location);
    assert.equal(`${location.origin}${location.pathname}`, ssp.ssoUrl);
    assert.equal(location.searchParams.get('SigAlg'), 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256');
    assert.ok(location.searchParams.get('Signature'));
    assert.equal(started.form, undefined);
    const request = inflateParam(started.location, 'SAMLRequest').documentElement;
    assert.equal(request.localName, 'AuthnRequest');
    assert.equal(request.getAttribute('ID'), context.requestId);
    assert.equal(request.getAttribute('Destination'), ssp.ssoUrl);
    assert.equal(request.getAttribute('AssertionConsumerServiceURL'), urlsOf('ssp').callback);
    assert.equal(request.getAttribute('ProtocolBinding'), 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST');
    assert.equal(elements(request, A, 'Issuer')[0].textContent, urlsOf('ssp').metadata);
    assert.equal(elements(request, P, 'NameIDPolicy')[0].getAttribute('Format'), PERSISTENT);
    assert.equal(elements(request, P, 'RequestedAuthnContext').length, 0);
    assert.match(String(context.issuedAt), /^\d{4}-\d\d-\d\dT/);

    const identity = ok(await post(connector, 'ssp', fields, context));
    assert.equal(identity.connectorId, 'ssp');
    assert.match(identity.subject, /^[0-9a-f]{40}$/, 'the persistent NameID');
    assert.equal(identity.username, 'alice');
    assert.equal(identity.email, 'alice@example.org');
    assert.equal(identity.emailVerified, false, 'SAML emails are unverified unless configured');
    assert.equal(identity.name, 'Alice Anderson');
    assert.equal(identity.givenName, 'Alice');
    assert.equal(identity.familyName, 'Anderson');
    assert.deepEqual(identity.groups, ['engineering', 'admins']);
    assert.deepEqual(identity.amr, ['pwd']);
    assert.equal(identity.attributes?.uid, 'alice', 'single values are strings');
    assert.deepEqual(identity.attributes?.eduPersonAffiliation, ['member', 'employee'], 'multiple values are arrays');
    const session = identity.upstreamSession!;
    assert.equal(session.subject, identity.subject);
    assert.match(session.id!, /^_/);
    assert.deepEqual(session.data, { nameID: identity.subject, nameIDFormat: PERSISTENT, spNameQualifier: urlsOf('ssp').metadata, sessionIndex: session.id });
    assert.deepEqual(JSON.parse(JSON.stringify(identity)), identity, 'JSON-serializable');
  });

  test('the IdP really checks the signature: unsigned or badly signed AuthnRequests are refused there', async (t) => {
    if (!ssp) return skipLoudly(t, skipReason);
    const unsignedConnector = await sspConnector('ssp', { signAuthnRequests: false });
    const unsigned = await unsignedConnector.start({ callbackUrl: urlsOf('ssp').callback, state: 'unsigned-request' });
    assert.equal(new URL(unsigned.location).searchParams.get('Signature'), null);
    const refusedUnsigned = await new SamlAgent().go(unsigned.location);
    assert.doesNotMatch(refusedUnsigned.html, /name="password"/);
    assert.match(refusedUnsigned.html, /no signature found on message/);
    const signed = await (await sspConnector('ssp')).start({ callbackUrl: urlsOf('ssp').callback, state: 'badly-signed' });
    const badlySigned = breakSignature(signed.location);
    assert.notEqual(badlySigned, signed.location);
    const refusedBad = await new SamlAgent().go(badlySigned);
    assert.doesNotMatch(refusedBad.html, /name="password"/);
    assert.match(refusedBad.html, /signature/i);
  });

  test('HTTP-POST binding (manual IdP config): a form with an enveloped-signed AuthnRequest', async (t) => {
    if (!ssp) return skipLoudly(t, skipReason);
    const connector = await connect('ssp', {
      idp: { entityId: ssp.entityId, ssoUrl: ssp.ssoUrl, sloUrl: ssp.sloUrl, certificates: [ssp.certPem] },
      sp: spKeys(),
      authnRequestBinding: 'post',
      forceAuthn: true,
      authnContext: ['urn:oasis:names:tc:SAML:2.0:ac:classes:Password'],
    });
    const { started, context, fields, state } = await signIn(connector, 'ssp', 'bob');
    assert.equal(started.location, ssp.ssoUrl);
    assert.deepEqual(Object.keys(started.form!).sort(), ['RelayState', 'SAMLRequest']);
    assert.equal(started.form!.RelayState, state);
    const request = new DOMParser().parseFromString(xmlOf(started.form!.SAMLRequest), 'text/xml').documentElement;
    assert.equal(request.getAttribute('ID'), context.requestId);
    assert.equal(request.getAttribute('ForceAuthn'), 'true');
    assert.equal(elements(request, A, 'AuthnContextClassRef')[0].textContent, 'urn:oasis:names:tc:SAML:2.0:ac:classes:Password');
    const signature = elements(request, DS, 'Signature')[0];
    assert.equal(signature.parentNode, request, 'an enveloped signature');
    assert.equal(elements(signature, DS, 'Reference')[0].getAttribute('URI'), `#${context.requestId}`);
    const identity = ok(await post(connector, 'ssp', fields, context));
    assert.equal(identity.username, 'bob');
    assert.deepEqual(identity.groups, ['engineering']);
  });

  test('transient NameID: the subject comes from the configured attribute', async (t) => {
    if (!ssp) return skipLoudly(t, skipReason);
    const connector = await sspConnector('ssp', { nameIdFormat: 'transient', attributes: { subject: 'uid' } });
    const { context, fields } = await signIn(connector, 'ssp', 'carol');
    const identity = ok(await post(connector, 'ssp', fields, context));
    assert.equal(identity.subject, 'carol');
    assert.equal(identity.upstreamSession!.data.nameIDFormat, 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient');
    assert.deepEqual(identity.groups, [], 'no groups is an empty list');
  });

  test('encrypted assertion: decrypted with the SP key; requireEncryptedAssertions refuses a clear one', async (t) => {
    if (!ssp) return skipLoudly(t, skipReason);
    const connector = await sspConnector('ssp-enc', { requireEncryptedAssertions: true });
    const { context, fields } = await signIn(connector, 'ssp-enc');
    const doc = new DOMParser().parseFromString(xmlOf(fields.SAMLResponse), 'text/xml');
    assert.equal(elements(doc, A, 'EncryptedAssertion').length, 1);
    assert.equal(elements(doc, A, 'Assertion').length, 0, 'nothing in clear text');
    const identity = ok(await post(connector, 'ssp-enc', fields, context));
    assert.equal(identity.username, 'alice');
    assert.ok(identity.upstreamSession?.id);

    const plain = await sspConnector('ssp', { requireEncryptedAssertions: true });
    const clear = await signIn(plain, 'ssp');
    refused(await post(plain, 'ssp', clear.fields, clear.context), /^encryption: the assertion is not encrypted/);
  });

  test('an encrypted assertion is checked after decryption: a Recipient that is not our ACS is refused', async (t) => {
    if (!ssp) return skipLoudly(t, skipReason);
    const id = 'ssp-enc-elsewhere';
    const connector = await sspConnector(id, { idpInitiated: { enabled: true, client: 'demo-app' } });
    const agent = new SamlAgent();
    const page = await agent.login(await agent.go(ssp.idpInitiatedUrl(urlsOf(id).metadata)), 'alice', 'alicepass');
    const fields = SamlAgent.form(page.html, page.url)!.fields;
    refused(await post(connector, id, fields, {}, { unsolicited: true }), `destination: the response Destination ${BROKER}/callback/somewhere-else is not ${urlsOf(id).callback}`);
    // Without its Destination, the response signature breaks: a signature that is there must
    // verify, even when the other level's would do.
    const noDestination = mutate(fields.SAMLResponse, (_doc, response) => response.removeAttribute('Destination'));
    refused(await post(connector, id, { ...fields, SAMLResponse: noDestination }, {}, { unsolicited: true }), 'signature: the response signature does not verify with any IdP certificate');
    // Without the response signature as well, the assertion's own signature, inside the
    // encryption, still holds: only our check of the decrypted assertion's
    // SubjectConfirmationData stands in the way.
    const unsignedResponse = mutate(fields.SAMLResponse, (_doc, response) => {
      response.removeAttribute('Destination');
      removeSignatures(response);
    });
    refused(await post(connector, id, { ...fields, SAMLResponse: unsignedResponse }, {}, { unsolicited: true }), /^recipient: SubjectConfirmationData Recipient http:\/\/127\.0\.0\.1:5556\/callback\/somewhere-else/);
  });

  test('metadata from the IdP URL: fetched on first use only, then reused; unreachable means unavailable', async (t) => {
    if (!ssp) return skipLoudly(t, skipReason);
    const fetched: string[] = [];
    const counting: typeof fetch = (input, init) => {
      fetched.push(String(input));
      return fetch(input, init);
    };
    const connector = await connect('ssp', { idp: { metadataUrl: ssp.metadataUrl }, sp: spKeys() }, counting);
    const unreachable = await connect('ssp', { idp: { metadataUrl: `http://127.0.0.1:${await freePort()}/metadata` }, sp: spKeys(), timeoutMs: 2000 }, counting);
    assert.deepEqual(fetched, [], 'create() contacts nobody');
    const { context, fields } = await signIn(connector, 'ssp');
    ok(await post(connector, 'ssp', fields, context));
    assert.deepEqual(fetched, [ssp.metadataUrl], 'one fetch for start and callback');
    await assert.rejects(unreachable.start({ callbackUrl: urlsOf('ssp').callback, state: 's' }), (err: Error) => err.name === 'UpstreamUnavailableError' && /ECONNREFUSED/.test(err.message));
  });

  test('metadata URL refresh: refetched after metadataRefreshMinutes; a failed refresh keeps the last good copy', async (t) => {
    if (!ssp) return skipLoudly(t, skipReason);
    let calls = 0;
    let failing = false;
    const flaky: typeof fetch = async (input, init) => {
      calls++;
      return failing ? new Response('down', { status: 503 }) : fetch(input, init);
    };
    const connector = await connect('ssp', { idp: { metadataUrl: ssp.metadataUrl, metadataRefreshMinutes: 30 }, sp: spKeys() }, flaky);
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
    const start = () => connector.start({ callbackUrl: urlsOf('ssp').callback, state: 's' });
    await start();
    await start();
    assert.equal(calls, 1);
    t.mock.timers.tick(31 * 60_000);
    failing = true;
    assert.ok((await start()).location.startsWith(ssp.ssoUrl), 'the last good copy is used');
    assert.equal(calls, 2);
    await start();
    assert.equal(calls, 2, 'a failed refresh is retried a minute later, not on every request');
    t.mock.timers.tick(61_000);
    failing = false;
    await start();
    assert.equal(calls, 3);
  });

  test('metadata from a file; certificate rollover: any published signing certificate validates', async (t) => {
    if (!ssp) return skipLoudly(t, skipReason);
    const file = path.join(dir, 'idp-metadata.xml');
    fs.writeFileSync(file, ssp.metadataXml);
    const fromFile = await connect('ssp', { idp: { metadataFile: file }, sp: spKeys() });
    const a = await signIn(fromFile, 'ssp');
    ok(await post(fromFile, 'ssp', a.fields, a.context));

    const body = (pem: string) => pem.replace(/-----[^-]+-----|\s+/g, '');
    const realCert = body(ssp.certPem);
    const fresh = `<md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="${DS}"><ds:X509Data><ds:X509Certificate>${body(unrelated.certificatePem)}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>`;
    const twoCerts = ssp.metadataXml.replace('<md:KeyDescriptor', `${fresh}<md:KeyDescriptor`);
    assert.ok(twoCerts.indexOf(body(unrelated.certificatePem)) < twoCerts.indexOf(realCert), 'the unrelated certificate comes first');
    const rollover = await connect('ssp', { idp: { metadataXml: twoCerts }, sp: spKeys() });
    const b = await signIn(rollover, 'ssp');
    ok(await post(rollover, 'ssp', b.fields, b.context));

    const onlyUnrelated = await connect('ssp', { idp: { metadataXml: ssp.metadataXml.split(realCert).join(body(unrelated.certificatePem)) }, sp: spKeys() });
    const c = await signIn(onlyUnrelated, 'ssp');
    refused(await post(onlyUnrelated, 'ssp', c.fields, c.context), /^signature: /);
  });

  test('IdP-initiated sign-in: accepted only with idpInitiated enabled, and without InResponseTo', async (t) => {
    if (!ssp) return skipLoudly(t, skipReason);
    const agent = new SamlAgent();
    const page = await agent.login(await agent.go(ssp.idpInitiatedUrl(urlsOf('ssp').metadata)), 'alice', 'alicepass');
    const form = SamlAgent.form(page.html, page.url)!;
    assert.equal(form.action, urlsOf('ssp').callback);
    assert.equal(new DOMParser().parseFromString(xmlOf(form.fields.SAMLResponse), 'text/xml').documentElement.getAttribute('InResponseTo'), '', 'unsolicited');

    const off = await sspConnector('ssp');
    assert.equal(off.unsolicited, undefined);
    refused(await post(off, 'ssp', form.fields, {}, { unsolicited: true }), 'unsolicited response but idpInitiated is off');
    const on = await sspConnector('ssp', { idpInitiated: { enabled: true, client: 'demo-app' } });
    assert.deepEqual(on.unsolicited, { client: 'demo-app' });
    refused(await post(on, 'ssp', form.fields, { requestId: '_someRequest', issuedAt: new Date().toISOString() }), /^in_response_to: the response has no InResponseTo/);
    const identity = ok(await post(on, 'ssp', form.fields, {}, { unsolicited: true }));
    assert.equal(identity.username, 'alice');
    // The IdP used the SP's default NameID format (emailAddress) here.
    assert.equal(identity.subject, 'alice@example.org');

    const solicited = await signIn(on, 'ssp');
    refused(await post(on, 'ssp', solicited.fields, {}, { unsolicited: true }), /^in_response_to: an unsolicited response must not answer a request/);
  });
});

describe('saml connector: refusing SimpleSAMLphp responses that were tampered with', () => {
  test('control: re-serializing a response with xmldom keeps it valid', async (t) => {
    if (!ssp) return skipLoudly(t, skipReason);
    const connector = await sspConnector('ssp');
    const { context, fields } = await signIn(connector, 'ssp');
    ok(await post(connector, 'ssp', { ...fields, SAMLResponse: mutate(fields.SAMLResponse, () => undefined) }, context));
  });

  test('a tampered attribute value breaks the signature', async (t) => {
    if (!ssp) return skipLoudly(t, skipReason);
    const connector = await sspConnector('ssp');
    const { context, fields } = await signIn(connector, 'ssp');
    const tampered = mutate(fields.SAMLResponse, (doc) => {
      const uid = elements(doc, A, 'AttributeValue').find((v) => v.textContent === 'alice')!;
      uid.textContent = 'root';
    });
    refused(await post(connector, 'ssp', { ...fields, SAMLResponse: tampered }, context), /^signature: /);
  });

  test('wrapping: a second, unsigned assertion appended', async (t) => {
    if (!ssp) return skipLoudly(t, skipReason);
    const connector = await sspConnector('ssp');
    const { context, fields } = await signIn(connector, 'ssp');
    const wrapped = mutate(fields.SAMLResponse, (doc, response) => {
      response.appendChild(forgedCopy(elements(doc, A, 'Assertion')[0]));
    });
    refused(await post(connector, 'ssp', { ...fields, SAMLResponse: wrapped }, context), 'wrapping: 2 assertions in the response');
    // node-saml alone refuses it too: two layers.
    await assert.rejects(nodeSamlAlone('ssp').validatePostResponseAsync({ SAMLResponse: wrapped }), /multiple assertions/);
  });

  test('wrapping: the signed assertion moved into samlp:Extensions, a forged one in its place', async (t) => {
    if (!ssp) return skipLoudly(t, skipReason);
    for (const id of ['ssp', 'ssp-assertion-signed']) {
      const connector = await sspConnector(id);
      const { context, fields } = await signIn(connector, id);
      const wrapped = mutate(fields.SAMLResponse, (doc, response) => {
        const signed = elements(doc, A, 'Assertion')[0];
        removeSignatures(response);
        const extensions = doc.createElementNS(P, 'samlp:Extensions');
        response.insertBefore(extensions, elements(response, P, 'Status')[0]);
        response.replaceChild(forgedCopy(signed), signed);
        extensions.appendChild(signed);
      });
      refused(await post(connector, id, { ...fields, SAMLResponse: wrapped }, context), 'wrapping: 2 assertions in the response');
      await assert.rejects(nodeSamlAlone(id).validatePostResponseAsync({ SAMLResponse: wrapped }), /Invalid signature/);
    }
  });

  test('defence in depth: identity is read only from the assertion whose signature was verified', () => {
    const parse = (xml: string) => new DOMParser().parseFromString(xml, 'text/xml').documentElement;
    const signed = parse(`<saml:Assertion xmlns:saml="${A}" ID="_signed"/>`);
    assert.equal(signedAssertionMismatch(signed, parse(`<saml:Assertion xmlns:saml="${A}" ID="_signed"/>`)), null);
    assert.equal(signedAssertionMismatch(signed, parse(`<saml:Assertion xmlns:saml="${A}" ID="_other"/>`)), 'wrapping: the signed assertion is not the assertion in the response');
    assert.equal(signedAssertionMismatch(parse(`<samlp:Response xmlns:samlp="${P}" ID="_signed"/>`), null), 'wrapping: the signed content is not an assertion');
    assert.equal(signedAssertionMismatch(parse(`<x:Assertion xmlns:x="urn:evil" ID="_signed"/>`), null), 'wrapping: the signed content is not an assertion');
  });

  test('signatures removed: unsigned responses are refused whichever level the IdP signs', async (t) => {
    if (!ssp) return skipLoudly(t, skipReason);
    for (const id of ['ssp', 'ssp-assertion-signed', 'ssp-response-signed']) {
      const connector = await sspConnector(id);
      const { context, fields } = await signIn(connector, id);
      const unsigned = mutate(fields.SAMLResponse, (doc, response) => {
        removeSignatures(response);
        removeSignatures(elements(doc, A, 'Assertion')[0]);
      });
      refused(await post(connector, id, { ...fields, SAMLResponse: unsigned }, context), 'signature: neither the response nor the assertion is signed');
      await assert.rejects(nodeSamlAlone(id).validatePostResponseAsync({ SAMLResponse: unsigned }), /Invalid signature/, 'node-saml, as configured for "either", refuses it too');
    }
  });

  test('signatures: either accepts one level; response / assertion / both demand theirs', async (t) => {
    if (!ssp) return skipLoudly(t, skipReason);
    const attempt = async (id: string, signatures: 'either' | 'response' | 'assertion' | 'both') => {
      const connector = await sspConnector(id, { signatures });
      const { context, fields } = await signIn(connector, id);
      return post(connector, id, fields, context);
    };
    ok(await attempt('ssp-assertion-signed', 'either'));
    ok(await attempt('ssp-response-signed', 'either'));
    ok(await attempt('ssp-assertion-signed', 'assertion'));
    ok(await attempt('ssp-response-signed', 'response'));
    ok(await attempt('ssp', 'both'));
    refused(await attempt('ssp-assertion-signed', 'response'), 'signature: the response is not signed');
    refused(await attempt('ssp-response-signed', 'assertion'), 'signature: the assertion is not signed');
    refused(await attempt('ssp-response-signed', 'both'), 'signature: the assertion is not signed');
    // A signature that is present but broken, at the one level the IdP signs.
    const connector = await sspConnector('ssp-response-signed');
    const { context, fields } = await signIn(connector, 'ssp-response-signed');
    const broken = mutate(fields.SAMLResponse, (doc) => {
      elements(doc, A, 'Audience')[0].textContent += ' ';
    });
    refused(await post(connector, 'ssp-response-signed', { ...fields, SAMLResponse: broken }, context), /^(signature|audience): /);
  });

  test('a response to another request of ours (InResponseTo) is refused', async (t) => {
    if (!ssp) return skipLoudly(t, skipReason);
    const connector = await sspConnector('ssp');
    const other = await connector.start({ callbackUrl: urlsOf('ssp').callback, state: 'other' });
    const { fields } = await signIn(connector, 'ssp');
    refused(await post(connector, 'ssp', fields, other.context), 'in_response_to: the response answers another request');
    refused(await post(connector, 'ssp', fields, {}), 'the login attempt context is incomplete');
  });

  test('DTDs are refused before parsing: billion laughs, external entities, UTF-16, PIs', async (t) => {
    if (!ssp) return skipLoudly(t, skipReason);
    const connector = await sspConnector('ssp');
    const { context, fields } = await signIn(connector, 'ssp');
    const xml = xmlOf(fields.SAMLResponse);
    const laughs = Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i};`.repeat(10)}">`).join('');
    const bomb = `<?xml version="1.0"?><!DOCTYPE samlp:Response [<!ENTITY lol0 "lol">${laughs}]>${xml.replace('>alice<', '>&lol9;<')}`;
    const started = performance.now();
    const result = await post(connector, 'ssp', { ...fields, SAMLResponse: Buffer.from(bomb).toString('base64') }, context);
    assert.ok(performance.now() - started < 200, 'refused without expanding anything');
    refused(result, /^dtd: .*DTD/);
    const xxe = `<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>${xml}`;
    refused(await post(connector, 'ssp', { ...fields, SAMLResponse: Buffer.from(xxe).toString('base64') }, context), /DTD/);
    const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(xxe, 'utf16le')]);
    refused(await post(connector, 'ssp', { ...fields, SAMLResponse: utf16.toString('base64') }, context), 'malformed: not UTF-8 text');
    const pi = `<?xml-stylesheet href="http://evil.example/x.xsl"?>${xml}`;
    refused(await post(connector, 'ssp', { ...fields, SAMLResponse: Buffer.from(pi).toString('base64') }, context), 'malformed: processing instructions are not allowed');
    const huge = Buffer.from(xml.replace('>alice<', `>${'a'.repeat(300 * 1024)}<`)).toString('base64');
    refused(await post(connector, 'ssp', { ...fields, SAMLResponse: huge }, context), /^too large: /);
    // The untouched response still works: nothing above consumed it.
    ok(await post(connector, 'ssp', fields, context));
  });

  test('GET instead of POST, a missing SAMLResponse, a replay', async (t) => {
    if (!ssp) return skipLoudly(t, skipReason);
    const connector = await sspConnector('ssp');
    const { context, fields } = await signIn(connector, 'ssp');
    refused(await post(connector, 'ssp', fields, context, { method: 'GET' }), 'binding: a SAMLResponse must arrive by HTTP POST');
    refused(await post(connector, 'ssp', { RelayState: fields.RelayState }, context), 'no SAMLResponse in the callback');
    const before = Date.now();
    ok(await post(connector, 'ssp', fields, context));
    const assertionId = new DOMParser().parseFromString(xmlOf(fields.SAMLResponse), 'text/xml').getElementsByTagNameNS(A, 'Assertion')[0].getAttribute('ID');
    const expiry = guard.used.get(`saml:ssp:${assertionId}`);
    assert.ok(expiry && expiry.getTime() >= before + 5 * 60_000, 'remembered at least as long as the assertion could be accepted');
    refused(await post(connector, 'ssp', fields, context), 'replayed assertion');
  });
});

/** node-saml on its own, configured as the connector configures it for signatures: either. */
function nodeSamlAlone(id: string): SAML {
  return new SAML({
    callbackUrl: urlsOf(id).callback,
    issuer: urlsOf(id).metadata,
    audience: urlsOf(id).metadata,
    idpCert: [ssp!.certPem],
    wantAuthnResponseSigned: false,
    wantAssertionsSigned: false,
    acceptedClockSkewMs: 60_000,
    validateInResponseTo: ValidateInResponseTo.never,
  });
}

describe('saml connector: validly signed responses with the wrong content (test IdP key)', () => {
  const id = 'forged';
  const urls = urlsOf(id);
  const forged = (extra: Partial<SamlConfigInput> = {}) =>
    connect(id, { idp: { entityId: FORGED_IDP, ssoUrl: 'https://idp.forged.example/sso', certificates: [forger.certificatePem] }, signAuthnRequests: false, ...extra });
  const base = { issuer: FORGED_IDP, audience: urls.metadata, recipient: urls.callback, attributes: { uid: ['frank'], groups: ['ops'] } };
  async function attempt(overrides: Partial<Parameters<typeof forgeResponse>[0]>, config: Partial<SamlConfigInput> = {}) {
    const connector = await forged(config);
    const started = await connector.start({ callbackUrl: urls.callback, state: 's' });
    const requestId = String(started.context.requestId);
    return post(connector, id, { SAMLResponse: forgeResponse({ ...base, inResponseTo: requestId, ...overrides }, forger) }, started.context);
  }
  const minutes = (n: number) => new Date(Date.now() + n * 60_000);

  test('control: a correct forged response is accepted (the forge itself works)', async () => {
    const identity = ok(await attempt({}));
    assert.equal(identity.subject, 'forged-subject-1');
    assert.equal(identity.username, 'frank');
    assert.deepEqual(identity.groups, ['ops'], 'one group is a list of one');
    assert.deepEqual(identity.amr, ['pwd']);
    ok(await attempt({ notOnOrAfter: new Date(Date.now() - 30_000) }), 'within clockSkewSeconds');
    ok(await attempt({ sign: { response: true, assertion: true } }, { signatures: 'both' }));
  });

  test('expired, not yet valid, too old', async () => {
    refused(await attempt({ notOnOrAfter: minutes(-2) }), /^expired: /);
    refused(await attempt({ notBefore: minutes(5) }), /^not yet valid: Conditions NotBefore/);
    refused(await attempt({ authnInstant: minutes(-120) }, { maxAssertionAgeSeconds: 3600 }), /^expired: the sign-in at the IdP \(AuthnInstant\)/);
    refused(await attempt({ issueInstant: minutes(-120), notBefore: minutes(-121) }, { maxAssertionAgeSeconds: 3600 }), /^expired: the assertion was issued longer ago/);
  });

  test('SHA-1 signatures are refused although validly made', async () => {
    refused(await attempt({ algorithm: 'sha1' }), /^signature: weak algorithm http:\/\/www\.w3\.org\/2000\/09\/xmldsig#rsa-sha1/);
    refused(await attempt({ algorithm: 'sha1', sign: { response: true, assertion: false } }), /^signature: weak algorithm/);
  });

  test('wrong audience, Destination, Recipient, Issuer', async () => {
    refused(await attempt({ audience: 'https://other-sp.example/metadata' }), /^audience: the assertion is for https:\/\/other-sp\.example\/metadata/);
    refused(await attempt({ destination: 'https://other-sp.example/acs' }), /^destination: /);
    ok(await attempt({ destination: null }), 'Destination is optional');
    refused(await attempt({ recipient: 'https://other-sp.example/acs', destination: urls.callback }), /^recipient: /);
    refused(await attempt({ issuer: 'https://evil.example/idp' }), /^issuer: /);
  });

  test('signatures: both refuses an assertion-only signature; an unknown key is refused', async () => {
    refused(await attempt({}, { signatures: 'both' }), 'signature: the response is not signed');
    const connector = await forged();
    const started = await connector.start({ callbackUrl: urls.callback, state: 's' });
    const foreign = forgeResponse({ ...base, inResponseTo: String(started.context.requestId) }, unrelated);
    refused(await post(connector, id, { SAMLResponse: foreign }, started.context), /^signature: /);
  });

  test('a forgery is a signature failure, whatever else is wrong with it (foreign key, NotOnOrAfter passed, wrong audience)', async () => {
    const connector = await forged();
    const started = await connector.start({ callbackUrl: urls.callback, state: 's' });
    const send = (samlResponse: string) => post(connector, id, { SAMLResponse: samlResponse }, started.context);
    const stale = { ...base, inResponseTo: String(started.context.requestId), issueInstant: minutes(-15), notBefore: minutes(-20), notOnOrAfter: minutes(-10) };
    // Control: with the IdP's own key, the same content is refused as expired.
    refused(await send(forgeResponse(stale, forger)), /^expired: /);
    // With a foreign key it is a forgery, and reported as one.
    refused(await send(forgeResponse(stale, unrelated)), 'signature: the assertion signature does not verify with any IdP certificate');
    refused(await send(forgeResponse({ ...stale, sign: { response: true, assertion: false } }, unrelated)), 'signature: the response signature does not verify with any IdP certificate');
    refused(await send(forgeResponse({ ...stale, sign: { response: true, assertion: true } }, unrelated)), /^signature: the (response|assertion) signature does not verify/);
    const elsewhere = { ...base, inResponseTo: 'not-ours', issuer: 'https://evil.example/idp', audience: 'https://other-sp.example/metadata', destination: 'https://other-sp.example/acs' };
    refused(await send(forgeResponse(elsewhere, unrelated)), /^signature: /);
    // A signed status is believed only when its signature holds.
    const denied = { code: 'urn:oasis:names:tc:SAML:2.0:status:Responder', second: 'urn:oasis:names:tc:SAML:2.0:status:RequestDenied' };
    refused(await send(forgeResponse({ ...base, inResponseTo: String(started.context.requestId), status: denied, sign: { response: true } }, unrelated)), 'signature: the response signature does not verify with any IdP certificate');
    refused(await send(forgeResponse({ ...base, inResponseTo: String(started.context.requestId), status: denied, sign: { response: true } }, forger)), 'status: Responder/RequestDenied', 'access_denied');
    // When responses must be signed, an unsigned status is not the IdP's word.
    refused(await attempt({ status: denied }, { signatures: 'response' }), 'signature: the response is not signed');
  });

  test('XML bombs are refused by the guard with a reason naming the limit; a realistic large response still signs in', async () => {
    const connector = await forged();
    const started = await connector.start({ callbackUrl: urls.callback, state: 's' });
    const send = (samlResponse: string) => post(connector, id, { SAMLResponse: samlResponse }, started.context);
    refused(await send(bombBase64(deepMessage(25_000, 'Response', FORGED_IDP))), 'too deep: elements nested more than 64 levels');
    refused(await send(bombBase64(wideMessage(60_000, 'Response', FORGED_IDP))), 'too many elements: more than 5000');
    // NUL, control characters and invalid UTF-8: refused as malformed text, before any parser.
    const xml = Buffer.from(forgeResponse({ ...base, inResponseTo: String(started.context.requestId) }, forger), 'base64').toString('utf8');
    refused(await send(bombBase64(xml.replace('forged-subject-1', 'forged\u0000subject'))), 'malformed: NUL character');
    refused(await send(bombBase64(xml.replace('forged-subject-1', 'forged&#0;subject'))), 'malformed: a character reference to a character XML does not allow');
    refused(await send(Buffer.concat([Buffer.from(xml.slice(0, 200)), Buffer.from([0xff, 0xfe]), Buffer.from(xml.slice(200))]).toString('base64')), 'malformed: not UTF-8 text');
    refused(await send('PHI+\u0000'), 'malformed: not base64');
    // A person in 1,015 groups, with more attributes besides: about 1,200 elements, accepted.
    const groups = Array.from({ length: 1015 }, (_, i) => `CN=Group ${i},OU=Groups,DC=corp,DC=example,DC=org`);
    const identity = ok(await attempt({ attributes: { uid: ['frank'], groups } }));
    assert.equal(identity.groups?.length, 1015);
  });

  test('IdP status codes: RequestDenied is access_denied, AuthnFailed an upstream error', async () => {
    const responder = 'urn:oasis:names:tc:SAML:2.0:status:Responder';
    refused(await attempt({ status: { code: responder, second: 'urn:oasis:names:tc:SAML:2.0:status:RequestDenied', message: 'consent declined' } }), 'status: Responder/RequestDenied (consent declined)', 'access_denied');
    refused(await attempt({ status: { code: responder, second: 'urn:oasis:names:tc:SAML:2.0:status:NoPassive' } }), 'status: Responder/NoPassive', 'access_denied');
    refused(await attempt({ status: { code: responder, second: 'urn:oasis:names:tc:SAML:2.0:status:AuthnFailed' } }), 'status: Responder/AuthnFailed');
  });

  test('subject: a transient NameID needs attributes.subject; a missing subject attribute is refused', async () => {
    refused(await attempt({ nameIdFormat: 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient' }), /^subject: the NameID is transient/);
    refused(await attempt({}, { attributes: { subject: 'employeeNumber' } }), 'subject: the assertion has no employeeNumber attribute');
    assert.equal(ok(await attempt({}, { attributes: { subject: 'uid', username: ['urn:oid:0.9.2342.19200300.100.1.1', 'uid'] } })).subject, 'frank');
  });
});

describe('saml connector: refresh, SP metadata', () => {
  test('refresh: bounded by the upstream sign-in age; reauth always; unknown sign-in time means reauth', async () => {
    const idp = { entityId: FORGED_IDP, ssoUrl: 'https://idp.forged.example/sso', certificates: [forger.certificatePem] };
    const identity: UpstreamIdentity = { connectorId: 'r', subject: 'x' };
    const bounded = await connect('r', { idp, signAuthnRequests: false, refresh: { mode: 'bounded', maxAgeSeconds: 3600 } });
    assert.deepEqual(await bounded.refresh!(identity, { authenticatedAt: new Date(Date.now() - 3500_000) }), { ok: true, identity });
    const old = await bounded.refresh!(identity, { authenticatedAt: new Date(Date.now() - 3700_000) });
    assert.equal(!old.ok && old.reason, 'reauth_needed');
    assert.match((!old.ok && old.detail) || '', /older than refresh\.maxAgeSeconds/);
    assert.equal(((await bounded.refresh!(identity)) as { reason?: string }).reason, 'reauth_needed');
    const byDefault = await connect('r', { idp, signAuthnRequests: false });
    assert.equal((await byDefault.refresh!(identity, { authenticatedAt: new Date(Date.now() - 7 * 3600_000) })).ok, true, 'default 8 hours');
    assert.equal((await byDefault.refresh!(identity, { authenticatedAt: new Date(Date.now() - 9 * 3600_000) })).ok, false);
    const reauth = await connect('r', { idp, signAuthnRequests: false, refresh: { mode: 'reauth' } });
    const r = await reauth.refresh!(identity, { authenticatedAt: new Date() });
    assert.equal(!r.ok && r.reason, 'reauth_needed');
  });

  test('metadata(): entityID, ACS, SLO, keys, NameID format; without a key no SLO and no logout', async () => {
    const idp = { entityId: FORGED_IDP, ssoUrl: 'https://idp.forged.example/sso', certificates: [forger.certificatePem] };
    const urls = urlsOf('meta');
    const connector = await connect('meta', { idp, sp: spKeys() });
    const doc = connector.metadata!({ callbackUrl: urls.callback, logoutUrl: urls.logout });
    assert.equal(doc.contentType, 'application/samlmetadata+xml');
    const root = new DOMParser().parseFromString(doc.body, 'text/xml').documentElement;
    const md = 'urn:oasis:names:tc:SAML:2.0:metadata';
    assert.equal(root.getAttribute('entityID'), urls.metadata);
    const descriptor = elements(root, md, 'SPSSODescriptor')[0];
    assert.equal(descriptor.getAttribute('AuthnRequestsSigned'), 'true');
    assert.equal(descriptor.getAttribute('WantAssertionsSigned'), 'true');
    const acs = elements(root, md, 'AssertionConsumerService');
    assert.deepEqual(acs.map((e) => [e.getAttribute('Binding'), e.getAttribute('Location'), e.getAttribute('index')]), [['urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST', urls.callback, '0']]);
    const slo = elements(root, md, 'SingleLogoutService');
    assert.deepEqual(slo.map((e) => e.getAttribute('Binding')!.replace(/.*:/, '')), ['HTTP-Redirect', 'HTTP-POST']);
    assert.ok(slo.every((e) => e.getAttribute('Location') === urls.logout));
    const keys = elements(root, md, 'KeyDescriptor');
    assert.deepEqual(keys.map((k) => k.getAttribute('use')), ['signing', 'encryption']);
    const certBody = sp.certificatePem.replace(/-----[^-]+-----|\s+/g, '');
    assert.ok(keys.every((k) => elements(k, DS, 'X509Certificate')[0].textContent === certBody));
    assert.equal(elements(root, md, 'NameIDFormat')[0].textContent, PERSISTENT);
    // The SAML 2.0 metadata schema's order (SPSSODescriptor: KeyDescriptor*, ..., SingleLogoutService*,
    // ManageNameIDService*, NameIDFormat*, AssertionConsumerService+): validating SPs refuse any other.
    const order = Array.from(descriptor.childNodes).filter((n) => n.nodeType === 1).map((n) => (n as Element).localName);
    assert.deepEqual(order, ['KeyDescriptor', 'KeyDescriptor', 'SingleLogoutService', 'SingleLogoutService', 'NameIDFormat', 'AssertionConsumerService']);
    assert.ok(connector.logout);

    const bare = await connect('meta', { idp, signAuthnRequests: false, sp: { entityId: 'urn:example:keybridge' }, nameIdFormat: 'emailAddress', signatures: 'response' });
    const bareRoot = new DOMParser().parseFromString(bare.metadata!({ callbackUrl: urls.callback, logoutUrl: urls.logout }).body, 'text/xml').documentElement;
    assert.equal(bareRoot.getAttribute('entityID'), 'urn:example:keybridge');
    assert.equal(elements(bareRoot, md, 'KeyDescriptor').length, 0);
    assert.equal(elements(bareRoot, md, 'SingleLogoutService').length, 0);
    assert.equal(elements(bareRoot, md, 'SPSSODescriptor')[0].getAttribute('AuthnRequestsSigned'), 'false');
    assert.equal(elements(bareRoot, md, 'SPSSODescriptor')[0].getAttribute('WantAssertionsSigned'), 'false');
    assert.equal(elements(bareRoot, md, 'NameIDFormat')[0].textContent, 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress');
    const bareDescriptor = elements(bareRoot, md, 'SPSSODescriptor')[0];
    assert.deepEqual(Array.from(bareDescriptor.childNodes).filter((n) => n.nodeType === 1).map((n) => (n as Element).localName), ['NameIDFormat', 'AssertionConsumerService']);
    assert.equal(bare.logout, undefined);
  });
});

describe('saml connector: single logout with SimpleSAMLphp', () => {
  test('Keybridge-initiated: a signed LogoutRequest ends the IdP session; its LogoutResponse comes back ok', async (t) => {
    if (!ssp) return skipLoudly(t, skipReason);
    const connector = await sspConnector('ssp');
    const urls = urlsOf('ssp');
    const { agent, context, fields } = await signIn(connector, 'ssp');
    const identity = ok(await post(connector, 'ssp', fields, context));
    const started = (await connector.logout!.start({ session: identity.upstreamSession!, returnUrl: urls.logout, state: 'logout-state-1' }))!;
    assert.ok(started.location.startsWith(`${ssp.sloUrl}?`));
    assert.ok(new URL(started.location).searchParams.get('Signature'));
    const request = inflateParam(started.location, 'SAMLRequest').documentElement;
    assert.equal(request.getAttribute('ID'), started.context.requestId);
    assert.equal(request.getAttribute('Destination'), ssp.sloUrl);
    assert.equal(elements(request, A, 'NameID')[0].textContent, identity.subject);
    assert.equal(elements(request, A, 'NameID')[0].getAttribute('SPNameQualifier'), urls.metadata);
    assert.equal(elements(request, P, 'SessionIndex')[0].textContent, identity.upstreamSession!.id);

    const back = await agent.go(started.location, { stopAt: (u) => u.startsWith(urls.logout) });
    assert.ok(back.url.startsWith(`${urls.logout}?`), `SimpleSAMLphp answered at ${back.url} (HTTP ${back.status}): ${back.html.slice(0, 300)}`);
    assert.deepEqual(await receiveAt(connector, 'ssp', back.url), { kind: 'response', state: 'logout-state-1', ok: true });
    // The IdP session is gone: the next sign-in asks for the password again.
    const again = await agent.go(ssp.idpInitiatedUrl(urls.metadata));
    assert.match(again.html, /name="password"/);

    const tampered = back.url.replace('RelayState=logout-state-1', 'RelayState=logout-state-2');
    assert.notEqual(tampered, back.url);
    assert.deepEqual(await receiveAt(connector, 'ssp', tampered), { kind: 'invalid', detail: 'signature: the query signature does not verify with any IdP certificate' });
    const unsigned = back.url.replace(/&Signature=[^&]*/, '');
    assert.deepEqual(await receiveAt(connector, 'ssp', unsigned), { kind: 'invalid', detail: 'signature: the message is not signed (no Signature/SigAlg in the query)' });
  });

  test('IdP-initiated: its LogoutRequest names the session; our signed answer is accepted and it goes on to ReturnTo', async (t) => {
    if (!ssp) return skipLoudly(t, skipReason);
    const connector = await sspConnector('ssp');
    const urls = urlsOf('ssp');
    const { agent, context, fields } = await signIn(connector, 'ssp');
    const identity = ok(await post(connector, 'ssp', fields, context));
    const returnTo = `${BROKER}/after-idp-logout`;
    const page = await agent.go(ssp.idpLogoutUrl(returnTo), { stopAt: (u) => u.startsWith(urls.logout) });
    assert.ok(page.url.startsWith(`${urls.logout}?`), `SimpleSAMLphp went to ${page.url} (HTTP ${page.status}): ${page.html.slice(0, 300)}`);
    const message = await receiveAt(connector, 'ssp', page.url);
    assert.equal(message.kind, 'request', JSON.stringify(message));
    if (message.kind !== 'request') return;
    assert.equal(message.subject, identity.upstreamSession!.subject);
    assert.deepEqual(message.sessionIds, [identity.upstreamSession!.id]);

    const answer = await message.respond(true);
    assert.ok(answer.location.startsWith(`${ssp.sloUrl}?`));
    const response = inflateParam(answer.location, 'SAMLResponse').documentElement;
    assert.equal(response.getAttribute('InResponseTo'), inflateParam(page.url, 'SAMLRequest').documentElement.getAttribute('ID'));
    assert.equal(elements(response, P, 'StatusCode')[0].getAttribute('Value'), 'urn:oasis:names:tc:SAML:2.0:status:Success');
    assert.equal(new URL(answer.location).searchParams.get('RelayState'), new URL(page.url).searchParams.get('RelayState'), 'RelayState echoed');
    const done = await agent.go(answer.location, { stopAt: (u) => u.startsWith(returnTo) });
    assert.ok(done.url.startsWith(returnTo), `SimpleSAMLphp did not accept the LogoutResponse: ${done.url} (HTTP ${done.status}) ${done.html.slice(0, 300)}`);
    assert.equal(inflateParam((await message.respond(false)).location, 'SAMLResponse').getElementsByTagNameNS(P, 'StatusCode')[0].getAttribute('Value'), 'urn:oasis:names:tc:SAML:2.0:status:Responder');

    assert.deepEqual(await receiveAt(connector, 'ssp', page.url), { kind: 'invalid', detail: 'replay: this LogoutRequest was already received' });
    const broken = breakSignature(page.url);
    assert.notEqual(broken, page.url);
    assert.deepEqual(await receiveAt(connector, 'ssp', broken), { kind: 'invalid', detail: 'signature: the query signature does not verify with any IdP certificate' });
  });

  test('logout messages from a test IdP: destination, issuer, POST binding, DTD, zip, depth and width bombs refused', async () => {
    const id = 'forged-slo';
    const urls = urlsOf(id);
    const connector = await connect(id, { idp: { entityId: FORGED_IDP, ssoUrl: 'https://idp.forged.example/sso', sloUrl: 'https://idp.forged.example/slo', certificates: [forger.certificatePem] }, sp: spKeys() });
    const request = (extra: Partial<Parameters<typeof logoutRequestXml>[0]> = {}) => logoutRequestXml({ issuer: FORGED_IDP, destination: urls.logout, nameId: 'n-1', sessionIndex: 's-1', ...extra });
    const got = await receiveAt(connector, id, forgeRedirect(urls.logout, 'SAMLRequest', request(), 'rs-1', forger));
    assert.equal(got.kind, 'request');
    if (got.kind === 'request') {
      assert.equal(got.subject, 'n-1');
      assert.deepEqual(got.sessionIds, ['s-1']);
      assert.ok((await got.respond(true)).location.startsWith('https://idp.forged.example/slo?SAMLResponse='));
    }
    const invalid = async (url: string) => {
      const m = await receiveAt(connector, id, url);
      assert.equal(m.kind, 'invalid', JSON.stringify(m));
      return m.kind === 'invalid' ? m.detail : '';
    };
    assert.match(await invalid(forgeRedirect(urls.logout, 'SAMLRequest', request({ destination: 'https://elsewhere.example/slo' }), 'rs', forger)), /^destination: /);
    assert.match(await invalid(forgeRedirect(urls.logout, 'SAMLRequest', request({ issuer: 'https://evil.example/idp' }), 'rs', forger)), /^issuer: /);
    assert.match(await invalid(forgeRedirect(urls.logout, 'SAMLRequest', request({ issueInstant: new Date(Date.now() - 3600_000) }), 'rs', forger)), /^expired: /);
    assert.match(await invalid(forgeRedirect(urls.logout, 'SAMLRequest', request(), 'rs', unrelated)), /^signature: /);
    assert.match(await invalid(forgeRedirect(urls.logout, 'SAMLRequest', `<!DOCTYPE x [<!ENTITY a "b">]>${request()}`, 'rs', forger)), /^dtd: .*DTD/);
    const bomb = Buffer.alloc(50 * 1024 * 1024, 0x20);
    const started = performance.now();
    assert.match(await invalid(forgeRedirect(urls.logout, 'SAMLRequest', bomb, 'rs', forger)), /^too large: inflates past/);
    assert.ok(performance.now() - started < 2000);

    // POST binding: an enveloped XML signature, required.
    const viaPost = (SAMLRequest: string) => connector.logout!.receive({ returnUrl: urls.logout, method: 'POST', params: { SAMLRequest, RelayState: 'rs-post' }, query: '' });
    const signedPost = forgePostMessage(request({ sessionIndex: undefined }), 'LogoutRequest', forger);
    const accepted = await viaPost(signedPost);
    assert.equal(accepted.kind, 'request');
    if (accepted.kind === 'request') assert.equal(accepted.sessionIds, null);
    const tamperedPost = Buffer.from(Buffer.from(forgePostMessage(request(), 'LogoutRequest', forger), 'base64').toString().replace('>n-1<', '>n-2<')).toString('base64');
    assert.deepEqual(await viaPost(tamperedPost), { kind: 'invalid', detail: 'signature: the message signature does not verify with any IdP certificate' });
    assert.deepEqual(await viaPost(Buffer.from(request()).toString('base64')), { kind: 'invalid', detail: 'signature: the message is not signed' });
    // Depth and width bombs, signed or not, in both bindings: the guard refuses them before any parser.
    assert.equal(await invalid(forgeRedirect(urls.logout, 'SAMLRequest', deepMessage(25_000, 'LogoutRequest', FORGED_IDP), 'rs', forger)), 'too deep: elements nested more than 64 levels');
    assert.equal(await invalid(forgeRedirect(urls.logout, 'SAMLRequest', wideMessage(60_000, 'LogoutRequest', FORGED_IDP), 'rs', forger)), 'too many elements: more than 5000');
    assert.deepEqual(await viaPost(bombBase64(deepMessage(25_000, 'LogoutRequest', FORGED_IDP))), { kind: 'invalid', detail: 'too deep: elements nested more than 64 levels' });
    assert.deepEqual(await viaPost(bombBase64(wideMessage(60_000, 'LogoutRequest', FORGED_IDP))), { kind: 'invalid', detail: 'too many elements: more than 5000' });

    // Without an SLO endpoint at the IdP there is nothing to start.
    const noSlo = await connect(id, { idp: { entityId: FORGED_IDP, ssoUrl: 'https://idp.forged.example/sso', certificates: [forger.certificatePem] }, sp: spKeys() });
    assert.equal(await noSlo.logout!.start({ session: { subject: 'n-1', data: { nameID: 'n-1' } }, returnUrl: urls.logout, state: 's' }), null);
  });
});

describe('saml connector: IdP metadata details (test IdP)', () => {
  const body = (pem: string) => pem.replace(/-----[^-]+-----|\s+/g, '');
  const keyInfo = (pem: string) => `<ds:KeyInfo xmlns:ds="${DS}"><ds:X509Data><ds:X509Certificate>${body(pem)}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>`;
  const metadata = () =>
    `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="${FORGED_IDP}">` +
    `<md:IDPSSODescriptor protocolSupportEnumeration="${P}">` +
    `<md:KeyDescriptor>${keyInfo(forger.certificatePem)}</md:KeyDescriptor>` +
    `<md:KeyDescriptor use="encryption">${keyInfo(unrelated.certificatePem)}</md:KeyDescriptor>` +
    `<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://idp.forged.example/slo-post" ResponseLocation="https://idp.forged.example/slo-post-reply"/>` +
    `<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://idp.forged.example/sso-post"/>` +
    `</md:IDPSSODescriptor></md:EntityDescriptor>`;

  test('KeyDescriptor without use signs, use="encryption" does not; bindings are honoured; POST-only single logout', async () => {
    const id = 'forged-md';
    const urls = urlsOf(id);
    const redirectOnly = await connect(id, { idp: { metadataXml: metadata() }, sp: spKeys() });
    await assert.rejects(redirectOnly.start({ callbackUrl: urls.callback, state: 's' }), /no SingleSignOnService for the HTTP-Redirect binding/);
    const connector = await connect(id, { idp: { metadataXml: metadata() }, sp: spKeys(), authnRequestBinding: 'post' });
    const started = await connector.start({ callbackUrl: urls.callback, state: 's' });
    assert.equal(started.location, 'https://idp.forged.example/sso-post');
    const response = (key: ForgeKey) => forgeResponse({ issuer: FORGED_IDP, audience: urls.metadata, recipient: urls.callback, inResponseTo: String(started.context.requestId) }, key);
    refused(await post(connector, id, { SAMLResponse: response(unrelated) }, started.context), /^signature: /);
    ok(await post(connector, id, { SAMLResponse: response(forger) }, started.context));

    const logout = (await connector.logout!.start({ session: { subject: 'n-1', id: 's-1', data: { nameID: 'n-1', sessionIndex: 's-1' } }, returnUrl: urls.logout, state: 'slo-state' }))!;
    assert.equal(logout.location, 'https://idp.forged.example/slo-post');
    assert.equal(logout.form?.RelayState, 'slo-state');
    const xml = xmlOf(logout.form!.SAMLRequest);
    const doc = new DOMParser().parseFromString(xml, 'text/xml');
    assert.equal(doc.documentElement.getAttribute('ID'), logout.context.requestId);
    assert.equal(doc.documentElement.getAttribute('Destination'), 'https://idp.forged.example/slo-post');
    const signature = elements(doc, DS, 'Signature')[0];
    assert.equal(signature.parentNode, doc.documentElement);
    const verifier = new SignedXml({ publicCert: sp.certificatePem });
    verifier.loadSignature(signature);
    assert.equal(verifier.checkSignature(xml), true, 'enveloped signature by the SP key');
    assert.equal(verifier.getReferences()[0].uri, `#${logout.context.requestId}`);
    const tamperedXml = xml.replace('>n-1<', '>n-2<');
    const tamperedVerifier = new SignedXml({ publicCert: sp.certificatePem });
    tamperedVerifier.loadSignature(elements(new DOMParser().parseFromString(tamperedXml, 'text/xml'), DS, 'Signature')[0]);
    assert.equal(tamperedVerifier.checkSignature(tamperedXml), false);

    const incoming = forgePostMessage(logoutRequestXml({ issuer: FORGED_IDP, destination: urls.logout, nameId: 'n-1' }), 'LogoutRequest', forger);
    const message = await connector.logout!.receive({ returnUrl: urls.logout, method: 'POST', params: { SAMLRequest: incoming, RelayState: 'idp-state' }, query: '' });
    assert.equal(message.kind, 'request');
    if (message.kind !== 'request') return;
    const answer = await message.respond(true);
    assert.equal(answer.location, 'https://idp.forged.example/slo-post-reply', 'ResponseLocation');
    assert.equal(answer.form?.RelayState, 'idp-state');
    assert.match(xmlOf(answer.form!.SAMLResponse), /<ds:Signature/);
  });
});

describe('saml connector: config', () => {
  const idp = () => ({ entityId: FORGED_IDP, ssoUrl: 'https://idp.forged.example/sso', certificates: [forger.certificatePem] });
  const issues = (config: unknown) => {
    const parsed = plugin.configSchema.safeParse(config);
    assert.equal(parsed.success, false, 'expected config errors');
    return parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };
  const has = (list: string[], pattern: RegExp) => assert.ok(list.some((l) => pattern.test(l)), `no issue matching ${pattern} in ${JSON.stringify(list)}`);

  test('every problem is reported, with its path', () => {
    has(issues({ idp: {}, signAuthnRequests: false }), /^idp: needs exactly one of metadataUrl/);
    has(issues({ idp: { metadataUrl: 'https://idp.example/md', metadataXml: '<x/>' }, signAuthnRequests: false }), /^idp: has metadataUrl and metadataXml: give exactly one/);
    has(issues({ idp: { ...idp(), metadataFile: '/x.xml' }, signAuthnRequests: false }), /^idp: has metadataFile and entityId\/ssoUrl\/certificates/);
    has(issues({ idp: { entityId: FORGED_IDP, ssoUrl: 'https://idp.example/sso' }, signAuthnRequests: false }), /^idp\.certificates: is required without metadata/);
    has(issues({ idp: { ...idp(), certificates: ['not a certificate'] }, signAuthnRequests: false }), /^idp\.certificates\.0: must be a PEM certificate/);
    has(issues({ idp: { metadataUrl: 'http://idp.example/md' }, signAuthnRequests: false }), /^idp\.metadataUrl: must be an https:\/\//);
    has(issues({ idp: idp(), signAuthnRequests: false, nameIdFormat: 'transient' }), /^attributes\.subject: must name an attribute when nameIdFormat is transient/);
    has(issues({ idp: idp(), signAuthnRequests: false, idpInitiated: { enabled: true } }), /^idpInitiated\.client: is required/);
    has(issues({ idp: idp() }), /^signAuthnRequests: needs sp\.privateKeyFile and sp\.certificateFile/);
    has(issues({ idp: idp(), signAuthnRequests: false, requireEncryptedAssertions: true }), /^requireEncryptedAssertions: needs sp\.decryptionKeyFile/);
    has(issues({ idp: idp(), sp: { privateKeyFile: '/k.pem' }, signAuthnRequests: false }), /^sp\.certificateFile: privateKeyFile and certificateFile go together/);
    has(issues({ idp: idp(), signAuthnRequests: false, clockSkewSeconds: 301 }), /^clockSkewSeconds: /);
    has(issues({ idp: idp(), signAuthnRequests: false, refresh: { mode: 'sometimes' } }), /^refresh/);
    has(issues({ idp: idp(), signAuthnRequests: false, nameIdFormat: 'pairwise' }), /^nameIdFormat: /);
    has(issues({ idp: { ...idp(), metadataRefreshMinutes: 5 }, signAuthnRequests: false }), /^idp\.metadataRefreshMinutes: is only for metadataUrl/);
    has(issues({ idp: idp(), signAuthnRequests: false, extra: true }), /Unrecognized key/);
    // Several at once.
    const many = issues({ idp: {}, nameIdFormat: 'transient', idpInitiated: { enabled: true } });
    assert.ok(many.length >= 4, JSON.stringify(many));
  });

  test('the registry loads the plugin by type name and reports its config problems with paths', async () => {
    const entry = (config: unknown) => ({ id: 'corp', type: 'saml', name: 'Corp', enabled: true, config, origin: 'connectors[0]' });
    const bad = await checkConnectorEntries([entry({ idp: {}, signAuthnRequests: false })]);
    assert.deepEqual(bad.issues.map((i) => i.path), ['connectors[0].config.idp']);
    const good = await checkConnectorEntries([entry({ idp: idp(), signAuthnRequests: false })]);
    assert.deepEqual(good.issues, []);
    assert.equal(good.valid.get('corp')?.plugin, plugin);
  });

  test('defaults', () => {
    const c = plugin.configSchema.parse({ idp: idp(), signAuthnRequests: false });
    assert.equal(c.authnRequestBinding, 'redirect');
    assert.equal(c.nameIdFormat, 'persistent');
    assert.equal(c.signatures, 'either');
    assert.equal(c.clockSkewSeconds, 60);
    assert.equal(c.timeoutMs, 10_000);
    assert.deepEqual(c.refresh, { mode: 'bounded', maxAgeSeconds: 28800 });
    assert.deepEqual(c.idpInitiated, { enabled: false });
    assert.deepEqual(c.attributes, { subject: 'nameid', username: ['uid'], email: ['mail'], emailVerified: false, name: ['displayName', 'cn'], givenName: ['givenName'], familyName: ['sn'], groups: ['groups'] });
  });

  test('create(): unreadable or mismatched key files, bad metadata files stop the connector', async () => {
    await assert.rejects(connect('c', { idp: idp(), sp: { privateKeyFile: path.join(dir, 'missing.key'), certificateFile: sp.certFile } }), /sp\.privateKeyFile: cannot read .*missing\.key: ENOENT/);
    await assert.rejects(connect('c', { idp: idp(), sp: { privateKeyFile: sp.keyFile, certificateFile: unrelated.certFile } }), /sp\.certificateFile: .* does not belong to the key in sp\.privateKeyFile/);
    await assert.rejects(connect('c', { idp: idp(), sp: { privateKeyFile: sp.certFile, certificateFile: sp.certFile } }), /sp\.privateKeyFile: .* is not an unencrypted PEM private key/);
    await assert.rejects(connect('c', { idp: { metadataFile: path.join(dir, 'none.xml') }, signAuthnRequests: false }), /idp\.metadataFile: cannot read/);
    const dtd = path.join(dir, 'dtd.xml');
    fs.writeFileSync(dtd, '<!DOCTYPE x [<!ENTITY a "b">]><md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"/>');
    await assert.rejects(connect('c', { idp: { metadataFile: dtd }, signAuthnRequests: false }), /idp\.metadataFile: metadata refused: dtd/);
    await assert.rejects(connect('c', { idp: { metadataXml: '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"/>' }, signAuthnRequests: false }), /expected one SAML 2.0 identity provider, found 0/);
    // start() refuses a callback URL that is not this connector's ACS.
    const connector = await connect('c', { idp: idp(), signAuthnRequests: false });
    await assert.rejects(connector.start({ callbackUrl: 'https://elsewhere.example/acs', state: 's' }), /is not this connector's ACS URL/);
  });
});

test('the SAML example config is valid', async () => {
  const { loadConfig } = await import('../../src/config/load-config.ts');
  const { checkConnectorEntries } = await import('../../src/connectors/registry.ts');
  const { configConnectorEntries } = await import('../../src/server/connector-entries.ts');
  const { config } = await loadConfig({ path: 'config/examples/saml.yaml', env: { DATABASE_URL: 'postgres://kb@db/kb', PORTAL_SECRET: 'portal-secret-0123456789' } });
  assert.equal(config.clients[0].initiateLoginUri, 'https://portal.example.org/login');
  const { issues } = await checkConnectorEntries(configConnectorEntries(config).filter((e) => e.type === 'saml'));
  assert.deepEqual(issues, []);
});
