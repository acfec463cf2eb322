// Keybridge as a SAML 2.0 identity provider (config `samlIdp`). Prepared once at start-up (the
// signing key, the internal client's secret, the pairwise key, all shared by every instance
// through the database); its routes are mounted on each oidc-provider instance the broker builds.
import { randomBytes } from 'node:crypto';
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import type { Store } from '../storage/store.ts';
import type { KeybridgeAdapter } from '../storage/oidc-adapter.ts';
import type { PageRenderer } from '../http/page-renderer.ts';
import { loadSigningMaterial } from './signing-key.ts';
import { OutboundMessages, type IdpEndpoints } from './outbound.ts';
import { ServiceProviderRegistry } from './service-providers.ts';
import { samlIdpRoutes, type SamlIdpRoutes } from './saml-idp-routes.ts';
import { SAML_IDP_CLIENT_ID } from './saml-idp-config.ts';

export interface SamlIdp {
  endpoints: IdpEndpoints;
  /** Where SPs read our metadata. */
  metadataUrl: string;
  /** The signing certificate (public; the admin API shows its validity). */
  certificatePem: string;
  /** oidc-provider metadata of the internal client (for createProvider's static clients). */
  client: Record<string, unknown>;
  serviceProviders: ServiceProviderRegistry;
  outbound: OutboundMessages;
  routes(deps: { provider: Provider; renderer: PageRenderer }): SamlIdpRoutes;
  /**
   * For loadExistingGrant: the internal client is first-party and needs only `openid`, so a
   * session without its grant yet gets one here; that keeps IsPassive (prompt=none) working for
   * people already signed in through another app.
   */
  grantFor(ctx: KoaContextWithOIDC): Promise<InstanceType<Provider['Grant']> | undefined>;
}

export async function createSamlIdp(deps: { config: Config; store: Store; logger: Logger; records: KeybridgeAdapter; fetch?: typeof fetch }): Promise<SamlIdp> {
  const { config, store } = deps;
  const settings = config.samlIdp;
  const logger = deps.logger.child({ component: 'saml-idp' });
  const endpoints: IdpEndpoints = {
    entityId: settings.entityId ?? `${config.issuer}/saml/idp/metadata`,
    ssoUrl: `${config.issuer}/saml/idp/sso`,
    sloUrl: `${config.issuer}/saml/idp/slo`,
  };
  const continueUrl = `${config.issuer}/saml/idp/continue`;
  const [material, clientSecret, pairwise] = await Promise.all([
    loadSigningMaterial(store, settings.signing, new URL(config.issuer).host),
    store.secrets.getOrCreate('saml-idp-client-secret', () => randomBytes(32).toString('base64url')),
    store.secrets.getOrCreate('saml-idp-pairwise-key', () => randomBytes(32).toString('base64url')),
  ]);
  const outbound = new OutboundMessages({ endpoints, material, signatureAlgorithm: settings.signatureAlgorithm, wantAuthnRequestsSigned: settings.wantAuthnRequestsSigned });
  const serviceProviders = new ServiceProviderRegistry({ configured: settings.serviceProviders, store, logger, fetch: deps.fetch, requireSignedRequests: settings.requireSignedRequests });

  return {
    endpoints,
    metadataUrl: `${config.issuer}/saml/idp/metadata`,
    certificatePem: material.certificatePem,
    outbound,
    serviceProviders,
    client: {
      client_id: SAML_IDP_CLIENT_ID,
      client_secret: clientSecret,
      // The login page says "Sign in to <name>".
      client_name: config.ui.title,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: [continueUrl],
      post_logout_redirect_uris: [],
      scope: 'openid',
      first_party: true,
    },
    routes: ({ provider, renderer }) =>
      samlIdpRoutes({
        provider,
        renderer,
        store,
        logger,
        records: deps.records,
        serviceProviders,
        outbound,
        settings,
        issuer: config.issuer,
        endpoints,
        pairwiseKey: Buffer.from(pairwise, 'base64url'),
        clientId: SAML_IDP_CLIENT_ID,
        continueUrl,
        sessionTtlSeconds: config.tokens.session,
        secureCookies: config.issuer.startsWith('https://'),
      }),
    async grantFor(ctx) {
      const { client, session } = ctx.oidc;
      if (client?.clientId !== SAML_IDP_CLIENT_ID || !session?.accountId) return undefined;
      const grant = new ctx.oidc.provider.Grant({ clientId: SAML_IDP_CLIENT_ID, accountId: session.accountId });
      grant.addOIDCScope('openid');
      await grant.save();
      return grant;
    },
  };
}
