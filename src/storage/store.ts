// All repositories over one connection (or one transaction).
import type { Knex } from 'knex';
import { UserRepository } from './user-repository.ts';
import { CredentialRepository } from './credential-repository.ts';
import { PasswordRepository } from './password-repository.ts';
import { GroupRepository } from './group-repository.ts';
import { FederatedIdentityRepository } from './federated-identity-repository.ts';
import { ClientRepository } from './client-repository.ts';
import { SigningKeyRepository } from './signing-key-repository.ts';
import { SecretRepository } from './secret-repository.ts';
import { AuditRepository, type AuditListener } from './audit-repository.ts';
import { LoginSessionRepository } from './login-session-repository.ts';
import { LeaseRepository } from './lease-repository.ts';
import { ConnectorRepository } from './connector-repository.ts';
import { ReplayRepository } from './replay-repository.ts';
import { SamlServiceProviderRepository } from './saml-service-provider-repository.ts';
import { SamlIdpSessionRepository } from './saml-idp-session-repository.ts';
import { UserSessionRepository } from './user-session-repository.ts';
import { MfaRepository } from './mfa-repository.ts';
import { MfaPolicyRepository } from './mfa-policy-repository.ts';
import { inTransaction } from './in-transaction.ts';
import type { ChangeNotifier } from './change-feed.ts';
import { EmailOutboxRepository } from './email-outbox-repository.ts';
import { ActionTokenRepository } from './action-token-repository.ts';
import { knexStatements, type SqlStatements } from './pg-statements.ts';

/** Observers of what the store records (metrics count audit events as they are stored). */
export interface StoreHooks {
  onAuditRecord?: AuditListener;
  /** Announces changes of runtime-managed objects to every instance (src/storage/change-feed.ts). */
  changes?: ChangeNotifier;
  /**
   * Where the statements every login runs go (src/storage/pg-statements.ts: prepared on
   * PostgreSQL): for this store only, never for a transaction's, whose statements must stay on
   * the transaction's connection. Default: the same text through knex.
   */
  statements?: SqlStatements;
}

export class Store {
  readonly knex: Knex;
  readonly #hooks: StoreHooks;
  readonly users: UserRepository;
  readonly credentials: CredentialRepository;
  /** Password history, when a password changed, and why a new one is required (password policy). */
  readonly passwords: PasswordRepository;
  readonly groups: GroupRepository;
  readonly identities: FederatedIdentityRepository;
  readonly clients: ClientRepository;
  readonly signingKeys: SigningKeyRepository;
  readonly secrets: SecretRepository;
  readonly audit: AuditRepository;
  readonly loginSessions: LoginSessionRepository;
  readonly leases: LeaseRepository;
  readonly connectors: ConnectorRepository;
  readonly replay: ReplayRepository;
  readonly samlServiceProviders: SamlServiceProviderRepository;
  readonly samlIdpSessions: SamlIdpSessionRepository;
  /** A person's browser sessions and OIDC grants (oidc-provider's records), for the admin API. */
  readonly userSessions: UserSessionRepository;
  /** Second factors, recovery codes and required actions. */
  readonly mfa: MfaRepository;
  readonly mfaPolicies: MfaPolicyRepository;
  /** Mails waiting to be sent, and their fate (src/email/outbox.ts). */
  readonly outbox: EmailOutboxRepository;
  /** The single-use tokens of the links in mails (src/email/action-links.ts). */
  readonly actionTokens: ActionTokenRepository;

  constructor(knex: Knex, hooks: StoreHooks = {}) {
    this.knex = knex;
    this.#hooks = hooks;
    const sql = hooks.statements ?? knexStatements(knex);
    this.users = new UserRepository(knex, sql);
    this.credentials = new CredentialRepository(knex);
    this.passwords = new PasswordRepository(knex);
    this.groups = new GroupRepository(knex);
    this.identities = new FederatedIdentityRepository(knex);
    this.clients = new ClientRepository(knex, hooks.changes);
    this.signingKeys = new SigningKeyRepository(knex);
    this.secrets = new SecretRepository(knex);
    this.audit = new AuditRepository(knex, hooks.onAuditRecord);
    this.loginSessions = new LoginSessionRepository(knex, sql);
    this.leases = new LeaseRepository(knex);
    this.connectors = new ConnectorRepository(knex);
    this.replay = new ReplayRepository(knex);
    this.samlServiceProviders = new SamlServiceProviderRepository(knex);
    this.samlIdpSessions = new SamlIdpSessionRepository(knex);
    this.userSessions = new UserSessionRepository(knex);
    this.mfa = new MfaRepository(knex, sql);
    this.mfaPolicies = new MfaPolicyRepository(knex, sql);
    this.outbox = new EmailOutboxRepository(knex);
    this.actionTokens = new ActionTokenRepository(knex);
  }

  /** Runs `fn` with a Store bound to one transaction; any error rolls everything back. */
  async transaction<T>(fn: (store: Store) => Promise<T>): Promise<T> {
    return inTransaction(this.knex, (trx) => fn(trx === this.knex ? this : new Store(trx, { ...this.#hooks, statements: undefined })));
  }
}
