// What every login step shares: the dependencies, reading the interaction and its forms, the
// login page, and handing a result back to oidc-provider. Steps get one LoginKit; the routes
// file only dispatches.
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { InteractionResults } from 'oidc-provider';
import type { Logger } from 'pino';
import type { KeybridgeAdapter } from '../storage/oidc-adapter.ts';
import type { ConnectorRegistry } from '../connectors/registry.ts';
import type { FailureReason, UpstreamSession } from '../connectors/contract.ts';
import type { Store } from '../storage/store.ts';
import type { PageRenderer } from '../http/page-renderer.ts';
import type { CsrfTokens } from '../http/csrf.ts';
import type { TokenCipher } from '../accounts/token-cipher.ts';
import type { RateLimits } from '../limits/rate-limits.ts';
import type { MfaServices } from './mfa-services.ts';
import type { PasswordPolicyService } from '../accounts/password-policy.ts';
import { sendPage } from '../http/send-page.ts';
import { addCspSources } from '../http/security-headers.ts';
import { readForm } from '../http/read-form.ts';
import { InvalidSession, KeybridgeError } from '../errors.ts';
import { DatabaseUnavailable } from '../storage/database-unavailable.ts';
import { text, type PageText } from '../i18n/page-text.ts';

export interface LoginDependencies {
  provider: Provider;
  issuer: string;
  /** Short-lived server-side records of a login in progress (single use where it matters). */
  upstreamAttempts: KeybridgeAdapter;
  store: Store;
  registry: () => ConnectorRegistry;
  renderer: PageRenderer;
  csrf: CsrfTokens;
  logger: Logger;
  /** Encrypts upstream tokens for connectors that keep them (null: none configured). */
  tokenCipher: TokenCipher | null;
  /** Where each client starts its own sign-in (third-party initiated login), for upstream-initiated logins. */
  initiateLoginUris: ReadonlyMap<string, string>;
  /** Cookies marked Secure (an https issuer). */
  secureCookies: boolean;
  /** Brute-force and per-IP limits on the password forms and second factors. */
  limits: RateLimits;
  /** Second factors, their policy, and "remember this device". */
  mfa: MfaServices;
  /** The password policy: checked when a local password is accepted, and by update_password. */
  passwordPolicy: PasswordPolicyService;
  /** Which self-service links the login page offers (src/email/email-routes.ts); absent: none. */
  selfService?: { registration: boolean; passwordReset: boolean };
}

/** What the person is told for each failure (`login.failure.<reason>`); details go to the log and the audit trail. */
export const FAILURE_MESSAGES: Record<FailureReason, PageText> = {
  invalid_credentials: text('login.failure.invalid_credentials'),
  account_disabled: text('login.failure.account_disabled'),
  account_locked: text('login.failure.account_locked'),
  account_expired: text('login.failure.account_expired'),
  password_expired: text('login.failure.password_expired'),
  password_change_required: text('login.failure.password_change_required'),
  not_permitted: text('login.failure.not_permitted'),
  user_gone: text('login.failure.user_gone'),
  reauth_needed: text('login.failure.reauth_needed'),
  access_denied: text('login.failure.access_denied'),
  upstream_error: text('login.failure.upstream_error'),
};

export const unavailable = (name: string) => text('login.error.unavailable', { connector: name });

/** "8 seconds", "15 minutes": how long a throttled person waits (a value of another message). */
export const waitText = (seconds: number) => (seconds < 90 ? text('common.wait.seconds', { count: seconds }) : text('common.wait.minutes', { count: Math.ceil(seconds / 60) }));

/** The connectors' built-in username labels, translated; a label set in config is shown as written. */
const USERNAME_LABELS: Record<string, string> = { Username: 'login.username', 'Username or email': 'login.username_or_email' };

/** The grant's `result.keybridge` part: which connector and identity produced the login. */
export interface LoginProvenance {
  connectorId: string;
  federatedIdentityId: string | null;
  amr: string[];
  /** Extra token claims from the connector's mappers. */
  claims: Record<string, unknown>;
  /** The upstream's session behind this login, for single logout. */
  upstreamSession?: UpstreamSession;
  /** A step-up's: when the person last signed in (epoch milliseconds); absent, the login is a sign-in now. */
  authenticatedAt?: number;
}

/** A person the authenticate and link steps identified; the later steps run on it. */
export interface SignedIn {
  userId: string;
  federatedIdentityId: string | null;
  amr: string[];
  /** Extra token claims from the connector's mappers. */
  claims: Record<string, unknown>;
  /** The upstream's session behind this login, for single logout. */
  upstreamSession?: UpstreamSession;
}

export type Interaction = Awaited<ReturnType<Provider['interactionDetails']>>;

export interface LoginPageExtra {
  /** A catalog text, or a catalog key (`t()` translates either on the page). */
  error?: PageText | string;
  /** Something to read above the form (not an error), likewise translated. */
  notice?: PageText | string;
  /** A passkey was just refused: offer the button only, not the autofill (which would retry at once). */
  passkeyRefused?: boolean;
  username?: string;
  selected?: string;
  status?: number;
}

