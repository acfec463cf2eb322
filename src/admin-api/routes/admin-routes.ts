// Every admin API operation, in the order the OpenAPI document lists them.
import type { Config } from '../../config/schema.ts';
import type { Store } from '../../storage/store.ts';
import type { AdminRoute } from '../admin-route.ts';
import { keyRoutes } from './key-routes.ts';
import { connectorRoutes } from './connector-routes.ts';
import type { ConnectorService } from '../../management/connectors.ts';

export interface AdminRouteDependencies {
  config: Config;
  store: Store;
  /** Makes this instance publish and sign with rotated keys at once. */
  afterKeyRotation: () => Promise<unknown>;
  connectors: ConnectorService;
}

export function adminRoutes(deps: AdminRouteDependencies): AdminRoute[] {
  return [...keyRoutes({ config: deps.config, store: deps.store, afterRotation: deps.afterKeyRotation }), ...connectorRoutes({ connectors: deps.connectors })];
}
