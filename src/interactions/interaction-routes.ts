// The pages oidc-provider hands the person to: login (connector chooser and password form)
// and consent. Each handler reads the interaction, does one step, and hands the result back to
// oidc-provider, which continues the authorization request.
import { randomBytes } from 'node:crypto';
import Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { AdapterPayload, InteractionResults } from 'oidc-provider';
import type { KeybridgeAdapter } from '../storage/oidc-adapter.ts';
import type { Logger } from 'pino';
import type { ConnectorRegistry, RegisteredConnector } from '../connectors/registry.ts';
import type { FailureReason, LoginResult, RedirectStart, UpstreamIdentity, UpstreamSession } from '../connectors/contract.ts';
import { connectorUrls } from '../connectors/registry.ts';
import type { Store } from '../storage/store.ts';
import type { PageRenderer } from '../http/page-renderer.ts';
import type { CsrfTokens } from '../http/csrf.ts';
import { sendPage } from '../http/send-page.ts';
import { sendOnward } from '../http/form-post.ts';
import { readForm } from '../http/read-form.ts';
import { linkIdentity, linkToUser, resolveIdentity, type LinkOptions } from '../accounts/link-identity.ts';
import { tokenBinding, type TokenCipher } from '../accounts/token-cipher.ts';
import { applyMappers } from '../accounts/identity-mappers.ts';
import { InvalidSession, KeybridgeError } from '../errors.ts';
import type { RateLimits, Verdict } from '../limits/rate-limits.ts';

export interface InteractionDependencies {
  provider: Provider;
  issuer: string;
  /** Short-lived server-side records of redirect-connector attempts (single use). */
  upstreamAttempts: KeybridgeAdapter;
  store: Store;
  registry: () => ConnectorRegistry;
  renderer: PageRenderer;
  csrf: CsrfTokens;
  logger: Logger;
  /** Encrypts upstream tokens for connectors that keep them (null: none configured). */
  tokenCipher: TokenCipher | null;
  /** Where each client starts its own sign-in (third-party initiated login), for upstream-initiated logins. */
  initiateLoginUris: ReadonlyMap<string, string>;
  /** Cookies marked Secure (an https issuer). */
  secureCookies: boolean;
  /** Brute-force and per-IP limits on the password forms. */
  limits: RateLimits;
}

/** What the person is told for each failure; details go to the log and the audit trail. */
const FAILURE_MESSAGES: Record<FailureReason, string> = {
  invalid_credentials: 'Invalid username or password.',
  account_disabled: 'This account is disabled. Contact your administrator.',
  account_locked: 'This account is locked. Try again later or contact your administrator.',
  account_expired: 'This account has expired. Contact your administrator.',
  password_expired: 'Your password has expired. Change it, then sign in again.',
  password_change_required: 'You must change your password before you can sign in.',
  not_permitted: 'You are not allowed to sign in here at this time.',
  user_gone: 'This account no longer exists.',
  reauth_needed: 'Please sign in again.',
  access_denied: 'Sign-in was cancelled.',
  upstream_error: 'The sign-in provider returned an error. Try again or choose another way to sign in.',
};

/** How long a person has to complete a redirect connector's upstream login. */
const ATTEMPT_TTL = 600;

/** A login ready to hand to oidc-provider. */
interface SignedIn {
  userId: string;
  federatedIdentityId: string | null;
  amr: string[];
  /** Extra token claims from the connector's mappers. */
  claims: Record<string, unknown>;
  /** The upstream's session behind this login, for single logout. */
  upstreamSession?: UpstreamSession;
}

type Outcome =
  | ({ kind: 'signed-in' } & SignedIn)
  | { kind: 'failed'; reason: FailureReason }
  /** The upstream could not be reached (down, too slow): not the person's fault, try later. */
  | { kind: 'unavailable' }
  /** The identity is new and a local user holds its email: a PendingLink waits for proof. */
  | { kind: 'confirm' }
  /** A `confirm-link` attempt came back: the local user that upstream login belongs to, if any. */
  | { kind: 'proof'; userId: string | null; amr: string[] };

/** One redirect-connector attempt, stored under its state handle in the artifact store. */
interface UpstreamAttempt {
  uid: string;
  connectorId: string;
  context: Record<string, unknown>;
  /** `confirm-link`: this upstream login is the person proving they own a pending link's account. */
  purpose?: 'login' | 'confirm-link';
  /** Set once the upstream came back: what to hand to the interaction. */
  outcome?: Outcome | UpstreamReturn;
}

/**
 * What a redirect connector's callback keeps for the browser that started the login: the
 * validated upstream identity only. Linking (which may create a user) waits until that browser
 * proves itself with its interaction cookie, so a callback URL carried to another browser
 * creates nothing.
 */
interface UpstreamReturn {
  kind: 'upstream';
  identity: UpstreamIdentity;
  /** The identity's upstream tokens, already encrypted (never kept in plaintext here); absent: none kept. */
  tokens?: string | null;
}

/** A new upstream identity waiting for the person to prove they own the local account it would join. */
interface PendingLink {
  uid: string;
  connectorId: string;
  identity: UpstreamIdentity;
  /** The identity's upstream tokens, already encrypted (never kept in plaintext here). */
  tokens: string | null;
  candidateUserId: string;
  amr: string[];
  failures: number;
}

/** Wrong passwords allowed on the link page before the pending link is dropped. */
const MAX_LINK_FAILURES = 5;
const pendingKey = (uid: string) => `link.${uid}`;
const LINK_EXPIRED = { error: 'The account link expired. Sign in again.', status: 400 };

