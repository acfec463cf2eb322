// The account API's operations, by area (src/account-api/routes/): profile, sign-in methods,
// second factors, sessions and apps, the person's data. Each handler works on `principal.user`
// only; a path id that names something of another person answers 404.
import type { AccountRoute } from './account-api.ts';
import { createAccountKit, type AccountRouteDependencies } from './account-kit.ts';
import { profileRoutes } from './routes/profile-routes.ts';
import { signInRoutes } from './routes/sign-in-routes.ts';
import { factorRoutes } from './routes/factor-routes.ts';
import { sessionRoutes } from './routes/session-routes.ts';
import { dataRoutes } from './routes/data-routes.ts';

export type { AccountEmails, AccountRouteDependencies, LinkTickets } from './account-kit.ts';

export function accountRoutes(deps: AccountRouteDependencies): AccountRoute[] {
  const kit = createAccountKit(deps);
  return [...profileRoutes(kit), ...signInRoutes(kit), ...factorRoutes(kit), ...sessionRoutes(kit), ...dataRoutes(kit)];
}
