// Upstream MFA at the connectors, against real upstreams: the oidc connector reads amr and acr
// from the verified ID token of a real oidc-provider (test/helpers/upstream-op.ts) and asks for a
// class with acr_values; the saml connector reads the AuthnContextClassRef of a real
// SimpleSAMLphp's assertion and asks for one with RequestedAuthnContext. Each identity then goes
// through upstreamMfaProof as the login's second-factor step will.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { inflateRawSync } from 'node:zlib';
import { DOMParser } from '@xmldom/xmldom';
import pino from 'pino';
import oidcPlugin from '../../connectors/oidc/index.ts';
import type { OidcConfigInput } from '../../connectors/oidc/oidc-config.ts';
import samlPlugin from '../../connectors/saml/index.ts';
import type { SamlConfigInput } from '../../connectors/saml/saml-config.ts';
import type { LoginResult, RedirectConnector, UpstreamIdentity } from '../../src/connectors/contract.ts';
import { connectorUrls, DEFAULT_POLICY, type ConnectorPolicy } from '../../src/connectors/registry.ts';
import { upstreamMfaProof } from '../../src/mfa/upstream-mfa.ts';
import { upstreamMfaSchema } from '../../src/mfa/upstream-mfa-policy.ts';
import { SamlAgent, simpleSamlPhpMissing, startSimpleSamlPhp, type SimpleSamlPhp } from '../helpers/simplesamlphp.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { startUpstreamOp, type UpstreamOp, type UpstreamUser } from '../helpers/upstream-op.ts';

const run = promisify(execFile);
const A = 'urn:oasis:names:tc:SAML:2.0:assertion';
const P = 'urn:oasis:names:tc:SAML:2.0:protocol';
const REFEDS_MFA = 'https://refeds.org/profile/mfa';
const AC_PASSWORD = 'urn:oasis:names:tc:SAML:2.0:ac:classes:Password';
const ACR_MFA = 'urn:example:acr:mfa';
const ACR_PWD = 'urn:example:acr:pwd';

const trusting = (upstreamMfa: { amr?: string[]; acr?: string[] } = {}): ConnectorPolicy => ({ ...DEFAULT_POLICY, trustUpstreamMfa: true, upstreamMfa: upstreamMfaSchema.parse(upstreamMfa) });

function ok(result: LoginResult): UpstreamIdentity {
  assert.ok(result.ok, `expected success, got ${JSON.stringify(result)}`);
  return result.identity;
}

const issuePaths = (result: { success: boolean; error?: { issues: { path: PropertyKey[] }[] } }) => [...new Set((result.error?.issues ?? []).map((i) => i.path.join('.')))].sort();

