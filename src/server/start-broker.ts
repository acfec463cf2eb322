// Assembles and starts one broker instance. Instances are stateless: everything they share
// (keys, cookie secrets, sessions, tokens) is in the database, so N of them can run behind a
// load balancer against one PostgreSQL.
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { listenOn } from '../http/listen.ts';
import type Provider from 'oidc-provider';
import type { Grant, KoaContextWithOIDC } from 'oidc-provider';
import type { Middleware as KoaMiddleware } from 'koa';
import { runChain } from '../http/run-chain.ts';
import type { Config } from '../config/schema.ts';
import { ConfigError } from '../errors.ts';
import { createLogger, type Logger } from '../log.ts';
import { openConfiguredDatabase, type Database } from '../storage/database.ts';
import { migrateDatabase } from '../storage/migrate.ts';
import { Store } from '../storage/store.ts';
import { createOidcAdapter, purgeExpired } from '../storage/oidc-adapter.ts';
import { createAccountLookup } from '../storage/account-cache.ts';
import { pgliteStatements } from '../storage/pg-statements.ts';
import { ChangeFeed } from '../storage/change-feed.ts';
import { ConnectorRegistry } from '../connectors/registry.ts';
import { scheduleDirectorySyncs } from '../federation/sync-scheduler.ts';
import type { ConnectorPlugin } from '../connectors/contract.ts';
import { createLocalAccounts } from '../accounts/local-accounts.ts';
import { seedStaticUsers } from '../accounts/seed-static-users.ts';
import { ensureSigningKeys, providerJwks } from '../oidc/signing-keys.ts';
import { createProvider } from '../oidc/create-provider.ts';
import { createFindAccount } from '../oidc/find-account.ts';
import { createLoginSessionLookup } from '../oidc/login-sessions.ts';
import { mappedClaimsByScope } from '../accounts/identity-mappers.ts';
import { createRefreshCheck } from '../oidc/refresh-check.ts';
import { PageRenderer } from '../http/page-renderer.ts';
import { securityHeaders } from '../http/security-headers.ts';
import { staticAssets } from '../http/static-assets.ts';
import { errorPages, unhandledRequests } from '../http/error-pages.ts';
import { localizedProviderFormPost } from '../http/form-post.ts';
import { healthRoutes } from '../http/health-routes.ts';
import { inputGuard } from '../http/input-guard.ts';
import { refreshGrace } from '../storage/refresh-grace.ts';
import { holdAuthorizationWrites, holdInteractionWrites } from '../storage/held-writes.ts';
import { CsrfTokens } from '../http/csrf.ts';
import { BrokerMetrics } from '../metrics/metrics.ts';
import { httpMetrics } from '../metrics/http-metrics.ts';
import { metricsEndpoint, startMetricsServer, type MetricsServer } from '../metrics/metrics-routes.ts';
import { metadataCaching } from '../http/canonical-origin.ts';
import { createRateLimits, type RateLimits } from '../limits/rate-limits.ts';
import { limitRequests } from '../limits/limit-requests.ts';
import { deviceSessionRecovery } from '../oidc/device-session-recovery.ts';
import { adminApi } from '../admin-api/admin-api.ts';
import { adminConsole, adminConsoleClient } from '../admin-console/admin-console.ts';
import { adminRoutes } from '../admin-api/routes/admin-routes.ts';
import { accountApi } from '../account-api/account-api.ts';
import { createLinkFlow } from '../account-api/link-flow.ts';
import { accountConsole, accountConsoleClient, ACCOUNT_CONSOLE_CLIENT_ID } from '../account-console/account-console.ts';
import { createPasswordPolicy } from '../accounts/password-policy.ts';
import { declaredInConfig } from '../accounts/config-users.ts';
import { KEYBRIDGE_VERSION } from '../version.ts';
import { loginRoutes, type LoginProvenance } from '../login/login-routes.ts';
import { createMfaServices, type MfaServices } from '../login/mfa-services.ts';
import { stepUpCheck } from '../login/step-up.ts';
import { upstreamLogoutRoutes } from '../interactions/upstream-logout-routes.ts';
import { SAML_IDP_CLIENT_ID } from '../saml-idp/saml-idp-config.ts';
import { configConnectorEntries, configuredTokenCipher, databaseConnectorEntries } from './connector-entries.ts';
import { watchConnectorChanges, type ConnectorWatch } from './watch-connector-changes.ts';
import { ConnectorService } from '../management/connectors.ts';
import { createEmailServices, type EmailServices } from '../email/email-services.ts';
import { emailRoutes } from '../email/email-routes.ts';
import { reportAppErrors } from '../http/app-errors.ts';
import { createAccountEmails } from '../email/account-emails.ts';
import type { MailTransport } from '../email/mail-transport.ts';

