// Every admin API operation, in the order the OpenAPI document lists them.
import type Provider from 'oidc-provider';
import type { Logger } from 'pino';
import type { Config } from '../../config/schema.ts';
import type { Store } from '../../storage/store.ts';
import type { AdminRoute } from '../admin-route.ts';
import { keyRoutes } from './key-routes.ts';
import { mfaPolicyRoutes } from './mfa-policy-routes.ts';
import { selfRoutes } from './self-routes.ts';
import { userRoutes } from './user-routes.ts';
import { userMfaRoutes } from './user-mfa-routes.ts';
import { userService } from '../../management/users.ts';
import { clientRoutes } from './client-routes.ts';
import { ClientService } from '../../management/clients.ts';
import { brokerScopes } from '../../oidc/create-provider.ts';
import { groupRoutes } from './group-routes.ts';
import { auditRoutes } from './audit-routes.ts';
import { statsRoutes } from './stats-routes.ts';
import { samlServiceProviderRoutes } from './saml-service-provider-routes.ts';
import { connectorRoutes } from './connector-routes.ts';
import { samlIdpRoutes, type SamlIdpPublicInfo } from './saml-idp-routes.ts';
import type { ConnectorService } from '../../management/connectors.ts';
import { AdminProblem } from '../problem.ts';
import type { PasswordPolicyService } from '../../accounts/password-policy.ts';

/** Config, internal or stored; only "not found" means no. */
const clientExists = (clients: ClientService, id: string) => clients.get(id).then(() => true, (err: unknown) => (err instanceof AdminProblem && err.status === 404 ? false : Promise.reject(err)));

export interface AdminRouteDependencies {
  config: Config;
  store: Store;
  /** Makes this instance publish and sign with rotated keys at once. */
  afterKeyRotation: () => Promise<unknown>;
  /** Ends browser sessions (back-channel logout) when users are disabled or deleted. */
  provider: Provider;
  logger: Logger;
  /** Keybridge's own clients (oidc-provider metadata), listed read-only. */
  internalClients?: readonly Record<string, unknown>[];
  /** oidc-provider's check of client metadata (provider.Client.validate). */
  validateClientMetadata?: (metadata: Record<string, unknown>) => Promise<void>;
  connectors: ConnectorService;
  /** The broker's password policy, shared with the login pages and the mail flows. */
  passwordPolicy?: PasswordPolicyService;
  /** Keybridge's SAML IdP as SPs see it; null when it is disabled. */
  samlIdp?: SamlIdpPublicInfo | null;
}

export function adminRoutes(deps: AdminRouteDependencies): AdminRoute[] {
  const clients = new ClientService({ config: deps.config, store: deps.store, internalClients: deps.internalClients, defaultScopes: brokerScopes(deps.config), validateMetadata: deps.validateClientMetadata });
  const users = userService({ config: deps.config, store: deps.store, provider: deps.provider, logger: deps.logger, passwordPolicy: deps.passwordPolicy });
  return [
    ...selfRoutes(),
    ...userRoutes({ users }),
    ...userMfaRoutes({ users }),
    ...groupRoutes({ store: deps.store }),
    ...clientRoutes(clients),
    ...connectorRoutes({ connectors: deps.connectors }),
    ...samlServiceProviderRoutes({ config: deps.config, store: deps.store }),
    ...samlIdpRoutes({ samlIdp: deps.samlIdp ?? null }),
    ...auditRoutes({ store: deps.store }),
    ...statsRoutes({ config: deps.config, store: deps.store, clients, connectors: deps.connectors }),
    ...mfaPolicyRoutes({ config: deps.config, store: deps.store, exists: (kind, id) => (kind === 'client' ? clientExists(clients, id) : deps.connectors.get(id).then(Boolean)) }),
    ...keyRoutes({ config: deps.config, store: deps.store, afterRotation: deps.afterKeyRotation }),
  ];
}
