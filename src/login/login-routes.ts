// The interaction's routes, dispatching to the login steps (src/login/steps/<step>/):
// authenticate (password, redirect connector, passkey) -> link -> second factor -> configure
// MFA -> notices -> update password -> finish, then oidc-provider's consent prompt.
import Router from '@koa/router';
import type { Context } from 'koa';
import { KeybridgeError } from '../errors.ts';
import { createLoginKit, type Interaction, type LoginDependencies } from './login-kit.ts';
import { createPipeline, type LoginStep } from './pipeline.ts';
import { STEP_UP_REASON } from './step-up.ts';
import { createPasswordThrottle } from './steps/authenticate/password-throttle.ts';
import { passwordLoginRoutes } from './steps/authenticate/password-login.ts';
import { createUpstreamLogin, type UpstreamLogin } from './steps/authenticate/upstream-login.ts';
import { passkeyLoginRoutes } from './steps/authenticate/passkey-login.ts';
import { createLinkStep } from './steps/link/link-step.ts';
import { createSecondFactorStep } from './steps/second-factor/second-factor-step.ts';
import { createConfigureMfaStep } from './steps/required-actions/configure-mfa.ts';
import { createUpdatePasswordStep } from './steps/required-actions/update-password.ts';
import { createNoticeStep } from './steps/notice/notice-step.ts';
import { createConsentStep } from './steps/consent/consent-step.ts';

/** oidc-provider's login-prompt reasons that ask for the person to sign in again, not just a factor. */
const FRESH_SIGN_IN_REASONS = new Set(['max_age', 'login_prompt']);

export type { LoginDependencies, LoginProvenance } from './login-kit.ts';

export function loginRoutes(deps: LoginDependencies): Router {
  const router = new Router();
  const kit = createLoginKit(deps);
  const { store } = deps;

  // The steps after authentication and linking, in order.
  const steps: LoginStep[] = [];
  const pipeline = createPipeline(kit, () => steps);
  const secondFactor = createSecondFactorStep(kit, () => pipeline);
  const configureMfa = createConfigureMfaStep(kit, () => pipeline);
  const notice = createNoticeStep(kit, () => pipeline);
  const updatePassword = createUpdatePasswordStep(kit, () => pipeline);
  steps.push(secondFactor.step, configureMfa.step, notice.step, updatePassword.step);

  const throttle = createPasswordThrottle(kit);
  let upstream: UpstreamLogin;
  const link = createLinkStep(kit, pipeline, throttle, () => upstream);
  upstream = createUpstreamLogin(kit, link);
  const consent = createConsentStep(kit);

  /** A signed-in person whose session lacks the second factor this request needs: only that is asked. */
  async function stepUp(ctx: Context, details: Interaction): Promise<boolean> {
    const session = details.session;
    if (!session?.accountId || !details.prompt.reasons.includes(STEP_UP_REASON)) return false;
    // The client wants a fresh sign-in (prompt=login, or max_age passed): the whole login runs,
    // password included; a step-up would keep the old sign-in time.
    if (details.prompt.reasons.some((reason) => FRESH_SIGN_IN_REASONS.has(reason))) return false;
    const [user, login] = await Promise.all([store.users.findById(session.accountId), session.uid ? store.loginSessions.find(session.uid) : null]);
    // Deleted or disabled since the session began: a full sign-in, which says why.
    if (!user?.enabled || !login) return false;
    // Only a second factor (or a new one) is asked: the session keeps the time its person last
    // signed in, so this never counts as the recent sign-in sensitive changes require.
    await pipeline.begin(ctx, details, login.connectorId, { userId: user.id, federatedIdentityId: login.federatedIdentityId, amr: login.amr, claims: login.claims, upstreamSession: login.upstreamSession ?? undefined }, { stepUp: true, authenticatedAt: login.authenticatedAt.getTime() });
    return true;
  }

  router.get('/interaction/:uid', async (ctx) => {
    // The login's stored state (a reload mid-login) is read in the same statement as the
    // interaction; it is used only once the interaction proves the uid is this browser's.
    const state = pipeline.prefetch(ctx.params.uid);
    const details = await kit.loadInteraction(ctx);
    const clientId = details.params.client_id as string;
    if (details.prompt.name === 'login') {
      if (await pipeline.resume(ctx, details, state)) return;
      if (await stepUp(ctx, details)) return;
      const waiting = await upstream.takeUnsolicited(ctx, clientId);
      const registered = waiting && deps.registry().get(waiting.connectorId);
      if (waiting && registered) return link.linkAndContinue(ctx, details, waiting.identity, registered, ['fed']);
      const hint = typeof details.params.login_hint === 'string' ? details.params.login_hint.slice(0, 256) : undefined;
      return kit.renderLogin(ctx, details.uid, clientId, { username: hint });
    }
    if (details.prompt.name === 'consent') return consent.show(ctx, details);
    throw new KeybridgeError('unsupported_prompt', 'This sign-in step is not supported.', { status: 400, expose: true, text: { key: 'errors.unsupported_prompt' }, detail: { prompt: details.prompt.name } });
  });

  passwordLoginRoutes(router, kit, throttle, link);
  passkeyLoginRoutes(router, kit, () => pipeline);
  upstream.routes(router);
  link.routes(router);
  secondFactor.routes(router);
  configureMfa.routes(router);
  notice.routes(router);
  updatePassword.routes(router);
  consent.routes(router);

  router.post('/interaction/:uid/abort', async (ctx) => {
    const { details } = await kit.loadForm(ctx);
    await pipeline.discard(details.uid);
    await store.audit.record({ type: 'interaction.aborted', userId: details.session?.accountId ?? null, clientId: details.params.client_id as string, ip: ctx.ip });
    return kit.finish(ctx, { error: 'access_denied', error_description: 'End-User aborted interaction' }, false);
  });

  return router;
}