export interface Broker {
  /** Where this instance listens (may differ from the issuer behind a proxy). */
  url: string;
  config: Config;
  store: Store;
  database: Database;
  logger: Logger;
  /** This instance's metrics (null with metrics.enabled: false). */
  metrics: BrokerMetrics | null;
  /** The /metrics URL of the separate listener (`metrics.listen`), else null. */
  metricsUrl: string | null;
  /** Second-factor services (TOTP, WebAuthn, recovery codes, policy) the login pages use. */
  mfa: MfaServices;
  /** Mail, action links and the password policy (src/email); createAccountEmails(email) for the account console. */
  email: EmailServices;
  provider(): Provider;
  /** Re-reads signing keys now (instances also poll); true when they changed. */
  reloadKeys(): Promise<boolean>;
  close(): Promise<void>;
}

export interface StartOptions {
  logger?: Logger;
  /** How often to look for rotated signing keys. */
  keyPollMs?: number;
  /** How often to delete expired tokens and sessions. */
  cleanupMs?: number;
  /** Delay before the first scheduled directory import (default 5 s). */
  syncFirstRunMs?: number;
  /** Connector plugins handed over in code (embedding Keybridge, tests). */
  plugins?: ReadonlyMap<string, ConnectorPlugin>;
  /** How often to look for connectors changed in the database (default 1 s). */
  connectorPollMs?: number;
  /** How long a replaced connector instance lives on for logins in flight (default 60 s). */
  connectorGraceMs?: number;
  /** How mail leaves (default: SMTP from email.smtp, or the log). */
  mailTransport?: MailTransport;
}

/** Claims oidc-provider never asks consent for. */
const ALWAYS_GRANTED_CLAIMS = new Set(['sub', 'sid', 'auth_time', 'acr', 'amr', 'iss']);

/** oidc-provider's machine endpoints (its default routes): no page, console or router of ours answers them. */
const PROTOCOL_API_PATHS = new Set(['/token', '/token/introspection', '/token/revocation', '/me', '/jwks', '/.well-known/openid-configuration']);

