// Every admin API operation, in the order the OpenAPI document lists them.
import type { Config } from '../../config/schema.ts';
import type { Store } from '../../storage/store.ts';
import type { AdminRoute } from '../admin-route.ts';
import { keyRoutes } from './key-routes.ts';
import { clientRoutes } from './client-routes.ts';
import { ClientService } from '../../management/clients.ts';
import { brokerScopes } from '../../oidc/create-provider.ts';

export interface AdminRouteDependencies {
  config: Config;
  store: Store;
  /** Makes this instance publish and sign with rotated keys at once. */
  afterKeyRotation: () => Promise<unknown>;
  /** Keybridge's own clients (oidc-provider metadata), listed read-only. */
  internalClients?: readonly Record<string, unknown>[];
  /** oidc-provider's check of client metadata (provider.Client.validate). */
  validateClientMetadata?: (metadata: Record<string, unknown>) => Promise<void>;
}

export function adminRoutes(deps: AdminRouteDependencies): AdminRoute[] {
  const clients = new ClientService({ config: deps.config, store: deps.store, internalClients: deps.internalClients, defaultScopes: brokerScopes(deps.config), validateMetadata: deps.validateClientMetadata });
  return [...keyRoutes({ config: deps.config, store: deps.store, afterRotation: deps.afterKeyRotation }), ...clientRoutes(clients)];
}
