// A user's second factors, TOTP replay records, recovery codes and required actions
// (migration 0012). Secrets arrive here already sealed or hashed: this layer never sees a TOTP
// secret or a recovery code in plain text.
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { knexStatements, type SqlStatements } from './pg-statements.ts';
import { userGroupsSubquery } from './user-groups-sql.ts';
import { applicableFromRow, applicablePoliciesSql, type ApplicablePolicies } from './mfa-policy-repository.ts';
import { USER_COLUMNS, userFromRow, type UserRow } from './user-repository.ts';
import type { User } from './types.ts';

export type FactorType = 'totp' | 'webauthn';

/** What may be shown of a factor: never its secret. */
export interface FactorInfo {
  id: string;
  userId: string;
  type: FactorType;
  name: string;
  confirmed: boolean;
  createdAt: Date;
  lastUsedAt: Date | null;
  /** WebAuthn: transports, aaguid, backedUp, deviceType, userVerified at registration. */
  data: Record<string, unknown>;
}

export interface TotpFactor extends FactorInfo {
  type: 'totp';
  /** The sealed secret (TokenCipher), as stored. */
  sealedSecret: string;
}

export interface WebauthnFactor extends FactorInfo {
  type: 'webauthn';
  /** base64url credential id. */
  credentialId: string;
  /** base64url COSE public key. */
  publicKey: string;
  signCount: number;
}

export interface NewWebauthnFactor {
  name: string;
  credentialId: string;
  publicKey: string;
  signCount: number;
  data: Record<string, unknown>;
}

/** Required actions a user must complete before a login finishes. */
export type RequiredAction = 'update_password' | 'configure_mfa';

interface FactorRow {
  id: string;
  user_id: string;
  type: FactorType;
  name: string;
  secret: string | null;
  credential_id: string | null;
  public_key: string | null;
  sign_count: string | number;
  data: Record<string, unknown> | null;
  confirmed: boolean;
  created_at: Date;
  last_used_at: Date | null;
}

function info(r: FactorRow): FactorInfo {
  return { id: r.id, userId: r.user_id, type: r.type, name: r.name, confirmed: r.confirmed, createdAt: r.created_at, lastUsedAt: r.last_used_at, data: r.data ?? {} };
}

const totp = (r: FactorRow): TotpFactor => ({ ...info(r), type: 'totp', sealedSecret: r.secret ?? '' });
const webauthn = (r: FactorRow): WebauthnFactor => ({ ...info(r), type: 'webauthn', credentialId: r.credential_id ?? '', publicKey: r.public_key ?? '', signCount: Number(r.sign_count) });

/** How long accepted TOTP steps are kept: well past the ±1 step window of any code. */
const USED_STEP_RETENTION = "interval '10 minutes'";

// What every login reads when it begins (pipeline.begin), in one round trip: the user's factors
// and required actions, and what decides the second-factor mode for this client and connector
// (the same as APPLICABLE_SQL). Prepared (src/storage/pg-statements.ts).
const loginFactsSql = (name: string, user: boolean) => ({
  name,
  text: `WITH ug AS (SELECT coalesce(${userGroupsSubquery('$1')}, '{}'::text[]) AS names)
    SELECT EXISTS (SELECT 1 FROM mfa_factors WHERE user_id = $1 AND confirmed) AS enrolled,
      ARRAY (SELECT action FROM required_actions WHERE user_id = $1 ORDER BY created_at) AS actions,
      ug.names AS groups, ${applicablePoliciesSql('$2', '$3', 'ug.names')} AS policies${user ? ', u.*' : ''}
    FROM ug${user ? ` LEFT JOIN LATERAL (SELECT ${USER_COLUMNS} FROM users u WHERE u.id = $1) u ON true` : ''}`,
});
export const LOGIN_FACTS_SQL = loginFactsSql('kb_mfa_login_facts', false);
/** The same with the user's own row (null columns when the user is gone): see loginFactsWithUser. */
export const LOGIN_FACTS_USER_SQL = loginFactsSql('kb_mfa_login_facts_user', true);

type FactsRow = { enrolled: boolean; actions: RequiredAction[] | null; groups: string[] | null; policies: unknown };
const factsFromRow = (row: FactsRow | undefined): LoginFacts => ({ enrolled: Boolean(row?.enrolled), actions: row?.actions ?? [], applicable: row ? applicableFromRow(row) : { groups: [], policies: [] } });

