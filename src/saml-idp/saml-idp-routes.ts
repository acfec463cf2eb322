// The IdP's endpoints. A sign-in request from a service provider is verified here, then the
// person signs in through Keybridge's ordinary OIDC login (oidc-provider with an internal
// first-party client, so every connector, linking and MFA rule applies), and comes back to
// /saml/idp/continue, where the authorization code is consumed in-process and turned into a
// signed SAML Response the browser posts to the SP. Logout requests end the Keybridge sessions
// they name (back-channel logout to OIDC clients included) and, through the browser, the other
// SPs' sessions, before the answer goes back to the SP that asked.
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { AdapterPayload } from 'oidc-provider';
import type { Logger } from 'pino';
import type { Store } from '../storage/store.ts';
import type { KeybridgeAdapter } from '../storage/oidc-adapter.ts';
import type { PageRenderer } from '../http/page-renderer.ts';
import { sendPage } from '../http/send-page.ts';
import { errorPageContext, wantsJson } from '../http/error-pages.ts';
import { sendFormPost, sendOnward } from '../http/form-post.ts';
import { readForm } from '../http/read-form.ts';
import { endSessions } from '../oidc/end-sessions.ts';
import { InvalidInput } from '../errors.ts';
import type { SamlIdpConfig } from './saml-idp-config.ts';
import { SamlRejected, type MessageKind } from './saml-rejected.ts';
import { ServiceProviderUnavailable, type ServiceProvider, type ServiceProviderRegistry } from './service-providers.ts';
import { decodePost, decodeRedirect, isPlainText, readAuthnRequest, readLogoutRequest, readLogoutResponse, verifyMessage, type InboundMessage } from './inbound.ts';
import { newId, type IdpEndpoints, type OutboundMessages, type Outgoing } from './outbound.ts';
import { attributesFor, nameIdFor } from './subject-mapping.ts';
import { nameIdFormatFor } from './name-id-policy.ts';
import type { NameIdFormatName } from './saml-idp-config.ts';
import { AUTHN_CONTEXT, BINDING, STATUS } from './saml-urns.ts';
import { text, type PageText } from '../i18n/page-text.ts';

export interface SamlIdpRouteDependencies {
  provider: Provider;
  renderer: PageRenderer;
  store: Store;
  logger: Logger;
  /** Short-lived single-use records (pending sign-ins, logout chains). */
  records: KeybridgeAdapter;
  serviceProviders: ServiceProviderRegistry;
  outbound: OutboundMessages;
  settings: SamlIdpConfig;
  issuer: string;
  endpoints: IdpEndpoints;
  /** Derives persistent NameIDs (one opaque id per user and SP). */
  pairwiseKey: Buffer;
  clientId: string;
  continueUrl: string;
  /** How long an SP's session with us is remembered (for logout): the broker's session lifetime. */
  sessionTtlSeconds: number;
  secureCookies: boolean;
}

/** A sign-in waiting for the person to finish Keybridge's login. */
interface PendingSso {
  sp: string;
  acsUrl: string;
  /** The AuthnRequest's ID; null for an IdP-initiated sign-in. */
  requestId: string | null;
  relayState: string | null;
  passive: boolean;
  /** The NameID format chosen from the request's NameIDPolicy; absent: the SP's configured one. */
  nameIdFormat?: NameIdFormatName;
  /** PKCE verifier of the internal authorization request. */
  verifier: string;
  /** Hash of the value in this browser's cookie: the sign-in finishes only in the browser that started it. */
  browser: string;
}

/** A logout going from SP to SP through the browser, answered to the SP that asked at the end. */
interface LogoutChain {
  /** The SP whose LogoutRequest started the chain (answered last); absent when Keybridge's own sign-out did. */
  initiator?: { sp: string; requestId: string; relayState: string | null };
  /** Where the browser goes once every SP was told, when no SP started the chain. */
  finish?: { location: string; form?: Record<string, string> };
  remaining: { sp: string; nameId: string; nameIdFormat: string; sessionIndex: string }[];
  current?: { sp: string; requestId: string };
  partial: boolean;
}

