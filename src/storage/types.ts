// The storage contract. Every backend (PostgreSQL, PGlite) runs the same knex code and the
// same conformance suite (test/storage). A miss returns null; a unique violation throws
// AlreadyExists; multi-row changes run in one transaction.

export interface User {
  id: string;
  username: string;
  email: string | null;
  emailVerified: boolean;
  name: string | null;
  givenName: string | null;
  familyName: string | null;
  enabled: boolean;
  attributes: Record<string, unknown>;
  /** The connector whose upstream owns this user's profile (created it by login or import); null for local users. */
  managedBy: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface NewUser {
  username: string;
  email?: string | null;
  emailVerified?: boolean;
  name?: string | null;
  givenName?: string | null;
  familyName?: string | null;
  enabled?: boolean;
  attributes?: Record<string, unknown>;
  managedBy?: string | null;
}

export type UserPatch = Partial<NewUser>;

export interface FederatedIdentity {
  id: string;
  userId: string;
  connectorId: string;
  subject: string;
  username: string | null;
  email: string | null;
  data: Record<string, unknown>;
  createdAt: Date;
  lastLoginAt: Date | null;
  /** Hash of the upstream data last stored, for change detection by imports. */
  digest: string | null;
  /** When an import last saw this identity upstream. */
  syncedAt: Date | null;
  /** When an import found the upstream entry gone (cleared when it comes back). */
  removedAt: Date | null;
  /** The stored upstream tokens, encrypted (null when the connector does not keep them). */
  tokens: string | null;
  /** When the upstream last confirmed this identity (login or refresh). */
  checkedAt: Date | null;
}

export interface Group {
  id: string;
  name: string;
  description: string | null;
  /** 'local' (managed here), 'config', or the connector that first asserted it (read-only in the admin API). */
  source: string;
  createdAt: Date;
  updatedAt: Date;
}

/** One user's membership of one group, with every source that asserts it. */
export interface GroupMember {
  userId: string;
  username: string;
  sources: string[];
}

export interface StoredClient {
  id: string;
  /** oidc-provider client metadata, snake_case (client_id included). */
  metadata: Record<string, unknown>;
  firstParty: boolean;
  enabled: boolean;
  /** base64url SHA-256 of the client secret; the secret itself is never stored. */
  secretHash: string | null;
  /** The secret before the last rotation, accepted until previousSecretExpiresAt. */
  previousSecretHash: string | null;
  previousSecretExpiresAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface SigningKey {
  kid: string;
  alg: string;
  privateJwk: Record<string, unknown>;
  status: 'active' | 'retired';
  createdAt: Date;
  retiredAt: Date | null;
  removeAfter: Date | null;
}

export interface AuditEvent {
  id: string;
  at: Date;
  type: string;
  outcome: 'success' | 'failure';
  userId: string | null;
  clientId: string | null;
  connectorId: string | null;
  ip: string | null;
  details: Record<string, unknown>;
}

export type NewAuditEvent = Omit<Partial<AuditEvent>, 'id' | 'at'> & { type: string };
