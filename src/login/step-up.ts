// Step-up: a person already signed in gets a second factor when this request needs one and
// their session has none: the client asked (acr_values or an essential acr claim naming
// urn:keybridge:mfa), or the MFA policy requires it for this client (a session from a client
// where it was optional); or the client asked for an action (kb_action=configure_mfa). An
// oidc-provider login-prompt check requests the interaction; the login routes then run only
// the steps after authentication on the session's account.
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { LoginSessionLookup } from '../oidc/login-sessions.ts';
import type { MfaServices } from './mfa-services.ts';
import { ACR_MFA } from './pipeline.ts';

/** The login prompt's reason when a second factor is missing. */
export const STEP_UP_REASON = 'keybridge_mfa';

/**
 * An application-initiated action: `kb_action=configure_mfa` in an authorization request has
 * the person add a TOTP app or a passkey (another one, when they have one), then returns.
 */
export const ACTION_PARAM = 'kb_action';
export const requestsEnrolment = (params: Record<string, unknown>) => params[ACTION_PARAM] === 'configure_mfa';

/** Whether authorization parameters ask for a second factor (adding a factor needs one too). */
export function requestsMfa(params: Record<string, unknown>): boolean {
  if (requestsEnrolment(params)) return true;
  const values = typeof params.acr_values === 'string' ? params.acr_values.split(' ') : [];
  if (values.includes(ACR_MFA)) return true;
  if (typeof params.claims !== 'string' || params.claims.length > 8192) return false;
  try {
    const acr = (JSON.parse(params.claims) as { id_token?: { acr?: { essential?: boolean; value?: unknown; values?: unknown } } })?.id_token?.acr;
    return Boolean(acr?.essential && (acr.value === ACR_MFA || (Array.isArray(acr.values) && acr.values.includes(ACR_MFA))));
  } catch {
    return false;
  }
}

export function stepUpCheck(deps: { mfa: () => MfaServices; logins: LoginSessionLookup }) {
  return async (ctx: KoaContextWithOIDC): Promise<boolean> => {
    const { oidc } = ctx;
    const accountId = oidc.session?.accountId;
    // No session: the whole login runs anyway. Just logged in: the pipeline decided already.
    if (!accountId || oidc.result?.login) return false;
    const params = oidc.params as Record<string, unknown>;
    if (requestsEnrolment(params)) return true;
    if (oidc.acr === ACR_MFA) return false;
    if (requestsMfa(params)) return true;
    const login = await deps.logins.find(oidc.session.uid);
    const { mode } = await deps.mfa().policy.resolve({ userId: accountId, clientId: oidc.client!.clientId, connectorId: login?.connectorId ?? null });
    return mode === 'required';
  };
}
