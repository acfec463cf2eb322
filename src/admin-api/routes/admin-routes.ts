// Every admin API operation, in the order the OpenAPI document lists them.
import type Provider from 'oidc-provider';
import type { Logger } from 'pino';
import type { Config } from '../../config/schema.ts';
import type { Store } from '../../storage/store.ts';
import type { AdminRoute } from '../admin-route.ts';
import { keyRoutes } from './key-routes.ts';
import { userRoutes } from './user-routes.ts';
import { userService } from '../../management/users.ts';

export interface AdminRouteDependencies {
  config: Config;
  store: Store;
  /** Makes this instance publish and sign with rotated keys at once. */
  afterKeyRotation: () => Promise<unknown>;
  /** Ends browser sessions (back-channel logout) when users are disabled or deleted. */
  provider: Provider;
  logger: Logger;
}

export function adminRoutes(deps: AdminRouteDependencies): AdminRoute[] {
  return [
    ...userRoutes({ users: userService({ config: deps.config, store: deps.store, provider: deps.provider, logger: deps.logger }) }),
    ...keyRoutes({ config: deps.config, store: deps.store, afterRotation: deps.afterKeyRotation }),
  ];
}
