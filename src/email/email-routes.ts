// The pages of self-registration, "Forgot password?" and the links mails carry:
//   /interaction/:uid/register   GET form, POST (CSRF like every interaction form, throttled per IP)
//   /interaction/:uid/forgot     GET form, POST
//   /email/verify/:token         GET confirmation page (mail scanners prefetch: nothing consumed), POST confirms
//   /password/reset/:token       GET new-password form, POST sets it
// Every text comes from the `register`, `reset` and `email` catalogs.
import Router from '@koa/router';
import type { Context } from 'koa';
import { sendPage, pageLocale } from '../http/send-page.ts';
import { readForm } from '../http/read-form.ts';
import { sendTooMany } from '../limits/limit-requests.ts';
import { InvalidSession, KeybridgeError } from '../errors.ts';
import { createLoginKit, waitText, type Interaction, type LoginDependencies } from '../login/login-kit.ts';
import { text } from '../i18n/page-text.ts';
import type { EmailServices } from './email-services.ts';
import { hashToken } from './action-links.ts';
import { createRegistration, type FieldProblem, type RegistrationForm } from './registration.ts';
import { createPasswordReset } from './password-reset.ts';
import { createAccountEmails } from './account-emails.ts';
import { isMailableAddress } from './outbox.ts';
import { describePasswordProblem, type PasswordProblem } from '../accounts/password-policy.ts';

const notFound = () => new KeybridgeError('not_found', 'This page does not exist.', { status: 404, expose: true, text: text('errors.not_found') });
/** A link page's form whose CSRF value does not verify. */
const formExpired = () => new InvalidSession('The form expired or was tampered with. Open the link from the mail again.', { text: text('email.page.form_expired') });
const TOKEN_PARAM = /^[A-Za-z0-9_-]{1,100}$/;

