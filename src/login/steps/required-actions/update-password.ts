// Required action `update_password`: the person chooses a new password before the login
// finishes. Asked by an administrator (a temporary password, or the required actions API), or
// at a login whose password has expired or no longer meets the password policy
// (src/login/steps/authenticate/password-at-login.ts). The page says which; a refused choice
// shows the policy's reason. Only for accounts with a local password.
import type Router from '@koa/router';
import type { Context } from 'koa';
import { pageLocale, sendPage } from '../../../http/send-page.ts';
import { InvalidSession } from '../../../errors.ts';
import { verifyPassword } from '../../../accounts/passwords.ts';
import { describePasswordProblem } from '../../../accounts/password-policy.ts';
import type { LoginPipeline, LoginStep } from '../../pipeline.ts';
import type { LoginKit } from '../../login-kit.ts';

export function createUpdatePasswordStep(kit: LoginKit, pipeline: () => LoginPipeline): { step: LoginStep; routes(router: Router): void } {
  const { deps, loadForm, clientView } = kit;
  const { store, csrf, renderer, passwordPolicy: policy } = deps;
  const translator = (ctx: Context) => renderer.catalogs.translator(pageLocale(ctx, renderer));

  const step: LoginStep = {
    name: 'update-password',
    async applies(_ctx, state) {
      if (!state.facts.actions.includes('update_password')) return false;
      const drop = () => {
        state.facts.actions = state.facts.actions.filter((a) => a !== 'update_password');
        return false;
      };
      // Settled meanwhile (a new password chosen in another login): nothing left to ask.
      if ((await store.passwords.changeReason(state.login.userId)) === undefined) return drop();
      if (await store.credentials.getPasswordHash(state.login.userId)) return true;
      // No local password to change (an upstream account): nothing to do here.
      await store.mfa.removeRequiredAction(state.login.userId, 'update_password');
      return drop();
    },
    async render(ctx, state, details, extra = {}) {
      const reason = (await store.passwords.changeReason(state.login.userId)) ?? 'admin';
      sendPage(ctx, renderer, 'update-password', {
        uid: details.uid,
        client: await clientView(state.clientId),
        reason,
        minLength: policy.settings.minLength,
        maxLength: policy.settings.maxLength,
        error: extra.error,
        csrfToken: csrf.issue(details.uid),
        action: `/interaction/${details.uid}/password`,
        cancelAction: `/interaction/${details.uid}/abort`,
      }, extra.status ?? 200);
    },
  };

  function routes(router: Router) {
    router.post('/interaction/:uid/password', async (ctx) => {
      const { details, form } = await loadForm(ctx, 'login');
      const state = await pipeline().load(details.uid);
      if (!state || !(await step.applies(ctx, state, details))) throw new InvalidSession();
      const user = await store.users.findById(state.login.userId);
      if (!user) throw new InvalidSession();
      const t = translator(ctx);
      const password = form.password ?? '';
      if (password !== (form.confirm ?? '')) return step.render(ctx, state, details, { error: t('password.update.mismatch'), status: 400 });
      const problem = await policy.problem(password, { userId: user.id, username: user.username, email: user.email, name: user.name });
      if (problem) {
        await store.audit.record({ type: 'user.password_refused', outcome: 'failure', userId: user.id, clientId: state.clientId, ip: ctx.ip, details: { by: 'required_action', code: problem.code } });
        return step.render(ctx, state, details, { error: describePasswordProblem(t, problem), status: 400 });
      }
      // Without a history to check against, the current password is still not a new one (with
      // one, the policy's reuse check already compared it with the current password).
      const current = policy.settings.history === 0 ? await store.credentials.getPasswordHash(user.id) : null;
      if (current && (await verifyPassword(current, password))) return step.render(ctx, state, details, { error: t('password.update.same'), status: 400 });
      const reason = (await store.passwords.changeReason(user.id)) ?? 'admin';
      // Sets the password, keeps it in the history and removes the required action, in one transaction.
      await policy.setPassword(store, user.id, password);
      state.facts.actions = state.facts.actions.filter((a) => a !== 'update_password');
      await store.audit.record({ type: 'user.password_changed', userId: user.id, clientId: state.clientId, ip: ctx.ip, details: { by: 'required_action', reason } });
      return pipeline().advance(ctx, details, state);
    });
  }

  return { step, routes };
}
