// Authenticate with a password connector (local accounts, LDAP, Active Directory): the login
// form's POST, behind the brute-force limits.
import type Router from '@koa/router';
import type { RegisteredConnector } from '../../../connectors/registry.ts';
import { FAILURE_MESSAGES, unavailable, type LoginKit } from '../../login-kit.ts';
import type { LinkStep } from '../link/link-step.ts';
import type { PasswordThrottle } from './password-throttle.ts';
import { checkPasswordAtLogin } from './password-at-login.ts';
import { DatabaseUnavailable } from '../../../storage/database-unavailable.ts';
import { text } from '../../../i18n/page-text.ts';

export function passwordLoginRoutes(router: Router, kit: LoginKit, throttle: PasswordThrottle, link: LinkStep): void {
  const { deps, loadForm, renderLogin } = kit;
  const { store, logger } = deps;

  router.post('/interaction/:uid/login', async (ctx) => {
    const { details, form } = await loadForm(ctx, 'login');
    const clientId = details.params.client_id as string;

    const registered: RegisteredConnector | undefined = deps.registry().get(form.connector ?? '');
    if (!registered || registered.connector.kind !== 'password') {
      return renderLogin(ctx, details.uid, clientId, { error: text('login.error.choose_method'), status: 400 });
    }
    const username = (form.username ?? '').trim();
    const password = form.password ?? '';
    const valid = username && password && username.length <= 256 && password.length <= 1024;
    const throttled = await throttle.check(ctx, registered.id, valid ? username : '', clientId);
    if (throttled) {
      ctx.set('Retry-After', String(throttled.verdict.retryAfterSeconds));
      return renderLogin(ctx, details.uid, clientId, { error: throttled.error, username: username.slice(0, 256), selected: registered.id, status: 429 });
    }
    if (!valid) {
      return renderLogin(ctx, details.uid, clientId, { error: text('login.error.enter_credentials'), username: username.slice(0, 256), selected: registered.id, status: 400 });
    }

    let result;
    try {
      result = await registered.connector.login(username, password);
    } catch (err) {
      await deps.limits.accountNeutral(registered.id, username);
      // Our database, not the connector (a local account's lookup): the error page's 503 "try
      // again", with the one warn line per outage, not an error with a stack per attempt.
      if (err instanceof DatabaseUnavailable) throw err;
      logger.error({ err, connector: registered.id, interaction: details.uid }, 'connector login failed');
      await store.audit.record({ type: 'login.error', outcome: 'failure', clientId, connectorId: registered.id, ip: ctx.ip, details: { username } });
      return renderLogin(ctx, details.uid, clientId, { error: unavailable(registered.name), username, selected: registered.id, status: 503 });
    }

    await throttle.record(ctx, registered.id, username, clientId, result);
    if (!result.ok) {
      logger.info({ connector: registered.id, interaction: details.uid, reason: result.reason, detail: result.detail }, 'login failed');
      await store.audit.record({ type: 'login.failure', outcome: 'failure', clientId, connectorId: registered.id, ip: ctx.ip, details: { username, reason: result.reason } });
      return renderLogin(ctx, details.uid, clientId, { error: FAILURE_MESSAGES[result.reason], username, selected: registered.id, status: 401 });
    }
    await checkPasswordAtLogin(ctx, kit, result.identity, password, clientId);
    return link.linkAndContinue(ctx, details, result.identity, registered, ['pwd'], { username });
  });
}
