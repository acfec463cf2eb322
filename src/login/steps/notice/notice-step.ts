// Pages the person reads before the login goes on: new recovery codes (shown once, never
// stored in plain text), or a warning (recovery codes running out).
import type Router from '@koa/router';
import { sendPage } from '../../../http/send-page.ts';
import { InvalidSession } from '../../../errors.ts';
import type { LoginPipeline, LoginStep } from '../../pipeline.ts';
import type { LoginKit } from '../../login-kit.ts';

export function createNoticeStep(kit: LoginKit, pipeline: () => LoginPipeline): { step: LoginStep; routes(router: Router): void } {
  const { deps, loadForm, clientView } = kit;
  const { csrf, renderer, mfa } = deps;

  const step: LoginStep = {
    name: 'notice',
    applies: async (_ctx, state) => Boolean(state.recoveryCodes || state.notice),
    async render(ctx, state, details) {
      const codes = state.recoveryCodes ? (mfa.cipher.open(state.recoveryCodes, `recovery:${state.uid}:${state.login.userId}`) as string[] | null) : null;
      sendPage(ctx, renderer, 'mfa-notice', {
        uid: details.uid,
        client: await clientView(state.clientId),
        recoveryCodes: codes,
        notice: state.notice,
        csrfToken: csrf.issue(details.uid),
        continueAction: `/interaction/${details.uid}/continue`,
      });
    },
  };

  function routes(router: Router) {
    router.post('/interaction/:uid/continue', async (ctx) => {
      const { details } = await loadForm(ctx, 'login');
      const state = await pipeline().load(details.uid);
      if (!state || !(state.recoveryCodes || state.notice)) throw new InvalidSession();
      // Shown once: a reload after this point does not show the codes again.
      state.recoveryCodes = undefined;
      state.notice = undefined;
      return pipeline().advance(ctx, details, state);
    });
  }

  return { step, routes };
}