export function emailRoutes(deps: LoginDependencies, services: EmailServices): Router {
  const router = new Router();
  const kit = createLoginKit(deps);
  const { renderer, csrf, store, logger, provider } = deps;
  const registration = createRegistration(services);
  const reset = createPasswordReset(services);
  const accountEmails = createAccountEmails(services);
  const { fields } = services.config.registration;

  /** The interaction at its login prompt (loading it applies its ui_locales to the page). */
  async function loginInteraction(ctx: Context): Promise<Interaction> {
    const details = await kit.loadInteraction(ctx);
    if (details.prompt.name !== 'login') throw new InvalidSession();
    return details;
  }

  /** A form problem in the page's language; a password policy refusal with its reason. */
  function translate(ctx: Context, problem: { key: string; values?: Record<string, unknown>; refused?: PasswordProblem }): string {
    const t = renderer.catalogs.translator(pageLocale(ctx, renderer));
    return problem.refused ? describePasswordProblem(t, problem.refused) : t(problem.key, problem.values);
  }

  /** Per-IP budget of the login forms: registration and reset requests send mail, so they count too. */
  async function throttled(ctx: Context, what: string): Promise<boolean> {
    const verdict = await deps.limits.hitIp('login', ctx.ip);
    if (verdict.allowed) return false;
    if (verdict.firstRefusal) await store.audit.record({ type: 'login.throttled', outcome: 'failure', ip: ctx.ip, details: { scope: 'ip', budget: 'login', path: what } });
    sendTooMany(ctx, renderer, verdict, text('register.throttled', { wait: waitText(verdict.retryAfterSeconds) }));
    return true;
  }

  /** The sign-in page a finished link leads back to: the interaction it started from, while it lasts. */
  async function continueUrl(uid: unknown): Promise<string | null> {
    if (typeof uid !== 'string' || !TOKEN_PARAM.test(uid)) return null;
    const interaction = await provider.Interaction.find(uid).catch(() => undefined);
    return interaction ? `/interaction/${uid}` : null;
  }

  // ---- Self-registration ----

  async function renderRegister(ctx: Context, details: Interaction, form: Partial<RegistrationForm>, problems: FieldProblem[], status: number) {
    const errors: Record<string, string> = {};
    for (const p of problems) errors[p.field] ??= translate(ctx, p);
    sendPage(ctx, renderer, 'register', {
      uid: details.uid,
      client: await kit.clientView(details.params.client_id as string),
      csrfToken: csrf.issue(details.uid),
      action: `/interaction/${details.uid}/register`,
      backUrl: `/interaction/${details.uid}`,
      allowedDomains: services.config.registration.allowedEmailDomains,
      fields: (['username', 'name', 'givenName', 'familyName'] as const).filter((f) => fields[f] !== 'off').map((f) => ({ name: f, required: fields[f] === 'required', value: form[f] ?? '', error: errors[f] })),
      email: form.email ?? '',
      errors,
      errorCount: problems.length,
    }, status);
  }

  router.get('/interaction/:uid/register', async (ctx) => {
    if (!registration.enabled || !localConnector()) throw notFound();
    const details = await loginInteraction(ctx);
    await renderRegister(ctx, details, {}, [], 200);
  });

  router.post('/interaction/:uid/register', async (ctx) => {
    if (!registration.enabled || !localConnector()) throw notFound();
    const { details, form } = await kit.loadForm(ctx, 'login');
    if (await throttled(ctx, 'register')) return;
    const input: RegistrationForm = { email: form.email ?? '', password: form.password ?? '', confirm: form.confirm ?? '', username: form.username, name: form.name, givenName: form.givenName, familyName: form.familyName };
    const { problems, clean } = await registration.validate(input);
    const shown = { email: input.email.slice(0, 254), username: input.username?.slice(0, 128), name: input.name?.slice(0, 200), givenName: input.givenName?.slice(0, 200), familyName: input.familyName?.slice(0, 200) };
    if (problems.length) return renderRegister(ctx, details, shown, problems, 400);
    const clientId = details.params.client_id as string;
    await registration.submit(clean, { locale: pageLocale(ctx, renderer), ip: ctx.ip, uid: details.uid, clientId });
    sendPage(ctx, renderer, 'register-sent', {
      client: await kit.clientView(clientId),
      email: clean.email,
      verify: services.config.registration.requireEmailVerification,
      hours: Math.round(services.config.registration.linkMinutes / 60),
      backUrl: `/interaction/${details.uid}`,
    });
  });

  // ---- Forgot password ----

  async function renderForgot(ctx: Context, details: Interaction, email: string, error: string | undefined, status: number) {
    sendPage(ctx, renderer, 'forgot-password', {
      client: await kit.clientView(details.params.client_id as string),
      csrfToken: csrf.issue(details.uid),
      action: `/interaction/${details.uid}/forgot`,
      backUrl: `/interaction/${details.uid}`,
      email,
      error,
    }, status);
  }

  router.get('/interaction/:uid/forgot', async (ctx) => {
    if (!reset.enabled || !localConnector()) throw notFound();
    const details = await loginInteraction(ctx);
    await renderForgot(ctx, details, '', undefined, 200);
  });

  router.post('/interaction/:uid/forgot', async (ctx) => {
    if (!reset.enabled || !localConnector()) throw notFound();
    const { details, form } = await kit.loadForm(ctx, 'login');
    if (await throttled(ctx, 'forgot')) return;
    const email = (form.email ?? '').trim();
    if (!isMailableAddress(email)) {
      const t = renderer.catalogs.translator(pageLocale(ctx, renderer));
      return renderForgot(ctx, details, email.slice(0, 254), t('reset.forgot.error_email'), 400);
    }
    const clientId = details.params.client_id as string;
    await reset.request(email, { locale: pageLocale(ctx, renderer), ip: ctx.ip, uid: details.uid, clientId });
    sendPage(ctx, renderer, 'forgot-password-sent', {
      client: await kit.clientView(clientId),
      email,
      minutes: services.config.passwordReset.linkMinutes,
      backUrl: `/interaction/${details.uid}`,
    });
  });

  // ---- Links from mails ----

  const linkCsrf = (token: string) => `email-link:${hashToken(token)}`;

  /** A link's page speaks the language its mail was written in (the person's choice when asking). */
  function linkLanguage(ctx: Context, data: Record<string, unknown> | undefined): void {
    if (typeof data?.locale === 'string') ctx.state.uiLocales = data.locale.slice(0, 35);
  }

  function invalidLink(ctx: Context, page: 'verify-email-invalid' | 'reset-password-invalid') {
    ctx.set('Cache-Control', 'no-store');
    sendPage(ctx, renderer, page, {}, 404);
  }

  /** A link's button pressed for a link that is used, expired or unknown: worth an audit line (replays, guessing). */
  async function refusedLink(ctx: Context, page: 'verify-email-invalid' | 'reset-password-invalid') {
    await store.audit.record({ type: 'email.link_refused', outcome: 'failure', ip: ctx.ip, details: { link: page === 'reset-password-invalid' ? 'reset_password' : 'verify_email' } });
    invalidLink(ctx, page);
  }

  /** Registered and reset accounts sign in with a local connector: without one, neither page has a purpose. */
  const localConnector = () => deps.registry().list().some((c) => c.type === 'local');

  router.get('/email/verify/:token', async (ctx) => {
    const token = ctx.params.token!;
    const found = await services.links.look(token, ['register', 'verify_email', 'change_email']);
    if (!found?.email) return invalidLink(ctx, 'verify-email-invalid');
    linkLanguage(ctx, found.data);
    ctx.set('Cache-Control', 'no-store');
    sendPage(ctx, renderer, 'verify-email', { purpose: found.purpose, email: found.email, csrfToken: csrf.issue(linkCsrf(token)), action: `/email/verify/${token}` });
  });

  router.post('/email/verify/:token', async (ctx) => {
    const token = ctx.params.token!;
    const form = await readForm(ctx);
    if (!csrf.verify(linkCsrf(token), form.csrf)) throw formExpired();
    if (await throttled(ctx, 'verify')) return;
    const found = await services.links.look(token, ['register', 'verify_email', 'change_email']);
    if (!found?.email) return refusedLink(ctx, 'verify-email-invalid');
    linkLanguage(ctx, found.data);
    ctx.set('Cache-Control', 'no-store');
    if (found.purpose === 'register') {
      const outcome = await registration.complete(token, ctx.ip);
      if (!outcome.ok && outcome.reason === 'invalid_link') return refusedLink(ctx, 'verify-email-invalid');
      const next = await continueUrl(found.data.uid);
      return sendPage(ctx, renderer, 'verify-email-done', outcome.ok
        ? { outcome: 'registered', username: outcome.username, email: found.email, continueUrl: next }
        : { outcome: outcome.reason, email: found.email, continueUrl: next }, outcome.ok ? 200 : 409);
    }
    const outcome = await accountEmails.confirmAddress(token, ctx.ip);
    if (!outcome.ok && outcome.reason !== 'email_taken') return refusedLink(ctx, 'verify-email-invalid');
    const next = await continueUrl(found.data.uid);
    sendPage(ctx, renderer, 'verify-email-done', outcome.ok ? { outcome: outcome.purpose === 'change_email' ? 'changed' : 'verified', email: outcome.email, continueUrl: next } : { outcome: 'email_taken', email: found.email, continueUrl: next }, outcome.ok ? 200 : 409);
  });

  async function renderReset(ctx: Context, token: string, username: string, error: string | undefined, status: number) {
    ctx.set('Cache-Control', 'no-store');
    sendPage(ctx, renderer, 'reset-password', { username, csrfToken: csrf.issue(linkCsrf(token)), action: `/password/reset/${token}`, error }, status);
  }

  router.get('/password/reset/:token', async (ctx) => {
    const token = ctx.params.token!;
    const link = await reset.linkOf(token);
    if (!link) return invalidLink(ctx, 'reset-password-invalid');
    linkLanguage(ctx, link.data);
    await renderReset(ctx, token, link.user.username, undefined, 200);
  });

  router.post('/password/reset/:token', async (ctx) => {
    const token = ctx.params.token!;
    const form = await readForm(ctx);
    if (!csrf.verify(linkCsrf(token), form.csrf)) throw formExpired();
    if (await throttled(ctx, 'reset')) return;
    const link = await reset.linkOf(token);
    if (!link) return refusedLink(ctx, 'reset-password-invalid');
    linkLanguage(ctx, link.data);
    const outcome = await reset.complete(token, form.password ?? '', form.confirm ?? '', { ip: ctx.ip, provider, locale: pageLocale(ctx, renderer) });
    if (!outcome.ok) {
      if (outcome.reason === 'invalid_link') return refusedLink(ctx, 'reset-password-invalid');
      return renderReset(ctx, token, link.user.username, translate(ctx, outcome), 400);
    }
    logger.info({ userId: outcome.userId, sessions: outcome.sessions, grants: outcome.grants }, 'password reset through a mailed link');
    // Failed attempts with the forgotten password must not keep the new one waiting or locked out.
    for (const c of deps.registry().list().filter((r) => r.type === 'local')) {
      for (const login of [outcome.username, outcome.email]) if (login) await deps.limits.accountSuccess(c.id, login);
    }
    ctx.set('Cache-Control', 'no-store');
    sendPage(ctx, renderer, 'reset-password-done', { continueUrl: await continueUrl(outcome.uid) });
  });

  return router;
}
