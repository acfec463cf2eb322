// Which connector (and upstream identity) signed a browser session in. Keyed by
// oidc-provider's stable session uid, which every code, access and refresh token carries, so
// the `idp` claim and connector refresh work for as long as the session's tokens live.
import type { Knex } from 'knex';

export interface LoginSession {
  sessionUid: string;
  userId: string;
  connectorId: string;
  federatedIdentityId: string | null;
  amr: string[];
  /** Extra token claims the connector's mappers produced for this login. */
  claims: Record<string, unknown>;
  createdAt: Date;
  expiresAt: Date | null;
}

interface Row {
  session_uid: string;
  user_id: string;
  connector_id: string;
  federated_identity_id: string | null;
  amr: string[];
  claims: Record<string, unknown> | null;
  created_at: Date;
  expires_at: Date | null;
}

function fromRow(r: Row): LoginSession {
  return {
    sessionUid: r.session_uid,
    userId: r.user_id,
    connectorId: r.connector_id,
    federatedIdentityId: r.federated_identity_id,
    amr: r.amr ?? [],
    claims: r.claims ?? {},
    createdAt: r.created_at,
    expiresAt: r.expires_at,
  };
}

export class LoginSessionRepository {
  readonly #knex: Knex;

  constructor(knex: Knex) {
    this.#knex = knex;
  }

  async upsert(login: Omit<LoginSession, 'createdAt' | 'claims'> & { claims?: Record<string, unknown> }): Promise<void> {
    await this.#knex('login_sessions')
      .insert({
        session_uid: login.sessionUid,
        user_id: login.userId,
        connector_id: login.connectorId,
        federated_identity_id: login.federatedIdentityId,
        amr: JSON.stringify(login.amr),
        claims: JSON.stringify(login.claims ?? {}),
        expires_at: login.expiresAt,
      })
      .onConflict('session_uid')
      .merge(['user_id', 'connector_id', 'federated_identity_id', 'amr', 'claims', 'expires_at']);
  }

  async find(sessionUid: string, now = new Date()): Promise<LoginSession | null> {
    const row = await this.#knex<Row>('login_sessions')
      .where('session_uid', sessionUid)
      .andWhere((q) => q.whereNull('expires_at').orWhere('expires_at', '>', now))
      .first();
    return row ? fromRow(row) : null;
  }

  /** New mapped claims for every live session signed in through one federated identity (after a refresh). */
  async updateClaims(federatedIdentityId: string, claims: Record<string, unknown>): Promise<void> {
    await this.#knex('login_sessions').where({ federated_identity_id: federatedIdentityId }).update({ claims: JSON.stringify(claims) });
  }

  async deleteExpired(now = new Date()): Promise<number> {
    return this.#knex('login_sessions').where('expires_at', '<=', now).delete();
  }
}
