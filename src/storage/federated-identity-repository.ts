import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { FederatedIdentity } from './types.ts';
import { uniquely } from './unique-violation.ts';

interface Row {
  id: string;
  user_id: string;
  connector_id: string;
  subject: string;
  username: string | null;
  email: string | null;
  data: Record<string, unknown>;
  created_at: Date;
  last_login_at: Date | null;
  digest: string | null;
  synced_at: Date | null;
  removed_at: Date | null;
  tokens: string | null;
  checked_at: Date | null;
}

const fromRow = (r: Row): FederatedIdentity => ({
  id: r.id,
  userId: r.user_id,
  connectorId: r.connector_id,
  subject: r.subject,
  username: r.username,
  email: r.email,
  data: r.data ?? {},
  createdAt: r.created_at,
  lastLoginAt: r.last_login_at,
  digest: r.digest ?? null,
  syncedAt: r.synced_at ?? null,
  removedAt: r.removed_at ?? null,
  tokens: r.tokens ?? null,
  checkedAt: r.checked_at ?? null,
});

/** What an import writes about one identity. */
export interface SyncedFields {
  username: string | null;
  email: string | null;
  data: Record<string, unknown>;
  digest: string;
  syncedAt: Date;
}

export class FederatedIdentityRepository {
  readonly #knex: Knex;

  constructor(knex: Knex) {
    this.#knex = knex;
  }

  async find(connectorId: string, subject: string): Promise<FederatedIdentity | null> {
    const row = await this.#knex<Row>('federated_identities').where({ connector_id: connectorId, subject }).first();
    return row ? fromRow(row) : null;
  }

  async findById(id: string): Promise<FederatedIdentity | null> {
    const row = await this.#knex<Row>('federated_identities').where({ id }).first();
    return row ? fromRow(row) : null;
  }

  async listForUser(userId: string): Promise<FederatedIdentity[]> {
    return (await this.#knex<Row>('federated_identities').where({ user_id: userId }).orderBy('created_at')).map(fromRow);
  }

  async create(input: { userId: string; connectorId: string; subject: string; username?: string | null; email?: string | null; data?: Record<string, unknown> }): Promise<FederatedIdentity> {
    const [row] = await uniquely(`identity ${input.connectorId}/${input.subject}`, () =>
      this.#knex<Row>('federated_identities')
        .insert({
          id: randomUUID(),
          user_id: input.userId,
          connector_id: input.connectorId,
          subject: input.subject,
          username: input.username ?? null,
          email: input.email ?? null,
          data: JSON.stringify(input.data ?? {}) as unknown as Record<string, unknown>,
        })
        .returning('*'),
    );
    return fromRow(row as Row);
  }

  /**
   * A login through this identity; `tokens` (ciphertext) replaces the stored ones when given;
   * `removedAt: null` clears an import's "gone upstream" mark (the upstream just let them in).
   */
  async recordLogin(id: string, fields: { username?: string | null; email?: string | null; data?: Record<string, unknown>; tokens?: string | null; removedAt?: null }): Promise<void> {
    const now = new Date();
    const update: Record<string, unknown> = { last_login_at: now, checked_at: now };
    if (fields.removedAt === null) update.removed_at = null;
    if (fields.tokens !== undefined) update.tokens = fields.tokens;
    if (fields.username !== undefined) update.username = fields.username;
    if (fields.email !== undefined) update.email = fields.email;
    if (fields.data !== undefined) update.data = JSON.stringify(fields.data);
    await this.#knex('federated_identities').where({ id }).update(update);
  }

  /** Many imported identities in one statement; all or none. */
  async createMany(inputs: ReadonlyArray<{ userId: string; connectorId: string; subject: string } & SyncedFields>): Promise<void> {
    if (!inputs.length) return;
    await uniquely(`one of ${inputs.length} identities`, () =>
      this.#knex('federated_identities').insert(inputs.map((i) => ({
        id: randomUUID(),
        user_id: i.userId,
        connector_id: i.connectorId,
        subject: i.subject,
        username: i.username,
        email: i.email,
        data: JSON.stringify(i.data),
        digest: i.digest,
        synced_at: i.syncedAt,
      }))),
    );
  }

  /** The identities of these subjects on one connector, by subject (one query for a page). */
  async findMany(connectorId: string, subjects: readonly string[]): Promise<Map<string, FederatedIdentity>> {
    if (!subjects.length) return new Map();
    const rows = await this.#knex<Row>('federated_identities').where({ connector_id: connectorId }).whereIn('subject', subjects);
    return new Map(rows.map((r) => [r.subject, fromRow(r)]));
  }

  /** Records what an import read; clears an earlier "gone" mark. */
  async recordSync(id: string, fields: SyncedFields): Promise<void> {
    await this.#knex('federated_identities').where({ id }).update({
      username: fields.username,
      email: fields.email,
      data: JSON.stringify(fields.data),
      digest: fields.digest,
      synced_at: fields.syncedAt,
      removed_at: null,
    });
  }

  /** Marks identities an import saw unchanged, in one statement. */
  async touchSynced(ids: readonly string[], at: Date): Promise<void> {
    if (ids.length) await this.#knex('federated_identities').whereIn('id', ids).update({ synced_at: at });
  }

  /** Identities of a connector that an import running since `since` did not see, not yet marked gone. */
  async listUnseen(connectorId: string, since: Date, limit: number): Promise<FederatedIdentity[]> {
    const rows = await this.#knex<Row>('federated_identities')
      .where({ connector_id: connectorId })
      .where('created_at', '<', since)
      .whereNull('removed_at')
      .where((q) => q.whereNull('synced_at').orWhere('synced_at', '<', since))
      .orderBy('id')
      .limit(limit);
    return rows.map(fromRow);
  }

  async markRemoved(id: string, at: Date): Promise<void> {
    await this.#knex('federated_identities').where({ id }).update({ removed_at: at, synced_at: at });
  }

  /** What a refresh learned from the upstream: its confirmation time and, when rotated, new tokens. */
  async recordCheck(id: string, fields: { tokens?: string | null; data?: Record<string, unknown>; username?: string | null; email?: string | null }): Promise<void> {
    const update: Record<string, unknown> = { checked_at: new Date() };
    if (fields.tokens !== undefined) update.tokens = fields.tokens;
    if (fields.data !== undefined) update.data = JSON.stringify(fields.data);
    if (fields.username !== undefined) update.username = fields.username;
    if (fields.email !== undefined) update.email = fields.email;
    await this.#knex('federated_identities').where({ id }).update(update);
  }

  async delete(id: string): Promise<boolean> {
    return (await this.#knex('federated_identities').where({ id }).delete()) > 0;
  }
}