/** What a login reads of its user when it begins. */
export interface LoginFacts {
  /** The user has a confirmed second factor. */
  enrolled: boolean;
  actions: RequiredAction[];
  /** What decides the second-factor mode of this login (its client and connector). */
  applicable: ApplicablePolicies;
}

export class MfaRepository {
  readonly #knex: Knex;
  readonly #sql: SqlStatements;

  /** `sql`: prepared statements for what every login reads (default: the same text through this knex). */
  constructor(knex: Knex, sql: SqlStatements = knexStatements(knex)) {
    this.#knex = knex;
    this.#sql = sql;
  }

  /** Every factor of a user, oldest first, confirmed or not (no secrets). */
  async list(userId: string): Promise<FactorInfo[]> {
    const rows: FactorRow[] = await this.#knex('mfa_factors').where({ user_id: userId }).orderBy([{ column: 'created_at' }, { column: 'id' }]);
    return rows.map(info);
  }

  async find(userId: string, id: string): Promise<FactorInfo | null> {
    const row: FactorRow | undefined = await this.#knex('mfa_factors').where({ user_id: userId, id }).first();
    return row ? info(row) : null;
  }

  /** Starts a TOTP enrolment (unconfirmed until its first code); replaces an earlier unconfirmed one. */
  async addTotp(userId: string, name: string, sealedSecret: string): Promise<string> {
    const id = randomUUID();
    await this.#knex.transaction(async (trx) => {
      await trx('mfa_factors').where({ user_id: userId, type: 'totp', confirmed: false }).delete();
      await trx('mfa_factors').insert({ id, user_id: userId, type: 'totp', name, secret: sealedSecret, confirmed: false });
    });
    return id;
  }

  /** The user's TOTP factors with their sealed secrets; `pending` includes unconfirmed ones. */
  async totpFactors(userId: string, options: { pending?: boolean } = {}): Promise<TotpFactor[]> {
    const query = this.#knex('mfa_factors').where({ user_id: userId, type: 'totp' });
    if (!options.pending) query.andWhere({ confirmed: true });
    const rows: FactorRow[] = await query.orderBy('created_at');
    return rows.map(totp);
  }

  /** Marks an enrolment complete. False when it is gone (reset, replaced) meanwhile. */
  async confirm(userId: string, id: string): Promise<boolean> {
    return (await this.#knex('mfa_factors').where({ user_id: userId, id }).update({ confirmed: true, last_used_at: this.#knex.fn.now() })) > 0;
  }

  /**
   * Records that a TOTP time step was accepted for a factor. False when it was already used
   * (a replayed code, here or on another instance): the insert is the check.
   */
  async claimTotpStep(factorId: string, step: number): Promise<boolean> {
    const result = await this.#knex.raw<{ rowCount: number }>(
      `INSERT INTO mfa_used_steps (factor_id, step) VALUES (?, ?) ON CONFLICT DO NOTHING`,
      [factorId, step],
    );
    const inserted = (result as unknown as { rowCount?: number; affectedRows?: number }).rowCount ?? (result as unknown as { affectedRows?: number }).affectedRows ?? 0;
    if (inserted > 0) {
      await this.#knex.raw(`DELETE FROM mfa_used_steps WHERE factor_id = ? AND used_at < now() - ${USED_STEP_RETENTION}`, [factorId]);
      await this.#knex('mfa_factors').where({ id: factorId }).update({ last_used_at: this.#knex.fn.now() });
    }
    return inserted > 0;
  }

  async addWebauthn(userId: string, factor: NewWebauthnFactor): Promise<string> {
    const id = randomUUID();
    await this.#knex('mfa_factors').insert({
      id, user_id: userId, type: 'webauthn', name: factor.name, credential_id: factor.credentialId, public_key: factor.publicKey,
      sign_count: factor.signCount, data: JSON.stringify(factor.data), confirmed: true,
    });
    return id;
  }

  async webauthnFactors(userId: string): Promise<WebauthnFactor[]> {
    const rows: FactorRow[] = await this.#knex('mfa_factors').where({ user_id: userId, type: 'webauthn' }).orderBy('created_at');
    return rows.map(webauthn);
  }

  /** The passkey a credential id names (passwordless sign-in), whoever it belongs to. */
  async findWebauthnByCredentialId(credentialId: string): Promise<WebauthnFactor | null> {
    const row: FactorRow | undefined = await this.#knex('mfa_factors').where({ credential_id: credentialId, type: 'webauthn' }).first();
    return row ? webauthn(row) : null;
  }

  /**
   * Stores an authenticator's new signature counter after a verified assertion. Compare and
   * set: false when another use moved the counter meanwhile (a cloned authenticator racing).
   */
  async updateSignCount(id: string, expected: number, next: number): Promise<boolean> {
    return (await this.#knex('mfa_factors').where({ id, sign_count: expected }).update({ sign_count: next, last_used_at: this.#knex.fn.now() })) > 0;
  }

  async remove(userId: string, id: string): Promise<boolean> {
    return (await this.#knex('mfa_factors').where({ user_id: userId, id }).delete()) > 0;
  }

  /** Replaces a user's recovery codes (hashes) with a new set. */
  async replaceRecoveryCodes(userId: string, hashes: readonly string[]): Promise<void> {
    await this.#knex.transaction(async (trx) => {
      await trx('mfa_recovery_codes').where({ user_id: userId }).delete();
      if (hashes.length) await trx('mfa_recovery_codes').insert(hashes.map((code_hash) => ({ user_id: userId, code_hash })));
    });
  }

  /** Uses a recovery code once: the codes left, or null when it is not one of the user's unused codes. */
  async useRecoveryCode(userId: string, hash: string): Promise<number | null> {
    const used = await this.#knex('mfa_recovery_codes').where({ user_id: userId, code_hash: hash }).whereNull('used_at').update({ used_at: this.#knex.fn.now() });
    if (!used) return null;
    return this.recoveryCodesLeft(userId);
  }

  async recoveryCodesLeft(userId: string): Promise<number> {
    const row = await this.#knex('mfa_recovery_codes').where({ user_id: userId }).whereNull('used_at').count<{ count: string | number }[]>('* as count').first();
    return Number(row?.count ?? 0);
  }

  /** Removes every factor and recovery code of a user (an administrator's reset); what was removed. */
  async reset(userId: string): Promise<{ factors: number; recoveryCodes: number }> {
    return this.#knex.transaction(async (trx) => {
      const factors = await trx('mfa_factors').where({ user_id: userId }).delete();
      const recoveryCodes = await trx('mfa_recovery_codes').where({ user_id: userId }).delete();
      return { factors, recoveryCodes };
    });
  }

  /** What a login needs to know of a user in one round trip (see LoginFacts); `connectorId` null for a passkey sign-in. */
  async loginFacts(userId: string, login: { clientId: string; connectorId: string | null }): Promise<LoginFacts> {
    const { rows } = await this.#sql.run<FactsRow>(LOGIN_FACTS_SQL, [userId, login.clientId, login.connectorId ?? '']);
    return factsFromRow(rows[0]);
  }

  /**
   * loginFacts with the user as it is now (null: gone), in one statement: a local account's
   * login reads the user again once its password is verified (disabled or deleted meanwhile?),
   * and the facts right after.
   */
  async loginFactsWithUser(userId: string, login: { clientId: string; connectorId: string | null }): Promise<{ user: User | null; facts: LoginFacts }> {
    const { rows: [row] } = await this.#sql.run<FactsRow & Partial<UserRow>>(LOGIN_FACTS_USER_SQL, [userId, login.clientId, login.connectorId ?? '']);
    return { user: row?.id ? userFromRow(row as UserRow) : null, facts: factsFromRow(row) };
  }

  async requiredActions(userId: string): Promise<RequiredAction[]> {
    const rows = await this.#knex('required_actions').where({ user_id: userId }).orderBy('created_at').select('action');
    return rows.map((r: { action: RequiredAction }) => r.action);
  }

  async addRequiredAction(userId: string, action: RequiredAction): Promise<void> {
    await this.#knex.raw('INSERT INTO required_actions (user_id, action) VALUES (?, ?) ON CONFLICT DO NOTHING', [userId, action]);
  }

  async removeRequiredAction(userId: string, action: RequiredAction): Promise<boolean> {
    return (await this.#knex('required_actions').where({ user_id: userId, action }).delete()) > 0;
  }
}
