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
import type { FailureReason, LoginResult, UpstreamIdentity } from '../connectors/contract.ts';
import type { Store } from '../storage/store.ts';
import type { PageRenderer } from '../http/page-renderer.ts';
import type { CsrfTokens } from '../http/csrf.ts';
import { sendPage } from '../http/send-page.ts';
import { readForm } from '../http/read-form.ts';
import { linkIdentity } from '../accounts/link-identity.ts';
import { InvalidSession, KeybridgeError } from '../errors.ts';

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

/** One redirect-connector attempt, stored under its state handle in the artifact store. */
interface UpstreamAttempt {
  uid: string;
  connectorId: string;
  context: Record<string, unknown>;
  /** Set once the upstream came back: what to hand to the interaction. */
  outcome?: { ok: true; userId: string; federatedIdentityId: string | null; amr: string[] } | { ok: false; reason: FailureReason };
}

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
}

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

  router.post('/interaction/:uid/login', async (ctx) => {
    const { details, form } = await loadForm(ctx, 'login');
    const clientId = details.params.client_id as string;

    const registered: RegisteredConnector | undefined = deps.registry().get(form.connector ?? '');
    if (!registered || registered.connector.kind !== 'password') {
      return renderLogin(ctx, details.uid, clientId, { error: 'Choose a way to sign in.', status: 400 });
    }
    const username = (form.username ?? '').trim();
    const password = form.password ?? '';
    if (!username || !password || username.length > 256 || password.length > 1024) {
      return renderLogin(ctx, details.uid, clientId, { error: 'Enter your username and password.', username: username.slice(0, 256), selected: registered.id, status: 400 });
    }

    let result;
    try {
      result = await registered.connector.login(username, password);
    } catch (err) {
      logger.error({ err, connector: registered.id, interaction: details.uid }, 'connector login failed');
      await store.audit.record({ type: 'login.error', outcome: 'failure', clientId, connectorId: registered.id, ip: ctx.ip, details: { username } });
      return renderLogin(ctx, details.uid, clientId, {
        error: unavailable(registered.name), username, selected: registered.id, status: 503,
      });
    }

    if (!result.ok) {
      logger.info({ connector: registered.id, interaction: details.uid, reason: result.reason, detail: result.detail }, 'login failed');
      await store.audit.record({ type: 'login.failure', outcome: 'failure', clientId, connectorId: registered.id, ip: ctx.ip, details: { username, reason: result.reason } });
      return renderLogin(ctx, details.uid, clientId, { error: FAILURE_MESSAGES[result.reason], username, selected: registered.id, status: 401 });
    }

    const linked = await linkLogin(ctx, result.identity, registered.id, clientId, ['pwd']);
    if (!linked.ok) return renderLogin(ctx, details.uid, clientId, { error: FAILURE_MESSAGES[linked.reason], username, selected: registered.id, status: 401 });
    return finishLogin(ctx, linked, registered.id);
  });

  /** Links an upstream identity to its local user and records the login; refuses disabled users. */
  async function linkLogin(ctx: Context, identity: UpstreamIdentity, connectorId: string, clientId: string | null, defaultAmr: string[]): Promise<NonNullable<UpstreamAttempt['outcome']>> {
    const linked = await linkIdentity(store, { ...identity, connectorId });
    if (!linked.user.enabled) {
      await store.audit.record({ type: 'login.failure', outcome: 'failure', userId: linked.user.id, clientId, connectorId, ip: ctx.ip, details: { reason: 'account_disabled' } });
      return { ok: false, reason: 'account_disabled' };
    }
    await store.audit.record({ type: 'login.success', userId: linked.user.id, clientId, connectorId, ip: ctx.ip });
    return { ok: true, userId: linked.user.id, federatedIdentityId: linked.federatedIdentityId, amr: identity.amr ?? defaultAmr };
  }

  function finishLogin(ctx: Context, login: { userId: string; federatedIdentityId: string | null; amr: string[] }, connectorId: string) {
    const provenance: LoginProvenance = { connectorId, federatedIdentityId: login.federatedIdentityId, amr: login.amr };
    return finish(ctx, { login: { accountId: login.userId, amr: login.amr, remember: true }, keybridge: provenance }, false);
  }

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
    const state = randomBytes(32).toString('base64url');
    let start;
    try {
      start = await registered.connector.start({ callbackUrl: `${deps.issuer}/callback/${registered.id}`, state });
    } catch (err) {
      logger.error({ err, connector: registered.id, interaction: details.uid }, 'connector start failed');
      await store.audit.record({ type: 'login.error', outcome: 'failure', clientId, connectorId: registered.id, ip: ctx.ip, details: { stage: 'start' } });
      return renderLogin(ctx, details.uid, clientId, { error: unavailable(registered.name), status: 503 });
    }
    const attempt: UpstreamAttempt = { uid: details.uid, connectorId: registered.id, context: start.context };
    await saveAttempt(state, attempt);
    ctx.status = 303;
    ctx.redirect(start.location);
  });

  const upstreamCallback = async (ctx: Context) => {
    const params = ctx.method === 'POST' ? await readForm(ctx, 512 * 1024) : Object.fromEntries(new URLSearchParams(ctx.querystring));
    const state = params.state ?? params.RelayState;
    const stored = typeof state === 'string' && state.length <= 128 ? ((await deps.upstreamAttempts.find(state)) as unknown as (UpstreamAttempt & { consumed?: number }) | undefined) : undefined;
    const connectorId = ctx.params.connector;
    // Unknown, expired, replayed (also concurrently: the claim is atomic), or sent to the wrong
    // connector's callback.
    const usable = stored && !stored.consumed && !stored.outcome && stored.connectorId === connectorId && (await deps.upstreamAttempts.claim(state!));
    if (!stored || !usable) {
      await store.audit.record({ type: 'login.rejected', outcome: 'failure', connectorId, ip: ctx.ip, details: { reason: stored ? 'replayed_or_mismatched_state' : 'unknown_state' } });
      throw new InvalidSession('This sign-in response is invalid, expired or was already used. Start again from the application.');
    }
    const registered = deps.registry().get(connectorId);
    let outcome: NonNullable<UpstreamAttempt['outcome']>;
    if (!registered || registered.connector.kind !== 'redirect') {
      outcome = { ok: false, reason: 'upstream_error' };
    } else {
      let result: LoginResult;
      try {
        result = await registered.connector.callback({ callbackUrl: `${deps.issuer}/callback/${connectorId}`, params, context: stored.context });
      } catch (err) {
        logger.error({ err, connector: connectorId, interaction: stored.uid }, 'connector callback failed');
        result = { ok: false, reason: 'upstream_error' };
      }
      if (result.ok) {
        outcome = await linkLogin(ctx, result.identity, connectorId, null, ['fed']);
      } else {
        logger.info({ connector: connectorId, interaction: stored.uid, reason: result.reason, detail: result.detail }, 'upstream login failed');
        await store.audit.record({ type: 'login.failure', outcome: 'failure', connectorId, ip: ctx.ip, details: { reason: result.reason } });
        outcome = { ok: false, reason: result.reason };
      }
    }
    // The outcome waits, single use, for the browser that holds this interaction's cookie.
    await saveAttempt(state!, { ...stored, outcome });
    ctx.status = 303;
    ctx.redirect(`/interaction/${stored.uid}/upstream/${encodeURIComponent(state!)}`);
  };
  router.get('/callback/:connector', upstreamCallback);
  router.post('/callback/:connector', upstreamCallback);

  router.get('/interaction/:uid/upstream/:state', async (ctx) => {
    const details = await loadInteraction(ctx);
    const stored = (await deps.upstreamAttempts.find(ctx.params.state)) as unknown as UpstreamAttempt | undefined;
    if (!stored?.outcome || stored.uid !== details.uid || details.prompt.name !== 'login') throw new InvalidSession();
    // Used once; the consumed record stays until it expires, so a replayed callback is told apart.
    await saveAttempt(ctx.params.state, { ...stored, outcome: undefined });
    const clientId = details.params.client_id as string;
    if (!stored.outcome.ok) {
      const name = deps.registry().get(stored.connectorId)?.name ?? stored.connectorId;
      const error = stored.outcome.reason === 'upstream_error' ? `${name} returned an error. Try again or choose another way to sign in.` : FAILURE_MESSAGES[stored.outcome.reason];
      return renderLogin(ctx, details.uid, clientId, { error, status: 401 });
    }
    return finishLogin(ctx, stored.outcome, stored.connectorId);
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
