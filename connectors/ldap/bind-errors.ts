// What a failed LDAP bind means for the person signing in. Active Directory (and Samba AD) put
// the Windows sub-status in the diagnostic message ("... AcceptSecurityContext error, data 52e,
// v4563"); OpenLDAP says only "invalid credentials" (49).
import type { FailureReason } from '../../src/connectors/contract.ts';

/** AD sub-status (hex, as AD prints it) -> failure reason. */
const AD_SUB_STATUS: Record<string, FailureReason> = {
  '525': 'invalid_credentials', // no such user: reported like a wrong password, so usernames do not leak
  '52e': 'invalid_credentials', // wrong password
  '530': 'not_permitted', // outside the permitted logon hours
  '531': 'not_permitted', // not permitted from this workstation
  '532': 'password_expired',
  '533': 'account_disabled',
  '568': 'not_permitted', // too many security ids in the token
  '701': 'account_expired',
  '773': 'password_change_required',
  // Locked out: AD (and Samba) answer 775 before they look at the password, so it says nothing
  // about whether the person knows it. Telling "locked" would confirm to anyone guessing that the
  // account exists; it is reported like a wrong password (the log keeps the sub-status). The
  // codes above (533, 701, 773, ...) come only after a correct password.
  '775': 'invalid_credentials',
};

/** The AD sub-status in a bind error message, lower-case hex, or null. */
export function adSubStatus(message: string): string | null {
  const m = /\bdata ([0-9a-f]{3,8})\b/i.exec(message);
  return m ? m[1]!.toLowerCase().replace(/^0+(?=[0-9a-f]{3})/, '') : null;
}

export interface BindFailure {
  reason: FailureReason;
  /** For the log and audit trail: what the server said, without the password. */
  detail: string;
}

/**
 * Classifies a bind error. Returns null when the error is not an answer about these credentials
 * (socket closed, timeout, server busy): the caller treats that as "directory unavailable".
 */
export function classifyBindError(err: unknown): BindFailure | null {
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message : String(err);
  if (code === 49) {
    const sub = adSubStatus(message);
    if (sub) return { reason: AD_SUB_STATUS[sub] ?? 'invalid_credentials', detail: `bind refused (AD data ${sub}${sub === '775' ? ': locked out' : ''})` };
    return { reason: 'invalid_credentials', detail: 'bind refused (invalid credentials)' };
  }
  if (code === 53) return { reason: 'not_permitted', detail: 'bind refused (unwilling to perform)' };
  if (code === 50) return { reason: 'not_permitted', detail: 'bind refused (insufficient access rights)' };
  // 19 = constraintViolation: OpenLDAP ppolicy reports a locked or expired password this way.
  if (code === 19) return { reason: 'account_locked', detail: 'bind refused (constraint violation)' };
  return null;
}
