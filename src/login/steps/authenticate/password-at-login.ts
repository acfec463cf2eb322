// A local password was just accepted at login: if it has expired or no longer meets the password
// policy (history aside), the update_password required action is stored with why, before the
// login goes on, so the pipeline asks for a new password and abandoning the page does not skip
// it (the next login asks again). Directory and upstream passwords are not ours to judge.
import type { Context } from 'koa';
import type { UpstreamIdentity } from '../../../connectors/contract.ts';
import type { LoginKit } from '../../login-kit.ts';

export async function checkPasswordAtLogin(ctx: Context, kit: LoginKit, identity: UpstreamIdentity, password: string, clientId: string): Promise<void> {
  const { store, passwordPolicy, logger } = kit.deps;
  const userId = identity.localUserId;
  if (!userId) return;
  try {
    // The local connector's identity is the account itself: no extra read for its names, nor
    // for the stored password's facts, read with the hash it verified.
    const reason = await passwordPolicy.loginProblem(password, { userId, username: identity.username, email: identity.email, name: identity.name }, identity.localPassword);
    if (!reason) return;
    await store.passwords.requireChange(userId, reason);
    await store.audit.record({ type: 'user.password_change_required', userId, clientId, connectorId: identity.connectorId, ip: ctx.ip, details: { reason } });
  } catch (err) {
    // The check is a safeguard on a login that already succeeded: if it cannot run, the login
    // goes on as before the policy existed, and the log says why.
    logger.error({ err, userId }, 'password policy check at login failed');
  }
}
