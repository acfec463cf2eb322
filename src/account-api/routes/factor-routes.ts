// Second factors: list, an authenticator app (secret and QR, confirmed with a code), passkeys
// (WebAuthn registration), removal (never the last way in), new recovery codes (shown once).
import { z } from 'zod';
import { WEBAUTHN_MESSAGES } from '../../login/mfa-services.ts';
import { factorView } from '../../management/user-mfa.ts';
import { AdminProblem, notFound } from '../../admin-api/problem.ts';
import { text } from '../account-kit.ts';
import { defineAccountRoute, type AccountRoute } from '../account-route.ts';
import type { AccountKit } from '../account-kit.ts';
import { english } from '../../i18n/english.ts';

const codeBody = z.strictObject({ code: z.string().min(1, 'is required').max(32, 'must be at most 32 characters') });
const passkeyBody = z.strictObject({ name: text(64).refine((s) => s.length > 0, 'is required'), credential: z.record(z.string(), z.unknown()) });

export function factorRoutes(kit: AccountKit): AccountRoute[] {
  const { store, logger, mfa, remainingMethods, firstRecoveryCodes } = kit;
  return [
    defineAccountRoute({
      method: 'GET',
      path: '/mfa',
      async handler({ principal }) {
        const [factors, recoveryCodesLeft] = await Promise.all([store.mfa.list(principal.user.id), store.mfa.recoveryCodesLeft(principal.user.id)]);
        return { body: { factors: factors.filter((f) => f.confirmed).map(factorView), recoveryCodesLeft, passkeys: mfa.passkeys } };
      },
    }),
    defineAccountRoute({
      method: 'POST',
      path: '/mfa/totp',
      recentLogin: true,
      async handler({ principal }) {
        // An earlier enrolment never confirmed is replaced (startEnrolment drops it).
        const pending = await mfa.totp.startEnrolment({ id: principal.user.id, username: principal.user.username });
        return { status: 201, body: { factorId: pending.factorId, secret: pending.secret, uri: pending.uri, qrSvg: pending.qrSvg } };
      },
    }),
    defineAccountRoute({
      method: 'POST',
      path: '/mfa/totp/:id/confirm',
      recentLogin: true,
      body: codeBody,
      async handler({ principal, params, body, audit }) {
        const result = await mfa.totp.confirmEnrolment(principal.user.id, params.id!, body.code);
        if (result === 'gone') throw notFound('The authenticator app set-up');
        if (result !== 'confirmed') throw new AdminProblem(400, 'wrong_code', 'That code is not right. Check the time on your device and enter the current code.', { errors: [{ path: 'body.code', message: 'is not right' }] });
        await audit('mfa.enrolled', { factor: 'totp', via: 'account-console' });
        return { status: 201, body: { factorId: params.id, recoveryCodes: await firstRecoveryCodes(principal.user.id, audit) } };
      },
    }),
    defineAccountRoute({
      method: 'POST',
      path: '/mfa/passkeys/options',
      recentLogin: true,
      async handler({ principal }) {
        if (!mfa.passkeys) throw new AdminProblem(409, 'passkeys_unavailable', 'Passkeys cannot be used on this server (it is reached by an IP address).');
        const u = principal.user;
        return { body: await mfa.webauthn.registrationOptions({ id: u.id, username: u.username, name: u.name }, `account-passkey.${u.id}`) };
      },
    }),
    defineAccountRoute({
      method: 'POST',
      path: '/mfa/passkeys',
      recentLogin: true,
      body: passkeyBody,
      async handler({ principal, body: input, audit }) {
        const result = await mfa.webauthn.verifyRegistration(principal.user.id, `account-passkey.${principal.user.id}`, input.credential, input.name);
        if (!result.ok) {
          logger.info({ user: principal.user.id, error: result.error, detail: result.detail }, 'passkey registration refused');
          throw new AdminProblem(400, `passkey_${result.error}`, english(WEBAUTHN_MESSAGES[result.error]));
        }
        await audit('mfa.enrolled', { factor: 'webauthn', name: input.name, via: 'account-console' });
        return { status: 201, body: { factorId: result.factorId, recoveryCodes: await firstRecoveryCodes(principal.user.id, audit) } };
      },
    }),
    defineAccountRoute({
      method: 'DELETE',
      path: '/mfa/factors/:id',
      recentLogin: true,
      async handler({ principal, params, audit }) {
        const factor = await store.mfa.find(principal.user.id, params.id!);
        if (!factor || !factor.confirmed) throw notFound('The factor');
        if (factor.type === 'webauthn' && mfa.passkeys && (await remainingMethods(principal.user.id, {})) <= 1) {
          throw new AdminProblem(409, 'last_sign_in_method', 'This passkey is your only way to sign in. Set a password or link another account first.');
        }
        if (!(await store.mfa.remove(principal.user.id, factor.id))) throw notFound('The factor');
        await audit('mfa.factor_removed', { factor: factor.type, name: factor.name, by: 'self' });
        return { status: 204 };
      },
    }),
    defineAccountRoute({
      method: 'POST',
      path: '/mfa/recovery-codes',
      recentLogin: true,
      async handler({ principal, audit }) {
        const factors = (await store.mfa.list(principal.user.id)).filter((f) => f.confirmed);
        if (!factors.length) throw new AdminProblem(409, 'no_factor', 'Recovery codes stand in for a second factor: add an authenticator app or a passkey first.');
        const codes = await mfa.recovery.issue(principal.user.id);
        await audit('mfa.recovery_codes_issued', { by: 'self' });
        return { status: 201, body: { codes } };
      },
    }),
  ];
}
