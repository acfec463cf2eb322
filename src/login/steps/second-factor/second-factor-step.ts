// The second factor: asked when the policy (global, client, connector, the user's groups) or
// the client (acr_values / an essential acr claim: step-up) wants one and nothing settled it
// already (an upstream's trusted MFA, a remembered device). A user who must but has no factor
// is sent to enrol (configure-mfa). Factors: TOTP, a passkey or security key, a recovery code.
import type Router from '@koa/router';
import type { Context } from 'koa';
import { sendPage } from '../../../http/send-page.ts';
import { InvalidSession } from '../../../errors.ts';
import { text, type PageText } from '../../../i18n/page-text.ts';
import { WEBAUTHN_MESSAGES } from '../../mfa-services.ts';
import { requestsMfa } from '../../step-up.ts';
import { withFactor, type LoginPipeline, type LoginState, type LoginStep } from '../../pipeline.ts';
import { CREDENTIAL_FORM_LIMIT, allowPasskeyScript, type Interaction, type LoginKit } from '../../login-kit.ts';
import { createFactorThrottle } from './factor-throttle.ts';
import { isRemembered, rememberDevice } from './remembered-device.ts';

export function createSecondFactorStep(kit: LoginKit, pipeline: () => LoginPipeline): { step: LoginStep; routes(router: Router): void } {
  const { deps, loadForm, clientView } = kit;
  const { store, csrf, renderer, mfa } = deps;
  const throttle = createFactorThrottle(kit);
  const passkeyKey = (uid: string) => `mfa-passkey.${uid}`;

  const step: LoginStep = {
    name: 'second-factor',
    async applies(ctx, state, details) {
      if (state.secondFactor) return false;
      const requested = requestsMfa(details.params);
      const { mode } = await mfa.policy.resolve({ userId: state.login.userId, clientId: state.clientId, connectorId: state.connectorId }, state.facts.applicable);
      const { enrolled } = state.facts;
      if (!enrolled) {
        if (mode === 'required' || requested) state.mustEnrol = true;
        else state.secondFactor = 'not-needed';
        return false;
      }
      if (mode === 'off' && !requested) {
        state.secondFactor = 'not-needed';
        return false;
      }
      if (!requested && mfa.rememberDays > 0 && (await isRemembered(ctx, store, state.login.userId))) {
        state.secondFactor = 'remembered';
        return false;
      }
      return true;
    },
    async render(ctx, state, details, extra = {}) {
      const userId = state.login.userId;
      const factors = await store.mfa.list(userId);
      const uid = details.uid;
      allowPasskeyScript(ctx);
      sendPage(ctx, renderer, 'mfa-challenge', {
        uid,
        client: await clientView(state.clientId),
        totp: factors.some((f) => f.type === 'totp' && f.confirmed),
        passkey: mfa.passkeys && factors.some((f) => f.type === 'webauthn') ? { optionsUrl: `/interaction/${uid}/mfa/passkey/options`, action: `/interaction/${uid}/mfa/passkey` } : null,
        recoveryCodes: (await store.mfa.recoveryCodesLeft(userId)) > 0,
        rememberDays: mfa.rememberDays,
        error: extra.error,
        csrfToken: csrf.issue(uid),
        totpAction: `/interaction/${uid}/mfa/totp`,
        recoveryAction: `/interaction/${uid}/mfa/recovery`,
        cancelAction: `/interaction/${uid}/abort`,
      }, extra.status ?? 200);
    },
  };

  /** The login state of an interaction that is at this step; anything else is a stale or forged post. */
  async function atStep(ctx: Context) {
    const { details, form } = await loadForm(ctx, 'login', CREDENTIAL_FORM_LIMIT);
    const state = await pipeline().load(details.uid);
    if (!state || state.secondFactor || state.mustEnrol) throw new InvalidSession();
    return { details, form, state };
  }

  async function passed(ctx: Context, details: Interaction, state: LoginState, amr: string[], form: Record<string, string>, factor: string) {
    await throttle.passed(state.login.userId);
    state.login.amr = withFactor(state.login.amr, amr);
    state.secondFactor = 'factor';
    await store.audit.record({ type: 'mfa.success', userId: state.login.userId, clientId: state.clientId, connectorId: state.connectorId, ip: ctx.ip, details: { factor, stepUp: Boolean(state.stepUp) } });
    if (mfa.rememberDays > 0 && form.remember === 'on') await rememberDevice(ctx, store, state.login.userId, mfa.rememberDays, deps.secureCookies);
    return pipeline().advance(ctx, details, state);
  }

  async function refused(ctx: Context, details: Interaction, state: LoginState, factor: string, reason: string, error: PageText) {
    await throttle.failed(ctx, state.login.userId, state.clientId);
    await store.audit.record({ type: 'mfa.failure', outcome: 'failure', userId: state.login.userId, clientId: state.clientId, connectorId: state.connectorId, ip: ctx.ip, details: { factor, reason } });
    return step.render(ctx, state, details, { error, status: 401 });
  }

  /** The throttle's refusal, rendered; null when the code may be checked. */
  async function throttled(ctx: Context, details: Interaction, state: LoginState) {
    const refusal = await throttle.check(ctx, state.login.userId, state.clientId);
    if (!refusal) return false;
    ctx.set('Retry-After', String(refusal.retryAfter));
    await step.render(ctx, state, details, { error: refusal.error, status: 429 });
    return true;
  }

  function routes(router: Router) {
    router.post('/interaction/:uid/mfa/totp', async (ctx) => {
      const { details, form, state } = await atStep(ctx);
      if (await throttled(ctx, details, state)) return;
      const result = await mfa.totp.verify(state.login.userId, form.code ?? '');
      if (!result.ok) {
        const error = text(result.reason === 'replayed' ? 'mfa.error.code_replayed' : 'mfa.error.code_wrong');
        return refused(ctx, details, state, 'totp', result.reason, error);
      }
      return passed(ctx, details, state, ['otp'], form, 'totp');
    });

    router.post('/interaction/:uid/mfa/recovery', async (ctx) => {
      const { details, form, state } = await atStep(ctx);
      if (await throttled(ctx, details, state)) return;
      const left = await mfa.recovery.use(state.login.userId, form.code ?? '');
      if (left === null) return refused(ctx, details, state, 'recovery_code', 'invalid', text('mfa.error.recovery_invalid'));
      await store.audit.record({ type: 'mfa.recovery_code_used', userId: state.login.userId, clientId: state.clientId, ip: ctx.ip, details: { left } });
      state.notice = left === 0 ? text('mfa.notice.last_recovery_code') : text('mfa.notice.recovery_codes_left', { count: left });
      return passed(ctx, details, state, ['otp'], form, 'recovery_code');
    });

    // Passkey or security key as the second factor: options for this user's credentials only.
    router.get('/interaction/:uid/mfa/passkey/options', async (ctx) => {
      const details = await kit.loadInteraction(ctx);
      const state = await pipeline().load(details.uid);
      if (!state || state.secondFactor || state.mustEnrol) throw new InvalidSession();
      ctx.set('Cache-Control', 'no-store');
      ctx.body = await mfa.webauthn.authenticationOptions(passkeyKey(details.uid), state.login.userId);
    });

    router.post('/interaction/:uid/mfa/passkey', async (ctx) => {
      const { details, form, state } = await atStep(ctx);
      if (await throttled(ctx, details, state)) return;
      const result = await mfa.webauthn.verifyAuthentication(passkeyKey(details.uid), parseCredential(form.credential), state.login.userId);
      if (!result.ok) return refused(ctx, details, state, 'webauthn', result.error, WEBAUTHN_MESSAGES[result.error]);
      return passed(ctx, details, state, result.amr.filter((v: string) => v !== 'mfa'), form, 'webauthn');
    });
  }

  return { step, routes };
}

/** The browser's JSON credential, or null (the service names what is wrong with null). */
export function parseCredential(value: string | undefined): unknown {
  if (!value || value.length > 64 * 1024) return null;
  try {
    return JSON.parse(value) as unknown;
  } catch {
    return null;
  }
}
