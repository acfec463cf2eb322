// Consent: oidc-provider's own prompt after the login. First-party clients are trusted by the
// operator and get no consent screen; others show what is still missing from the grant.
import type Router from '@koa/router';
import type { Context } from 'koa';
import { sendPage } from '../../../http/send-page.ts';
import { InvalidSession } from '../../../errors.ts';
import { text } from '../../../i18n/page-text.ts';
import type { Interaction, LoginKit } from '../../login-kit.ts';

/** What the consent prompt says is still missing from the grant. */
interface ConsentDetails {
  missingOIDCScope?: string[];
  missingOIDCClaims?: string[];
  missingResourceScopes?: Record<string, string[]>;
}

/** Scopes with a description in the catalogs (`consent.scope.<name>`); others show their name. */
const DESCRIBED_SCOPES = new Set(['openid', 'profile', 'email', 'groups', 'offline_access']);

export interface ConsentStep {
  show(ctx: Context, details: Interaction): Promise<void>;
  routes(router: Router): void;
}

export function createConsentStep(kit: LoginKit): ConsentStep {
  const { deps, clientView, finish, loadForm } = kit;
  const { provider, store, csrf, renderer } = deps;

  async function grantConsent(details: Interaction): Promise<Record<string, unknown>> {
    const { prompt, params, session } = details;
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session!.accountId, clientId: params.client_id as string });
    if (!grant) throw new InvalidSession();
    const missing = prompt.details as ConsentDetails;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
    const grantId = await grant.save();
    return details.grantId ? {} : { grantId };
  }

  async function show(ctx: Context, details: Interaction) {
    const client = await clientView(details.params.client_id as string);
    if (client.firstParty) return finish(ctx, { consent: await grantConsent(details) }, true);
    const missing = details.prompt.details as ConsentDetails;
    const user = await store.users.findById(details.session!.accountId);
    return sendPage(ctx, renderer, 'consent', {
      uid: details.uid,
      client,
      user: { username: user?.username ?? '', name: user?.name ?? undefined },
      scopes: (missing.missingOIDCScope ?? []).map((name) => ({ name, description: DESCRIBED_SCOPES.has(name) ? text(`consent.scope.${name}`) : undefined })),
      claims: (missing.missingOIDCClaims ?? []).filter((c) => !['sub', 'sid', 'auth_time', 'acr', 'amr', 'iss'].includes(c)),
      resources: Object.entries(missing.missingResourceScopes ?? {}).map(([id, scopes]) => ({ id, scopes })),
      csrfToken: csrf.issue(details.uid),
      confirmAction: `/interaction/${details.uid}/confirm`,
      abortAction: `/interaction/${details.uid}/abort`,
    });
  }

  function routes(router: Router) {
    router.post('/interaction/:uid/confirm', async (ctx) => {
      const { details } = await loadForm(ctx, 'consent');
      const consent = await grantConsent(details);
      await store.audit.record({ type: 'consent.granted', userId: details.session?.accountId ?? null, clientId: details.params.client_id as string, ip: ctx.ip, details: { scope: details.params.scope } });
      return finish(ctx, { consent }, true);
    });
  }

  return { show, routes };
}
