// Which connector (and upstream identity) signed a browser session in. Keyed by
// oidc-provider's stable session uid, which every code, access and refresh token carries, so
// the `idp` claim and connector refresh work for as long as the session's tokens live.
import type { Knex } from 'knex';
import type { UpstreamSession } from '../connectors/contract.ts';

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
  /** When the person last signed in at the upstream in this session (each login sets it). */
  authenticatedAt: Date;
  /** The upstream's session behind this login, for single logout (SAML NameID and SessionIndex). */
  upstreamSession: UpstreamSession | null;
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
  authenticated_at: Date | null;
  upstream_session: UpstreamSession | null;
}

/** A header value as stored: printable, at most 512 characters, null when empty. */
function storableUserAgent(value: string | null | undefined): string | null {
  const cleaned = (value ?? '').replace(/[\u0000-\u001f\u007f]/g, '').slice(0, 512).trim();
  return cleaned || null;
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
    authenticatedAt: r.authenticated_at ?? r.created_at,
    upstreamSession: r.upstream_session ?? null,
  };
}

export class LoginSessionRepository {
  readonly #knex: Knex;

  constructor(knex: Knex) {
    this.#knex = knex;
  }

  /**
   * `ip`: the address the person signed in from (shown in the admin API's session listing);
   * `userAgent`: the browser's User-Agent then (the account console names the device from it).
   */
  async upsert(login: Omit<LoginSession, 'createdAt' | 'claims' | 'authenticatedAt' | 'upstreamSession'> & { claims?: Record<string, unknown>; authenticatedAt?: Date; upstreamSession?: UpstreamSession | null; ip?: string | null; userAgent?: string | null }): Promise<LoginSession> {
    const upstream = login.upstreamSession ?? null;
    const [row] = await this.#knex('login_sessions')
      .insert({
        session_uid: login.sessionUid,
        user_id: login.userId,
        connector_id: login.connectorId,
        federated_identity_id: login.federatedIdentityId,
        amr: JSON.stringify(login.amr),
        claims: JSON.stringify(login.claims ?? {}),
        expires_at: login.expiresAt,
        authenticated_at: login.authenticatedAt ?? new Date(),
        upstream_subject: upstream?.subject ?? null,
        upstream_sid: upstream?.id ?? null,
        upstream_session: upstream ? JSON.stringify(upstream) : null,
        ip: login.ip ?? null,
        user_agent: storableUserAgent(login.userAgent),
      })
      .onConflict('session_uid')
      .merge(['user_id', 'connector_id', 'federated_identity_id', 'amr', 'claims', 'expires_at', 'authenticated_at', 'upstream_subject', 'upstream_sid', 'upstream_session', 'ip', 'user_agent'])
      .returning('*');
    // The row as stored (created_at stays from the first login of this session).
    return fromRow(row as Row);
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

  /**
   * Live sessions one connector's upstream named in a logout request: by upstream subject, and
   * by one of its session ids when it gave any.
   */
  async findByUpstream(connectorId: string, subject: string, sessionIds: string[] | null, now = new Date()): Promise<LoginSession[]> {
    const q = this.#knex<Row>('login_sessions')
      .where('connector_id', connectorId)
      .andWhere('upstream_subject', subject)
      .andWhere((w) => w.whereNull('expires_at').orWhere('expires_at', '>', now));
    if (sessionIds) q.whereIn('upstream_sid', sessionIds);
    return (await q.select()).map(fromRow);
  }

  async delete(sessionUid: string): Promise<void> {
    await this.#knex('login_sessions').where('session_uid', sessionUid).delete();
  }

  async deleteExpired(now = new Date()): Promise<number> {
    return this.#knex('login_sessions').where('expires_at', '<=', now).delete();
  }
}