export interface LoginKit {
  deps: LoginDependencies;
  loadInteraction(ctx: Context): Promise<Interaction>;
  /** For POST routes: the interaction, its submitted form, the CSRF check, and the prompt it must be at. */
  /** `limit`: the body's size limit in bytes (forms carrying a WebAuthn answer need more than the default). */
  loadForm(ctx: Context, prompt?: 'login' | 'consent', limit?: number): Promise<{ details: Interaction; form: Record<string, string> }>;
  clientView(clientId: string): Promise<{ id: string; name: string; logoUri?: string; policyUri?: string; tosUri?: string; firstParty: boolean }>;
  renderLogin(ctx: Context, uid: string, clientId: string, extra: LoginPageExtra): Promise<void>;
  /** Hands the interaction's result to oidc-provider and sends the browser on. */
  finish(ctx: Context, result: InteractionResults, merge: boolean): Promise<void>;
}

export function createLoginKit(deps: LoginDependencies): LoginKit {
  const { provider, renderer, csrf } = deps;

  /** The interaction each request loaded: finish() hands the result to that one, without reading it again. */
  const loaded = new WeakMap<Context, Interaction>();

  async function loadInteraction(ctx: Context) {
    try {
      const details = await provider.interactionDetails(ctx.req, ctx.res);
      if (details.uid !== ctx.params.uid) throw new InvalidSession();
      // The login's ui_locales choose the language of every page of this interaction.
      if (typeof details.params.ui_locales === 'string') ctx.state.uiLocales = details.params.ui_locales;
      loaded.set(ctx, details);
      return details;
    } catch (err) {
      // An unreachable database is not a bad session: the error page answers it 503, try again.
      if (err instanceof KeybridgeError || err instanceof DatabaseUnavailable) throw err;
      throw new InvalidSession(undefined, { cause: err });
    }
  }

  async function loadForm(ctx: Context, prompt?: 'login' | 'consent', limit?: number) {
    const details = await loadInteraction(ctx);
    const form = await readForm(ctx, limit);
    if (!csrf.verify(details.uid, form.csrf) || (prompt && details.prompt.name !== prompt)) throw new InvalidSession();
    return { details, form };
  }

  async function clientView(clientId: string) {
    const client = await provider.Client.find(clientId);
    return {
      id: clientId,
      name: client?.clientName ?? clientId,
      logoUri: client?.logoUri,
      policyUri: client?.policyUri,
      tosUri: client?.tosUri,
      firstParty: Boolean(client?.first_party),
    };
  }

  async function renderLogin(ctx: Context, uid: string, clientId: string, extra: LoginPageExtra) {
    const connectors = deps.registry().list();
    const password = connectors.filter((c) => c.connector.kind === 'password');
    const redirect = connectors.filter((c) => c.connector.kind === 'redirect');
    allowPasskeyScript(ctx);
    sendPage(ctx, renderer, 'login', {
      uid,
      client: await clientView(clientId),
      passwordConnectors: password.map((c) => ({ id: c.id, name: c.name, usernameLabel: usernameLabel(c.connector.kind === 'password' ? c.connector.usernameLabel : undefined) })),
      redirectConnectors: redirect.map((c) => ({ id: c.id, name: c.name })),
      selectedConnector: extra.selected ?? password[0]?.id,
      username: extra.username,
      error: extra.error,
      notice: extra.notice,
      csrfToken: csrf.issue(uid),
      loginAction: `/interaction/${uid}/login`,
      connectorAction: `/interaction/${uid}/connector`,
      cancelAction: `/interaction/${uid}/abort`,
      // "Create account" and "Forgot password?" (src/email/email-routes.ts), when enabled.
      registerUrl: deps.selfService?.registration && connectors.some((c) => c.type === 'local') ? `/interaction/${uid}/register` : undefined,
      forgotPasswordUrl: deps.selfService?.passwordReset && connectors.some((c) => c.type === 'local') ? `/interaction/${uid}/forgot` : undefined,
      // Passwordless sign-in with a passkey (the browser script fetches its options).
      passkey: deps.mfa.passkeys ? { optionsUrl: `/interaction/${uid}/passkey/options`, action: `/interaction/${uid}/passkey`, mode: extra.passkeyRefused ? 'authenticate' : 'passkey' } : null,
    }, extra.status ?? 200);
  }

  async function finish(ctx: Context, result: InteractionResults, merge: boolean) {
    const details = loaded.get(ctx);
    let location: string;
    if (details) {
      // What provider.interactionResult does, on the interaction this request already holds.
      details.result = merge && !('error' in result) ? { ...details.lastSubmission, ...result } : result;
      await details.save(details.exp - Math.floor(Date.now() / 1000));
      location = details.returnTo;
    } else {
      location = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: merge });
    }
    ctx.status = 303;
    ctx.redirect(location);
  }

  return { deps, loadInteraction, loadForm, clientView, renderLogin, finish };
}

function usernameLabel(label: string | undefined): string | PageText {
  if (!label) return text('login.username');
  return Object.hasOwn(USERNAME_LABELS, label) ? text(USERNAME_LABELS[label]!) : label;
}

/** The body limit of forms that carry a WebAuthn answer (up to 16 KB of JSON, form-encoded). */
export const CREDENTIAL_FORM_LIMIT = 64 * 1024;

/** A page that runs /assets/webauthn.js: it loads our script and fetches its options from us. */
export function allowPasskeyScript(ctx: Context): void {
  addCspSources(ctx, 'script-src', "'self'");
  addCspSources(ctx, 'connect-src', "'self'");
}
