// Enrolling a second factor during the login: when the policy or the client demands one and the
// user has none, or an administrator set the `configure_mfa` required action. TOTP (QR code and
// secret, confirmed with a first code) or a passkey / security key. Confirming proves the
// factor, so the login counts as multi-factor; new recovery codes are shown once after.
import type Router from '@koa/router';
import type { Context } from 'koa';
import { sendPage } from '../../../http/send-page.ts';
import { InvalidSession } from '../../../errors.ts';
import { WEBAUTHN_MESSAGES } from '../../mfa-services.ts';
import { requestsEnrolment } from '../../step-up.ts';
import { withFactor, type LoginPipeline, type LoginState, type LoginStep } from '../../pipeline.ts';
import { CREDENTIAL_FORM_LIMIT, allowPasskeyScript, type Interaction, type LoginKit } from '../../login-kit.ts';
import { parseCredential } from '../second-factor/second-factor-step.ts';
import { text } from '../../../i18n/page-text.ts';

interface PendingTotp {
  factorId: string;
  secret: string;
  uri: string;
  qrSvg: string;
}

export function createConfigureMfaStep(kit: LoginKit, pipeline: () => LoginPipeline): { step: LoginStep; routes(router: Router): void } {
  const { deps, loadForm, clientView } = kit;
  const { store, csrf, renderer, mfa, logger } = deps;
  const binding = (state: LoginState) => `enrol:${state.uid}:${state.login.userId}`;
  const registerKey = (uid: string) => `mfa-register.${uid}`;

  /** A new TOTP secret for this login, kept (sealed) in the state so a reload shows the same one. */
  async function startTotp(state: LoginState): Promise<PendingTotp> {
    const user = await store.users.findById(state.login.userId);
    if (!user) throw new InvalidSession();
    const pending = await mfa.totp.startEnrolment({ id: user.id, username: user.username });
    state.pendingTotp = mfa.cipher.seal(pending, binding(state));
    await pipeline().save(state);
    return pending;
  }

  const step: LoginStep = {
    name: 'configure-mfa',
    async applies(_ctx, state, details) {
      // The client asked for it (kb_action=configure_mfa): once per login, enrolled or not.
      if (requestsEnrolment(details.params) && !state.actionDone) {
        state.actionDone = true;
        state.mustEnrol = true;
      }
      if (state.mustEnrol) return true;
      // An administrator asked for it; a factor already enrolled meanwhile settles it.
      if (!state.facts.actions.includes('configure_mfa')) return false;
      if (state.facts.enrolled) {
        await store.mfa.removeRequiredAction(state.login.userId, 'configure_mfa');
        state.facts.actions = state.facts.actions.filter((a) => a !== 'configure_mfa');
        return false;
      }
      state.mustEnrol = true;
      return true;
    },
    async render(ctx, state, details, extra = {}) {
      const uid = details.uid;
      const pending = (state.pendingTotp ? (mfa.cipher.open(state.pendingTotp, binding(state)) as PendingTotp | null) : null) ?? (await startTotp(state));
      allowPasskeyScript(ctx);
      sendPage(ctx, renderer, 'mfa-enrol', {
        uid,
        client: await clientView(state.clientId),
        adding: state.facts.enrolled,
        qrSvg: pending.qrSvg,
        secret: pending.secret.replace(/(.{4})/g, '$1 ').trim(),
        error: extra.error,
        csrfToken: csrf.issue(uid),
        totpAction: `/interaction/${uid}/mfa/enrol/totp`,
        passkey: mfa.passkeys ? { optionsUrl: `/interaction/${uid}/mfa/enrol/passkey/options`, action: `/interaction/${uid}/mfa/enrol/passkey` } : null,
        cancelAction: `/interaction/${uid}/abort`,
      }, extra.status ?? 200);
    },
  };

  async function atStep(ctx: Context) {
    const { details, form } = await loadForm(ctx, 'login', CREDENTIAL_FORM_LIMIT);
    const state = await pipeline().load(details.uid);
    if (!state?.mustEnrol) throw new InvalidSession();
    return { details, form, state };
  }

  /** A factor is enrolled: recovery codes (new ones, shown once), and the login goes on. */
  async function enrolled(ctx: Context, details: Interaction, state: LoginState, amr: string[], factor: string) {
    const userId = state.login.userId;
    // A passkey finished the enrolment: the TOTP secret offered beside it is not wanted.
    const unusedTotp = factor !== 'totp' && state.pendingTotp ? (mfa.cipher.open(state.pendingTotp, binding(state)) as PendingTotp | null) : null;
    if (unusedTotp) await store.mfa.remove(userId, unusedTotp.factorId);
    state.mustEnrol = false;
    state.pendingTotp = undefined;
    state.secondFactor = 'enrolled';
    state.login.amr = withFactor(state.login.amr, amr);
    await store.mfa.removeRequiredAction(userId, 'configure_mfa');
    state.facts = { enrolled: true, actions: state.facts.actions.filter((a) => a !== 'configure_mfa') };
    await store.audit.record({ type: 'mfa.enrolled', userId, clientId: state.clientId, ip: ctx.ip, details: { factor } });
    if ((await store.mfa.recoveryCodesLeft(userId)) === 0) {
      state.recoveryCodes = mfa.cipher.seal(await mfa.recovery.issue(userId), `recovery:${state.uid}:${userId}`);
      await store.audit.record({ type: 'mfa.recovery_codes_issued', userId, clientId: state.clientId, ip: ctx.ip });
    }
    return pipeline().advance(ctx, details, state);
  }

  function routes(router: Router) {
    router.post('/interaction/:uid/mfa/enrol/totp', async (ctx) => {
      const { details, form, state } = await atStep(ctx);
      const pending = state.pendingTotp ? (mfa.cipher.open(state.pendingTotp, binding(state)) as PendingTotp | null) : null;
      if (!pending) return step.render(ctx, state, details, { error: text('mfa.error.enrol_scan_new'), status: 400 });
      const result = await mfa.totp.confirmEnrolment(state.login.userId, pending.factorId, form.code ?? '');
      if (result === 'gone') {
        state.pendingTotp = undefined;
        return step.render(ctx, state, details, { error: text('mfa.error.enrol_expired'), status: 400 });
      }
      if (result !== 'confirmed') return step.render(ctx, state, details, { error: text('mfa.error.enrol_code_wrong'), status: 400 });
      return enrolled(ctx, details, state, ['otp'], 'totp');
    });

    router.get('/interaction/:uid/mfa/enrol/passkey/options', async (ctx) => {
      const details = await kit.loadInteraction(ctx);
      const state = await pipeline().load(details.uid);
      if (!state?.mustEnrol) throw new InvalidSession();
      const user = await store.users.findById(state.login.userId);
      if (!user) throw new InvalidSession();
      ctx.set('Cache-Control', 'no-store');
      ctx.body = await mfa.webauthn.registrationOptions({ id: user.id, username: user.username, name: user.name ?? undefined }, registerKey(details.uid));
    });

    router.post('/interaction/:uid/mfa/enrol/passkey', async (ctx) => {
      const { details, form, state } = await atStep(ctx);
      const name = (form.name ?? '').trim() || 'Passkey';
      const result = await mfa.webauthn.verifyRegistration(state.login.userId, registerKey(details.uid), parseCredential(form.credential), name);
      if (!result.ok) {
        logger.info({ user: state.login.userId, error: result.error, detail: result.detail }, 'passkey registration refused');
        return step.render(ctx, state, details, { error: WEBAUTHN_MESSAGES[result.error], status: 400 });
      }
      return enrolled(ctx, details, state, [result.method], 'webauthn');
    });
  }

  return { step, routes };
}
