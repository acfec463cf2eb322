// Which SAML service providers each browser session (oidc-provider session uid) signed in to,
// with the NameID and SessionIndex each was given: what a LogoutRequest names, and who else to
// tell when one session ends.
import type { Knex } from 'knex';

export interface SamlIdpSession {
  sessionUid: string;
  spEntityId: string;
  nameId: string;
  nameIdFormat: string;
  sessionIndex: string;
  createdAt: Date;
  expiresAt: Date;
}

interface Row {
  session_uid: string;
  sp_entity_id: string;
  name_id: string;
  name_id_format: string;
  session_index: string;
  created_at: Date;
  expires_at: Date;
}

const fromRow = (r: Row): SamlIdpSession => ({
  sessionUid: r.session_uid,
  spEntityId: r.sp_entity_id,
  nameId: r.name_id,
  nameIdFormat: r.name_id_format,
  sessionIndex: r.session_index,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
});

export class SamlIdpSessionRepository {
  readonly #knex: Knex;

  constructor(knex: Knex) {
    this.#knex = knex;
  }

  /** The SP's session row, if this browser session already signed in to it and the row is live. */
  async find(sessionUid: string, spEntityId: string, now = new Date()): Promise<SamlIdpSession | null> {
    const row = await this.#knex<Row>('saml_idp_sessions').where({ session_uid: sessionUid, sp_entity_id: spEntityId }).andWhere('expires_at', '>', now).first();
    return row ? fromRow(row) : null;
  }

  /**
   * Records a sign-in to an SP. A second sign-in of the same session keeps its SessionIndex (the
   * SP may still hold the first one) and takes the new NameID and expiry.
   */
  async record(entry: Omit<SamlIdpSession, 'createdAt'>): Promise<SamlIdpSession> {
    const [row] = await this.#knex<Row>('saml_idp_sessions')
      .insert({
        session_uid: entry.sessionUid,
        sp_entity_id: entry.spEntityId,
        name_id: entry.nameId,
        name_id_format: entry.nameIdFormat,
        session_index: entry.sessionIndex,
        expires_at: entry.expiresAt,
      })
      .onConflict(['session_uid', 'sp_entity_id'])
      .merge(['name_id', 'name_id_format', 'expires_at'])
      .returning('*');
    return fromRow(row as Row);
  }

  /** Live sessions an SP's LogoutRequest names: by NameID, and by one of its SessionIndexes when it gave any. */
  async findByNameId(spEntityId: string, nameId: string, sessionIndexes: readonly string[] | null, now = new Date()): Promise<SamlIdpSession[]> {
    const q = this.#knex<Row>('saml_idp_sessions').where({ sp_entity_id: spEntityId, name_id: nameId }).andWhere('expires_at', '>', now);
    if (sessionIndexes?.length) q.whereIn('session_index', [...sessionIndexes]);
    return (await q.select()).map(fromRow);
  }

  /** Every SP these browser sessions signed in to. */
  async listForSessions(sessionUids: readonly string[], now = new Date()): Promise<SamlIdpSession[]> {
    if (!sessionUids.length) return [];
    return (await this.#knex<Row>('saml_idp_sessions').whereIn('session_uid', [...sessionUids]).andWhere('expires_at', '>', now).orderBy('created_at')).map(fromRow);
  }

  async deleteForSessions(sessionUids: readonly string[]): Promise<number> {
    if (!sessionUids.length) return 0;
    return this.#knex('saml_idp_sessions').whereIn('session_uid', [...sessionUids]).delete();
  }

  async deleteExpired(now = new Date()): Promise<number> {
    return this.#knex('saml_idp_sessions').where('expires_at', '<=', now).delete();
  }
}
