// SAML service providers through the admin API, on PGlite and PostgreSQL: add from metadata XML
// or a metadata URL (a local server), bad metadata refused with the field and the problem, list
// pages, updates with If-Match, config-declared SPs read-only, deletes, an audit entry per change.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { AdminApiClient, adminClientConfig, clientToken, ADMIN_STORES as stores } from '../helpers/admin-api.ts';


const CONFIGURED = 'https://configured.example/sp';

function metadata(entityId: string, acs = `${entityId}/acs`): string {
  return (
    `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="${entityId}">` +
    `<md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">` +
    `<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="${acs}" index="1"/>` +
    `</md:SPSSODescriptor></md:EntityDescriptor>`
  );
}

const path = (entityId: string) => `/saml-service-providers/${encodeURIComponent(entityId)}`;

for (const store of stores) {
  describe(`admin API SAML service providers on ${store.name}`, () => {
    let broker: TestBroker;
    let drop: () => Promise<void> = async () => {};
    let api: AdminApiClient;
    let skipped: string | undefined;
    let metadataServer: Server;
    let metadataBase: string;

    before(async () => {
      const db = await store.url();
      if ('skip' in db) {
        skipped = db.skip;
        return;
      }
      drop = db.drop;
      metadataServer = createServer((req, res) => {
        if (req.url === '/good') {
          res.setHeader('content-type', 'application/samlmetadata+xml');
          res.end(metadata('https://by-url.example/sp'));
        } else {
          res.statusCode = 404;
          res.end();
        }
      });
      await new Promise<void>((resolve) => metadataServer.listen(0, '127.0.0.1', resolve));
      metadataBase = `http://127.0.0.1:${(metadataServer.address() as AddressInfo).port}`;
      broker = await startTestBroker({
        databaseUrl: db.url,
        config: {
          clients: [adminClientConfig('ops'), adminClientConfig('reader', ['admin:read']), adminClientConfig('sp-keeper', ['admin:saml-service-providers:write'])],
          samlIdp: { serviceProviders: [{ entityId: CONFIGURED, name: 'Configured App', metadataXml: metadata(CONFIGURED) }] },
        },
      });
      api = new AdminApiClient(broker.issuer, await clientToken(broker.issuer, 'ops', 'admin:read admin:write'));
    });

    after(async () => {
      await broker?.close();
      await drop();
      await new Promise((resolve) => metadataServer?.close(resolve));
    });

    const live = (t: { skip(msg: string): void }) => {
      if (skipped) skipLoudly(t as never, skipped);
      return !skipped;
    };
    const auditOf = async (type: string, entityId: string) => (await broker.store.audit.query({ type, limit: 100 })).filter((e) => (e.details.target as { id: string }).id === entityId);

    test('401 without a token, 403 without the scope; the per-resource scope opens SPs only', async (t) => {
      if (!live(t)) return;
      assert.equal((await api.get('/saml-service-providers', { token: null })).status, 401);
      const reader = await clientToken(broker.issuer, 'reader', 'admin:read');
      assert.equal((await api.get('/saml-service-providers', { token: reader })).status, 200);
      assert.equal((await api.post('/saml-service-providers', { entityId: 'https://r.example/sp', metadataXml: metadata('https://r.example/sp') }, { token: reader })).status, 403);
      assert.equal(await broker.store.samlServiceProviders.find('https://r.example/sp'), null);
      const keeper = await clientToken(broker.issuer, 'sp-keeper', 'admin:saml-service-providers:write');
      assert.equal((await api.post('/saml-service-providers', { entityId: 'https://k.example/sp', metadataXml: metadata('https://k.example/sp') }, { token: keeper })).status, 201);
      assert.equal((await api.get('/groups', { token: keeper })).status, 403);
    });

    test('add from metadata XML, read it back by its encoded entity ID, update with If-Match, delete; each change audited', async (t) => {
      if (!live(t)) return;
      const id = 'https://app.example/saml/sp?x=1';
      const created = await api.post('/saml-service-providers', { entityId: id, name: 'App', metadataXml: metadata(id) });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal(created.body.source, 'database');
      assert.equal(created.body.readOnly, false);
      assert.equal(created.body.enabled, true);
      assert.deepEqual(created.body.assertionConsumerServices, [`${id}/acs`]);
      assert.equal(created.body.metadata.from, 'xml');
      assert.equal(created.body.metadataXml, undefined, 'the XML is not echoed');
      assert.equal(created.body.warning, undefined);
      const got = await api.get(path(id));
      assert.equal(got.status, 200);
      const etag = got.headers.get('etag')!;
      assert.equal(etag, created.headers.get('etag'));

      const updated = await api.patch(path(id), { name: 'The App', enabled: false, attributes: [{ name: 'mail', from: 'email' }] }, { headers: { 'if-match': etag } });
      assert.equal(updated.status, 200, JSON.stringify(updated.body));
      assert.equal(updated.body.enabled, false);
      assert.deepEqual(updated.body.attributes, [{ name: 'mail', from: 'email' }], 'as given (nameFormat defaults to basic when used)');
      const row = (await broker.store.samlServiceProviders.find(id))!;
      assert.equal(row.enabled, false);
      assert.equal(row.settings.name, 'The App');
      const stale = await api.patch(path(id), { name: 'Lost' }, { headers: { 'if-match': etag } });
      assert.equal(stale.status, 412);
      assert.equal((await broker.store.samlServiceProviders.find(id))!.settings.name, 'The App');

      // Two admins change the same version at once: one wins, the other is told.
      const current = (await api.get(path(id))).headers.get('etag')!;
      const race = await Promise.all(['First', 'Second'].map((name) => api.patch(path(id), { name }, { headers: { 'if-match': current } })));
      assert.deepEqual(race.map((r) => r.status).sort(), [200, 412]);
      assert.equal((await broker.store.samlServiceProviders.find(id))!.settings.name, race.find((r) => r.status === 200)!.body.name);

      const newXml = metadata(id, 'https://app.example/new-acs');
      const replaced = await api.patch(path(id), { metadataXml: newXml, attributes: null });
      assert.deepEqual(replaced.body.assertionConsumerServices, ['https://app.example/new-acs']);
      assert.notEqual(replaced.body.metadata.sha256, updated.body.metadata.sha256);
      assert.equal(replaced.body.attributes, null, 'back to the default attributes');

      const [made] = await auditOf('admin.saml_sp.create', id);
      assert.equal((made.details.actor as { clientId: string }).clientId, 'ops');
      const changes = (await auditOf('admin.saml_sp.update', id)).map((e) => Object.keys(e.details.changes as object).sort());
      assert.deepEqual(changes, [['attributes', 'enabled', 'name'], ['name'], ['attributes', 'metadata']], 'each update names what it changed; the refused ones left nothing');

      assert.equal((await api.delete(path(id), { headers: { 'if-match': etag } })).status, 412);
      assert.equal((await api.delete(path(id))).status, 204);
      assert.equal((await api.delete(path(id))).status, 404, 'a repeated delete is a 404');
      assert.equal((await api.get(path(id))).status, 404);
      assert.equal((await auditOf('admin.saml_sp.delete', id)).length, 1);
    });

    test('bad metadata and bad settings are refused with the field and the problem; nothing is stored', async (t) => {
      if (!live(t)) return;
      const id = 'https://bad.example/sp';
      const refused = async (body: Record<string, unknown>, field: string, message: RegExp) => {
        const res = await api.post('/saml-service-providers', { entityId: id, ...body });
        assert.equal(res.status, 400, JSON.stringify(body).slice(0, 100));
        assert.equal(res.body.errors[0].path, field);
        assert.match(res.body.errors[0].message, message);
      };
      await refused({ metadataXml: 'not xml at all' }, 'body.metadataXml', /root element|not XML/);
      await refused({ metadataXml: metadata('https://other.example/sp') }, 'body.metadataXml', /no EntityDescriptor with entityID "https:\/\/bad\.example\/sp"/);
      await refused({ metadataXml: metadata(id).replace(/<md:AssertionConsumerService[^>]*\/>/, '') }, 'body.metadataXml', /no HTTP-POST AssertionConsumerService/);
      await refused({ metadataXml: `<!DOCTYPE x [<!ENTITY e "boom">]>${metadata(id)}` }, 'body.metadataXml', /refused/);
      await refused({}, 'body.metadataXml', /exactly one/);
      await refused({ metadataXml: metadata(id), metadataUrl: `${metadataBase}/good` }, 'body.metadataXml', /exactly one/);
      await refused({ metadataUrl: 'ftp://files.example/md.xml' }, 'body.metadataUrl', /http\(s\) URL/);
      await refused({ metadataXml: metadata(id), attributes: [{ name: 'x', from: 'password' }] }, 'body.attributes.0.from', /user fields/);
      await refused({ metadataXml: metadata(id), surprise: 1 }, 'body', /unrecognized/i);
      const spaced = await api.post('/saml-service-providers', { entityId: 'has space', metadataXml: metadata('has space') });
      assert.equal(spaced.body.errors[0].path, 'body.entityId');
      const huge = await api.post('/saml-service-providers', { entityId: 'x'.repeat(1025), metadataXml: metadata(id) });
      assert.equal(huge.body.errors[0].path, 'body.entityId');
      assert.equal(await broker.store.samlServiceProviders.find(id), null);
    });

    test('add from a metadata URL: read at once when it answers, stored with a warning when it does not', async (t) => {
      if (!live(t)) return;
      const good = await api.post('/saml-service-providers', { entityId: 'https://by-url.example/sp', metadataUrl: `${metadataBase}/good` });
      assert.equal(good.status, 201);
      assert.equal(good.body.warning, undefined);
      assert.deepEqual(good.body.metadata, { from: 'url', url: `${metadataBase}/good`, sha256: null });
      const wrongEntity = await api.post('/saml-service-providers', { entityId: 'https://not-there.example/sp', metadataUrl: `${metadataBase}/missing` });
      assert.equal(wrongEntity.status, 201);
      assert.match(wrongEntity.body.warning, /HTTP 404/);
      const switched = await api.patch(path('https://not-there.example/sp'), { metadataXml: metadata('https://not-there.example/sp') });
      assert.equal(switched.status, 200);
      assert.deepEqual([switched.body.metadata.from, switched.body.metadata.url], ['xml', null], 'XML replaces the URL');
    });

    test('a config-declared SP is listed read-only; adding, changing or deleting it is a 409', async (t) => {
      if (!live(t)) return;
      const got = await api.get(path(CONFIGURED));
      assert.equal(got.status, 200);
      assert.equal(got.body.source, 'config');
      assert.equal(got.body.readOnly, true);
      assert.equal(got.body.name, 'Configured App');
      for (const res of [
        await api.post('/saml-service-providers', { entityId: CONFIGURED, metadataXml: metadata(CONFIGURED) }),
        await api.patch(path(CONFIGURED), { enabled: false }),
        await api.delete(path(CONFIGURED)),
      ]) {
        assert.equal(res.status, 409);
        assert.match(res.body.detail, /config file/);
      }
      const dup = await api.post('/saml-service-providers', { entityId: 'https://k.example/sp', metadataXml: metadata('https://k.example/sp') });
      assert.equal(dup.status, 409);
      assert.equal(dup.body.code, 'already_exists');
      assert.equal((await api.get(path('https://nowhere.example/sp'))).status, 404);
      assert.equal((await api.patch(path('https://nowhere.example/sp'), { enabled: true })).status, 404);
    });

    test('list: config and stored SPs by entity ID, cursor pages', async (t) => {
      if (!live(t)) return;
      for (const n of ['a', 'b', 'c']) assert.equal((await api.post('/saml-service-providers', { entityId: `https://list-${n}.example/sp`, metadataXml: metadata(`https://list-${n}.example/sp`) })).status, 201);
      const seen: Array<[string, string]> = [];
      let cursor: string | null = null;
      do {
        const res: { status: number; body: { items: Array<{ entityId: string; source: string }>; nextCursor: string | null } } = await api.get(`/saml-service-providers?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
        assert.equal(res.status, 200);
        assert.ok(res.body.items.length <= 2);
        seen.push(...res.body.items.map((i) => [i.entityId, i.source] as [string, string]));
        cursor = res.body.nextCursor;
      } while (cursor);
      const ids = seen.map(([id]) => id);
      assert.deepEqual(ids, [...ids].sort(), 'in entity ID order');
      assert.equal(new Set(ids).size, ids.length, 'none twice');
      for (const expected of [CONFIGURED, 'https://by-url.example/sp', 'https://k.example/sp', 'https://list-a.example/sp', 'https://list-b.example/sp', 'https://list-c.example/sp', 'https://not-there.example/sp']) assert.ok(ids.includes(expected), expected);
      assert.deepEqual(seen.find(([id]) => id === CONFIGURED), [CONFIGURED, 'config']);
      assert.equal((await api.get('/saml-service-providers?limit=500')).body.errors[0].path, 'query.limit');
    });

    test('GET /saml-idp is a 404 saying the IdP is disabled when samlIdp.enabled is false', async (t) => {
      if (!live(t)) return;
      const res = await api.get('/saml-idp');
      assert.equal(res.status, 404);
      assert.match(res.body.detail, /SAML IdP is disabled/);
    });
  });

  describe(`admin API: Keybridge's own SAML IdP on ${store.name}`, () => {
    let broker: TestBroker;
    let drop: () => Promise<void> = async () => {};
    let skipped: string | undefined;

    before(async () => {
      const db = await store.url();
      if ('skip' in db) {
        skipped = db.skip;
        return;
      }
      drop = db.drop;
      broker = await startTestBroker({
        databaseUrl: db.url,
        config: { clients: [adminClientConfig('ops'), adminClientConfig('sp-reader', ['admin:saml-service-providers:read']), adminClientConfig('users-only', ['admin:users:read'])], samlIdp: { enabled: true } },
      });
    });
    after(async () => {
      await broker?.close();
      await drop();
    });

    test('GET /saml-idp: entity ID, endpoints, metadata URL and the published certificate\'s validity, never the key; needs the SP read scope', async (t) => {
      if (skipped) return skipLoudly(t, skipped);
      const api = new AdminApiClient(broker.issuer, await clientToken(broker.issuer, 'sp-reader', 'admin:saml-service-providers:read'));
      const res = await api.get('/saml-idp');
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.entityId, `${broker.issuer}/saml/idp/metadata`);
      assert.equal(res.body.metadataUrl, `${broker.issuer}/saml/idp/metadata`);
      assert.deepEqual(res.body.endpoints, { singleSignOn: `${broker.issuer}/saml/idp/sso`, singleLogout: `${broker.issuer}/saml/idp/slo` });
      // The same certificate the metadata publishes.
      const xml = await (await fetch(res.body.metadataUrl)).text();
      const published = new X509Certificate(Buffer.from(/<ds:X509Certificate>([^<]+)</.exec(xml)![1], 'base64'));
      assert.equal(res.body.signingCertificate.notAfter, new Date(published.validTo).toISOString());
      assert.equal(res.body.signingCertificate.sha256Fingerprint, published.fingerprint256);
      assert.ok(Date.parse(res.body.signingCertificate.notAfter) > Date.now() + 300 * 86_400_000, 'the generated certificate lasts years');
      assert.doesNotMatch(res.text, /PRIVATE KEY|privateKey/i);
      assert.equal((await api.get('/saml-idp', { token: null })).status, 401);
      assert.equal((await api.get('/saml-idp', { token: await clientToken(broker.issuer, 'users-only', 'admin:users:read') })).status, 403);
    });
  });
}