export async function startBroker(config: Config, options: StartOptions = {}): Promise<Broker> {
  const logger = options.logger ?? createLogger(config.log.level);
  // The ready line's `ms` counts from process start (module loading included), as users wait.
  const started = performance.now();

  const database = await openConfiguredDatabase(config, config.database.pool, logger);
  let server: http.Server | undefined;
  const timers: NodeJS.Timeout[] = [];
  let registry: ConnectorRegistry | undefined;
  let metricsServer: MetricsServer | undefined;
  let limits: RateLimits | undefined;
  let changes: ChangeFeed | undefined;
  let connectorWatch: ConnectorWatch | undefined;
  let mailer: { stop(): Promise<void> } | undefined;
  try {
    const applied = await migrateDatabase(database);
    if (applied.length) logger.info({ applied }, 'database migrated');
    const metrics = config.metrics.enabled ? new BrokerMetrics() : null;
    metrics?.watchDatabase(database);
    // Runtime-managed objects (clients) changed on any instance reach this one's caches.
    changes = await ChangeFeed.open(database.knex, { url: config.database.url, logger });
    const feed = changes;
    // Hot-path SQL without knex: prepared statements on PostgreSQL, PGlite's own query() embedded.
    const statements = database.pg?.statements ?? pgliteStatements(database.knex);
    const store = new Store(database.knex, { onAuditRecord: metrics?.onAuditRecord, changes: feed, statements });
    limits = await createRateLimits(config, database.knex, logger, statements);
    const rateLimits = limits;
    await rateLimits.ready();
    if (config.issuer.startsWith('https://') && !config.http.trustProxy) {
      logger.warn('the issuer is https but http.trustProxy is false: Keybridge speaks plain HTTP behind a TLS proxy, and without trustProxy every client address (audit log, rate limits) is the proxy\'s. Set http.trustProxy: true (and http.proxyHops) when a proxy is in front.');
    }

    await seedStaticUsers(store, config.users, config.passwordPolicy);
    const tokenCipher = configuredTokenCipher(config);
    const configEntries = configConnectorEntries(config);
    const configIds = new Set(config.connectors.map((c) => c.id));
    // Taken before the load: a change made while loading is seen by the first look.
    const connectorStamp = await store.connectors.changeStamp();
    const dbEntries = await databaseConnectorEntries(database.knex, configIds, tokenCipher);
    registry = await ConnectorRegistry.open([...configEntries, ...dbEntries], {
      logger,
      localAccounts: createLocalAccounts(store),
      issuer: config.issuer,
      replayGuard: { firstUse: (key, expiresAt) => store.replay.firstUse(key, expiresAt) },
      observe: metrics?.observeConnectorCall,
      plugins: options.plugins,
    });
    const connectors = registry;
    metrics?.setConnectors(registry.list().map((c) => c.id));

    await ensureSigningKeys(store, config.keys.algorithms);
    const cookieKeys = config.secrets.cookieKeys ?? (await store.secrets.getOrCreate('cookie-keys', () => [randomBytes(32).toString('base64url')]));
    const csrf = new CsrfTokens(await store.secrets.getOrCreate('csrf-key', () => randomBytes(32).toString('base64url')));
    const renderer = new PageRenderer({ themeDir: config.ui.themeDir, title: config.ui.title, defaultLocale: config.ui.defaultLocale });
    const passwordPolicy = createPasswordPolicy(config.passwordPolicy, store, { declared: declaredInConfig(config) });
    // Mail (outbox worker), registration, password reset and address changes (src/email).
    const email = createEmailServices({ config, store, logger, catalogs: renderer.catalogs, policy: passwordPolicy, connectorName: (id) => connectors.get(id)?.name ?? id, transport: options.mailTransport });
    mailer = email.mailer;
    const accountEmails = createAccountEmails(email);
    const selfService = { registration: config.registration.enabled, passwordReset: email.passwordResetEnabled };

    const logins = createLoginSessionLookup(store.loginSessions);
    // The claims connectors' mappers issue (config and stored connectors), and which scope
    // releases each, for access tokens. A stored connector whose mappers change the claim set
    // rebuilds the provider (its claims configuration), below.
    const connectorMappers = () => connectors.list().map((c) => c.policy.mappers);
    const scopesOfClaims = () => {
      const byClaim = new Map<string, string>();
      for (const [scope, names] of mappedClaimsByScope(connectorMappers())) for (const name of names) byClaim.set(name, scope);
      return byClaim;
    };
    let claimScopes = scopesOfClaims();
    const claimsSignature = () => JSON.stringify([...claimScopes].sort());
    let builtClaims = claimsSignature();
    /** Set once the provider exists: rebuilds it when the mapped claims changed. */
    let afterConnectorReload: () => Promise<void> = async () => {};
    const refreshCheck = createRefreshCheck({ store, registry: () => connectors, logger, tokenCipher, logins });
    const accounts = createAccountLookup(statements);
    const findAccount = createFindAccount({ store, logins, refreshCheck, logger, accounts });
    const initiateLoginUris = new Map(config.clients.flatMap((c) => (c.initiateLoginUri ? [[c.id, c.initiateLoginUri] as const] : [])));
    for (const c of connectors.list()) {
      const client = c.connector.kind === 'redirect' ? c.connector.unsolicited?.client : undefined;
      if (client && !initiateLoginUris.has(client)) {
        throw new ConfigError([{ path: `connectors.${c.id}`, message: `accepts upstream-initiated logins for client "${client}", which must be a configured client with an initiateLoginUri` }]);
      }
    }
    // Stored connectors changed on any instance are reloaded here without a restart.
    let rescheduleSyncs = () => {};
    const reloadConnectors = async () => {
      const entries = [...configEntries, ...(await databaseConnectorEntries(database.knex, configIds, tokenCipher))];
      const changes = await connectors.apply(entries, { graceMs: options.connectorGraceMs });
      for (const f of changes.failed) logger.error({ connector: { id: f.id } }, `stored connector cannot run: ${f.message}`);
      if (changes.added.length || changes.replaced.length || changes.removed.length) {
        metrics?.setConnectors(connectors.list().map((c) => c.id));
        rescheduleSyncs();
        await afterConnectorReload();
        logger.info({ added: changes.added, replaced: changes.replaced, removed: changes.removed }, 'connectors reloaded');
      }
    };
    const connectorService = new ConnectorService({ config, store, cipher: tokenCipher, logger, registry: () => connectors, plugins: options.plugins, afterChange: async () => connectorWatch?.check() });
    const adapter = createOidcAdapter(database.artifacts, { refreshReuseGrace: config.tokens.refreshReuseGrace, statements, changes: feed, singleProcess: database.kind === 'pglite' });
    const upstreamAttempts = new adapter('UpstreamLogin');
    const mfa = await createMfaServices({ config, store, artifacts: upstreamAttempts, logger });
    // Keybridge as a SAML IdP for downstream service providers (src/saml-idp), when enabled.
    // Loaded only when enabled: its XML signature and encryption libraries are a tenth of the
    // modules a start would load otherwise.
    const samlIdp = config.samlIdp.enabled ? await (await import('../saml-idp/saml-idp.ts')).createSamlIdp({ config, store, logger, records: new adapter('SamlIdp') }) : null;
    const consoleClient = adminConsoleClient(config);
    const accountClient = accountConsoleClient(config);
    const internalClients = [...(samlIdp ? [samlIdp.client] : []), ...(consoleClient ? [consoleClient] : []), ...(accountClient ? [accountClient] : [])];
    // The account console's "link another sign-in method" round trips (src/account-api/link-flow.ts).
    const linkFlow = createLinkFlow({ store, logger, issuer: config.issuer, provider: () => provider, registry: () => connectors, attempts: upstreamAttempts, renderer, secureCookies: config.issuer.startsWith('https://') });
    // A login row must outlive every token of its session; grants bound refresh tokens.
    const loginLifetimeMs = (Math.max(config.tokens.session, config.tokens.grant, config.tokens.refreshToken) + 86400) * 1000;

    /**
     * A first-party client (trusted by the operator) shows no consent screen: what it asks for is
     * granted here, as the login resumes, rather than in a consent interaction of its own (one
     * more round of redirects and stored interaction state per login). Requests with
     * authorization_details, and native clients, still go through the consent step.
     */
    const firstPartyGrant = async (ctx: KoaContextWithOIDC, grant: Grant | undefined): Promise<Grant | undefined> => {
      const { client, session, params } = ctx.oidc;
      if (!client || !session?.accountId || !(client as { first_party?: boolean }).first_party) return grant;
      if (params?.authorization_details || client.applicationType === 'native') return grant;
      // What oidc-provider's consent prompt would find missing (its op_scopes_missing,
      // op_claims_missing and rs_scopes_missing checks), added to the grant.
      const target = grant ?? new ctx.oidc.provider.Grant({ accountId: session.accountId, clientId: client.clientId });
      let changed = !grant;
      const scopes = new Set(target.getOIDCScopeEncountered().split(' '));
      const missingScopes = [...ctx.oidc.requestParamOIDCScopes].filter((scope) => !scopes.has(scope));
      if (missingScopes.length) target.addOIDCScope(missingScopes.join(' '));
      const claims = new Set(target.getOIDCClaimsEncountered());
      const missingClaims = [...ctx.oidc.requestParamClaims].filter((claim) => !claims.has(claim) && !ALWAYS_GRANTED_CLAIMS.has(claim));
      if (missingClaims.length) target.addOIDCClaims(missingClaims);
      changed ||= missingScopes.length > 0 || missingClaims.length > 0;
      for (const [indicator, server] of Object.entries(ctx.oidc.resourceServers ?? {})) {
        const granted = new Set(target.getResourceScopeEncountered(indicator).split(' '));
        const missing = [...ctx.oidc.requestParamScopes].filter((scope) => server.scopes.has(scope) && !granted.has(scope));
        if (missing.length) target.addResourceScope(indicator, missing.join(' '));
        changed ||= missing.length > 0;
      }
      if (!changed) return grant;
      await target.save();
      return target;
    };
    const build = (keys: Awaited<ReturnType<typeof store.signingKeys.listPublishable>>): Provider => {
      const provider = createProvider({
        config,
        mappers: connectorMappers(),
        jwks: providerJwks(keys),
        cookieKeys,
        adapter,
        findAccount,
        renderer,
        logger,
        internalClients,
        stepUp: stepUpCheck({ mfa: () => mfa, logins }),
        async accessTokenClaims(ctx, accountId, sessionUid, scope) {
          const account = ctx.oidc.entities.Account as { accountId?: string; groups?: string[]; idp?: string } | undefined;
          const cached = account?.accountId === accountId && account.groups ? account : null;
          // The login row is only needed for what the loaded account lacks: idp, or mapped claims.
          const needLogin = sessionUid && (!cached || claimScopes.size);
          const [groups, login] = await Promise.all([cached?.groups ?? accounts(accountId).then((a) => a?.groups ?? []), needLogin ? logins.find(sessionUid) : null]);
          const idp = cached ? cached.idp : login?.connectorId;
          // Mapped claims ride along only under a scope the token was granted.
          const granted = new Set((scope ?? '').split(' '));
          const mapped = Object.entries(login?.claims ?? {}).filter(([name]) => granted.has(claimScopes.get(name) ?? ''));
          return { groups, ...(idp ? { idp } : {}), ...Object.fromEntries(mapped) };
        },
        async loadExistingGrant(ctx: KoaContextWithOIDC) {
          // Right after a login interaction: remember which connector signed this session in.
          const provenance = (ctx.oidc.result as { keybridge?: LoginProvenance } | undefined)?.keybridge;
          const { session } = ctx.oidc;
          if (provenance && session?.accountId) {
            await logins.record({
              sessionUid: session.uid,
              userId: session.accountId,
              connectorId: provenance.connectorId,
              federatedIdentityId: provenance.federatedIdentityId,
              amr: provenance.amr,
              claims: provenance.claims ?? {},
              expiresAt: new Date(Date.now() + loginLifetimeMs),
              // A step-up keeps the time the person last signed in (src/login/pipeline.ts finishLogin).
              authenticatedAt: provenance.authenticatedAt ? new Date(provenance.authenticatedAt) : new Date(),
              upstreamSession: provenance.upstreamSession ?? null,
              ip: ctx.ip,
              userAgent: ctx.get('user-agent'),
            });
          }
          const grantId = (ctx.oidc.result as { consent?: { grantId?: string } } | undefined)?.consent?.grantId ?? session?.grantIdFor(ctx.oidc.client!.clientId);
          if (!grantId && samlIdp && ctx.oidc.client?.clientId === SAML_IDP_CLIENT_ID) return samlIdp.grantFor(ctx);
          const grant = grantId ? await ctx.oidc.provider.Grant.find(grantId) : undefined;
          return firstPartyGrant(ctx, grant);
        },
      });
      // Before oidc-provider's callback() is made: Koa then leaves these to us instead of printing them.
      // The provider is the Koa app itself (its deprecated `.app` getter printed a warning at every start).
      reportAppErrors(provider, logger);
      if (metrics) {
        // First in the chain: it times and labels every response, errors included.
        provider.use(httpMetrics(metrics));
        metrics.observeProvider(provider);
      }
      provider.use(securityHeaders());
      if (metrics && !config.metrics.listen) provider.use(metricsEndpoint(metrics, { token: config.metrics.token }));
      provider.use(metadataCaching());
      provider.use(errorPages(renderer, logger));
      // Floods are refused before their bodies are even read.
      provider.use(limitRequests({ limits: rateLimits, store, renderer, logger }));
      // Hostile text and oversized bodies are refused before anything parses or stores them.
      provider.use(inputGuard());
      provider.use(refreshGrace(database.artifacts));
      // A login's grant and code are saved with its session, in one statement.
      provider.use(holdAuthorizationWrites());
      // A login's small writes (forgetting its failures) go with its form post's next save.
      provider.use(holdInteractionWrites());
      // The pages, consoles and routers below never answer the token endpoints, userinfo or the
      // keys: those requests skip them (a dozen middleware and three routers' path matching).
      // (Routers are middleware with a narrower context type.)
      const pages: KoaMiddleware<any, any>[] = [];
      provider.use((ctx, next) => (PROTOCOL_API_PATHS.has(ctx.path) ? next() : runChain(pages, ctx, next)));
      pages.push(unhandledRequests(renderer));
      pages.push(localizedProviderFormPost(renderer));
      pages.push(deviceSessionRecovery());
      pages.push(adminApi({ config, store, logger, limits: rateLimits, provider, version: KEYBRIDGE_VERSION, routes: adminRoutes({ config, store, passwordPolicy, afterKeyRotation: () => reloadKeys(), provider, logger, internalClients, validateClientMetadata: (m) => provider.Client.validate(m as never), connectors: connectorService, samlIdp: samlIdp ? { ...samlIdp.endpoints, metadataUrl: samlIdp.metadataUrl, certificatePem: samlIdp.certificatePem } : null }) }));
      pages.push(adminConsole({ config }));
      if (config.account.enabled) {
        pages.push(accountApi({ config, store, logger, limits: rateLimits, provider, clientId: ACCOUNT_CONSOLE_CLIENT_ID, registry: () => connectors, mfa, passwordPolicy, accountEmails, linkTickets: linkFlow.tickets, localeOf: (acceptLanguage) => renderer.catalogs.negotiate({ acceptLanguage }) }));
        pages.push(linkFlow.routes);
        pages.push(accountConsole({ config, catalogs: renderer.catalogs }));
      }
      pages.push(staticAssets({ themeDir: config.ui.themeDir }));
      pages.push(healthRoutes(database.knex).routes());
      const samlIdpRoutes = samlIdp?.routes({ provider, renderer });
      const upstreamLogout = upstreamLogoutRoutes({ provider, issuer: config.issuer, records: upstreamAttempts, store, registry: () => connectors, renderer, logger, signOutServiceProviders: samlIdpRoutes?.signOutServiceProviders });
      pages.push(upstreamLogout.onSignOut);
      pages.push(upstreamLogout.router.routes());
      const loginDeps = { provider, issuer: config.issuer, upstreamAttempts, store, registry: () => connectors, renderer, csrf, logger, tokenCipher, initiateLoginUris, secureCookies: config.issuer.startsWith('https://'), limits: rateLimits, mfa, passwordPolicy, selfService };
      const interactions = loginRoutes(loginDeps);
      pages.push(emailRoutes(loginDeps, email).routes());
      pages.push(interactions.routes());
      pages.push(interactions.allowedMethods());
      if (samlIdpRoutes) pages.push(samlIdpRoutes.router.routes());
      return provider;
    };

    let fingerprint = await store.signingKeys.fingerprint();
    let provider = build(await store.signingKeys.listPublishable());
    let handler = provider.callback();

    const reloadKeys = async (): Promise<boolean> => {
      const next = await store.signingKeys.fingerprint();
      if (next === fingerprint) return false;
      await ensureSigningKeys(store, config.keys.algorithms);
      const keys = await store.signingKeys.listPublishable();
      fingerprint = await store.signingKeys.fingerprint();
      provider = build(keys);
      handler = provider.callback();
      logger.info({ kids: keys.map((k) => `${k.kid}:${k.status}`) }, 'signing keys reloaded');
      return true;
    };

    afterConnectorReload = async () => {
      claimScopes = scopesOfClaims();
      const now = claimsSignature();
      if (now === builtClaims) return;
      builtClaims = now;
      provider = build(await store.signingKeys.listPublishable());
      handler = provider.callback();
      logger.info({ claims: Object.fromEntries(claimScopes) }, 'claims of connector mappers changed: provider rebuilt');
    };

    server = http.createServer((req, res) => handler(req, res));
    server.keepAliveTimeout = 65_000;
    const srv = server;
    const url = await listenOn(srv, config.http.listen);
    if (metrics && config.metrics.listen) metricsServer = await startMetricsServer(metrics, { listen: config.metrics.listen, token: config.metrics.token, logger });
    const metricsListener = metricsServer;

    const every = (ms: number, what: string, fn: () => Promise<unknown>) => {
      const timer = setInterval(() => {
        fn().catch((err) => logger.warn({ err }, `${what} failed`));
      }, ms);
      timer.unref();
      timers.push(timer);
    };
    every(options.keyPollMs ?? 30_000, 'signing key poll', reloadKeys);
    every(options.cleanupMs ?? 10 * 60_000, 'expired data clean-up', async () => {
      const purged = await purgeExpired(database.artifacts);
      const loginsPurged = await store.loginSessions.deleteExpired();
      const replayPurged = await store.replay.deleteExpired();
      const limitsPurged = await rateLimits.sweep();
      const samlIdpSessionsPurged = await store.samlIdpSessions.deleteExpired();
      await email.links.deleteExpired();
      await email.mailer.purge();
      logger.debug({ ...purged, logins: loginsPurged, replay: replayPurged, samlIdpSessions: samlIdpSessionsPurged, rateLimits: limitsPurged }, 'expired data purged');
    });

    const syncs = scheduleDirectorySyncs({ store, registry, logger, firstRunMs: options.syncFirstRunMs });
    rescheduleSyncs = () => syncs.refresh();
    connectorWatch = watchConnectorChanges({ connectors: store.connectors, logger, stamp: connectorStamp, intervalMs: options.connectorPollMs, onChange: reloadConnectors });
    const watch = connectorWatch;
    email.mailer.start();

    logger.info({ url, issuer: config.issuer, database: database.kind, connectors: registry.list().map((c) => c.id), ms: Math.round(performance.now()), startBrokerMs: Math.round(performance.now() - started) }, 'keybridge ready');

    let closing: Promise<void> | undefined;
    return {
      url,
      config,
      store,
      database,
      logger,
      metrics,
      metricsUrl: metricsListener?.url ?? null,
      mfa,
      email,
      provider: () => provider,
      reloadKeys,
      close() {
        closing ??= (async () => {
          for (const t of timers) clearInterval(t);
          await watch.stop();
          await syncs.stop();
          await connectorService.close();
          await email.mailer.stop();
          await new Promise<void>((resolve) => {
            srv.close(() => resolve());
            srv.closeIdleConnections();
            // In-flight requests get a moment to finish; then connections are cut.
            setTimeout(() => srv.closeAllConnections(), 5_000).unref();
          });
          await metricsListener?.close();
          await connectors.close();
          await rateLimits.close();
          await feed.close();
          await database.close();
        })();
        return closing;
      },
    };
  } catch (err) {
    for (const t of timers) clearInterval(t);
    await connectorWatch?.stop();
    await mailer?.stop();
    server?.close();
    await metricsServer?.close();
    await registry?.close();
    await limits?.close();
    await changes?.close();
    await database.close();
    throw err;
  }
}
