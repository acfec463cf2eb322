// The link step: an upstream identity becomes a local user under the connector's first-login
// policy. When a local user already holds the identity's email and the policy says `confirm`,
// the person first proves they own that account (its password, or one of its other upstreams)
// on the link page; only then is the identity linked.
import type { Context } from 'koa';
import type { AdapterPayload } from 'oidc-provider';
import type Router from '@koa/router';
import type { RegisteredConnector } from '../../../connectors/registry.ts';
import type { FailureReason, LoginResult, UpstreamIdentity } from '../../../connectors/contract.ts';
import { linkIdentity, linkToUser, resolveIdentity, type LinkOptions } from '../../../accounts/link-identity.ts';
import { tokenBinding } from '../../../accounts/token-cipher.ts';
import { applyMappers } from '../../../accounts/identity-mappers.ts';
import { sendPage } from '../../../http/send-page.ts';
import { FAILURE_MESSAGES, unavailable, type Interaction, type LoginKit, type SignedIn } from '../../login-kit.ts';
import type { LoginPipeline } from '../../pipeline.ts';
import type { LoginFacts } from '../../../storage/mfa-repository.ts';
import type { PasswordThrottle } from '../authenticate/password-throttle.ts';
import type { UpstreamLogin } from '../authenticate/upstream-login.ts';
import { checkPasswordAtLogin } from '../authenticate/password-at-login.ts';
import { DatabaseUnavailable } from '../../../storage/database-unavailable.ts';
import { text, type PageText } from '../../../i18n/page-text.ts';

export type Outcome =
  | ({ kind: 'signed-in' } & SignedIn)
  | { kind: 'failed'; reason: FailureReason }
  /** The upstream could not be reached (down, too slow): not the person's fault, try later. */
  | { kind: 'unavailable' }
  /** The identity is new and a local user holds its email: a PendingLink waits for proof. */
  | { kind: 'confirm' }
  /** A `confirm-link` attempt came back: the local user that upstream login belongs to, if any. */
  | { kind: 'proof'; userId: string | null; amr: string[] };

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

const ATTEMPT_TTL = 600;
/** Wrong passwords allowed on the link page before the pending link is dropped. */
const MAX_LINK_FAILURES = 5;
const pendingKey = (uid: string) => `link.${uid}`;
const LINK_EXPIRED = { error: text('link.error.expired'), status: 400 };

/** "a***@example.org": enough for the owner to recognize, not enough to harvest. */
function maskEmail(email: string | null): string | null {
  if (!email) return null;
  const at = email.lastIndexOf('@');
  if (at < 1) return null;
  return `${email[0]}${'*'.repeat(Math.min(Math.max(at - 1, 3), 8))}${email.slice(at)}`;
}

/** Why an outcome that is not a sign-in refuses the person (signInOutcome only refuses as `failed`). */
const refusal = (outcome: Outcome): FailureReason => (outcome.kind === 'failed' ? outcome.reason : 'not_permitted');

export interface LinkStep {
  /**
   * Links an upstream identity under the connector's policy and signs the person in, or shows
   * why not, or the link page. `defaultAmr`: how the broker authenticated (pwd; fed).
   */
  linkAndContinue(ctx: Context, details: Interaction, identity: UpstreamIdentity, registered: RegisteredConnector, defaultAmr: string[], options?: { sealed?: { tokens?: string | null }; username?: string }): Promise<void>;
  /** What the broker keeps of an identity's upstream tokens: ciphertext, and only when the connector is configured to. */
  sealTokens(identity: UpstreamIdentity, registered: RegisteredConnector): string | null | undefined;
  renderLink(ctx: Context, details: Interaction, extra?: { error?: PageText; status?: number }): Promise<void>;
  /** The person proved they own the candidate account (or not): link and sign in, or say why not. */
  acceptProof(ctx: Context, details: Interaction, provedUserId: string | null, proofAmr: string[], proofConnectorId: string, by: 'password' | 'upstream'): Promise<void>;
  /** The local user an identity already belongs to; never creates or links anything. */
  ownerOf(identity: UpstreamIdentity): Promise<string | null>;
  routes(router: Router): void;
}

