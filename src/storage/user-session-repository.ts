// A person's browser sessions and OIDC grants as oidc-provider stored them (oidc_payloads), for
// the admin API: list them, and revoke grants with every token issued under them. Grant and
// Session rows are found by the payload's accountId through a partial index (migration 0007);
// tokens by their grant_id column.
import type { Knex } from 'knex';
import { artifactsChanged } from './artifact-cache.ts';

const TABLE = 'oidc_payloads';
/** Every kind oidc-provider stores with a grant_id, besides the Grant itself. */
const GRANT_BOUND = ['AccessToken', 'RefreshToken', 'AuthorizationCode', 'DeviceCode', 'BackchannelAuthenticationRequest'];

export interface UserGrant {
  id: string;
  clientId: string;
  /** The OpenID scope granted, and the scopes per resource server. */
  scopes: string[];
  resources: Record<string, string[]>;
  createdAt: Date | null;
  expiresAt: Date | null;
}

export interface UserSession {
  /** oidc-provider's stable session uid (carried by the session's tokens). */
  uid: string;
  createdAt: Date | null;
  authenticatedAt: Date | null;
  /** When a token was last issued under one of the session's grants; null when none is live. */
  lastUsedAt: Date | null;
  expiresAt: Date | null;
  connectorId: string | null;
  ip: string | null;
  /** The browser's User-Agent when the person signed in (printable, bounded), if it sent one. */
  userAgent: string | null;
  amr: string[];
  /** Clients the person used in this session. */
  clients: string[];
}

interface PayloadRow {
  id: string;
  payload: Record<string, any>;
  expires_at: Date | null;
}

const words = (scope: unknown): string[] => (typeof scope === 'string' ? scope.split(' ').filter(Boolean) : []);
const epoch = (seconds: unknown): Date | null => (typeof seconds === 'number' ? new Date(seconds * 1000) : null);

function grantFromRow(r: PayloadRow): UserGrant {
  const p = r.payload;
  const resources = Object.fromEntries(Object.entries((p.resources ?? {}) as Record<string, unknown>).map(([resource, scope]) => [resource, words(scope)]));
  return { id: r.id, clientId: String(p.clientId ?? ''), scopes: words(p.openid?.scope), resources, createdAt: epoch(p.iat), expiresAt: r.expires_at };
}

export class UserSessionRepository {
  readonly #knex: Knex;

  constructor(knex: Knex) {
    this.#knex = knex;
  }

