// A login after the person is identified: an ordered list of steps over one stored state.
// authenticate (connector) -> link -> [second factor -> required actions] -> finish; consent is
// oidc-provider's own prompt after that. Each step says whether it applies to the state and
// renders its page, or passes; when none applies, the login finishes. The state lives in the
// artifact store under the interaction's uid, so a reload (or another instance) resumes at the
// same step, and nothing about it travels in the browser.
import type { Context } from 'koa';
import type { AdapterPayload } from 'oidc-provider';
import { FAILURE_MESSAGES, type Interaction, type LoginKit, type LoginProvenance, type SignedIn } from './login-kit.ts';
import type { LoginFacts, RequiredAction } from '../storage/mfa-repository.ts';
import type { ApplicablePolicies } from '../storage/mfa-policy-repository.ts';
import type { PageText } from '../i18n/page-text.ts';

/** Authentication context class references in our ID tokens. */
export const ACR_SINGLE_FACTOR = 'urn:keybridge:sfa';
export const ACR_MFA = 'urn:keybridge:mfa';
export const ACR_VALUES = [ACR_SINGLE_FACTOR, ACR_MFA];

export interface LoginState {
  uid: string;
  clientId: string;
  connectorId: string;
  login: SignedIn;
  /** How the second factor was settled; absent while it is open. */
  secondFactor?: 'factor' | 'upstream' | 'remembered' | 'enrolled' | 'not-needed';
  /** The person must enrol a factor before the login finishes (policy, step-up, or an administrator). */
  mustEnrol?: boolean;
  /** A TOTP enrolment waiting for its first code, sealed: { factorId, secret, uri, qrSvg }. */
  pendingTotp?: string;
  /** Recovery codes just issued, sealed, shown once before the login goes on. */
  recoveryCodes?: string;
  /** The session already existed and only a second factor is asked (step-up). */
  stepUp?: boolean;
  /** With stepUp: when the session's person last signed in (epoch milliseconds), kept as the sign-in time. */
  authenticatedAt?: number;
  /** Something the person must read before the login goes on (recovery codes left), translated on the page. */
  notice?: PageText | string;
  /**
   * Read once when the login begins: whether the user has a factor, and their required actions.
   * `applicable` (what decides the second-factor mode) serves only the request that read it: it
   * is not stored with the state, so a step taken later reads the policies afresh.
   */
  facts: { enrolled: boolean; actions: RequiredAction[]; applicable?: ApplicablePolicies };
  /** The client's action (kb_action) ran in this login. */
  actionDone?: boolean;
  /** The state was stored (a step showed a page), so finishing must remove it. */
  stored?: boolean;
}

export interface LoginStep {
  name: string;
  /** Whether this step has something for the person to do now. May settle the state (it is saved after). */
  applies(ctx: Context, state: LoginState, details: Interaction): Promise<boolean>;
  /** `error`: a catalog text (translated on the page), or ready-made words shown as given. */
  render(ctx: Context, state: LoginState, details: Interaction, extra?: { error?: PageText | string; status?: number }): Promise<void>;
}

/** How long a person has between the first and the last step of a login. */
const STATE_TTL = 900;
const stateKey = (uid: string) => `login.${uid}`;

export interface LoginPipeline {
  /** The authenticate/link steps identified the person: run the remaining steps. */
  begin(ctx: Context, details: Interaction, connectorId: string, login: SignedIn, extra?: Partial<Omit<LoginState, 'facts'>>, facts?: LoginFacts): Promise<void>;
  /** Runs the next step that applies, or finishes the login. */
  advance(ctx: Context, details: Interaction, state: LoginState): Promise<void>;
  load(uid: string): Promise<LoginState | null>;
  save(state: LoginState): Promise<void>;
  /** Forgets a login in progress (the person cancelled). */
  discard(uid: string): Promise<void>;
  /**
   * The stored state of a login, looked up now (before its interaction is checked) so that it
   * goes to the database in one statement with the interaction's own lookup. Its failure is
   * reported only to whoever awaits it (resume).
   */
  prefetch(uid: string): Promise<LoginState | null>;
  /** The step the stored state is at (a reload of the interaction page); false when none is stored. `state`: from prefetch(details.uid). */
  resume(ctx: Context, details: Interaction, state?: Promise<LoginState | null>): Promise<boolean>;
}