describe('oidc connector: amr and acr from the upstream, acr_values to it', () => {
  const CALLBACK = 'http://127.0.0.1:5556/callback/upstream';
  const SECRET = 'broker-secret-0123456789';
  let op: UpstreamOp;
  const carol: UpstreamUser = { id: 'carol-0001', username: 'carol', password: 'Carol#Pass1', claims: { preferred_username: 'carol', email: 'carol@example.org' } };

  async function connect(extra: Partial<OidcConfigInput> = {}): Promise<RedirectConnector> {
    const config = oidcPlugin.configSchema.parse({ issuer: op.issuer, clientId: 'broker', clientSecret: SECRET, scopes: ['openid', 'profile', 'email', 'offline_access'], ...extra });
    const urls = connectorUrls('https://broker.example.org', 'upstream');
    return (await oidcPlugin.create({ id: 'upstream', name: 'Upstream', config, logger: pino({ level: 'silent' }), fetch, urls, services: {} as never })) as RedirectConnector;
  }

  async function login(connector: RedirectConnector, authentication: UpstreamUser['authentication']) {
    carol.authentication = authentication;
    const started = await connector.start({ callbackUrl: CALLBACK, state: `state-${Math.random().toString(36).slice(2)}` });
    const back = await op.authorize(started.location, { username: 'carol', password: 'Carol#Pass1' });
    const result = await connector.callback({ callbackUrl: CALLBACK, params: back.params, context: JSON.parse(JSON.stringify(started.context)) });
    return { started, result, received: op.authorizations.at(-1)! };
  }

  before(async () => {
    op = await startUpstreamOp({
      users: [carol],
      clients: [{ client_id: 'broker', client_secret: SECRET, redirect_uris: [CALLBACK], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'] }],
      acrValues: [ACR_PWD, ACR_MFA, 'x'.repeat(300)],
    });
  });
  after(() => op.close());

  test("amr ['pwd','otp'] and an acr: the identity carries both; trusted, they prove a second factor", async () => {
    const identity = ok((await login(await connect(), { amr: ['pwd', 'otp'], acr: ACR_MFA })).result);
    assert.deepEqual(identity.amr, ['pwd', 'otp']);
    assert.equal(identity.acr, ACR_MFA);
    assert.deepEqual(upstreamMfaProof(identity, trusting()), { proved: true, amr: ['fed', 'mfa', 'otp', 'pwd'] });
    assert.deepEqual(upstreamMfaProof({ ...identity, amr: ['pwd'] }, trusting({ acr: [ACR_MFA] })), { proved: true, amr: ['fed', 'mfa', 'pwd'] }, 'by acr alone');
    assert.deepEqual(upstreamMfaProof(identity, DEFAULT_POLICY), { proved: false, amr: ['fed', 'pwd'] }, 'not trusted by default');

    const plain = ok((await login(await connect(), { amr: ['pwd'], acr: ACR_PWD })).result);
    assert.deepEqual(plain.amr, ['pwd']);
    assert.equal(plain.acr, ACR_PWD);
    assert.equal(upstreamMfaProof(plain, trusting({ acr: [ACR_MFA] })).proved, false, 'a password at the upstream needs a local factor');
  });

  test('acrValues are sent as acr_values and the upstream receives them; without, none is sent', async () => {
    const asked = await login(await connect({ acrValues: [ACR_MFA, ACR_PWD] }), { amr: ['pwd', 'hwk'], acr: ACR_MFA });
    assert.equal(new URL(asked.started.location).searchParams.get('acr_values'), `${ACR_MFA} ${ACR_PWD}`);
    assert.equal(asked.received.acr_values, `${ACR_MFA} ${ACR_PWD}`);
    assert.equal(ok(asked.result).acr, ACR_MFA);
    const plain = await login(await connect(), { amr: ['pwd'] });
    assert.equal(new URL(plain.started.location).searchParams.has('acr_values'), false);
    assert.equal(plain.received.acr_values, undefined);
    assert.equal(ok(plain.result).acr, undefined);
  });

  test('malformed amr and acr are ignored or bounded; the login still works', async () => {
    const connector = await connect();
    const number = ok((await login(connector, { amr: 42 })).result);
    assert.equal(number.amr, undefined);
    assert.equal(number.subject, 'carol-0001');
    const text = ok((await login(connector, { amr: 'mfa' })).result);
    assert.equal(text.amr, undefined, 'amr is an array; a bare string is not trusted');
    const many = Array.from({ length: 100 }, (_, i) => `m${i}`);
    assert.deepEqual(ok((await login(connector, { amr: many })).result).amr, many.slice(0, 16));
    const mixed = ok((await login(connector, { amr: [1, { mfa: true }, 'y'.repeat(65), 'otp\u0000', 'pwd'], acr: 'x'.repeat(300) })).result);
    assert.deepEqual(mixed.amr, ['pwd']);
    assert.equal(mixed.acr, undefined, 'an acr over 256 characters');
    assert.equal(upstreamMfaProof(mixed, trusting()).proved, false);
  });

  test('amr and acr come from the ID token only, never from userinfo', async () => {
    carol.claims = { ...carol.claims, amr: ['mfa', 'hwk'], acr: ACR_MFA };
    try {
      const identity = ok((await login(await connect(), { amr: ['pwd'] })).result);
      assert.deepEqual(identity.attributes?.amr, ['mfa', 'hwk'], 'userinfo did say mfa');
      assert.equal(identity.attributes?.acr, ACR_MFA, 'and the acr');
      assert.deepEqual(identity.amr, ['pwd']);
      assert.equal(identity.acr, undefined);
      assert.equal(upstreamMfaProof(identity, trusting({ acr: [ACR_MFA] })).proved, false);
    } finally {
      delete carol.claims.amr;
      delete carol.claims.acr;
    }
  });

  test('refresh keeps the login\'s amr and acr', async () => {
    const connector = await connect();
    const identity = ok((await login(connector, { amr: ['pwd', 'otp'], acr: ACR_MFA })).result);
    assert.ok(identity.tokens?.refreshToken);
    const refreshed = ok(await connector.refresh!(identity));
    assert.notEqual(refreshed.tokens!.refreshToken, identity.tokens!.refreshToken, 'the upstream rotated it');
    assert.deepEqual(refreshed.amr, ['pwd', 'otp']);
    assert.equal(refreshed.acr, ACR_MFA);
  });

  test('acrValues config: bad types and clashes are refused with their paths', () => {
    const base = { issuer: 'https://op.example.com', clientId: 'broker', clientSecret: SECRET };
    assert.deepEqual(issuePaths(oidcPlugin.configSchema.safeParse({ ...base, acrValues: ACR_MFA })), ['acrValues']);
    assert.deepEqual(issuePaths(oidcPlugin.configSchema.safeParse({ ...base, acrValues: [] })), ['acrValues']);
    assert.deepEqual(issuePaths(oidcPlugin.configSchema.safeParse({ ...base, acrValues: ['two words', 7, 'x'.repeat(257), 'nul\u0000'] })), ['acrValues.0', 'acrValues.1', 'acrValues.2', 'acrValues.3']);
    assert.deepEqual(issuePaths(oidcPlugin.configSchema.safeParse({ ...base, acrValues: [ACR_MFA], extraAuthParams: { acr_values: ACR_PWD } })), ['extraAuthParams.acr_values']);
    assert.ok(oidcPlugin.configSchema.safeParse({ ...base, extraAuthParams: { acr_values: ACR_PWD } }).success, 'extraAuthParams alone still may');
    assert.ok(oidcPlugin.configSchema.safeParse({ ...base, acrValues: [ACR_MFA, 'http://schemas.microsoft.com/claims/multipleauthn'] }).success);
  });
});

describe('saml connector: AuthnContextClassRef from SimpleSAMLphp, RequestedAuthnContext to it', () => {
  const BROKER = 'http://127.0.0.1:5556';
  const urlsOf = (id: string) => connectorUrls(BROKER, id);
  let ssp: SimpleSamlPhp | undefined;
  let skipReason = '';
  let dir: string;
  let keyFile: string;
  let certFile: string;

  const connect = async (id: string, extra: Partial<SamlConfigInput> = {}): Promise<RedirectConnector> => {
    const config = samlPlugin.configSchema.parse({ idp: { metadataXml: ssp!.metadataXml }, sp: { privateKeyFile: keyFile, certificateFile: certFile }, ...extra });
    const replayGuard = { firstUse: async () => true };
    return (await samlPlugin.create({ id, name: id, config, logger: pino({ level: 'silent' }), fetch, urls: urlsOf(id), services: { localAccounts: {} as never, replayGuard } })) as RedirectConnector;
  };

  /** start → SimpleSAMLphp's login → its SAMLResponse posted back to the connector. */
  async function signIn(connector: RedirectConnector, id: string) {
    const started = await connector.start({ callbackUrl: urlsOf(id).callback, state: `state-${Math.random().toString(36).slice(2)}` });
    const agent = new SamlAgent();
    const answer = await agent.login(await agent.go(started.location), 'alice', 'alicepass');
    const form = SamlAgent.form(answer.html, answer.url);
    assert.ok(form?.fields.SAMLResponse, `no SAMLResponse (HTTP ${answer.status}): ${answer.html.slice(0, 400)}\n${await ssp!.logs()}`);
    const result = await connector.callback({ callbackUrl: urlsOf(id).callback, method: 'POST', params: form.fields, context: JSON.parse(JSON.stringify(started.context)) });
    return { started, result };
  }

  const requestOf = (location: string) => {
    const xml = inflateRawSync(Buffer.from(new URL(location).searchParams.get('SAMLRequest')!, 'base64')).toString('utf8');
    return new DOMParser().parseFromString(xml, 'text/xml').documentElement;
  };
  const all = (node: Element, ns: string, name: string) => Array.from(node.getElementsByTagNameNS(ns, name) as unknown as ArrayLike<Element>);

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keybridge-upstream-mfa-'));
    keyFile = path.join(dir, 'sp.key');
    certFile = path.join(dir, 'sp.crt');
    await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-sha256', '-nodes', '-days', '2', '-subj', '/CN=keybridge-sp', '-keyout', keyFile, '-out', certFile]);
    const why = simpleSamlPhpMissing();
    if (why) {
      skipReason = why;
      return;
    }
    const certificatePem = fs.readFileSync(certFile, 'utf8');
    const entry = (id: string, extra: object = {}) => ({ entityId: urlsOf(id).metadata, acsUrl: urlsOf(id).callback, signingCertPem: certificatePem, ...extra });
    ssp = await startSimpleSamlPhp({ serviceProviders: [entry('ssp-mfa', { authnContextClassRef: REFEDS_MFA, echoRequestedAuthnContext: true }), entry('ssp-plain')] });
  });

  after(async () => {
    await ssp?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the assertion\'s AuthnContextClassRef is the identity\'s acr; a listed one proves a second factor', async (t) => {
    if (!ssp) return skipLoudly(t, skipReason);
    const mfa = ok((await signIn(await connect('ssp-mfa'), 'ssp-mfa')).result);
    assert.equal(mfa.acr, REFEDS_MFA);
    assert.deepEqual(mfa.amr, ['mfa'], 'the class implies the method');
    assert.deepEqual(upstreamMfaProof(mfa, trusting({ amr: [], acr: [REFEDS_MFA] })), { proved: true, amr: ['fed', 'mfa'] });

    const plain = ok((await signIn(await connect('ssp-plain'), 'ssp-plain')).result);
    assert.equal(plain.acr, AC_PASSWORD, 'SimpleSAMLphp over plain http says Password');
    assert.deepEqual(plain.amr, ['pwd']);
    assert.deepEqual(upstreamMfaProof(plain, trusting({ acr: [REFEDS_MFA] })), { proved: false, amr: ['fed', 'pwd'] });
  });

  test('requestedAuthnContext is sent as RequestedAuthnContext in the signed AuthnRequest, and the IdP accepts it', async (t) => {
    if (!ssp) return skipLoudly(t, skipReason);
    const connector = await connect('ssp-mfa', { requestedAuthnContext: { classRefs: [REFEDS_MFA, AC_PASSWORD], comparison: 'minimum' } });
    const { started, result } = await signIn(connector, 'ssp-mfa');
    const requested = all(requestOf(started.location), P, 'RequestedAuthnContext');
    assert.equal(requested.length, 1);
    assert.equal(requested[0].getAttribute('Comparison'), 'minimum');
    assert.deepEqual(all(requested[0], A, 'AuthnContextClassRef').map((e) => e.textContent), [REFEDS_MFA, AC_PASSWORD]);
    assert.ok(new URL(started.location).searchParams.get('Signature'), 'signed: the IdP requires it');
    const identity = ok(result);
    assert.equal(identity.acr, REFEDS_MFA);
    // What SimpleSAMLphp itself parsed from the request, echoed back in the assertion.
    assert.deepEqual(identity.attributes?.requestedAuthnContextClassRef, [REFEDS_MFA, AC_PASSWORD]);
    assert.equal(identity.attributes?.requestedAuthnContextComparison, 'minimum');
    const unasked = ok((await signIn(await connect('ssp-mfa'), 'ssp-mfa')).result);
    assert.equal(unasked.attributes?.requestedAuthnContextClassRef, undefined, 'the IdP received none');

    const exact = await (await connect('ssp-mfa', { requestedAuthnContext: { classRefs: [REFEDS_MFA] } })).start({ callbackUrl: urlsOf('ssp-mfa').callback, state: 'exact' });
    assert.equal(all(requestOf(exact.location), P, 'RequestedAuthnContext')[0].getAttribute('Comparison'), 'exact', 'exact by default');
    const none = await (await connect('ssp-mfa')).start({ callbackUrl: urlsOf('ssp-mfa').callback, state: 'none' });
    assert.equal(all(requestOf(none.location), P, 'RequestedAuthnContext').length, 0, 'nothing asked unless configured');
  });

  test('a class URI with XML characters is escaped, not injected', async (t) => {
    if (!ssp) return skipLoudly(t, skipReason);
    const hostile = 'urn:x:a"/><saml:AuthnContextClassRef>urn:evil</saml:AuthnContextClassRef><x&y';
    const { started, result } = await signIn(await connect('ssp-mfa', { requestedAuthnContext: { classRefs: [hostile] } }), 'ssp-mfa');
    const refs = all(requestOf(started.location), A, 'AuthnContextClassRef');
    assert.deepEqual(refs.map((e) => e.textContent), [hostile]);
    assert.equal(ok(result).attributes?.requestedAuthnContextClassRef, hostile, 'the IdP read one class, this text');
  });

  test('requestedAuthnContext config: bad types and clashes are refused with their paths', () => {
    const base = { idp: { entityId: 'https://idp.example.org', ssoUrl: 'https://idp.example.org/sso', certificates: [fs.readFileSync(certFile, 'utf8')] }, signAuthnRequests: false };
    const paths = (extra: object) => issuePaths(samlPlugin.configSchema.safeParse({ ...base, ...extra }));
    assert.deepEqual(paths({ requestedAuthnContext: REFEDS_MFA }), ['requestedAuthnContext']);
    assert.deepEqual(paths({ requestedAuthnContext: { classRefs: [] } }), ['requestedAuthnContext.classRefs']);
    assert.deepEqual(paths({ requestedAuthnContext: { classRefs: REFEDS_MFA } }), ['requestedAuthnContext.classRefs']);
    assert.deepEqual(paths({ requestedAuthnContext: { classRefs: ['two words', 5, 'x'.repeat(257), 'nul\u0000'] } }), ['requestedAuthnContext.classRefs.0', 'requestedAuthnContext.classRefs.1', 'requestedAuthnContext.classRefs.2', 'requestedAuthnContext.classRefs.3']);
    assert.deepEqual(paths({ requestedAuthnContext: { classRefs: [REFEDS_MFA], comparison: 'sometimes' } }), ['requestedAuthnContext.comparison']);
    assert.deepEqual(paths({ requestedAuthnContext: { classRefs: [REFEDS_MFA], racComparison: 'exact' } }), ['requestedAuthnContext']);
    assert.deepEqual(paths({ requestedAuthnContext: { classRefs: [REFEDS_MFA] }, authnContext: [AC_PASSWORD] }), ['requestedAuthnContext']);
    assert.deepEqual(paths({ requestedAuthnContext: { classRefs: [REFEDS_MFA], comparison: 'better' } }), []);
  });
});
