import type { Knex } from 'knex';
import { artifactsChanged } from './artifact-cache.ts';
import type { StoredClient } from './types.ts';
import { uniquely } from './unique-violation.ts';
import { inTransaction } from './in-transaction.ts';
import { sqlOnlyNotifier, type ChangeNotifier } from './change-feed.ts';

interface Row {
  id: string;
  metadata: Record<string, unknown>;
  first_party: boolean;
  enabled: boolean;
  secret_hash: string | null;
  previous_secret_hash: string | null;
  previous_secret_expires_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

const fromRow = (r: Row): StoredClient => ({
  id: r.id,
  metadata: r.metadata,
  firstParty: r.first_party,
  enabled: r.enabled,
  secretHash: r.secret_hash ?? null,
  previousSecretHash: r.previous_secret_hash ?? null,
  previousSecretExpiresAt: r.previous_secret_expires_at ?? null,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export interface ClientPatch {
  metadata?: Record<string, unknown>;
  firstParty?: boolean;
  enabled?: boolean;
  /** SHA-256 of the secret (src/oidc/hashed-client-secrets.ts); null: no secret. */
  secretHash?: string | null;
  previousSecretHash?: string | null;
  previousSecretExpiresAt?: Date | null;
}

// Tokens, codes and grants name their client in the payload (oidc-provider's `clientId`).
const CLIENT_ARTIFACT_KINDS = ['AccessToken', 'RefreshToken', 'AuthorizationCode', 'ClientCredentials', 'DeviceCode', 'BackchannelAuthenticationRequest', 'Grant', 'PushedAuthorizationRequest'];

/**
 * Clients managed at runtime (config clients are static and never stored here). Every write
 * announces itself on the change feed in its own transaction, so every instance forgets what
 * it cached of the client (src/storage/change-feed.ts).
 */
export class ClientRepository {
  readonly #knex: Knex;
  readonly #changes: ChangeNotifier;

  constructor(knex: Knex, changes: ChangeNotifier = sqlOnlyNotifier) {
    this.#knex = knex;
    this.#changes = changes;
  }

  async find(id: string): Promise<StoredClient | null> {
    const row = await this.#knex<Row>('clients').where({ id }).first();
    return row ? fromRow(row) : null;
  }

  /** Reads and locks the row until the surrounding transaction ends (concurrent updates queue). */
  async findForUpdate(id: string): Promise<StoredClient | null> {
    const row = await this.#knex<Row>('clients').where({ id }).forUpdate().first();
    return row ? fromRow(row) : null;
  }

  async list(): Promise<StoredClient[]> {
    return (await this.#knex<Row>('clients').orderBy('id')).map(fromRow);
  }

  /**
   * Up to `limit` clients by id in byte order (COLLATE "C", whatever the database's collation),
   * so pages merge with lists kept in memory, after `after` when given.
   */
  async listPage(options: { after?: string; limit: number }): Promise<StoredClient[]> {
    const q = this.#knex<Row>('clients').orderByRaw('id COLLATE "C"').limit(options.limit);
    if (options.after !== undefined) q.whereRaw('id COLLATE "C" > ?', [options.after]);
    return (await q).map(fromRow);
  }

  async create(input: { id: string; metadata: Record<string, unknown>; firstParty?: boolean; enabled?: boolean; secretHash?: string | null }): Promise<StoredClient> {
    return inTransaction(this.#knex, async (trx) => {
      const [row] = await uniquely(`client "${input.id}"`, () =>
        trx<Row>('clients')
          .insert({
            id: input.id,
            metadata: JSON.stringify({ ...input.metadata, client_id: input.id }) as unknown as Record<string, unknown>,
            first_party: input.firstParty ?? false,
            enabled: input.enabled ?? true,
            secret_hash: input.secretHash ?? null,
          })
          .returning('*'),
      );
      await this.#changes.notify(trx, 'client', input.id);
      return fromRow(row as Row);
    });
  }

  async update(id: string, patch: ClientPatch): Promise<StoredClient | null> {
    const update: Record<string, unknown> = { updated_at: new Date() };
    if (patch.metadata) update.metadata = JSON.stringify({ ...patch.metadata, client_id: id });
    if (patch.firstParty !== undefined) update.first_party = patch.firstParty;
    if (patch.enabled !== undefined) update.enabled = patch.enabled;
    if (patch.secretHash !== undefined) update.secret_hash = patch.secretHash;
    if (patch.previousSecretHash !== undefined) update.previous_secret_hash = patch.previousSecretHash;
    if (patch.previousSecretExpiresAt !== undefined) update.previous_secret_expires_at = patch.previousSecretExpiresAt;
    return inTransaction(this.#knex, async (trx) => {
      const [row] = await trx<Row>('clients').where({ id }).update(update).returning('*');
      if (!row) return null;
      await this.#changes.notify(trx, 'client', id);
      return fromRow(row as Row);
    });
  }

  async delete(id: string): Promise<boolean> {
    return inTransaction(this.#knex, async (trx) => {
      const deleted = (await trx('clients').where({ id }).delete()) > 0;
      if (deleted) await this.#changes.notify(trx, 'client', id);
      return deleted;
    });
  }

  /** Deletes every token, code and grant issued to the client; returns how many. */
  async revokeArtifacts(clientId: string): Promise<number> {
    // Before and after: a lookup between the two must not keep what is being deleted.
    artifactsChanged(this.#knex);
    const deleted = await this.#knex('oidc_payloads').whereIn('kind', CLIENT_ARTIFACT_KINDS).andWhereRaw("payload->>'clientId' = ?", [clientId]).delete();
    artifactsChanged(this.#knex);
    return deleted;
  }
}
