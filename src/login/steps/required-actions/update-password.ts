// Required action `update_password` (set by an administrator's password reset): the person
// chooses a new password before the login finishes. Only for accounts with a local password.
import type Router from '@koa/router';
import { sendPage } from '../../../http/send-page.ts';
import { InvalidSession } from '../../../errors.ts';
import { hashPassword, verifyPassword } from '../../../accounts/passwords.ts';
import { passwordProblem } from '../../../management/users.ts';
import type { LoginPipeline, LoginStep } from '../../pipeline.ts';
import type { LoginKit } from '../../login-kit.ts';

export function createUpdatePasswordStep(kit: LoginKit, pipeline: () => LoginPipeline): { step: LoginStep; routes(router: Router): void } {
  const { deps, loadForm, clientView } = kit;
  const { store, csrf, renderer } = deps;

  const step: LoginStep = {
    name: 'update-password',
    async applies(_ctx, state) {
      if (!state.facts.actions.includes('update_password')) return false;
      if (await store.credentials.getPasswordHash(state.login.userId)) return true;
      // No local password to change (an upstream account): nothing to do here.
      await store.mfa.removeRequiredAction(state.login.userId, 'update_password');
      state.facts.actions = state.facts.actions.filter((a) => a !== 'update_password');
      return false;
    },
    async render(ctx, state, details, extra = {}) {
      sendPage(ctx, renderer, 'update-password', {
        uid: details.uid,
        client: await clientView(state.clientId),
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
      const password = form.password ?? '';
      if (password !== (form.confirm ?? '')) return step.render(ctx, state, details, { error: 'The two passwords do not match.', status: 400 });
      const problem = passwordProblem(password, user.username);
      if (problem) return step.render(ctx, state, details, { error: `The new password ${problem}.`, status: 400 });
      const current = await store.credentials.getPasswordHash(user.id);
      if (current && (await verifyPassword(current, password))) return step.render(ctx, state, details, { error: 'Choose a password different from the one you were given.', status: 400 });
      const hash = await hashPassword(password);
      await store.transaction(async (tx) => {
        await tx.credentials.setPassword(user.id, hash);
        await tx.mfa.removeRequiredAction(user.id, 'update_password');
      });
      state.facts.actions = state.facts.actions.filter((a) => a !== 'update_password');
      await store.audit.record({ type: 'user.password_changed', userId: user.id, clientId: state.clientId, ip: ctx.ip, details: { by: 'required_action' } });
      return pipeline().advance(ctx, details, state);
    });
  }

  return { step, routes };
}