export function createPipeline(kit: LoginKit, steps: () => readonly LoginStep[]): LoginPipeline {
  const store = kit.deps.upstreamAttempts;

  const load = async (uid: string) => ((await store.find(stateKey(uid))) as unknown as LoginState | undefined) ?? null;
  const save = (state: LoginState) => {
    const { applicable: _fresh, ...facts } = state.facts;
    return store.upsert(stateKey(state.uid), { ...state, facts } as unknown as AdapterPayload, STATE_TTL);
  };

  async function advance(ctx: Context, details: Interaction, state: LoginState) {
    for (const step of steps()) {
      if (await step.applies(ctx, state, details)) {
        state.stored = true;
        await save(state);
        return step.render(ctx, state, details);
      }
    }
    if (state.stored) {
      await store.destroy(stateKey(state.uid));
      // Time passed since the person was identified: disabled or deleted meanwhile, no login.
      const user = await kit.deps.store.users.findById(state.login.userId);
      if (!user?.enabled) {
        await kit.deps.store.audit.record({ type: 'login.failure', outcome: 'failure', userId: state.login.userId, clientId: state.clientId, connectorId: state.connectorId, ip: ctx.ip, details: { reason: user ? 'account_disabled' : 'user_gone', stage: 'finish' } });
        return kit.renderLogin(ctx, state.uid, state.clientId, { error: FAILURE_MESSAGES[user ? 'account_disabled' : 'user_gone'], status: 401 });
      }
    }
    return finishLogin(ctx, state);
  }

  function finishLogin(ctx: Context, state: LoginState) {
    const { login } = state;
    const mfa = login.amr.includes('mfa');
    // A step-up proved a factor, not who is at the keyboard: the sign-in time (auth_time, and the
    // login row's authenticated_at that the account console's recent-sign-in check reads) stays.
    const signedInAt = state.stepUp ? state.authenticatedAt : undefined;
    const ts = signedInAt ? Math.floor(signedInAt / 1000) : undefined;
    const provenance: LoginProvenance = { connectorId: state.connectorId, federatedIdentityId: login.federatedIdentityId, amr: login.amr, claims: login.claims, upstreamSession: login.upstreamSession, ...(signedInAt ? { authenticatedAt: signedInAt } : {}) };
    return kit.finish(ctx, { login: { accountId: login.userId, amr: login.amr, acr: mfa ? ACR_MFA : ACR_SINGLE_FACTOR, remember: true, ...(ts ? { ts } : {}) }, keybridge: provenance }, false);
  }

  return {
    begin: async (ctx, details, connectorId, login, extra = {}, read) => {
      const clientId = details.params.client_id as string;
      // `read`: the facts read with the user (a local account's login) for this client and connector.
      const facts = read ?? (await kit.deps.store.mfa.loginFacts(login.userId, { clientId, connectorId }));
      return advance(ctx, details, { uid: details.uid, clientId, connectorId, login, facts, ...extra });
    },
    advance,
    load,
    save,
    discard: (uid) => store.destroy(stateKey(uid)),
    prefetch(uid) {
      const state = load(uid);
      // Awaited by resume only once the interaction is found; unawaited, a failure is not unhandled.
      state.catch(() => {});
      return state;
    },
    async resume(ctx, details, prefetched) {
      const state = await (prefetched ?? load(details.uid));
      if (!state) return false;
      await advance(ctx, details, state);
      return true;
    },
  };
}

/** amr values, deduplicated, with `mfa` added when a second factor joined the first. */
export function withFactor(amr: readonly string[], factor: readonly string[]): string[] {
  return [...new Set([...amr, ...factor, 'mfa'])];
}
