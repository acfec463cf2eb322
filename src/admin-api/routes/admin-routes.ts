// Every admin API operation, in the order the OpenAPI document lists them.
import type { Config } from '../../config/schema.ts';
import type { Store } from '../../storage/store.ts';
import type { AdminRoute } from '../admin-route.ts';
import { keyRoutes } from './key-routes.ts';
import { groupRoutes } from './group-routes.ts';
import { auditRoutes } from './audit-routes.ts';
import { statsRoutes } from './stats-routes.ts';
import { samlServiceProviderRoutes } from './saml-service-provider-routes.ts';

export interface AdminRouteDependencies {
  config: Config;
  store: Store;
  /** Makes this instance publish and sign with rotated keys at once. */
  afterKeyRotation: () => Promise<unknown>;
}

export function adminRoutes(deps: AdminRouteDependencies): AdminRoute[] {
  return [
    ...keyRoutes({ config: deps.config, store: deps.store, afterRotation: deps.afterKeyRotation }),
    ...groupRoutes({ store: deps.store }),
    ...auditRoutes({ store: deps.store }),
    ...statsRoutes({ store: deps.store }),
    ...samlServiceProviderRoutes({ config: deps.config, store: deps.store }),
  ];
}
