// Authenticate with a passkey, no username or password: the login page asks the browser for a
// discoverable credential (a button, and the username field's autofill where the browser
// supports conditional UI); the credential names its user. A passkey with user verification is
// two factors in one (possession and the device's PIN or biometric), so no second factor follows.
import type Router from '@koa/router';
import { InvalidSession } from '../../../errors.ts';
import { WEBAUTHN_MESSAGES } from '../../mfa-services.ts';
import { CREDENTIAL_FORM_LIMIT, FAILURE_MESSAGES, waitText, type LoginKit } from '../../login-kit.ts';
import type { LoginPipeline } from '../../pipeline.ts';
import { parseCredential } from '../second-factor/second-factor-step.ts';
import { text } from '../../../i18n/page-text.ts';

/** The provenance of a passkey sign-in: no connector and no upstream identity took part. */
export const PASSKEY_CONNECTOR = 'passkey';

export function passkeyLoginRoutes(router: Router, kit: LoginKit, pipeline: () => LoginPipeline): void {
  const { deps, loadForm, loadInteraction, renderLogin } = kit;
  const { store, mfa, limits } = deps;
  const challengeKey = (uid: string) => `passkey-login.${uid}`;

  router.get('/interaction/:uid/passkey/options', async (ctx) => {
    const details = await loadInteraction(ctx);
    if (details.prompt.name !== 'login') throw new InvalidSession();
    ctx.set('Cache-Control', 'no-store');
    ctx.body = await mfa.webauthn.authenticationOptions(challengeKey(details.uid));
  });

  router.post('/interaction/:uid/passkey', async (ctx) => {
    const { details, form } = await loadForm(ctx, 'login', CREDENTIAL_FORM_LIMIT);
    const clientId = details.params.client_id as string;
    const ip = await limits.hitIp('login', ctx.ip);
    if (!ip.allowed) {
      ctx.set('Retry-After', String(ip.retryAfterSeconds));
      return renderLogin(ctx, details.uid, clientId, { error: text('login.error.too_many_network', { wait: waitText(ip.retryAfterSeconds) }), status: 429 });
    }
    const result = await mfa.webauthn.verifyAuthentication(challengeKey(details.uid), parseCredential(form.credential));
    if (!result.ok) {
      await store.audit.record({ type: 'login.failure', outcome: 'failure', clientId, connectorId: PASSKEY_CONNECTOR, ip: ctx.ip, details: { reason: 'passkey_refused', error: result.error } });
      return renderLogin(ctx, details.uid, clientId, { error: WEBAUTHN_MESSAGES[result.error], passkeyRefused: true, status: 401 });
    }
    const user = await store.users.findById(result.userId);
    if (!user?.enabled) {
      await store.audit.record({ type: 'login.failure', outcome: 'failure', userId: result.userId, clientId, connectorId: PASSKEY_CONNECTOR, ip: ctx.ip, details: { reason: user ? 'account_disabled' : 'user_gone' } });
      return renderLogin(ctx, details.uid, clientId, { error: FAILURE_MESSAGES[user ? 'account_disabled' : 'user_gone'], passkeyRefused: true, status: 401 });
    }
    await store.audit.record({ type: 'login.success', userId: user.id, clientId, connectorId: PASSKEY_CONNECTOR, ip: ctx.ip, details: { factor: 'webauthn' } });
    const login = { userId: user.id, federatedIdentityId: null, amr: result.amr, claims: {} };
    // Verified by the authenticator (PIN, biometric): multi-factor already.
    return pipeline().begin(ctx, details, PASSKEY_CONNECTOR, login, result.userVerified ? { secondFactor: 'factor' } : {});
  });
}