export function createLinkStep(kit: LoginKit, pipeline: LoginPipeline, throttle: PasswordThrottle, upstream: () => UpstreamLogin): LinkStep {
  const { deps, renderLogin, clientView, loadForm } = kit;
  const { store, csrf, renderer, logger } = deps;
  const clientOf = (details: Interaction) => details.params.client_id as string;

  const savePending = (pending: PendingLink) => deps.upstreamAttempts.upsert(pendingKey(pending.uid), pending as unknown as AdapterPayload, ATTEMPT_TTL);
  const loadPending = async (uid: string) => ((await deps.upstreamAttempts.find(pendingKey(uid))) as unknown as PendingLink | undefined) ?? null;
  const dropPending = (uid: string) => deps.upstreamAttempts.destroy(pendingKey(uid));

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

  const mappedClaims = (identity: UpstreamIdentity, registered: RegisteredConnector) => applyMappers(identity, registered.policy.mappers).claims;

  /**
   * How the broker authenticated (pwd; fed for an upstream), plus only what the connector's
   * policy lets tokens repeat of the upstream's own methods: its second factor when the
   * connector is trusted with it (trustUpstreamMfa), never an unvetted `mfa` or `otp`.
   */
  function loginAmr(identity: UpstreamIdentity, registered: RegisteredConnector, defaultAmr: string[]): string[] {
    const vetted = deps.mfa.upstreamProof(identity, registered.policy).amr.filter((m) => m !== 'fed' || defaultAmr.includes('fed'));
    return [...new Set([...defaultAmr, ...vetted])];
  }

  const withUpstreamSession = (outcome: Outcome, identity: UpstreamIdentity): Outcome =>
    outcome.kind === 'signed-in' && identity.upstreamSession ? { ...outcome, upstreamSession: identity.upstreamSession } : outcome;

  /** Refuses disabled users; records the login. */
  async function signInOutcome(ctx: Context, user: { id: string; enabled: boolean }, federatedIdentityId: string | null, claims: Record<string, unknown>, amr: string[], connectorId: string, clientId: string | null): Promise<Outcome> {
    if (!user.enabled) {
      await store.audit.record({ type: 'login.failure', outcome: 'failure', userId: user.id, clientId, connectorId, ip: ctx.ip, details: { reason: 'account_disabled' } });
      return { kind: 'failed', reason: 'account_disabled' };
    }
    await store.audit.record({ type: 'login.success', userId: user.id, clientId, connectorId, ip: ctx.ip });
    return { kind: 'signed-in', userId: user.id, federatedIdentityId, amr, claims };
  }

  /** A signed-in outcome goes on through the pipeline; anything else back to the login page. */
  async function continueWith(ctx: Context, details: Interaction, outcome: Outcome, connectorId: string, identity: UpstreamIdentity, username?: string, facts?: LoginFacts) {
    if (outcome.kind === 'confirm') return renderLink(ctx, details);
    if (outcome.kind !== 'signed-in') return renderLogin(ctx, details.uid, clientOf(details), { error: FAILURE_MESSAGES[refusal(outcome)], username, selected: username === undefined ? undefined : connectorId, status: 401 });
    const { kind: _kind, ...signedIn } = outcome;
    // An upstream that proved a second factor, from a connector trusted to say so, settles it
    // (its amr, with `mfa`, is in the login's amr already: loginAmr).
    const registered = deps.registry().get(connectorId);
    const proved = registered ? deps.mfa.upstreamProof(identity, registered.policy).proved : false;
    return pipeline.begin(ctx, details, connectorId, signedIn, proved ? { secondFactor: 'upstream' } : {}, facts);
  }

  async function linkAndContinue(ctx: Context, details: Interaction, upstreamIdentity: UpstreamIdentity, registered: RegisteredConnector, defaultAmr: string[], options: { sealed?: { tokens?: string | null }; username?: string } = {}) {
    const identity: UpstreamIdentity = { ...upstreamIdentity, connectorId: registered.id };
    const connectorId = registered.id;
    const clientId = clientOf(details);
    // `sealed`: the tokens were encrypted when the upstream answered.
    const tokens = options.sealed ? options.sealed.tokens : sealTokens(identity, registered);
    const amr = loginAmr(identity, registered, defaultAmr);
    // A local account: the user, read again now that its password is verified (disabled or
    // deleted meanwhile?), comes with what the login's steps read of it, in one statement.
    const local = identity.localUserId && clientId ? await store.mfa.loginFactsWithUser(identity.localUserId, { clientId, connectorId }) : undefined;
    const resolved = await resolveIdentity(store, { ...identity, tokens: undefined }, { ...linkOptions(registered, tokens), ...(local ? { localUser: local.user } : {}) });
    if (resolved.kind === 'confirm') {
      const pending: PendingLink = { uid: details.uid, connectorId, identity: { ...identity, tokens: undefined }, tokens: tokens ?? null, candidateUserId: resolved.candidate.id, amr, failures: 0 };
      await savePending(pending);
      await store.audit.record({ type: 'identity.link_pending', userId: resolved.candidate.id, clientId, connectorId, ip: ctx.ip, details: { subject: identity.subject, policy: registered.policy.linking.firstLogin } });
      return renderLink(ctx, details);
    }
    const outcome = withUpstreamSession(await signInOutcome(ctx, resolved.user, resolved.federatedIdentityId, resolved.claims, amr, connectorId, clientId), identity);
    return continueWith(ctx, details, outcome, connectorId, identity, options.username, local?.facts);
  }

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

  async function renderLink(ctx: Context, details: Interaction, extra: { error?: PageText; status?: number } = {}) {
    const { uid } = details;
    const pending = await loadPending(uid);
    const methods = pending && (await proofMethods(pending));
    if (!pending || !methods) return renderLogin(ctx, uid, clientOf(details), LINK_EXPIRED);
    const provider = deps.registry().get(pending.connectorId)?.name ?? pending.connectorId;
    sendPage(ctx, renderer, 'link-account', {
      uid,
      client: await clientView(clientOf(details)),
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

  async function acceptProof(ctx: Context, details: Interaction, provedUserId: string | null, proofAmr: string[], proofConnectorId: string, by: 'password' | 'upstream') {
    const { uid } = details;
    const clientId = clientOf(details);
    const pending = await loadPending(uid);
    if (!pending) return renderLogin(ctx, uid, clientId, LINK_EXPIRED);
    if (provedUserId !== pending.candidateUserId) {
      pending.failures += 1;
      await store.audit.record({ type: 'identity.link_refused', outcome: 'failure', userId: pending.candidateUserId, clientId, connectorId: pending.connectorId, ip: ctx.ip, details: { subject: pending.identity.subject, proofConnector: proofConnectorId, reason: provedUserId ? 'other_account' : 'not_signed_in' } });
      if (pending.failures >= MAX_LINK_FAILURES) {
        await dropPending(uid);
        return renderLogin(ctx, uid, clientId, { error: text('link.error.too_many'), status: 429 });
      }
      await savePending(pending);
      // An upstream sign-in that is no one's, or anyone else's, is "a different account".
      const error = provedUserId || by === 'upstream' ? text('link.error.other_account') : FAILURE_MESSAGES.invalid_credentials;
      return renderLink(ctx, details, { error, status: 401 });
    }
    await dropPending(uid);
    const registered = deps.registry().get(pending.connectorId);
    if (!registered) return renderLogin(ctx, uid, clientId, { error: text('login.error.choose_method'), status: 400 });
    const linked = await linkToUser(store, pending.identity, pending.candidateUserId, { ...linkOptions(registered, pending.tokens), via: 'confirmed' });
    const amr = [...new Set([...pending.amr, ...proofAmr])];
    const outcome = withUpstreamSession(await signInOutcome(ctx, linked.user, linked.federatedIdentityId, mappedClaims(pending.identity, registered), amr, pending.connectorId, clientId), pending.identity);
    return continueWith(ctx, details, outcome, pending.connectorId, pending.identity);
  }

  function routes(router: Router) {
    router.post('/interaction/:uid/link/password', async (ctx) => {
      const { details, form } = await loadForm(ctx, 'login');
      const clientId = clientOf(details);
      const pending = await loadPending(details.uid);
      const methods = pending && (await proofMethods(pending));
      if (!pending || !methods) return renderLogin(ctx, details.uid, clientId, LINK_EXPIRED);
      const method = methods.password.find((m) => m.id === form.connector);
      const registered = method && deps.registry().get(method.id);
      const password = form.password ?? '';
      if (!method || !registered || registered.connector.kind !== 'password' || !password || password.length > 1024) {
        return renderLink(ctx, details, { error: text('link.error.enter_password'), status: 400 });
      }
      const throttled = await throttle.check(ctx, registered.id, method.login, clientId);
      if (throttled) {
        ctx.set('Retry-After', String(throttled.verdict.retryAfterSeconds));
        return renderLink(ctx, details, { error: throttled.error, status: 429 });
      }
      let result: LoginResult;
      try {
        result = await registered.connector.login(method.login, password);
      } catch (err) {
        await deps.limits.accountNeutral(registered.id, method.login);
        // Our database, not the connector: the error page's 503 (see password-login.ts).
        if (err instanceof DatabaseUnavailable) throw err;
        logger.error({ err, connector: registered.id, interaction: details.uid }, 'connector login failed');
        return renderLink(ctx, details, { error: unavailable(registered.name), status: 503 });
      }
      await throttle.record(ctx, registered.id, method.login, clientId, result);
      if (!result.ok) {
        await store.audit.record({ type: 'login.failure', outcome: 'failure', userId: pending.candidateUserId, clientId, connectorId: registered.id, ip: ctx.ip, details: { reason: result.reason, stage: 'link' } });
        if (result.reason !== 'invalid_credentials') return renderLink(ctx, details, { error: FAILURE_MESSAGES[result.reason], status: 401 });
        return acceptProof(ctx, details, null, ['pwd'], registered.id, 'password');
      }
      // The local password proved the account: expired or too weak, it asks for a new one too.
      await checkPasswordAtLogin(ctx, kit, result.identity, password, clientId);
      return acceptProof(ctx, details, await ownerOf({ ...result.identity, connectorId: registered.id }), ['pwd'], registered.id, 'password');
    });

    router.post('/interaction/:uid/link/connector/:connector', async (ctx) => {
      const { details } = await loadForm(ctx, 'login');
      const pending = await loadPending(details.uid);
      const methods = pending && (await proofMethods(pending));
      if (!pending || !methods) return renderLogin(ctx, details.uid, clientOf(details), LINK_EXPIRED);
      const registered = methods.redirect.some((m) => m.id === ctx.params.connector) ? deps.registry().get(ctx.params.connector) : undefined;
      if (!registered) return renderLink(ctx, details, { error: text('link.error.choose_shown'), status: 400 });
      const started = await upstream().start(ctx, details.uid, registered, 'confirm-link');
      if ('error' in started) return renderLink(ctx, details, { error: started.error, status: 503 });
      return upstream().go(ctx, started, registered.name);
    });

    /** The person says the existing account is not theirs: a separate account (without that email). */
    router.post('/interaction/:uid/link/new', async (ctx) => {
      const { details } = await loadForm(ctx, 'login');
      const pending = await loadPending(details.uid);
      const registered = pending && deps.registry().get(pending.connectorId);
      if (!pending || !registered) return renderLogin(ctx, details.uid, clientOf(details), LINK_EXPIRED);
      await dropPending(details.uid);
      const linked = await linkIdentity(store, pending.identity, { ...linkOptions(registered, pending.tokens), via: 'login' });
      const outcome = withUpstreamSession(await signInOutcome(ctx, linked.user, linked.federatedIdentityId, mappedClaims(pending.identity, registered), pending.amr, pending.connectorId, clientOf(details)), pending.identity);
      return continueWith(ctx, details, outcome, pending.connectorId, pending.identity);
    });
  }

  return { linkAndContinue, sealTokens, renderLink, acceptProof, ownerOf, routes };
}
