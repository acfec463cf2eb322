// The connectors' test() capability against real upstreams where they can run here: an OIDC
// provider (discovery, JWKS), a SAML IdP description (certificate expiry) and an unreachable
// metadata URL. LDAP's is exercised against slapd in test/admin-api/connectors-live.test.ts,
// OAuth 2.0's in test/admin-api/connectors.test.ts.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { connectorUrls } from '../../src/connectors/registry.ts';
import type { Connector, ConnectorPlugin } from '../../src/connectors/contract.ts';
import oidcPlugin from '../../connectors/oidc/index.ts';
import samlPlugin from '../../connectors/saml/index.ts';
import { startUpstreamOp, type UpstreamOp } from '../helpers/upstream-op.ts';
import { freePort } from '../helpers/free-port.ts';

async function create(plugin: ConnectorPlugin<never>, config: unknown): Promise<Connector> {
  return plugin.create({
    id: 'probe',
    name: 'probe',
    config: plugin.configSchema.parse(config),
    logger: pino({ level: 'silent' }),
    fetch,
    urls: connectorUrls('http://127.0.0.1:5556', 'probe'),
    services: { localAccounts: {} as never, replayGuard: { firstUse: async () => true } },
  });
}

describe('connector test(): OIDC', () => {
  let op: UpstreamOp;
  before(async () => {
    op = await startUpstreamOp({ users: [], clients: [{ client_id: 'kb', client_secret: 'kb-secret-0123456789', redirect_uris: ['http://127.0.0.1:5556/callback/probe'] }] });
  });
  after(() => op?.close());

  test('discovery and JWKS: ok with the issuer and the number of keys; an unreachable issuer fails at discovery, field issuer', async () => {
    const connector = await create(oidcPlugin as ConnectorPlugin<never>, { issuer: op.issuer, clientId: 'kb', clientSecret: 'kb-secret-0123456789' });
    const report = await connector.test!();
    assert.equal(report.ok, true, JSON.stringify(report));
    assert.deepEqual(report.steps.map((s) => s.name), ['discovery', 'jwks']);
    assert.equal(report.found.issuer, op.issuer);
    assert.ok((report.found.keys as number) >= 1);
    const dead = await create(oidcPlugin as ConnectorPlugin<never>, { issuer: `http://127.0.0.1:${await freePort()}`, clientId: 'kb', clientSecret: 's', timeoutMs: 1000 });
    const failed = await dead.test!();
    assert.equal(failed.ok, false);
    assert.deepEqual(failed.steps.map((s) => [s.name, s.ok, s.field]), [['discovery', false, 'issuer']]);
    assert.ok(!JSON.stringify(failed).includes('kb-secret'), 'no secret in the report');
  });
});

describe('connector test(): SAML', () => {
  let dir: string;
  let certificatePem: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-saml-test-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-sha256', '-nodes', '-days', '30', '-subj', '/CN=probe-idp', '-keyout', path.join(dir, 'k.pem'), '-out', path.join(dir, 'c.pem')], { stdio: 'ignore' });
    certificatePem = fs.readFileSync(path.join(dir, 'c.pem'), 'utf8');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('a described IdP: the certificate and its expiry; an unreachable metadata URL fails at metadata, field idp.metadataUrl', async () => {
    const connector = await create(samlPlugin as ConnectorPlugin<never>, { idp: { entityId: 'https://idp.example/saml', ssoUrl: 'https://idp.example/sso', certificates: [certificatePem] }, signAuthnRequests: false });
    const report = await connector.test!();
    assert.equal(report.ok, true, JSON.stringify(report));
    assert.equal(report.found.entityId, 'https://idp.example/saml');
    const [cert] = report.found.certificates as Array<{ subject: string; notAfter: string }>;
    assert.match(cert!.subject, /probe-idp/);
    const days = (Date.parse(cert!.notAfter) - Date.now()) / 86_400_000;
    assert.ok(days > 29 && days <= 30, `expires in ${days} days`);
    const unreachable = await create(samlPlugin as ConnectorPlugin<never>, { idp: { metadataUrl: `http://127.0.0.1:${await freePort()}/metadata` }, signAuthnRequests: false, timeoutMs: 1000 });
    const failed = await unreachable.test!();
    assert.equal(failed.ok, false);
    assert.deepEqual(failed.steps.map((s) => [s.name, s.ok, s.field]), [['metadata', false, 'idp.metadataUrl']]);
  });
});