const SSO_TTL = 600;
const SLO_TTL = 600;
/** POST bodies: base64 of a message of at most MAX_MESSAGE_CHARS, plus RelayState. */
const MAX_POST_BYTES = 512 * 1024;
const PASSIVE_FAILURES = new Set(['login_required', 'consent_required', 'interaction_required', 'account_selection_required']);

const sha256 = (value: string) => createHash('sha256').update(value).digest('base64url');
const sameText = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
const ssoKey = (state: string) => `sso.${state}`;
const sloKey = (id: string) => `slo.${id}`;
const ssoCookie = (state: string) => `kb_saml_${state.slice(0, 16)}`;
const single = (value: unknown) => (typeof value === 'string' ? value : null);

export interface SamlIdpRoutes {
  router: Router;
  /**
   * Keybridge's own sign-out ended a session: tells every SAML SP the session signed in to
   * (a LogoutRequest each, through the browser), then sends the browser to `finish`. False when
   * the session signed in to no SAML SP (nothing sent).
   */
  signOutServiceProviders(ctx: Context, sessionUid: string, finish: { location: string; form?: Record<string, string> }): Promise<boolean>;
}

export function samlIdpRoutes(deps: SamlIdpRouteDependencies): SamlIdpRoutes {
  const { provider, store, logger, records, serviceProviders, outbound, settings, endpoints } = deps;
  const router = new Router();
  const skewMs = settings.clockSkewSeconds * 1000;

  /**
   * A refusal, recorded: one warn line (SP, request ID, reason, what to check) and the audit
   * event. Returns the reference the page shows, which the log line carries too.
   */
  async function recordRefusal(ctx: Context, err: SamlRejected): Promise<string> {
    // As the request named them: a NUL or invalid UTF-8 there must not break the audit write.
    if (err.sp !== null && (!isPlainText(err.sp) || err.sp.length > 1024)) err.sp = null;
    if (err.requestId !== null && (!isPlainText(err.requestId) || err.requestId.length > 256)) err.requestId = null;
    const reference = randomUUID();
    // The XML guard's words (ours, never the message's) say which limit a refused document broke.
    const guard = typeof err.detail?.guard === 'string' ? { detail: err.detail.guard } : {};
    await store.audit.record({ type: 'saml.request_rejected', outcome: 'failure', ip: ctx.ip, details: { sp: err.sp, reason: err.reason, ...(err.requestId ? { requestId: err.requestId } : {}), ...guard } });
    logger.warn(
      { sp: err.sp, samlRequestId: err.requestId, reason: err.reason, detail: err.detail, cause: err.cause ? String(err.cause) : undefined, requestId: reference },
      `SAML ${err.kind} refused (${err.reason})${err.hint ? `: ${err.hint}` : ''}`,
    );
    return reference;
  }

  /** What a handler learnt before a refusal: the SP (as named, then as registered) and the message ID. */
  interface Seen {
    sp: string | null;
    name: string | null;
    requestId: string | null;
  }

  /**
   * Runs a handler; a refused message is recorded (recordRefusal) and answered here with the
   * error page naming the application, so the shared error handler does not log it again.
   */
  const guarded = (handler: (ctx: Context, seen: Seen) => Promise<void>) => async (ctx: Context) => {
    const seen: Seen = { sp: null, name: null, requestId: null };
    try {
      await handler(ctx, seen);
    } catch (err) {
      if (!(err instanceof SamlRejected)) throw err;
      err.sp ??= seen.sp;
      err.requestId ??= seen.requestId;
      const reference = await recordRefusal(ctx, err);
      const message = err.pageMessage(seen.name ?? err.sp);
      if (wantsJson(ctx)) {
        ctx.status = err.status;
        ctx.body = { error: err.code, error_description: message, request_id: reference };
        return;
      }
      // errorPageContext with 400: the shared page hides 5xx messages (usually our bugs); these are news for the person.
      const title = text(err.reason === 'sp_unavailable' ? 'errors.title.app_unavailable' : 'errors.title.request');
      sendPage(ctx, deps.renderer, 'error', { ...errorPageContext(400, err.pageText(seen.name ?? err.sp), err.code, reference), title }, err.status);
    }
  };

  /** The registered, enabled SP named by a message; refusals say so. */
  async function findSp(entityId: string | null, kind: MessageKind, seen?: Seen): Promise<ServiceProvider> {
    if (!entityId) throw new SamlRejected('malformed', kind, { detail: { error: 'no Issuer' } });
    if (!isPlainText(entityId) || entityId.length > 1024) throw new SamlRejected('malformed', kind, { detail: { error: 'the Issuer is not a usable entity ID' } });
    let sp: ServiceProvider | null;
    try {
      sp = await serviceProviders.find(entityId);
    } catch (err) {
      if (err instanceof ServiceProviderUnavailable) throw new SamlRejected('sp_unavailable', kind, { sp: entityId, detail: { error: err.message } });
      throw err;
    }
    if (!sp) throw new SamlRejected('unknown_sp', kind, { sp: entityId });
    if (seen) seen.name = sp.name;
    return sp;
  }

  function checkTiming(kind: MessageKind, issueInstant: Date, sp: string): void {
    const age = Date.now() - issueInstant.getTime();
    if (age > settings.requestMaxAgeSeconds * 1000 + skewMs || age < -skewMs) throw new SamlRejected('stale', kind, { sp, detail: { issueInstant: issueInstant.toISOString() } });
  }

  function checkDestination(kind: MessageKind, destination: string | null, expected: string, sp: string): void {
    if (destination !== null && destination !== expected) throw new SamlRejected('wrong_destination', kind, { sp, detail: { destination: destination.slice(0, 200) } });
  }

  /** A request ID is good once (on every instance) for as long as the request itself would be accepted. */
  async function firstUse(kind: MessageKind, sp: string, id: string, issueInstant: Date): Promise<void> {
    const until = new Date(issueInstant.getTime() + settings.requestMaxAgeSeconds * 1000 + 2 * skewMs);
    const type = kind === 'sign-in request' ? 'authn' : 'logout';
    if (!(await store.replay.firstUse(`saml-idp:${type}:${sha256(`${sp}\u0000${id}`)}`, until))) throw new SamlRejected('replayed', kind, { sp });
  }

  /** The POST binding's form; a body that is too large or not a form is a refused message too. */
  async function samlForm(ctx: Context, kind: MessageKind): Promise<Record<string, string>> {
    try {
      return await readForm(ctx, MAX_POST_BYTES);
    } catch (err) {
      if (err instanceof InvalidInput) throw new SamlRejected(err.status === 413 ? 'too_large' : 'malformed', kind, { detail: { error: err.message } });
      throw err;
    }
  }

  function defaultAcs(sp: ServiceProvider): string {
    const sorted = [...sp.acs].sort((a, b) => (a.index ?? Infinity) - (b.index ?? Infinity));
    return (sp.acs.find((a) => a.isDefault) ?? sorted[0]).url;
  }

  /** A page that makes the browser POST a SAML message (strict CSP: the form submits from a same-origin script). */
  const sendPost = (ctx: Context, action: string, fields: Record<string, string>, heading: PageText) => sendFormPost(ctx, deps.renderer, { action, fields, heading });

  const send = (ctx: Context, out: Outgoing, heading: PageText) => sendOnward(ctx, deps.renderer, { location: out.url, ...(out.binding === 'post' ? { form: out.fields } : {}) }, heading);

  /** A status-only Response (NoPassive, AuthnFailed, InvalidNameIDPolicy...) posted to the SP's verified ACS; `why` heads the page. */
  function sendStatus(ctx: Context, sp: ServiceProvider, pending: { acsUrl: string; requestId: string | null; relayState: string | null }, status: string, subStatus?: string, why?: PageText): void {
    const SAMLResponse = outbound.statusResponse({ acsUrl: pending.acsUrl, inResponseTo: pending.requestId, status, subStatus });
    sendPost(ctx, pending.acsUrl, { SAMLResponse, ...(pending.relayState ? { RelayState: pending.relayState } : {}) }, why ? text('saml.returning_to_after', { why, sp: sp.name }) : text('saml.returning_to', { sp: sp.name }));
  }

  // ----------------------------------------------------------------------------------- metadata

  router.get('/saml/idp/metadata', (ctx) => {
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.type = 'application/samlmetadata+xml';
    ctx.body = outbound.metadata();
  });

  // -------------------------------------------------------------------------------- sign-in

  /** Sends the browser through oidc-provider's authorization endpoint with the internal client. */
  async function startSignIn(ctx: Context, pending: Omit<PendingSso, 'verifier' | 'browser'>, prompt: 'login' | 'none' | null): Promise<void> {
    const state = randomBytes(32).toString('base64url');
    const verifier = randomBytes(32).toString('base64url');
    const browser = randomBytes(24).toString('base64url');
    const record: PendingSso = { ...pending, verifier, browser: sha256(browser) };
    await records.upsert(ssoKey(state), record as unknown as AdapterPayload, SSO_TTL);
    // Lax, so it is sent on the same-site redirect to /continue that ends the login.
    ctx.cookies.set(ssoCookie(state), browser, { httpOnly: true, sameSite: 'lax', secure: deps.secureCookies, path: '/saml/idp/continue', maxAge: SSO_TTL * 1000, signed: false, overwrite: true });
    const url = new URL(`${deps.issuer}/auth`);
    url.search = new URLSearchParams({
      client_id: deps.clientId,
      redirect_uri: deps.continueUrl,
      response_type: 'code',
      scope: 'openid',
      state,
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
      ...(prompt ? { prompt } : {}),
    }).toString();
    ctx.status = 303;
    ctx.redirect(url.href);
  }

  const sso = guarded(async (ctx, seen) => {
    const kind = 'sign-in request';
    const message = ctx.method === 'POST' ? decodePost(await samlForm(ctx, kind), ['AuthnRequest']) : decodeRedirect(ctx.querystring, ['AuthnRequest']);
    seen.sp = message.issuer;
    seen.requestId = message.id;
    const sp = await findSp(message.issuer, kind, seen);
    // Unsigned requests are accepted only when the SP does not have to sign; their ACS must then
    // be a registered one (assertionConsumer), as for every request. A signature is always checked.
    const { root } = verifyMessage(message, sp.signingCerts, sp.requireSignedRequests);
    const request = readAuthnRequest(root);
    seen.requestId = request.id;
    if (request.issuer !== sp.entityId) throw new SamlRejected('malformed', kind, { sp: sp.entityId, detail: { error: 'Issuer changed' } });
    checkDestination(kind, request.destination, endpoints.ssoUrl, sp.entityId);
    checkTiming(kind, request.issueInstant, sp.entityId);
    const acsUrl = assertionConsumer(sp, request);
    await firstUse(kind, sp.entityId, request.id, request.issueInstant);
    const pending = { sp: sp.entityId, acsUrl, requestId: request.id, relayState: message.relayState, passive: request.isPassive };

    // A NameID format we cannot (or may not) produce is refused to the SP (SAML core 3.4.1.1), at its verified ACS.
    const nameIdFormat = nameIdFormatFor(sp, request.nameIdFormat);
    if (!nameIdFormat) {
      const refusal = new SamlRejected('invalid_nameid_policy', kind, { sp: sp.entityId, requestId: request.id, detail: { format: (request.nameIdFormat ?? '').slice(0, 200) } });
      await recordRefusal(ctx, refusal);
      return sendStatus(ctx, sp, pending, STATUS.requester, STATUS.invalidNameIdPolicy, refusal.pageText(sp.name));
    }
    // Re-authenticating without showing anything is impossible.
    if (request.isPassive && request.forceAuthn) return sendStatus(ctx, sp, pending, STATUS.responder, STATUS.noPassive);
    await startSignIn(ctx, { ...pending, nameIdFormat }, request.forceAuthn ? 'login' : request.isPassive ? 'none' : null);
  });
  router.get('/saml/idp/sso', sso);
  router.post('/saml/idp/sso', sso);

  /** Where the response may go: a registered ACS only, by URL or index; never an address the request makes up. */
  function assertionConsumer(sp: ServiceProvider, request: ReturnType<typeof readAuthnRequest>): string {
    const kind = 'sign-in request';
    if (request.acsIndex !== null) {
      const byIndex = sp.acs.find((a) => a.index === request.acsIndex);
      if (!byIndex || (request.acsUrl !== null && request.acsUrl !== byIndex.url)) throw new SamlRejected('acs_not_registered', kind, { sp: sp.entityId, detail: { index: request.acsIndex } });
      return byIndex.url;
    }
    if (request.protocolBinding !== null && request.protocolBinding !== BINDING.post) throw new SamlRejected('unsupported_binding', kind, { sp: sp.entityId, detail: { binding: request.protocolBinding.slice(0, 200) } });
    if (request.acsUrl !== null) {
      if (!sp.acs.some((a) => a.url === request.acsUrl)) throw new SamlRejected('acs_not_registered', kind, { sp: sp.entityId, detail: { acs: request.acsUrl.slice(0, 300) } });
      return request.acsUrl;
    }
    return defaultAcs(sp);
  }

  /** IdP-initiated sign-in: `/saml/idp/init?sp=<entityId>&RelayState=...`, for SPs that allow it. */
  router.get(
    '/saml/idp/init',
    guarded(async (ctx, seen) => {
      const kind = 'sign-in';
      const entityId = single(ctx.query.sp);
      seen.sp = entityId;
      if (!entityId) throw new SamlRejected('malformed', kind, { detail: { error: 'no sp parameter' } });
      const sp = await findSp(entityId, kind, seen);
      if (!sp.idpInitiated.enabled) throw new SamlRejected('idp_initiated_disabled', kind, { sp: sp.entityId });
      const relayState = single(ctx.query.RelayState) ?? sp.idpInitiated.defaultRelayState ?? null;
      if (relayState !== null) {
        if (relayState.length > 1024) throw new SamlRejected('too_large', kind, { sp: sp.entityId });
        if (!isPlainText(relayState)) throw new SamlRejected('malformed', kind, { sp: sp.entityId, detail: { error: 'RelayState holds control characters or invalid UTF-8' } });
        // Many SPs redirect to RelayState: an absolute URL must be on one of the SP's own origins.
        if (/^[a-z][a-z0-9+.-]*:/i.test(relayState) && relayState !== sp.idpInitiated.defaultRelayState) {
          const origin = URL.canParse(relayState) ? new URL(relayState).origin : null;
          if (!origin || !sp.acs.some((a) => new URL(a.url).origin === origin)) throw new SamlRejected('relay_state_not_allowed', kind, { sp: sp.entityId });
        }
      }
      await startSignIn(ctx, { sp: sp.entityId, acsUrl: defaultAcs(sp), requestId: null, relayState, passive: false }, null);
    }),
  );

  /** The end of the internal authorization request: the code becomes a SAML Response. */
  router.get(
    '/saml/idp/continue',
    guarded(async (ctx, seen) => {
      const kind = 'sign-in';
      const state = single(ctx.query.state);
      const key = state && state.length <= 128 ? ssoKey(state) : null;
      const pending = key ? ((await records.find(key)) as unknown as (PendingSso & { consumed?: number }) | undefined) : undefined;
      // Unknown, expired, or already used (also concurrently: the claim is atomic).
      if (!state || !key || !pending || pending.consumed || !(await records.claim(key))) throw new SamlRejected('unknown_state', kind);
      seen.sp = pending.sp;
      const cookie = ctx.cookies.get(ssoCookie(state));
      ctx.cookies.set(ssoCookie(state), null, { path: '/saml/idp/continue', httpOnly: true, sameSite: 'lax', secure: deps.secureCookies });
      if (!cookie || !sameText(sha256(cookie), pending.browser)) throw new SamlRejected('unknown_state', kind, { sp: pending.sp, detail: { error: 'finished in another browser' } });
      seen.requestId = pending.requestId;
      const sp = await findSp(pending.sp, kind, seen);

      const error = single(ctx.query.error);
      if (error) {
        const [status, sub] = pending.passive && PASSIVE_FAILURES.has(error) ? [STATUS.responder, STATUS.noPassive] : error === 'access_denied' ? [STATUS.responder, STATUS.authnFailed] : [STATUS.responder, undefined];
        logger.info({ sp: sp.entityId, error }, 'SAML sign-in ended without a login');
        await store.audit.record({ type: 'saml.sso', outcome: 'failure', ip: ctx.ip, details: { sp: sp.entityId, error: error.slice(0, 64) } });
        return sendStatus(ctx, sp, pending, status, sub);
      }

      const codeValue = single(ctx.query.code);
      const code = codeValue && codeValue.length <= 256 ? await provider.AuthorizationCode.find(codeValue) : undefined;
      const challenge = createHash('sha256').update(pending.verifier).digest('base64url');
      const valid =
        code &&
        code.clientId === deps.clientId &&
        code.redirectUri === deps.continueUrl &&
        code.isValid &&
        code.codeChallengeMethod === 'S256' &&
        typeof code.codeChallenge === 'string' &&
        sameText(code.codeChallenge, challenge) &&
        typeof code.accountId === 'string' &&
        typeof code.sessionUid === 'string';
      // Consumed atomically: a code is good for exactly one response.
      if (!valid || !(await (provider.AuthorizationCode.adapter as unknown as KeybridgeAdapter).claim(code.jti))) {
        throw new SamlRejected('not_signed_in', kind, { sp: sp.entityId, detail: { error: code ? 'authorization code refused' : 'no authorization code' } });
      }
      const accountId = code.accountId as string;
      const sessionUid = code.sessionUid as string;

      const [found, login] = await Promise.all([store.users.findWithGroups(accountId), store.loginSessions.find(sessionUid)]);
      if (!found) throw new SamlRejected('not_signed_in', kind, { sp: sp.entityId, detail: { error: 'user gone' } });
      if (!found.user.enabled) throw new SamlRejected('account_disabled', kind, { sp: sp.entityId });
      const person = { user: found.user, groups: found.groups, claims: login?.claims ?? {} };
      const nameIdFormat = pending.nameIdFormat ?? sp.nameId.format;
      const nameId = nameIdFor(sp, person, deps.pairwiseKey, nameIdFormat);
      if (!nameId) throw new SamlRejected('missing_email', kind, { sp: sp.entityId });

      const expiresAt = new Date(Date.now() + deps.sessionTtlSeconds * 1000);
      const session = await store.samlIdpSessions.record({ sessionUid, spEntityId: sp.entityId, nameId: nameId.value, nameIdFormat: nameId.format, sessionIndex: newId(), expiresAt });
      const amr = (code.amr as string[] | undefined) ?? login?.amr ?? [];
      const authTime = typeof code.authTime === 'number' ? new Date(code.authTime * 1000) : (login?.authenticatedAt ?? new Date());
      const SAMLResponse = await outbound.loginResponse(sp, {
        acsUrl: pending.acsUrl,
        inResponseTo: pending.requestId,
        nameId,
        authnInstant: authTime,
        // Federated logins: how the upstream authenticated is not ours to vouch for.
        authnContext: amr.includes('pwd') && !amr.includes('fed') ? AUTHN_CONTEXT.passwordProtectedTransport : AUTHN_CONTEXT.unspecified,
        sessionIndex: session.sessionIndex,
        sessionNotOnOrAfter: session.expiresAt,
        attributes: attributesFor(sp, person),
        lifetimeSeconds: settings.assertionLifetimeSeconds,
        clockSkewSeconds: settings.clockSkewSeconds,
      });
      await store.audit.record({
        type: 'saml.sso',
        userId: accountId,
        connectorId: login?.connectorId ?? null,
        ip: ctx.ip,
        details: { sp: sp.entityId, nameIdFormat, initiated: pending.requestId ? 'sp' : 'idp' },
      });
      sendPost(ctx, pending.acsUrl, { SAMLResponse, ...(pending.relayState ? { RelayState: pending.relayState } : {}) }, text('saml.signing_in_to', { sp: sp.name }));
    }),
  );

  // ----------------------------------------------------------------------------------- logout

  const slo = guarded(async (ctx, seen) => {
    const message = ctx.method === 'POST' ? decodePost(await samlForm(ctx, 'sign-out request'), ['LogoutRequest', 'LogoutResponse']) : decodeRedirect(ctx.querystring, ['LogoutRequest', 'LogoutResponse']);
    seen.sp = message.issuer;
    seen.requestId = message.id;
    if (message.type === 'LogoutResponse') return continueLogout(ctx, message, seen);

    const kind = 'sign-out request';
    const sp = await findSp(message.issuer, kind, seen);
    // A sign-out ends sessions: it must be signed, whatever the SP's setting for sign-in requests.
    // (An unsigned one could be sent by any page the person visits, naming whoever it likes.)
    const { root } = verifyMessage(message, sp.signingCerts, true);
    const request = readLogoutRequest(root);
    seen.requestId = request.id;
    if (request.issuer !== sp.entityId) throw new SamlRejected('malformed', kind, { sp: sp.entityId, detail: { error: 'Issuer changed' } });
    checkDestination(kind, request.destination, endpoints.sloUrl, sp.entityId);
    checkTiming(kind, request.issueInstant, sp.entityId);
    if (request.notOnOrAfter && request.notOnOrAfter.getTime() + skewMs <= Date.now()) throw new SamlRejected('stale', kind, { sp: sp.entityId });
    await firstUse(kind, sp.entityId, request.id, request.issueInstant);

    const named = await store.samlIdpSessions.findByNameId(sp.entityId, request.nameId, request.sessionIndexes);
    const sessionUids = [...new Set(named.map((s) => s.sessionUid))];
    const others = (await store.samlIdpSessions.listForSessions(sessionUids)).filter((s) => s.spEntityId !== sp.entityId);
    const browserSession = await provider.Session.get(ctx as never).catch(() => undefined);
    const ended = await endSessions({ provider, store, logger }, sessionUids, 'saml_slo');
    await store.samlIdpSessions.deleteForSessions(sessionUids);
    if (browserSession?.accountId && sessionUids.includes(browserSession.uid)) {
      // This browser's session is gone server-side; its cookie goes too.
      const name = provider.cookieName('session');
      for (const cookie of [name, `${name}.sig`]) ctx.cookies.set(cookie, null, { path: '/', httpOnly: true, sameSite: 'lax', secure: deps.secureCookies });
    }
    await store.audit.record({
      type: 'saml.slo',
      userId: ended.find((e) => e.accountId)?.accountId ?? null,
      ip: ctx.ip,
      details: { sp: sp.entityId, sessions: sessionUids.length, otherServiceProviders: [...new Set(others.map((o) => o.spEntityId))] },
    });

    const chain: LogoutChain = {
      initiator: { sp: sp.entityId, requestId: request.id, relayState: message.relayState },
      remaining: others.map((o) => ({ sp: o.spEntityId, nameId: o.nameId, nameIdFormat: o.nameIdFormat, sessionIndex: o.sessionIndex })),
      partial: ended.some((e) => e.failed.length > 0),
    };
    return nextLogout(ctx, chain);
  });
  router.get('/saml/idp/slo', slo);
  router.post('/saml/idp/slo', slo);

  /** Tells the next SP of the chain (a LogoutRequest through the browser), or answers the initiator. */
  async function nextLogout(ctx: Context, chain: LogoutChain): Promise<void> {
    while (chain.remaining.length) {
      const next = chain.remaining.shift()!;
      const sp = await serviceProviders.find(next.sp).catch((err: unknown) => {
        logger.warn({ err, sp: next.sp }, 'SAML logout: service provider unavailable, skipped');
        return null;
      });
      if (!sp?.slo) {
        if (sp) logger.info({ sp: sp.entityId }, 'SAML logout: service provider has no single logout service, skipped');
        continue;
      }
      const handle = randomBytes(32).toString('base64url');
      const out = outbound.logoutRequest(sp, { nameId: next.nameId, nameIdFormat: next.nameIdFormat, sessionIndex: next.sessionIndex, relayState: handle });
      await records.upsert(sloKey(handle), { ...chain, current: { sp: sp.entityId, requestId: out.id } } as unknown as AdapterPayload, SLO_TTL);
      return send(ctx, out, text('saml.signing_out_of', { sp: sp.name }));
    }
    if (chain.finish) return sendOnward(ctx, deps.renderer, chain.finish, text('saml.continuing'));
    const initiator = chain.initiator ? await serviceProviders.find(chain.initiator.sp).catch(() => null) : null;
    if (!chain.initiator || !initiator?.slo) {
      // Nowhere to answer: the person is signed out, and told so here.
      return sendPage(ctx, deps.renderer, 'logout-success', { clientName: initiator?.name });
    }
    const out = outbound.logoutResponse(initiator, {
      inResponseTo: chain.initiator.requestId,
      relayState: chain.initiator.relayState,
      status: STATUS.success,
      subStatus: chain.partial ? STATUS.partialLogout : undefined,
    });
    send(ctx, out, text('saml.returning_to', { sp: initiator.name }));
  }

  /** A LogoutResponse from an SP we sent a LogoutRequest to: check it answers ours, then go on. */
  async function continueLogout(ctx: Context, message: InboundMessage, seen: Seen): Promise<void> {
    const kind = 'sign-out response';
    const handle = message.relayState;
    const key = handle && handle.length <= 128 ? sloKey(handle) : null;
    const chain = key ? ((await records.find(key)) as unknown as (LogoutChain & { consumed?: number }) | undefined) : undefined;
    if (!key || !chain?.current || chain.consumed || !(await records.claim(key))) throw new SamlRejected('unsolicited', kind);
    const current = chain.current;
    if (message.issuer !== current.sp) throw new SamlRejected('unsolicited', kind, { detail: { expected: current.sp } });
    const sp = await findSp(current.sp, kind, seen);
    // Signed when the SP has keys to sign with (SAML bindings require it of front-channel messages).
    const { root } = verifyMessage(message, sp.signingCerts, sp.signingCerts.length > 0);
    const response = readLogoutResponse(root);
    if (response.issuer !== current.sp || response.inResponseTo !== current.requestId) throw new SamlRejected('unsolicited', kind, { sp: sp.entityId });
    checkDestination(kind, response.destination, endpoints.sloUrl, sp.entityId);
    if (response.status !== STATUS.success) {
      logger.info({ sp: sp.entityId, status: response.status }, 'SAML logout: service provider did not confirm');
      chain.partial = true;
    }
    const { current: _done, consumed: _used, ...rest } = chain;
    return nextLogout(ctx, rest);
  }

  async function signOutServiceProviders(ctx: Context, sessionUid: string, finish: { location: string; form?: Record<string, string> }): Promise<boolean> {
    const joined = await store.samlIdpSessions.listForSessions([sessionUid]);
    if (!joined.length) return false;
    await store.samlIdpSessions.deleteForSessions([sessionUid]);
    await store.audit.record({ type: 'saml.slo', ip: ctx.ip, details: { initiated: 'idp', serviceProviders: joined.map((s) => s.spEntityId) } });
    await nextLogout(ctx, {
      finish,
      remaining: joined.map((s) => ({ sp: s.spEntityId, nameId: s.nameId, nameIdFormat: s.nameIdFormat, sessionIndex: s.sessionIndex })),
      partial: false,
    });
    return true;
  }

  return { router, signOutServiceProviders };
}
