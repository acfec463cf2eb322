// Second-factor policies stored through the admin API (migration 0013), and the one query a login
// needs: the user's groups with every stored policy that applies to this login.
import type { Knex } from 'knex';
import { userGroupsSubquery } from './user-groups-sql.ts';
import { knexStatements, type SqlStatements } from './pg-statements.ts';

export type MfaPolicyKind = 'global' | 'client' | 'group' | 'connector';
export type StoredMfaMode = 'required' | 'optional' | 'off';

export interface StoredMfaPolicy {
  kind: MfaPolicyKind;
  /** '' for global; a client id, group name or connector id. */
  target: string;
  mode: StoredMfaMode;
  updatedAt: Date;
}

interface Row {
  kind: MfaPolicyKind;
  target: string;
  mode: StoredMfaMode;
  updated_at: Date | string;
}

const fromRow = (r: Row): StoredMfaPolicy => ({ kind: r.kind, target: r.target, mode: r.mode, updatedAt: new Date(r.updated_at) });

/**
 * The stored policies for the global level, client `client`, connector `connector` and groups
 * `groups` (SQL expressions: parameters or a column), as one JSON array.
 */
export function applicablePoliciesSql(client: string, connector: string, groups: string): string {
  return `(SELECT coalesce(json_agg(json_build_object('kind', p.kind, 'target', p.target, 'mode', p.mode, 'updated_at', p.updated_at)), '[]'::json)
         FROM mfa_policies p
        WHERE p.kind = 'global'
           OR (p.kind = 'client' AND p.target = ${client})
           OR (p.kind = 'connector' AND p.target = ${connector})
           OR (p.kind = 'group' AND p.target = ANY (${groups})))`;
}

// Read by a step-up and by a login resumed from its stored state; a login that begins reads the
// same with its other facts (LOGIN_FACTS_SQL in mfa-repository.ts). Prepared (pg-statements.ts).
export const APPLICABLE_SQL = {
  name: 'kb_mfa_policies_applicable',
  text: `WITH ug AS (SELECT coalesce(${userGroupsSubquery('$1')}, '{}'::text[]) AS names)
    SELECT ug.names AS groups, ${applicablePoliciesSql('$2', '$3', 'ug.names')} AS policies
    FROM ug`,
};

/** What decides a login's second-factor mode: the user's groups and the stored policies that apply. */
export interface ApplicablePolicies {
  groups: string[];
  policies: StoredMfaPolicy[];
}

/** The `groups` and `policies` columns of APPLICABLE_SQL or LOGIN_FACTS_SQL (the JSON arrives parsed or as text). */
export function applicableFromRow(row: { groups: string[] | null; policies: unknown }): ApplicablePolicies {
  const policies = (typeof row.policies === 'string' ? JSON.parse(row.policies) : row.policies) as Row[];
  return { groups: row.groups ?? [], policies: policies.map(fromRow) };
}

export class MfaPolicyRepository {
  readonly #knex: Knex;
  readonly #sql: SqlStatements;

  /** `sql`: prepared statements for what logins read (default: the same text through this knex). */
  constructor(knex: Knex, sql: SqlStatements = knexStatements(knex)) {
    this.#knex = knex;
    this.#sql = sql;
  }

  /** Every stored policy, by kind then target. */
  async list(): Promise<StoredMfaPolicy[]> {
    return (await this.#knex<Row>('mfa_policies').orderBy([{ column: 'kind' }, { column: 'target' }])).map(fromRow);
  }

  async find(kind: MfaPolicyKind, target: string): Promise<StoredMfaPolicy | null> {
    const row = await this.#knex<Row>('mfa_policies').where({ kind, target }).first();
    return row ? fromRow(row) : null;
  }

  /** Sets the mode; returns the policy before the change (null when there was none). */
  async set(kind: MfaPolicyKind, target: string, mode: StoredMfaMode): Promise<{ before: StoredMfaPolicy | null; after: StoredMfaPolicy }> {
    return this.#knex.transaction(async (trx) => {
      const before = await trx<Row>('mfa_policies').where({ kind, target }).forUpdate().first();
      const [row] = await trx<Row>('mfa_policies')
        .insert({ kind, target, mode, updated_at: new Date() })
        .onConflict(['kind', 'target'])
        .merge(['mode', 'updated_at'])
        .returning('*');
      return { before: before ? fromRow(before) : null, after: fromRow(row) };
    });
  }

  /** Removes the policy; returns what it was (null when there was none). */
  async remove(kind: MfaPolicyKind, target: string): Promise<StoredMfaPolicy | null> {
    const [row] = await this.#knex<Row>('mfa_policies').where({ kind, target }).delete().returning('*');
    return row ? fromRow(row) : null;
  }

  /**
   * In one query: the user's groups (nested parents included; [] for an unknown user) and the
   * stored policies for the global level, this client, this connector and those groups.
   */
  async applicable(input: { userId: string; clientId: string; connectorId: string | null }): Promise<ApplicablePolicies> {
    const { rows } = await this.#sql.run<{ groups: string[] | null; policies: unknown }>(APPLICABLE_SQL, [input.userId, input.clientId, input.connectorId ?? '']);
    return applicableFromRow(rows[0]);
  }
}