/** "a***@example.org": enough for the owner to recognize, not enough to harvest. */
function maskEmail(email: string | null): string | null {
  if (!email) return null;
  const at = email.lastIndexOf('@');
  if (at < 1) return null;
  return `${email[0]}${'*'.repeat(Math.min(Math.max(at - 1, 3), 8))}${email.slice(at)}`;
}

/** Why an outcome that is not a sign-in refuses the person (signInOutcome only refuses as `failed`). */
const refusal = (outcome: Outcome): FailureReason => (outcome.kind === 'failed' ? outcome.reason : 'not_permitted');

/** A connector's failure detail, short and single-line, for the audit trail. */
const auditDetail = (detail: string | undefined) => (detail ? detail.replace(/\s+/g, ' ').slice(0, 200) : undefined);

/** What the consent prompt says is still missing from the grant. */
interface ConsentDetails {
  missingOIDCScope?: string[];
  missingOIDCClaims?: string[];
  missingResourceScopes?: Record<string, string[]>;
}

const unavailable = (name: string) => `${name} is unavailable right now. Try again later or choose another way to sign in.`;

const SCOPE_DESCRIPTIONS: Record<string, string> = {
  openid: 'Sign you in with your account',
  profile: 'Your name and username',
  email: 'Your email address',
  groups: 'The groups you belong to',
  offline_access: 'Stay connected when you are not using it',
};

/** The grant's `result.keybridge` part: which connector and identity produced the login. */
export interface LoginProvenance {
  connectorId: string;
  federatedIdentityId: string | null;
  amr: string[];
  /** Extra token claims from the connector's mappers. */
  claims: Record<string, unknown>;
  /** The upstream's session behind this login, for single logout. */
  upstreamSession?: UpstreamSession;
}

/** An upstream-initiated login (SAML IdP-initiated) waiting for its client's sign-in request. */
interface UnsolicitedLogin {
  connectorId: string;
  client: string;
  identity: UpstreamIdentity;
}

/** The cookie that carries an upstream-initiated login's handle to the interaction that picks it up. */
const UNSOLICITED_COOKIE = 'kb_upstream_login';
/** How long an upstream-initiated login waits for the client to start its sign-in. */
const UNSOLICITED_TTL = 300;