  #live(q: Knex.QueryBuilder, column = 'expires_at'): Knex.QueryBuilder {
    return q.where((w) => w.whereNull(column).orWhere(column, '>', new Date()));
  }

  async grantsOf(userId: string): Promise<UserGrant[]> {
    const rows: PayloadRow[] = await this.#live(this.#knex(TABLE).where('kind', 'Grant').whereRaw("payload->>'accountId' = ?", [userId])).select('id', 'payload', 'expires_at');
    return rows.map(grantFromRow).sort((a, b) => (b.createdAt?.getTime() ?? 0) - (a.createdAt?.getTime() ?? 0) || a.id.localeCompare(b.id));
  }

  async grantOf(userId: string, grantId: string): Promise<UserGrant | null> {
    const row: PayloadRow | undefined = await this.#live(this.#knex(TABLE).where({ kind: 'Grant', id: grantId }).whereRaw("payload->>'accountId' = ?", [userId])).first('id', 'payload', 'expires_at');
    return row ? grantFromRow(row) : null;
  }

  /**
   * Live browser sessions: oidc-provider's Session rows of the user, with what Keybridge
   * recorded at sign-in (login_sessions). Newest sign-in first.
   */
  async sessionsOf(userId: string): Promise<UserSession[]> {
    const rows: Array<PayloadRow & { uid: string; connector_id: string | null; created_at: Date | null; authenticated_at: Date | null; ip: string | null; user_agent: string | null; amr: string[] | null }> = await this.#live(
      this.#knex(`${TABLE} as s`).where('s.kind', 'Session').whereRaw("s.payload->>'accountId' = ?", [userId]).whereNotNull('s.uid'),
      's.expires_at',
    )
      .leftJoin('login_sessions as l', 'l.session_uid', 's.uid')
      .select('s.id', 's.uid', 's.payload', 's.expires_at', 'l.connector_id', 'l.created_at', 'l.authenticated_at', 'l.ip', 'l.user_agent', 'l.amr');
    const grantIds = rows.flatMap((r) => Object.values((r.payload.authorizations ?? {}) as Record<string, { grantId?: string }>).map((a) => a.grantId).filter((g): g is string => typeof g === 'string'));
    const lastUse = new Map<string, number>();
    if (grantIds.length) {
      const used: Array<{ grant_id: string; iat: number | null }> = await this.#knex(TABLE)
        .whereIn('kind', ['AccessToken', 'RefreshToken'])
        .whereIn('grant_id', grantIds)
        .groupBy('grant_id')
        .select('grant_id', this.#knex.raw("max((payload->>'iat')::bigint) AS iat"));
      for (const u of used) if (u.iat !== null) lastUse.set(u.grant_id, Number(u.iat));
    }
    return rows
      .map((r) => {
        const authorizations = (r.payload.authorizations ?? {}) as Record<string, { grantId?: string }>;
        const last = Math.max(0, ...Object.values(authorizations).map((a) => (a.grantId ? (lastUse.get(a.grantId) ?? 0) : 0)));
        const amr = Array.isArray(r.amr) ? r.amr : Array.isArray(r.payload.amr) ? r.payload.amr : [];
        return {
          uid: r.uid,
          createdAt: r.created_at ?? epoch(r.payload.iat),
          authenticatedAt: r.authenticated_at ?? epoch(r.payload.loginTs),
          lastUsedAt: last ? new Date(last * 1000) : null,
          expiresAt: r.expires_at,
          connectorId: r.connector_id ?? null,
          ip: r.ip ?? null,
          userAgent: r.user_agent ?? null,
          amr: amr.map(String),
          clients: Object.keys(authorizations).sort(),
        };
      })
      .sort((a, b) => (b.authenticatedAt?.getTime() ?? 0) - (a.authenticatedAt?.getTime() ?? 0) || a.uid.localeCompare(b.uid));
  }

  /** Every session uid that may still carry the user's tokens: live Session rows and login rows. */
  async sessionUidsOf(userId: string): Promise<string[]> {
    const [sessions, logins] = await Promise.all([
      this.#knex(TABLE).where('kind', 'Session').whereRaw("payload->>'accountId' = ?", [userId]).whereNotNull('uid').select('uid'),
      this.#knex('login_sessions').where('user_id', userId).select('session_uid'),
    ]);
    return [...new Set([...sessions.map((r: { uid: string }) => r.uid), ...logins.map((r: { session_uid: string }) => r.session_uid)])];
  }

  /** Every grant id of the user, expired ones included (their tokens may outlive nothing, but cost nothing to remove). */
  async grantIdsOf(userId: string): Promise<string[]> {
    const rows = await this.#knex(TABLE).where('kind', 'Grant').whereRaw("payload->>'accountId' = ?", [userId]).select('id');
    return rows.map((r: { id: string }) => r.id);
  }

  /** Deletes the grants and every code and token issued under them; returns how many rows went. */
  async revokeGrants(grantIds: readonly string[]): Promise<number> {
    if (!grantIds.length) return 0;
    artifactsChanged(this.#knex);
    const tokens = await this.#knex(TABLE).whereIn('kind', GRANT_BOUND).whereIn('grant_id', [...grantIds]).delete();
    const grants = await this.#knex(TABLE).where('kind', 'Grant').whereIn('id', [...grantIds]).delete();
    // Again after the deletes: a lookup in between must not keep what was being deleted.
    artifactsChanged(this.#knex);
    return tokens + grants;
  }
}
