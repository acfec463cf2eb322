// The `saml` connector: Keybridge as a SAML 2.0 service provider toward one upstream identity
// provider (AD FS, Entra ID, Okta, Shibboleth, SimpleSAMLphp, ...), on @node-saml/node-saml.
// SP-initiated sign-in (Redirect or POST binding, signed AuthnRequests), optional IdP-initiated
// sign-in, encrypted assertions, single logout both ways, SP metadata, and a replay guard shared
// by every broker instance. A response that fails validation is a result with a `detail` naming
// the reason; only an unreachable IdP (its metadata URL) throws.
import { X509Certificate } from 'node:crypto';
import { TestReport } from '../../src/connectors/test-report.ts';
import type { ConnectorContext, ConnectorPlugin, LoginResult, RedirectConnector, RefreshResult } from '../../src/connectors/contract.ts';
import { acceptableUntil } from './assertion-checks.ts';
import { authnRequest } from './authn-request.ts';
import { identityFromAssertion } from './identity-from-assertion.ts';
import { idpSource } from './idp-source.ts';
import { resolveNameIdFormat, samlConfigSchema, type SamlConfig } from './saml-config.ts';
import { singleLogout } from './single-logout.ts';
import { loadSpKeys } from './sp-keys.ts';
import { spMetadataXml } from './sp-metadata.ts';
import { validateResponse } from './validate-response.ts';

const upstreamError = (detail: string): LoginResult => ({ ok: false, reason: 'upstream_error', detail });
const reauth = (detail: string): RefreshResult => ({ ok: false, reason: 'reauth_needed', detail });

