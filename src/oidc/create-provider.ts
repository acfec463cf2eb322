// Builds the oidc-provider instance: Keybridge supplies storage, accounts, clients, keys and
// pages; every OAuth/OIDC endpoint is oidc-provider's own.
import Provider, { errors, interactionPolicy, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import { ACR_VALUES } from '../login/pipeline.ts';
import { ACTION_PARAM, STEP_UP_REASON } from '../login/step-up.ts';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import type { PageRenderer } from '../http/page-renderer.ts';
import { sendPage } from '../http/send-page.ts';
import { errorPageContext } from '../http/error-pages.ts';
import { DatabaseUnavailable } from '../storage/database-unavailable.ts';
import { pinOrigin } from '../http/canonical-origin.ts';
import { CookieSigner } from '../http/cookie-signer.ts';
import { EXTRA_CLIENT_METADATA, clientMetadata } from './clients.ts';
import { jwtIntrospection } from './jwt-introspection.ts';
import { mappedClaimsByScope, type Mappers } from '../accounts/identity-mappers.ts';
import { ADMIN_SCOPES } from '../admin-api/authenticate-admin.ts';
import { installHashedSecrets } from './hashed-client-secrets.ts';
import { text, type PageText } from '../i18n/page-text.ts';

export interface ProviderDependencies {
  config: Config;
  /** The mappers of every connector (config and stored); default: the config file's. */
  mappers?: readonly Mappers[];
  jwks: { keys: Record<string, unknown>[] };
  cookieKeys: string[];
  adapter: NonNullable<Configuration['adapter']>;
  findAccount: NonNullable<Configuration['findAccount']>;
  renderer: PageRenderer;
  logger: Logger;
  loadExistingGrant: NonNullable<Configuration['loadExistingGrant']>;
  /** Extra claims for access tokens issued to a user (groups, idp). */
  accessTokenClaims: (ctx: KoaContextWithOIDC, accountId: string, sessionUid: string | undefined, scope: string | undefined) => Promise<Record<string, unknown> | undefined>;
  /** Clients Keybridge itself uses (the SAML IdP's internal client), as oidc-provider metadata. */
  internalClients?: Record<string, unknown>[];
  /** Whether a signed-in person still needs a second factor for this request (step-up, src/login/step-up.ts). */
  stepUp?: (ctx: KoaContextWithOIDC) => Promise<boolean>;
}

// Claims grouped by the scope that releases them. `idp`, `amr`, `acr` and `auth_time` ride with
// `openid`: how, when and through which connector the user signed in (a second factor or not)
// is useful to every relying party and reveals nothing personal.
const CLAIMS = {
  openid: ['sub', 'idp', 'amr', 'acr', 'auth_time'],
  profile: ['name', 'given_name', 'family_name', 'preferred_username', 'updated_at'],
  email: ['email', 'email_verified'],
  groups: ['groups'],
  acr: null,
  amr: null,
  auth_time: null,
  sid: null,
  iss: null,
};

/** Lifetimes a stored client may set for itself (client metadata `token_lifetimes`, seconds). */
type TokenLifetimes = { access_token?: number; id_token?: number; refresh_token?: number; client_credentials?: number };
const lifetimeOf = (client: unknown, kind: keyof TokenLifetimes): number | undefined => (client as { token_lifetimes?: TokenLifetimes } | undefined)?.token_lifetimes?.[kind];

/** Scopes the broker offers, admin scopes aside (the default of a client stored without `scopes`). */
export function brokerScopes(config: Config): string[] {
  const claims = claimsByScope(config);
  return [...new Set(['openid', 'offline_access', 'profile', 'email', 'groups', ...Object.keys(claims).filter((k) => claims[k] !== null), ...config.resources.flatMap((r) => r.scopes)])];
}

function claimsByScope(config: Config, mappers: readonly Mappers[] = config.connectors.map((c) => c.mappers)): Record<string, string[] | null> {
  // Claims the connectors' mappers issue join the scope their mapper names.
  const claims: Record<string, string[] | null> = { ...CLAIMS };
  for (const [scope, names] of mappedClaimsByScope(mappers)) {
    claims[scope] = [...new Set([...(claims[scope] ?? []), ...names])];
  }
  return claims;
}

/** The ui_locales of the request behind an oidc-provider page (the device code's, on the device pages). */
function uiLocalesOf(ctx: KoaContextWithOIDC): string | undefined {
  const oidc = ctx.oidc as (KoaContextWithOIDC['oidc'] & { entities?: { DeviceCode?: { params?: Record<string, unknown> } } }) | undefined;
  const value = oidc?.params?.ui_locales ?? oidc?.entities?.DeviceCode?.params?.ui_locales;
  return typeof value === 'string' ? value : undefined;
}

function idTokenDefaultAlg(algorithms: readonly string[]): string {
  // OIDC Core: RS256 is the default when a client registered none; most RPs expect it.
  return algorithms.includes('RS256') ? 'RS256' : algorithms[0];
}

/** The login prompt's reason when the session's account is disabled or deleted. */
export const ACCOUNT_UNAVAILABLE_REASON = 'account_unavailable';

/**
 * oidc-provider's prompts, with the login prompt also asked when the session's account is
 * disabled or gone (findAccount found none: a browser session outlives its account, or the
 * account changed between a login and its resume), and when a second factor is missing (step-up).
 * oidc-provider itself would go on to the consent checks with no account and no grant, and fail
 * on them: every authorization request of that browser a dead end, with an error in the log.
 */
function loginPolicy(stepUp: ProviderDependencies['stepUp']) {
  const policy = interactionPolicy.base();
  policy.get('login')!.checks.add(new interactionPolicy.Check(ACCOUNT_UNAVAILABLE_REASON, 'the signed-in account is disabled or no longer exists', 'login_required', (ctx) => (ctx.oidc.session?.accountId && !ctx.oidc.account ? interactionPolicy.Check.REQUEST_PROMPT : interactionPolicy.Check.NO_NEED_TO_PROMPT)));
  if (stepUp) policy.get('login')!.checks.add(new interactionPolicy.Check(STEP_UP_REASON, 'a second factor is required', async (ctx) => ((await stepUp(ctx)) ? interactionPolicy.Check.REQUEST_PROMPT : interactionPolicy.Check.NO_NEED_TO_PROMPT)));
  return policy;
}

export function createProvider(deps: ProviderDependencies): Provider {
  const { config, renderer, logger } = deps;
  const secure = config.issuer.startsWith('https://');
  const t = config.tokens;
  const resources = new Map(config.resources.map((r) => [r.id, r]));
  const jwtAlg = config.keys.algorithms.includes('ES256') ? 'ES256' : config.keys.algorithms[0];

  const claims = claimsByScope(config, deps.mappers);

  const page = (ctx: KoaContextWithOIDC, name: string, context: Record<string, unknown>, status?: number) => {
    // oidc-provider's own pages (errors, logout, device flow) speak the request's ui_locales.
    ctx.state.uiLocales ??= uiLocalesOf(ctx);
    sendPage(ctx, renderer, name, context, status ?? (ctx.status && ctx.status !== 404 ? ctx.status : 200));
  };

  const configuration: Configuration = {
    adapter: deps.adapter,
    clients: [...config.clients.map(clientMetadata), ...(deps.internalClients ?? [])] as unknown as Configuration['clients'],
    findAccount: deps.findAccount,
    loadExistingGrant: deps.loadExistingGrant,
    jwks: deps.jwks as Configuration['jwks'],
    claims,
    scopes: [...brokerScopes(config), ...ADMIN_SCOPES],
    // ID tokens carry the granted profile, email and groups claims even when an access token
    // is issued too, which is what downstream apps of a broker expect.
    conformIdTokenClaims: false,
    // Browser calls from another origin (CORS): only public clients (PKCE apps, the admin
    // console's token exchange) and userinfo, and only from the origin of one of the client's
    // redirect URIs. Confidential clients call from their servers and need none.
    clientBasedCORS(ctx, origin, client) {
      if (origin === 'null' || (ctx.oidc.route !== 'userinfo' && client.clientAuthMethod !== 'none')) return false;
      return (client.redirectUris ?? []).some((uri) => URL.parse(uri)?.origin === origin);
    },
    // Advertise and accept only what Keybridge's clients can use: the code flow (no implicit or
    // hybrid response types, which no client is registered for, so an RP choosing them from
    // discovery would fail later); shared-secret, public and private_key_jwt clients (no
    // client_secret_jwt: stored clients' secrets are hashed, see hashed-client-secrets.ts).
    responseTypes: ['code'],
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'],
    // Client assertions (private_key_jwt) are signed with the client's own asymmetric keys.
    enabledJWA: { clientAuthSigningAlgValues: ['RS256', 'PS256', 'ES256', 'Ed25519', 'EdDSA'] },
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      id_token_signed_response_alg: idTokenDefaultAlg(config.keys.algorithms) as 'RS256',
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    extraClientMetadata: {
      properties: [...EXTRA_CLIENT_METADATA],
      validator(_ctx, key, value) {
        if (key === 'first_party' && value !== undefined && typeof value !== 'boolean') {
          throw new errors.InvalidClientMetadata('first_party must be a boolean');
        }
        if (key === 'allowed_resources' && value !== undefined && (!Array.isArray(value) || value.some((v) => typeof v !== 'string'))) {
          throw new errors.InvalidClientMetadata('allowed_resources must be an array of strings');
        }
        if (key === 'secret_hashes' && value !== undefined && (!Array.isArray(value) || value.some((v) => typeof v?.hash !== 'string'))) {
          throw new errors.InvalidClientMetadata('secret_hashes must be an array of hashes');
        }
        if (key === 'token_lifetimes' && value !== undefined && (typeof value !== 'object' || value === null || Object.values(value).some((v) => !Number.isSafeInteger(v) || (v as number) <= 0))) {
          throw new errors.InvalidClientMetadata('token_lifetimes must map token kinds to positive whole seconds');
        }
      },
    },
    cookies: {
      // Keygrip's signatures, checked without its slow comparison (src/http/cookie-signer.ts).
      keys: new CookieSigner(deps.cookieKeys) as unknown as string[],
      names: { session: 'kb_session', interaction: 'kb_interaction', resume: 'kb_resume' },
      long: { httpOnly: true, sameSite: 'lax', secure, signed: true },
      short: { httpOnly: true, sameSite: 'lax', secure, signed: true },
    },
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
      policy: loginPolicy(deps.stepUp),
    },
    // ID tokens say whether the login had a second factor (urn:keybridge:mfa) or one (sfa).
    acrValues: ACR_VALUES,
    // The languages pages can be asked for with ui_locales: every catalog (a theme's too).
    discovery: { ui_locales_supported: [...renderer.catalogs.locales] },
    // Application-initiated actions (src/login/step-up.ts).
    extraParams: [ACTION_PARAM],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      userinfo: { enabled: true },
      backchannelLogout: { enabled: true },
      claimsParameter: { enabled: true },
      pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: false },
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx, form) {
          page(ctx, 'logout', { formHtml: form, clientName: ctx.oidc.client?.clientName ?? ctx.oidc.client?.clientId });
        },
        async postLogoutSuccessSource(ctx) {
          page(ctx, 'logout-success', { clientName: ctx.oidc.client?.clientName ?? ctx.oidc.client?.clientId });
        },
      },
      deviceFlow: {
        enabled: true,
        charset: 'base-20',
        mask: '****-****',
        async userCodeInputSource(ctx, form, _out, err) {
          const failure = err as (Error & { userCode?: string }) | undefined;
          let error: PageText | undefined;
          if (failure && (failure.userCode || failure.name === 'NoCodeError')) error = text('device.error.wrong_code');
          else if (failure?.name === 'AbortedError') error = text('device.error.cancelled');
          else if (failure) error = text('device.error.failed');
          page(ctx, 'device-input', { formHtml: form, error, userCode: failure?.userCode });
        },
        async userCodeConfirmSource(ctx, form, client, deviceInfo, userCode) {
          page(ctx, 'device-confirm', {
            formHtml: form,
            client: { id: client.clientId, name: client.clientName },
            userCode,
            deviceInfo,
          });
        },
        async successSource(ctx) {
          page(ctx, 'device-success', { clientName: ctx.oidc.client?.clientName ?? ctx.oidc.client?.clientId });
        },
      },
      resourceIndicators: {
        enabled: true,
        // No default resource: an access token for userinfo needs none, APIs are named by
        // `resource` (oidc-provider's default defaultResource).
        useGrantedResource: () => true,
        async getResourceServerInfo(_ctx, resourceIndicator, client) {
          const resource = resources.get(resourceIndicator);
          const allowed = client.allowed_resources as string[] | undefined;
          if (!resource || (allowed && !allowed.includes(resourceIndicator))) {
            throw new errors.InvalidTarget(`resource ${resourceIndicator} is unknown or not allowed for this client`);
          }
          return {
            scope: resource.scopes.join(' '),
            audience: resource.audience ?? resource.id,
            // JWTs cannot be revoked: short-lived by default (tokens.resourceAccessToken).
            accessTokenTTL: resource.accessTokenTtl ?? t.resourceAccessToken,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: jwtAlg } },
          };
        },
      },
    },
    async extraTokenClaims(ctx, token) {
      const accountId = (token as { accountId?: string }).accountId;
      if (!accountId) return undefined;
      return deps.accessTokenClaims(ctx, accountId, (token as { sessionUid?: string }).sessionUid, (token as { scope?: string }).scope);
    },
    // Refresh tokens rotate on every use; presenting a used one revokes the whole grant.
    rotateRefreshToken: true,
    // Without offline_access the refresh token still works, but ends with the session.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    ttl: {
      // A resource's own lifetime first, then the client's (stored clients may set one), then config.
      AccessToken: (_ctx, token, client) => token.resourceServer?.accessTokenTTL ?? lifetimeOf(client, 'access_token') ?? t.accessToken,
      AuthorizationCode: t.authorizationCode,
      ClientCredentials: (_ctx, token, client) => token.resourceServer?.accessTokenTTL ?? lifetimeOf(client, 'client_credentials') ?? t.clientCredentials,
      DeviceCode: t.deviceCode,
      Grant: t.grant,
      IdToken: (_ctx, _token, client) => lifetimeOf(client, 'id_token') ?? t.idToken,
      Interaction: t.interaction,
      RefreshToken: (_ctx, _token, client) => lifetimeOf(client, 'refresh_token') ?? t.refreshToken,
      Session: t.session,
      BackchannelAuthenticationRequest: 600,
    },
    async renderError(ctx, out, error) {
      const status = (error as { statusCode?: number }).statusCode ?? 400;
      // An unreachable database is logged once per outage where it is detected (database.ts).
      if (status >= 500 && !(error instanceof errors.TemporarilyUnavailable)) logger.error({ err: error }, 'provider error');
      // The person reads what the error code means in their language; the protocol's own
      // description (for the application's developer) stays below it as written.
      const described = typeof out.error === 'string' && renderer.catalogs.has('en', `errors.oauth.${out.error}`);
      const message = text(described ? `errors.oauth.${out.error}` : 'errors.request_invalid');
      page(ctx, 'error', { ...errorPageContext(status, message, out.error), description: status < 500 ? out.error_description : undefined }, status);
    },
  };

  // oidc-provider refuses outbound requests to loopback and private addresses (SSRF defence).
  // Back-channel logout endpoints that the operator put in config are trusted and commonly live
  // on internal networks, so those origins may be reached wherever they resolve.
  const trustedOrigins = new Set(config.clients.flatMap((c) => (c.backchannelLogoutUri ? [new URL(c.backchannelLogoutUri).origin] : [])));
  configuration.fetch = (url, options) => {
    if (trustedOrigins.has(new URL(url instanceof Request ? url.url : url).origin)) {
      const { dispatcher: _ssrfGuard, ...rest } = options as RequestInit & { dispatcher?: unknown };
      return globalThis.fetch(url, rest);
    }
    return globalThis.fetch(url, options);
  };

  const provider = new Provider(config.issuer, configuration);
  installHashedSecrets(provider);
  // Our JWT access tokens answer introspection from their own verification (jwt-introspection.ts).
  provider.use(jwtIntrospection({ issuer: config.issuer, jwks: deps.jwks }));
  pinOrigin(provider, { issuer: config.issuer, trustProxy: config.http.trustProxy, proxyHops: config.http.proxyHops });
  for (const event of ['server_error', 'authorization.error', 'grant.error', 'introspection.error', 'revocation.error', 'userinfo.error', 'end_session.error', 'backchannel.error', 'jwks.error', 'discovery.error', 'registration_create.error', 'pushed_authorization_request.error', 'device_authorization.error'] as const) {
    provider.on(event as 'server_error', (_ctx: unknown, err: Error) => {
      const status = (err as { statusCode?: number }).statusCode ?? 500;
      if (err instanceof DatabaseUnavailable) logger.debug({ event }, 'oidc request refused: database unavailable');
      // An upstream that cannot answer a refresh: refresh-check logged it (warn) already.
      else if (err instanceof errors.TemporarilyUnavailable) logger.debug({ event, description: (err as { error_description?: string }).error_description }, 'oidc request refused: temporarily unavailable');
      else if (status >= 500) logger.error({ err, event }, 'oidc error');
      else logger.debug({ event, error: (err as { error?: string }).error, description: (err as { error_description?: string }).error_description }, 'oidc request rejected');
    });
  }
  return provider;
}
