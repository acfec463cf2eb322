// Which connector (and upstream identity) signed a browser session in. Keyed by
// oidc-provider's stable session uid, which every code, access and refresh token carries, so
// the `idp` claim and connector refresh work for as long as the session's tokens live.
import type { Knex } from 'knex';
import { knexStatements, type SqlStatements, type Statement } from './pg-statements.ts';
import type { UpstreamSession } from '../connectors/contract.ts';
import { currentHold } from './held-writes.ts';

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

/** The login row's columns, in the order of loginSessionParams, with the types of its parameters. */
const COLUMNS = ['session_uid', 'user_id', 'connector_id', 'federated_identity_id', 'amr', 'claims', 'expires_at', 'authenticated_at', 'upstream_subject', 'upstream_sid', 'upstream_session', 'ip', 'user_agent'];
const TYPES = ['text', 'text', 'text', 'text', 'jsonb', 'jsonb', 'timestamptz', 'timestamptz', 'text', 'text', 'jsonb', 'text', 'text'];
const placeholders = (first: number) => TYPES.map((type, i) => `$${first + i}::${type}`).join(', ');
// The first login of a session inserts; a later one in it replaces all but created_at.
const ON_CONFLICT = `ON CONFLICT (session_uid) DO UPDATE SET ${COLUMNS.slice(1).map((c) => `${c} = excluded.${c}`).join(', ')}`;
const RETURNING = 'RETURNING session_uid, user_id, connector_id, federated_identity_id, amr, claims, created_at, expires_at, authenticated_at, upstream_session';

/** A login's row, written once per login: a prepared statement. */
const UPSERT_SQL: Statement = {
  name: 'kb_login_session_upsert',
  text: `INSERT INTO login_sessions (${COLUMNS.join(', ')}) VALUES (${placeholders(1)}) ${ON_CONFLICT} ${RETURNING}`,
};

/**
 * The same write as a part of another statement (a resume's, src/storage/oidc-adapter.ts): the
 * row of loginSessionParams from parameter `$first` on, written once for each row of `source`
 * (none when it is empty) and only when `$first` is not null.
 */
export function loginSessionWriteFrom(source: string, first: number): string {
  return `INSERT INTO login_sessions (${COLUMNS.join(', ')}) SELECT ${placeholders(first)} FROM ${source} WHERE $${first}::text IS NOT NULL ${ON_CONFLICT} ${RETURNING}`;
}

export type LoginSessionWrite = Omit<LoginSession, 'createdAt' | 'claims' | 'authenticatedAt' | 'upstreamSession'> & { claims?: Record<string, unknown>; authenticatedAt?: Date; upstreamSession?: UpstreamSession | null; ip?: string | null; userAgent?: string | null };

/** The parameters of a login's row, in the order of COLUMNS. */
function loginSessionParams(login: LoginSessionWrite): unknown[] {
  const upstream = login.upstreamSession ?? null;
  return [
    login.sessionUid,
    login.userId,
    login.connectorId,
    login.federatedIdentityId,
    JSON.stringify(login.amr),
    JSON.stringify(login.claims ?? {}),
    login.expiresAt,
    login.authenticatedAt ?? new Date(),
    upstream?.subject ?? null,
    upstream?.id ?? null,
    upstream ? JSON.stringify(upstream) : null,
    login.ip ?? null,
    storableUserAgent(login.userAgent),
  ];
}

export class LoginSessionRepository {
  readonly #knex: Knex;
  readonly #sql: SqlStatements;

  /** `sql`: prepared statements for the write every login makes (default: the same text through this knex). */
  constructor(knex: Knex, sql: SqlStatements = knexStatements(knex)) {
    this.#knex = knex;
    this.#sql = sql;
  }

  /**
   * `ip`: the address the person signed in from (shown in the admin API's session listing);
   * `userAgent`: the browser's User-Agent then (the account console names the device from it).
   */
  async upsert(login: LoginSessionWrite): Promise<LoginSession> {
    const { rows: [row] } = await this.#sql.run<Row>(UPSERT_SQL, loginSessionParams(login));
    // The row as stored (created_at stays from the first login of this session).
    return fromRow(row!);
  }

  /**
   * A login's row held back to go with the writes of the authorization request being resumed
   * (src/storage/held-writes.ts), when that request holds them: the row as it will be stored
   * (its created_at is now for a session's later login too, until `settled` has the stored row).
   * `settled` gets the stored row, or null when the held writes failed or were refused. Null
   * when nothing is held: then upsert() writes it.
   */
  hold(login: LoginSessionWrite, settled: (stored: LoginSession | null) => void): LoginSession | null {
    const hold = currentHold();
    if (!hold?.gate) return null;
    hold.alongside = { params: loginSessionParams(login), settled: (row) => settled(row ? fromRow(row as unknown as Row) : null) };
    const now = new Date();
    return { sessionUid: login.sessionUid, userId: login.userId, connectorId: login.connectorId, federatedIdentityId: login.federatedIdentityId, amr: login.amr, claims: login.claims ?? {}, createdAt: now, expiresAt: login.expiresAt, authenticatedAt: login.authenticatedAt ?? now, upstreamSession: login.upstreamSession ?? null };
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