export function interactionRoutes(deps: InteractionDependencies): Router {
  const { provider, store, renderer, csrf, logger } = deps;
  const router = new Router();

  const saveAttempt = (state: string, attempt: UpstreamAttempt) => deps.upstreamAttempts.upsert(state, attempt as unknown as AdapterPayload, ATTEMPT_TTL);

  async function loadInteraction(ctx: Context) {
    try {
      const details = await provider.interactionDetails(ctx.req, ctx.res);
      if (details.uid !== ctx.params.uid) throw new InvalidSession();
      return details;
    } catch (err) {
      if (err instanceof KeybridgeError) throw err;
      throw new InvalidSession(undefined, { cause: err });
    }
  }

  /** For our POST routes: the interaction, its submitted form, the CSRF check, and the prompt it must be at. */
  async function loadForm(ctx: Context, prompt?: 'login' | 'consent') {
    const details = await loadInteraction(ctx);
    const form = await readForm(ctx);
    if (!csrf.verify(details.uid, form.csrf) || (prompt && details.prompt.name !== prompt)) throw new InvalidSession();
    return { details, form };
  }

  async function clientView(clientId: string) {
    const client = await provider.Client.find(clientId);
    return {
      id: clientId,
      name: client?.clientName ?? clientId,
      logoUri: client?.logoUri,
      policyUri: client?.policyUri,
      tosUri: client?.tosUri,
      firstParty: Boolean(client?.first_party),
    };
  }

  async function renderLogin(ctx: Context, uid: string, clientId: string, extra: { error?: string; username?: string; selected?: string; status?: number }) {
    const connectors = deps.registry().list();
    const password = connectors.filter((c) => c.connector.kind === 'password');
    const redirect = connectors.filter((c) => c.connector.kind === 'redirect');
    sendPage(ctx, renderer, 'login', {
      uid,
      client: await clientView(clientId),
      passwordConnectors: password.map((c) => ({ id: c.id, name: c.name, usernameLabel: (c.connector.kind === 'password' && c.connector.usernameLabel) || 'Username' })),
      redirectConnectors: redirect.map((c) => ({ id: c.id, name: c.name })),
      selectedConnector: extra.selected ?? password[0]?.id,
      username: extra.username,
      error: extra.error,
      csrfToken: csrf.issue(uid),
      loginAction: `/interaction/${uid}/login`,
      connectorAction: `/interaction/${uid}/connector`,
      cancelAction: `/interaction/${uid}/abort`,
    }, extra.status ?? 200);
  }

  async function finish(ctx: Context, result: InteractionResults, merge: boolean) {
    const location = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: merge });
    ctx.status = 303;
    ctx.redirect(location);
  }

  async function grantConsent(details: Awaited<ReturnType<typeof loadInteraction>>): Promise<Record<string, unknown>> {
    const { prompt, params, session } = details;
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session!.accountId, clientId: params.client_id as string });
    if (!grant) throw new InvalidSession();
    const missing = prompt.details as ConsentDetails;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
    const grantId = await grant.save();
    return details.grantId ? {} : { grantId };
  }

  router.get('/interaction/:uid', async (ctx) => {
    const details = await loadInteraction(ctx);
    const clientId = details.params.client_id as string;
    if (details.prompt.name === 'login') {
      const waiting = await takeUnsolicited(ctx, clientId);
      const registered = waiting && deps.registry().get(waiting.connectorId);
      if (waiting && registered) {
        const outcome = await linkLogin(ctx, details.uid, waiting.identity, registered, clientId, ['fed']);
        if (outcome.kind === 'failed') return renderLogin(ctx, details.uid, clientId, { error: FAILURE_MESSAGES[outcome.reason], status: 401 });
        if (outcome.kind === 'confirm') return renderLink(ctx, details.uid, clientId);
        if (outcome.kind === 'signed-in') return finishLogin(ctx, outcome, registered.id);
      }
      const hint = typeof details.params.login_hint === 'string' ? details.params.login_hint.slice(0, 256) : undefined;
      return renderLogin(ctx, details.uid, clientId, { username: hint });
    }
    if (details.prompt.name === 'consent') {
      const client = await clientView(clientId);
      if (client.firstParty) {
        // First-party apps are trusted by the operator: no consent screen.
        return finish(ctx, { consent: await grantConsent(details) }, true);
      }
      const missing = details.prompt.details as ConsentDetails;
      const user = await store.users.findById(details.session!.accountId);
      return sendPage(ctx, renderer, 'consent', {
        uid: details.uid,
        client,
        user: { username: user?.username ?? '', name: user?.name ?? undefined },
        scopes: (missing.missingOIDCScope ?? []).map((name) => ({ name, description: SCOPE_DESCRIPTIONS[name] ?? name })),
        claims: (missing.missingOIDCClaims ?? []).filter((c) => !['sub', 'sid', 'auth_time', 'acr', 'amr', 'iss'].includes(c)),
        resources: Object.entries(missing.missingResourceScopes ?? {}).map(([id, scopes]) => ({ id, scopes })),
        csrfToken: csrf.issue(details.uid),
        confirmAction: `/interaction/${details.uid}/confirm`,
        abortAction: `/interaction/${details.uid}/abort`,
      });
    }
    throw new KeybridgeError('unsupported_prompt', 'This sign-in step is not supported.', { status: 400, expose: true, detail: { prompt: details.prompt.name } });
  });

  /** "in 8 seconds", "in 15 minutes": how long a throttled person waits. */
  const waitText = (seconds: number) => (seconds < 90 ? `${seconds} second${seconds === 1 ? '' : 's'}` : `${Math.ceil(seconds / 60)} minutes`);

  /**
   * The per-IP budget of the password forms, then the account's own counter (the same for
   * accounts that do not exist). Returns the refusal to show, or null to go on and check the
   * password.
   */
  async function passwordThrottle(ctx: Context, connectorId: string, login: string, clientId: string): Promise<{ error: string; verdict: Verdict } | null> {
    const ip = await deps.limits.hitIp('login', ctx.ip);
    if (!ip.allowed) {
      if (ip.firstRefusal) await store.audit.record({ type: 'login.throttled', outcome: 'failure', clientId, connectorId, ip: ctx.ip, details: { scope: 'ip', budget: 'login' } });
      return { error: `Too many sign-in attempts from your network. Try again in ${waitText(ip.retryAfterSeconds)}.`, verdict: ip };
    }
    if (!login) return null;
    const account = await deps.limits.accountAttempt(connectorId, login);
    if (account.allowed) return null;
    if (account.firstRefusal) await store.audit.record({ type: 'account.locked', outcome: 'failure', clientId, connectorId, ip: ctx.ip, details: { username: login.slice(0, 256) } });
    await store.audit.record({ type: 'login.throttled', outcome: 'failure', clientId, connectorId, ip: ctx.ip, details: { scope: 'account', username: login.slice(0, 256) } });
    logger.info({ connector: connectorId, retryAfter: account.retryAfterSeconds }, 'login throttled');
    return { error: `Too many failed sign-in attempts for this account. Try again in ${waitText(account.retryAfterSeconds)}.`, verdict: account };
  }

  /** After the connector answered: count a wrong password, forget the failures on success. */
  async function recordPasswordResult(ctx: Context, connectorId: string, login: string, clientId: string, result: LoginResult | null): Promise<void> {
    if (result?.ok) return deps.limits.accountSuccess(connectorId, login);
    if (!result || result.reason !== 'invalid_credentials') return deps.limits.accountNeutral(connectorId, login);
    const { locked, failures } = await deps.limits.accountFailure(connectorId, login);
    if (locked) {
      logger.warn({ connector: connectorId, failures }, 'account locked after repeated failed sign-ins');
      await store.audit.record({ type: 'account.locked', outcome: 'failure', clientId, connectorId, ip: ctx.ip, details: { username: login.slice(0, 256), failures } });
    }
  }

  router.post('/interaction/:uid/login', async (ctx) => {
    const { details, form } = await loadForm(ctx, 'login');
    const clientId = details.params.client_id as string;

    const registered: RegisteredConnector | undefined = deps.registry().get(form.connector ?? '');
    if (!registered || registered.connector.kind !== 'password') {
      return renderLogin(ctx, details.uid, clientId, { error: 'Choose a way to sign in.', status: 400 });
    }
    const username = (form.username ?? '').trim();
    const password = form.password ?? '';
    const valid = username && password && username.length <= 256 && password.length <= 1024;
    const throttled = await passwordThrottle(ctx, registered.id, valid ? username : '', clientId);
    if (throttled) {
      ctx.set('Retry-After', String(throttled.verdict.retryAfterSeconds));
      return renderLogin(ctx, details.uid, clientId, { error: throttled.error, username: username.slice(0, 256), selected: registered.id, status: 429 });
    }
    if (!valid) {
      return renderLogin(ctx, details.uid, clientId, { error: 'Enter your username and password.', username: username.slice(0, 256), selected: registered.id, status: 400 });
    }

    let result;
    try {
      result = await registered.connector.login(username, password);
    } catch (err) {
      await deps.limits.accountNeutral(registered.id, username);
      logger.error({ err, connector: registered.id, interaction: details.uid }, 'connector login failed');
      await store.audit.record({ type: 'login.error', outcome: 'failure', clientId, connectorId: registered.id, ip: ctx.ip, details: { username } });
      return renderLogin(ctx, details.uid, clientId, {
        error: unavailable(registered.name), username, selected: registered.id, status: 503,
      });
    }

    await recordPasswordResult(ctx, registered.id, username, clientId, result);
    if (!result.ok) {
      logger.info({ connector: registered.id, interaction: details.uid, reason: result.reason, detail: result.detail }, 'login failed');
      await store.audit.record({ type: 'login.failure', outcome: 'failure', clientId, connectorId: registered.id, ip: ctx.ip, details: { username, reason: result.reason } });
      return renderLogin(ctx, details.uid, clientId, { error: FAILURE_MESSAGES[result.reason], username, selected: registered.id, status: 401 });
    }

    const outcome = await linkLogin(ctx, details.uid, result.identity, registered, clientId, ['pwd']);
    if (outcome.kind === 'failed') return renderLogin(ctx, details.uid, clientId, { error: FAILURE_MESSAGES[outcome.reason], username, selected: registered.id, status: 401 });
    if (outcome.kind === 'confirm') return renderLink(ctx, details.uid, clientId);
    if (outcome.kind !== 'signed-in') throw new InvalidSession();
    return finishLogin(ctx, outcome, registered.id);
  });

  /** What the broker keeps of an identity's upstream tokens: ciphertext, and only when the connector is configured to. */
  function sealTokens(identity: UpstreamIdentity, registered: RegisteredConnector): string | null | undefined {
    if (!registered.policy.storeTokens || !identity.tokens || !deps.tokenCipher) return undefined;
    return deps.tokenCipher.encrypt(identity.tokens, tokenBinding(registered.id, identity.subject));
  }

  const linkOptions = (registered: RegisteredConnector, tokens: string | null | undefined): LinkOptions => ({
    firstLogin: registered.policy.linking.firstLogin,
    trustEmail: registered.policy.linking.trustEmail,
    mappers: registered.policy.mappers,
    tokens,
  });

  /**
   * Links an upstream identity to its local user under the connector's first-login policy and
   * records the login; refuses disabled users. A policy that needs the person's confirmation
   * leaves a PendingLink for this interaction and links nothing yet.
   */
  async function linkLogin(ctx: Context, uid: string, upstream: UpstreamIdentity, registered: RegisteredConnector, clientId: string | null, defaultAmr: string[], sealed?: { tokens?: string | null }): Promise<Outcome> {
    const identity: UpstreamIdentity = { ...upstream, connectorId: registered.id };
    const connectorId = registered.id;
    // `sealed`: the tokens were encrypted when the upstream answered (UpstreamReturn).
    const tokens = sealed ? sealed.tokens : sealTokens(identity, registered);
    // How the broker authenticated (pwd; fed for an upstream) plus what the upstream reports it
    // did (its own pwd, mfa, hwk...), so apps can see an upstream's MFA.
    const amr = [...new Set([...defaultAmr, ...(identity.amr ?? [])])];
    const resolved = await resolveIdentity(store, { ...identity, tokens: undefined }, linkOptions(registered, tokens));
    if (resolved.kind === 'confirm') {
      const pending: PendingLink = { uid, connectorId, identity: { ...identity, tokens: undefined }, tokens: tokens ?? null, candidateUserId: resolved.candidate.id, amr, failures: 0 };
      await savePending(pending);
      await store.audit.record({ type: 'identity.link_pending', userId: resolved.candidate.id, clientId, connectorId, ip: ctx.ip, details: { subject: identity.subject, policy: registered.policy.linking.firstLogin } });
      return { kind: 'confirm' };
    }
    return withUpstreamSession(await signInOutcome(ctx, resolved.user, resolved.federatedIdentityId, resolved.claims, amr, connectorId, clientId), identity);
  }

  const withUpstreamSession = (outcome: Outcome, identity: UpstreamIdentity): Outcome =>
    outcome.kind === 'signed-in' && identity.upstreamSession ? { ...outcome, upstreamSession: identity.upstreamSession } : outcome;

  async function signInOutcome(ctx: Context, user: { id: string; enabled: boolean }, federatedIdentityId: string | null, claims: Record<string, unknown>, amr: string[], connectorId: string, clientId: string | null): Promise<Outcome> {
    if (!user.enabled) {
      await store.audit.record({ type: 'login.failure', outcome: 'failure', userId: user.id, clientId, connectorId, ip: ctx.ip, details: { reason: 'account_disabled' } });
      return { kind: 'failed', reason: 'account_disabled' };
    }
    await store.audit.record({ type: 'login.success', userId: user.id, clientId, connectorId, ip: ctx.ip });
    return { kind: 'signed-in', userId: user.id, federatedIdentityId, amr, claims };
  }

  function finishLogin(ctx: Context, login: SignedIn, connectorId: string) {
    const provenance: LoginProvenance = { connectorId, federatedIdentityId: login.federatedIdentityId, amr: login.amr, claims: login.claims, upstreamSession: login.upstreamSession };
    return finish(ctx, { login: { accountId: login.userId, amr: login.amr, remember: true }, keybridge: provenance }, false);
  }

  const mappedClaims = (identity: UpstreamIdentity, registered: RegisteredConnector) => applyMappers(identity, registered.policy.mappers).claims;

  /** Sends the browser to a redirect connector's upstream; `purpose` says what its return means. */
  async function startUpstream(ctx: Context, uid: string, registered: RegisteredConnector, purpose: UpstreamAttempt['purpose']): Promise<RedirectStart | { error: string }> {
    const state = randomBytes(32).toString('base64url');
    if (registered.connector.kind !== 'redirect') return { error: 'Choose a way to sign in.' };
    let start;
    try {
      start = await registered.connector.start({ callbackUrl: urlsOf(registered.id).callback, state });
    } catch (err) {
      logger.error({ err, connector: registered.id, interaction: uid }, 'connector start failed');
      await store.audit.record({ type: 'login.error', outcome: 'failure', connectorId: registered.id, ip: ctx.ip, details: { stage: 'start' } });
      return { error: unavailable(registered.name) };
    }
    await saveAttempt(state, { uid, connectorId: registered.id, context: start.context, purpose });
    return start;
  }

  /** Sends the browser upstream: a redirect, or a self-submitting POST form (SAML HTTP-POST binding). */
  const goUpstream = (ctx: Context, start: RedirectStart, name: string) => sendOnward(ctx, renderer, start, `Continuing to ${name}`);

  const urlsOf = (connectorId: string) => connectorUrls(deps.issuer, connectorId);

  // Redirect connectors: the person is sent upstream, comes back to /callback/:connector, and
  // finishes on an /interaction/:uid URL, where the interaction cookie proves it is the same
  // browser that started (an attacker's callback URL pasted into a victim's browser fails).
  router.post('/interaction/:uid/connector/:connector', async (ctx) => {
    const { details } = await loadForm(ctx, 'login');
    const clientId = details.params.client_id as string;
    const registered = deps.registry().get(ctx.params.connector);
    if (!registered || registered.connector.kind !== 'redirect') {
      return renderLogin(ctx, details.uid, clientId, { error: 'Choose a way to sign in.', status: 400 });
    }
    const started = await startUpstream(ctx, details.uid, registered, 'login');
    if ('error' in started) return renderLogin(ctx, details.uid, clientId, { error: started.error, status: 503 });
    return goUpstream(ctx, started, registered.name);
  });

  const upstreamCallback = async (ctx: Context) => {
    const params = ctx.method === 'POST' ? await readForm(ctx, 512 * 1024) : Object.fromEntries(new URLSearchParams(ctx.querystring));
    const state = params.state ?? params.RelayState;
    const stored = typeof state === 'string' && state.length <= 128 ? ((await deps.upstreamAttempts.find(state)) as unknown as (UpstreamAttempt & { consumed?: number }) | undefined) : undefined;
    const connectorId = ctx.params.connector;
    // Unknown, expired, replayed (also concurrently: the claim is atomic), or sent to the wrong
    // connector's callback.
    const usable = stored && !stored.consumed && !stored.outcome && stored.connectorId === connectorId && (await deps.upstreamAttempts.claim(state!));
    // No attempt of ours at all: an upstream-initiated login, for the connectors that accept them.
    const upstreamInitiated = deps.registry().get(connectorId)?.connector;
    if (!stored && ctx.method === 'POST' && upstreamInitiated?.kind === 'redirect' && upstreamInitiated.unsolicited) {
      return unsolicitedLogin(ctx, connectorId, params);
    }
    if (!stored || !usable) {
      logger.warn({ connector: connectorId, known: Boolean(stored) }, 'upstream callback rejected: unknown, replayed or mismatched state');
      await store.audit.record({ type: 'login.rejected', outcome: 'failure', connectorId, ip: ctx.ip, details: { reason: stored ? 'replayed_or_mismatched_state' : 'unknown_state' } });
      throw new InvalidSession('This sign-in response is invalid, expired or was already used. Start again from the application.');
    }
    const registered = deps.registry().get(connectorId);
    let outcome: Outcome | UpstreamReturn;
    if (!registered || registered.connector.kind !== 'redirect') {
      outcome = { kind: 'failed', reason: 'upstream_error' };
    } else {
      let result: LoginResult | null;
      try {
        result = await registered.connector.callback({ callbackUrl: urlsOf(connectorId).callback, method: ctx.method === 'POST' ? 'POST' : 'GET', params, context: stored.context });
      } catch (err) {
        logger.error({ err, connector: connectorId, interaction: stored.uid }, 'connector callback failed');
        await store.audit.record({ type: 'login.error', outcome: 'failure', connectorId, ip: ctx.ip, details: { stage: 'callback' } });
        result = null;
      }
      if (!result) {
        outcome = { kind: 'unavailable' };
      } else if (!result.ok) {
        logger.info({ connector: connectorId, interaction: stored.uid, reason: result.reason, detail: result.detail }, 'upstream login failed');
        await store.audit.record({ type: 'login.failure', outcome: 'failure', connectorId, ip: ctx.ip, details: { reason: result.reason, detail: auditDetail(result.detail) } });
        outcome = { kind: 'failed', reason: result.reason };
      } else {
        // Nothing is linked or looked up yet: that waits for the browser that started the login.
        const identity: UpstreamIdentity = { ...result.identity, connectorId };
        outcome = { kind: 'upstream', identity: { ...identity, tokens: undefined }, tokens: sealTokens(identity, registered) };
      }
    }
    // The outcome waits, single use, for the browser that holds this interaction's cookie.
    await saveAttempt(state!, { ...stored, outcome });
    ctx.status = 303;
    ctx.redirect(`/interaction/${stored.uid}/upstream/${encodeURIComponent(state!)}`);
  };
  router.get('/callback/:connector', upstreamCallback);
  router.post('/callback/:connector', upstreamCallback);

  /**
   * An upstream-initiated login (SAML IdP-initiated SSO), validated by the connector. There is no
   * authorization request to answer, so the person goes to the connector's client, which starts
   * its own sign-in (OIDC third-party initiated login); that interaction then picks this login up
   * through a short-lived cookie and links it like any other.
   */
  async function unsolicitedLogin(ctx: Context, connectorId: string, params: Record<string, string>) {
    const registered = deps.registry().get(connectorId)!;
    const connector = registered.connector;
    if (connector.kind !== 'redirect' || !connector.unsolicited) throw new InvalidSession();
    const client = connector.unsolicited.client;
    const target = deps.initiateLoginUris.get(client);
    let result: LoginResult;
    try {
      result = await connector.callback({ callbackUrl: urlsOf(connectorId).callback, method: 'POST', params, context: {}, unsolicited: true });
    } catch (err) {
      logger.error({ err, connector: connectorId }, 'connector callback failed (upstream-initiated login)');
      await store.audit.record({ type: 'login.error', outcome: 'failure', connectorId, ip: ctx.ip, details: { stage: 'callback', unsolicited: true } });
      throw new KeybridgeError('upstream_unavailable', unavailable(registered.name), { status: 503, expose: true });
    }
    if (!result.ok) {
      logger.info({ connector: connectorId, reason: result.reason, detail: result.detail }, 'upstream-initiated login refused');
      await store.audit.record({ type: 'login.failure', outcome: 'failure', connectorId, ip: ctx.ip, details: { reason: result.reason, detail: auditDetail(result.detail), unsolicited: true } });
      const message = result.reason === 'upstream_error' ? `${registered.name} sent a sign-in response that is not valid here. Start again from the application.` : FAILURE_MESSAGES[result.reason];
      throw new KeybridgeError('upstream_login_refused', message, { status: 401, expose: true });
    }
    if (!target) {
      logger.error({ connector: connectorId, client }, 'upstream-initiated login: the client has no initiateLoginUri');
      throw new KeybridgeError('no_initiate_login_uri', 'Sign-in started at the identity provider is not set up for this application. Start from the application instead.', { status: 400, expose: true });
    }
    const handle = randomBytes(32).toString('base64url');
    const waiting: UnsolicitedLogin = { connectorId, client, identity: { ...result.identity, connectorId, tokens: undefined } };
    await deps.upstreamAttempts.upsert(unsolicitedKey(handle), waiting as unknown as AdapterPayload, UNSOLICITED_TTL);
    await store.audit.record({ type: 'login.upstream_initiated', connectorId, clientId: client, ip: ctx.ip, details: { subject: result.identity.subject } });
    ctx.cookies.set(UNSOLICITED_COOKIE, handle, { httpOnly: true, sameSite: 'lax', secure: deps.secureCookies, path: '/interaction', maxAge: UNSOLICITED_TTL * 1000, signed: false });
    const location = new URL(target);
    location.searchParams.set('iss', deps.issuer);
    ctx.status = 303;
    ctx.redirect(location.href);
  }

  const unsolicitedKey = (handle: string) => `unsolicited.${handle}`;

  /** The upstream-initiated login this browser brings to an interaction of its client, used once; null when none. */
  async function takeUnsolicited(ctx: Context, clientId: string): Promise<UnsolicitedLogin | null> {
    const handle = ctx.cookies.get(UNSOLICITED_COOKIE);
    if (!handle || handle.length > 128) return null;
    ctx.cookies.set(UNSOLICITED_COOKIE, null, { path: '/interaction', secure: deps.secureCookies, httpOnly: true, sameSite: 'lax' });
    const key = unsolicitedKey(handle);
    const waiting = (await deps.upstreamAttempts.find(key)) as unknown as (UnsolicitedLogin & { consumed?: number }) | undefined;
    if (!waiting || waiting.consumed || waiting.client !== clientId || !(await deps.upstreamAttempts.claim(key))) return null;
    return waiting;
  }

  router.get('/interaction/:uid/upstream/:state', async (ctx) => {
    const details = await loadInteraction(ctx);
    const stored = (await deps.upstreamAttempts.find(ctx.params.state)) as unknown as UpstreamAttempt | undefined;
    if (!stored?.outcome || stored.uid !== details.uid || details.prompt.name !== 'login') throw new InvalidSession();
    // Used once; the consumed record stays until it expires, so a replayed callback is told apart.
    await saveAttempt(ctx.params.state, { ...stored, outcome: undefined });
    const clientId = details.params.client_id as string;
    const outcome = stored.outcome;
    const name = deps.registry().get(stored.connectorId)?.name ?? stored.connectorId;
    if (outcome.kind === 'failed') {
      const error = outcome.reason === 'upstream_error' ? `${name} returned an error. Try again or choose another way to sign in.` : FAILURE_MESSAGES[outcome.reason];
      if (stored.purpose === 'confirm-link') return renderLink(ctx, details.uid, clientId, { error, status: 401 });
      return renderLogin(ctx, details.uid, clientId, { error, status: 401 });
    }
    if (outcome.kind === 'unavailable') {
      if (stored.purpose === 'confirm-link') return renderLink(ctx, details.uid, clientId, { error: unavailable(name), status: 503 });
      return renderLogin(ctx, details.uid, clientId, { error: unavailable(name), status: 503 });
    }
    if (outcome.kind === 'upstream') {
      // The interaction cookie proved this is the browser that started the login: only now is
      // the identity linked (or looked up, for a link proof). Taken once, also under a race.
      const taken = `taken.${ctx.params.state}`;
      await deps.upstreamAttempts.upsert(taken, {} as AdapterPayload, ATTEMPT_TTL);
      if (!(await deps.upstreamAttempts.claim(taken))) throw new InvalidSession();
      const registered = deps.registry().get(stored.connectorId);
      if (!registered) return renderLogin(ctx, details.uid, clientId, { error: 'Choose a way to sign in.', status: 400 });
      const amr = ['fed', ...(outcome.identity.amr ?? [])];
      if (stored.purpose === 'confirm-link') return acceptProof(ctx, details.uid, clientId, await ownerOf(outcome.identity), amr, stored.connectorId, 'upstream');
      const linked = await linkLogin(ctx, details.uid, outcome.identity, registered, clientId, ['fed'], { tokens: outcome.tokens });
      if (linked.kind === 'failed') return renderLogin(ctx, details.uid, clientId, { error: FAILURE_MESSAGES[linked.reason], status: 401 });
      if (linked.kind === 'confirm') return renderLink(ctx, details.uid, clientId);
      if (linked.kind !== 'signed-in') throw new InvalidSession();
      return finishLogin(ctx, linked, stored.connectorId);
    }
    // Outcomes stored by an earlier version, which linked at the callback (attempts live 10 minutes).
    if (outcome.kind === 'confirm') return renderLink(ctx, details.uid, clientId);
    if (outcome.kind === 'proof') return acceptProof(ctx, details.uid, clientId, outcome.userId, outcome.amr, stored.connectorId, 'upstream');
    return finishLogin(ctx, outcome, stored.connectorId);
  });

  // ---- Confirming a link: the person proves they own the local account that holds the email.

  const savePending = (pending: PendingLink) => deps.upstreamAttempts.upsert(pendingKey(pending.uid), pending as unknown as AdapterPayload, ATTEMPT_TTL);
  const loadPending = async (uid: string) => ((await deps.upstreamAttempts.find(pendingKey(uid))) as unknown as PendingLink | undefined) ?? null;
  const dropPending = (uid: string) => deps.upstreamAttempts.destroy(pendingKey(uid));

  /** The local user an identity already belongs to; never creates or links anything. */
  async function ownerOf(identity: UpstreamIdentity): Promise<string | null> {
    if (identity.localUserId) return identity.localUserId;
    return (await store.identities.find(identity.connectorId, identity.subject))?.userId ?? null;
  }

  /** The candidate account's sign-in methods that can prove ownership here. */
  async function proofMethods(pending: PendingLink) {
    const candidate = await store.users.findById(pending.candidateUserId);
    if (!candidate) return null;
    const linked = await store.identities.listForUser(candidate.id);
    const hasPassword = Boolean(await store.credentials.getPasswordHash(candidate.id));
    const password: { id: string; name: string; login: string }[] = [];
    const redirect: { id: string; name: string }[] = [];
    for (const c of deps.registry().list()) {
      if (c.id === pending.connectorId) continue;
      const fed = linked.find((f) => f.connectorId === c.id);
      if (c.connector.kind === 'password') {
        if (c.type === 'local' && hasPassword) password.push({ id: c.id, name: c.name, login: candidate.username });
        else if (fed?.username) password.push({ id: c.id, name: c.name, login: fed.username });
      } else if (fed) {
        redirect.push({ id: c.id, name: c.name });
      }
    }
    return { candidate, password, redirect };
  }

  async function renderLink(ctx: Context, uid: string, clientId: string, extra: { error?: string; status?: number } = {}) {
    const pending = await loadPending(uid);
    const methods = pending && (await proofMethods(pending));
    if (!pending || !methods) return renderLogin(ctx, uid, clientId, LINK_EXPIRED);
    const provider = deps.registry().get(pending.connectorId)?.name ?? pending.connectorId;
    sendPage(ctx, renderer, 'link-account', {
      uid,
      client: await clientView(clientId),
      provider,
      email: maskEmail(pending.identity.email ?? null),
      passwordMethods: methods.password.map((m) => ({ id: m.id, name: m.name })),
      redirectMethods: methods.redirect,
      error: extra.error,
      csrfToken: csrf.issue(uid),
      passwordAction: `/interaction/${uid}/link/password`,
      connectorAction: `/interaction/${uid}/link/connector`,
      newAccountAction: `/interaction/${uid}/link/new`,
      cancelAction: `/interaction/${uid}/abort`,
    }, extra.status ?? 200);
  }

  /** The person proved they own the candidate account (or not): link and sign in, or say why not. */
  async function acceptProof(ctx: Context, uid: string, clientId: string, provedUserId: string | null, proofAmr: string[], proofConnectorId: string, by: 'password' | 'upstream') {
    const pending = await loadPending(uid);
    if (!pending) return renderLogin(ctx, uid, clientId, LINK_EXPIRED);
    if (provedUserId !== pending.candidateUserId) {
      pending.failures += 1;
      await store.audit.record({ type: 'identity.link_refused', outcome: 'failure', userId: pending.candidateUserId, clientId, connectorId: pending.connectorId, ip: ctx.ip, details: { subject: pending.identity.subject, proofConnector: proofConnectorId, reason: provedUserId ? 'other_account' : 'not_signed_in' } });
      if (pending.failures >= MAX_LINK_FAILURES) {
        await dropPending(uid);
        return renderLogin(ctx, uid, clientId, { error: 'Too many failed attempts to link the account. Start again.', status: 429 });
      }
      await savePending(pending);
      // An upstream sign-in that is no one's, or anyone else's, is "a different account".
      const error = provedUserId || by === 'upstream' ? 'That sign-in belongs to a different account. Sign in to the account shown here.' : 'Invalid username or password.';
      return renderLink(ctx, uid, clientId, { error, status: 401 });
    }
    await dropPending(uid);
    const registered = deps.registry().get(pending.connectorId);
    if (!registered) return renderLogin(ctx, uid, clientId, { error: 'Choose a way to sign in.', status: 400 });
    const linked = await linkToUser(store, pending.identity, pending.candidateUserId, { ...linkOptions(registered, pending.tokens), via: 'confirmed' });
    const amr = [...new Set([...pending.amr, ...proofAmr])];
    const outcome = withUpstreamSession(await signInOutcome(ctx, linked.user, linked.federatedIdentityId, mappedClaims(pending.identity, registered), amr, pending.connectorId, clientId), pending.identity);
    if (outcome.kind !== 'signed-in') return renderLogin(ctx, uid, clientId, { error: FAILURE_MESSAGES[refusal(outcome)], status: 401 });
    return finishLogin(ctx, outcome, pending.connectorId);
  }

  router.post('/interaction/:uid/link/password', async (ctx) => {
    const { details, form } = await loadForm(ctx, 'login');
    const clientId = details.params.client_id as string;
    const pending = await loadPending(details.uid);
    const methods = pending && (await proofMethods(pending));
    if (!pending || !methods) return renderLogin(ctx, details.uid, clientId, LINK_EXPIRED);
    const method = methods.password.find((m) => m.id === form.connector);
    const registered = method && deps.registry().get(method.id);
    const password = form.password ?? '';
    if (!method || !registered || registered.connector.kind !== 'password' || !password || password.length > 1024) {
      return renderLink(ctx, details.uid, clientId, { error: 'Enter the password of this account.', status: 400 });
    }
    const throttled = await passwordThrottle(ctx, registered.id, method.login, clientId);
    if (throttled) {
      ctx.set('Retry-After', String(throttled.verdict.retryAfterSeconds));
      return renderLink(ctx, details.uid, clientId, { error: throttled.error, status: 429 });
    }
    let result: LoginResult;
    try {
      result = await registered.connector.login(method.login, password);
    } catch (err) {
      await deps.limits.accountNeutral(registered.id, method.login);
      logger.error({ err, connector: registered.id, interaction: details.uid }, 'connector login failed');
      return renderLink(ctx, details.uid, clientId, { error: unavailable(registered.name), status: 503 });
    }
    await recordPasswordResult(ctx, registered.id, method.login, clientId, result);
    if (!result.ok) {
      await store.audit.record({ type: 'login.failure', outcome: 'failure', userId: pending.candidateUserId, clientId, connectorId: registered.id, ip: ctx.ip, details: { reason: result.reason, stage: 'link' } });
      if (result.reason !== 'invalid_credentials') return renderLink(ctx, details.uid, clientId, { error: FAILURE_MESSAGES[result.reason], status: 401 });
      return acceptProof(ctx, details.uid, clientId, null, ['pwd'], registered.id, 'password');
    }
    return acceptProof(ctx, details.uid, clientId, await ownerOf({ ...result.identity, connectorId: registered.id }), result.identity.amr ?? ['pwd'], registered.id, 'password');
  });

  router.post('/interaction/:uid/link/connector/:connector', async (ctx) => {
    const { details } = await loadForm(ctx, 'login');
    const clientId = details.params.client_id as string;
    const pending = await loadPending(details.uid);
    const methods = pending && (await proofMethods(pending));
    if (!pending || !methods) return renderLogin(ctx, details.uid, clientId, LINK_EXPIRED);
    const registered = methods.redirect.some((m) => m.id === ctx.params.connector) ? deps.registry().get(ctx.params.connector) : undefined;
    if (!registered) return renderLink(ctx, details.uid, clientId, { error: 'Choose one of the ways to sign in shown.', status: 400 });
    const started = await startUpstream(ctx, details.uid, registered, 'confirm-link');
    if ('error' in started) return renderLink(ctx, details.uid, clientId, { error: started.error, status: 503 });
    return goUpstream(ctx, started, registered.name);
  });

  /** The person says the existing account is not theirs: a separate account (without that email). */
  router.post('/interaction/:uid/link/new', async (ctx) => {
    const { details } = await loadForm(ctx, 'login');
    const clientId = details.params.client_id as string;
    const pending = await loadPending(details.uid);
    const registered = pending && deps.registry().get(pending.connectorId);
    if (!pending || !registered) return renderLogin(ctx, details.uid, clientId, LINK_EXPIRED);
    await dropPending(details.uid);
    const linked = await linkIdentity(store, pending.identity, { ...linkOptions(registered, pending.tokens), via: 'login' });
    const outcome = withUpstreamSession(await signInOutcome(ctx, linked.user, linked.federatedIdentityId, mappedClaims(pending.identity, registered), pending.amr, pending.connectorId, clientId), pending.identity);
    if (outcome.kind !== 'signed-in') return renderLogin(ctx, details.uid, clientId, { error: FAILURE_MESSAGES[refusal(outcome)], status: 401 });
    return finishLogin(ctx, outcome, pending.connectorId);
  });

  router.post('/interaction/:uid/confirm', async (ctx) => {
    const { details } = await loadForm(ctx, 'consent');
    const consent = await grantConsent(details);
    await store.audit.record({ type: 'consent.granted', userId: details.session?.accountId ?? null, clientId: details.params.client_id as string, ip: ctx.ip, details: { scope: details.params.scope } });
    return finish(ctx, { consent }, true);
  });

  router.post('/interaction/:uid/abort', async (ctx) => {
    const { details } = await loadForm(ctx);
    await store.audit.record({ type: 'interaction.aborted', userId: details.session?.accountId ?? null, clientId: details.params.client_id as string, ip: ctx.ip });
    return finish(ctx, { error: 'access_denied', error_description: 'End-User aborted interaction' }, false);
  });

  return router;
}