export function createSamlConnector({ id, config: c, logger, fetch: fetchFn, urls, services }: ConnectorContext<SamlConfig>): RedirectConnector {
  // Files are read now, so an unreadable key or metadata file is a start-up problem; the
  // metadata URL is fetched on first use.
  const keys = loadSpKeys(c.sp);
  const idp = idpSource(c, fetchFn, logger);
  const spEntityId = c.sp.entityId ?? urls.metadata;
  const skewMs = c.clockSkewSeconds * 1000;
  const maxAgeMs = c.maxAssertionAgeSeconds === undefined ? undefined : c.maxAssertionAgeSeconds * 1000;

  const connector: RedirectConnector = {
    kind: 'redirect',

    // The connector test: the IdP description (fetched when metadataUrl), then its signing certificates' expiry.
    async test() {
      const report = new TestReport();
      const source = c.idp.metadataUrl !== undefined ? 'idp.metadataUrl' : c.idp.metadataXml !== undefined ? 'idp.metadataXml' : c.idp.metadataFile !== undefined ? 'idp.metadataFile' : 'idp';
      let descriptor: Awaited<ReturnType<typeof idp.current>> | undefined;
      await report.step('metadata', source, async () => {
        descriptor = await idp.current();
        Object.assign(report.found, { entityId: descriptor.entityId, ssoUrl: descriptor.sso.redirect ?? descriptor.sso.post ?? null, singleLogout: descriptor.slo !== null });
        return `IdP ${descriptor.entityId}${c.idp.metadataUrl ? ` from ${c.idp.metadataUrl}` : ''}`;
      });
      await report.step('certificate', source === 'idp' ? 'idp.certificates' : source, async () => {
        const certificates = descriptor!.certificates.map((pem) => new X509Certificate(pem));
        if (!certificates.length) throw new Error('the IdP publishes no signing certificate');
        const expiries = certificates.map((x) => new Date(x.validTo));
        report.found.certificates = certificates.map((x, i) => ({ subject: x.subject, notAfter: expiries[i]!.toISOString() }));
        const latest = Math.max(...expiries.map((d) => d.getTime()));
        if (latest < Date.now()) throw new Error(`every signing certificate has expired (last on ${new Date(latest).toISOString()})`);
        const days = Math.floor((latest - Date.now()) / 86_400_000);
        return `${certificates.length} signing certificate(s); the last expires on ${new Date(latest).toISOString()} (${days} days)`;
      });
      return report.report();
    },

    async start({ callbackUrl, state }) {
      // The IdP sends the response where the request says; it must be this connector's ACS.
      if (callbackUrl !== urls.callback) throw new Error(`callbackUrl ${callbackUrl} is not this connector's ACS URL ${urls.callback}`);
      return authnRequest({ config: c, idp: await idp.current(), spEntityId, callbackUrl, state, key: c.signAuthnRequests ? keys.signing : null });
    },

    async callback({ callbackUrl, method, params, context, unsolicited }) {
      if (unsolicited && !c.idpInitiated.enabled) return upstreamError('unsolicited response but idpInitiated is off');
      if (callbackUrl !== urls.callback) return upstreamError(`destination: the response arrived at ${callbackUrl}, not this connector's ACS URL`);
      if (method !== 'POST') return upstreamError('binding: a SAMLResponse must arrive by HTTP POST');
      const samlResponse = params.SAMLResponse;
      if (typeof samlResponse !== 'string' || !samlResponse) return upstreamError('no SAMLResponse in the callback');
      let requestId: string | null = null;
      let requestIssuedAt: string | null = null;
      if (!unsolicited) {
        if (typeof context.requestId !== 'string' || typeof context.issuedAt !== 'string') return upstreamError('the login attempt context is incomplete');
        requestId = context.requestId;
        requestIssuedAt = context.issuedAt;
      }
      const descriptor = await idp.current();
      const result = await validateResponse(samlResponse, {
        idp: descriptor,
        idpEntityId: descriptor.entityId,
        spEntityId,
        callbackUrl,
        requestId,
        requestIssuedAt,
        skewMs,
        maxAgeMs,
        signatures: c.signatures,
        requireEncryptedAssertions: c.requireEncryptedAssertions,
        decryptionKey: keys.decryption?.privateKeyPem ?? null,
      });
      if (!result.ok) return result;
      const assertion = result.assertion;
      // One use per assertion ID across every instance, for as long as it could be accepted.
      if (!(await services.replayGuard.firstUse(`saml:${id}:${assertion.id}`, acceptableUntil(assertion, skewMs, Date.now())))) {
        return upstreamError('replayed assertion');
      }
      const identity = identityFromAssertion(id, assertion, c.attributes);
      if ('error' in identity) return upstreamError(identity.error);
      logger.debug({ subject: identity.subject, unsolicited: Boolean(unsolicited) }, 'upstream SAML login verified');
      return { ok: true, identity };
    },

    // SAML has no way to ask the IdP about a person later: refresh is bounded by the sign-in's age.
    async refresh(identity, login) {
      if (c.refresh.mode === 'reauth') return reauth('refresh: mode reauth, a new upstream sign-in is needed');
      if (!login) return reauth('refresh: the upstream sign-in time is unknown');
      if (Date.now() - login.authenticatedAt.getTime() >= c.refresh.maxAgeSeconds * 1000) {
        return reauth(`refresh: the upstream sign-in is older than refresh.maxAgeSeconds (${c.refresh.maxAgeSeconds})`);
      }
      return { ok: true, identity };
    },

    metadata({ callbackUrl, logoutUrl }) {
      const body = spMetadataXml({
        entityId: spEntityId,
        callbackUrl,
        logoutUrl,
        signing: keys.signing,
        decryption: keys.decryption,
        authnRequestsSigned: c.signAuthnRequests && keys.signing !== null,
        wantAssertionsSigned: c.signatures !== 'response',
        nameIdFormat: resolveNameIdFormat(c.nameIdFormat),
      });
      return { contentType: 'application/samlmetadata+xml', body };
    },
  };
  if (c.idpInitiated.enabled) connector.unsolicited = { client: c.idpInitiated.client! };
  // Logout messages must be signed, so single logout needs the SP key.
  if (keys.signing) connector.logout = singleLogout({ connectorId: id, spEntityId, idp, key: keys.signing, skewMs, replayGuard: services.replayGuard, logger });
  return connector;
}

const plugin: ConnectorPlugin<SamlConfig> = {
  type: 'saml',
  configSchema: samlConfigSchema,
  about: { label: 'SAML 2.0', test: true, sync: false },
  create: createSamlConnector,
};

export default plugin;
