import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { Group } from './types.ts';
import { uniquely } from './unique-violation.ts';
import { inTransaction } from './in-transaction.ts';
import { accountWrite } from './account-cache.ts';

interface Row {
  id: string;
  name: string;
  description: string | null;
  created_at: Date;
}

const fromRow = (r: Row): Group => ({ id: r.id, name: r.name, description: r.description, createdAt: r.created_at });

export class GroupRepository {
  readonly #knex: Knex;

  constructor(knex: Knex) {
    this.#knex = knex;
  }

  async create(name: string, description: string | null = null): Promise<Group> {
    const [row] = await uniquely(`group "${name}"`, () => this.#knex<Row>('groups').insert({ id: randomUUID(), name, description }).returning('*'));
    return fromRow(row as Row);
  }

  async findByName(name: string): Promise<Group | null> {
    const row = await this.#knex<Row>('groups').where({ name }).first();
    return row ? fromRow(row) : null;
  }

  async list(): Promise<Group[]> {
    return (await this.#knex<Row>('groups').orderBy('name')).map(fromRow);
  }

  async delete(id: string): Promise<boolean> {
    const deleted = (await this.#knex('groups').where({ id }).delete()) > 0;
    accountWrite(this.#knex);
    return deleted;
  }

  /** The groups with these names, creating the missing ones (safe against concurrent creators). */
  async ensure(names: readonly string[]): Promise<Group[]> {
    const unique = [...new Set(names)];
    if (unique.length === 0) return [];
    await this.#knex('groups').insert(unique.map((name) => ({ id: randomUUID(), name }))).onConflict('name').ignore();
    return (await this.#knex<Row>('groups').whereIn('name', unique).orderBy('name')).map(fromRow);
  }

  async groupsOf(userId: string): Promise<string[]> {
    const rows = await this.#knex('memberships').join('groups', 'groups.id', 'memberships.group_id').where('memberships.user_id', userId).distinct('groups.name').orderBy('groups.name');
    return rows.map((r: { name: string }) => r.name);
  }

  /** Makes the memberships asserted by `source` exactly `names`; other sources' stay as they are. */
  async setMemberships(userId: string, names: readonly string[], source = 'local'): Promise<void> {
    const run = async (trx: Knex) => {
      const groups = await new GroupRepository(trx).ensure(names);
      const keep = groups.map((g) => g.id);
      const stale = trx('memberships').where({ user_id: userId, source });
      if (keep.length) stale.whereNotIn('group_id', keep);
      await stale.delete();
      if (keep.length) {
        await trx('memberships').insert(keep.map((groupId) => ({ user_id: userId, group_id: groupId, source }))).onConflict(['user_id', 'group_id', 'source']).ignore();
      }
    };
    accountWrite(this.#knex, userId);
    await inTransaction(this.#knex, run);
    accountWrite(this.#knex, userId);
  }

  /** Adds many (user, group) memberships from one source in two statements (imports). */
  async addMemberships(pairs: ReadonlyArray<{ userId: string; group: string }>, source: string): Promise<void> {
    if (!pairs.length) return;
    const ids = new Map((await this.ensure(pairs.map((p) => p.group))).map((g) => [g.name, g.id]));
    await this.#knex('memberships')
      .insert(pairs.map((p) => ({ user_id: p.userId, group_id: ids.get(p.group), source })))
      .onConflict(['user_id', 'group_id', 'source'])
      .ignore();
    for (const p of pairs) accountWrite(this.#knex, p.userId);
  }

  async addMember(userId: string, name: string, source = 'local'): Promise<void> {
    const [group] = await this.ensure([name]);
    await this.#knex('memberships').insert({ user_id: userId, group_id: group.id, source }).onConflict(['user_id', 'group_id', 'source']).ignore();
    accountWrite(this.#knex, userId);
  }

  /** Removes the membership from every source. */
  async removeMember(userId: string, name: string): Promise<boolean> {
    const group = await this.findByName(name);
    if (!group) return false;
    const removed = (await this.#knex('memberships').where({ user_id: userId, group_id: group.id }).delete()) > 0;
    accountWrite(this.#knex, userId);
    return removed;
  }

  async membersOf(name: string): Promise<string[]> {
    const rows = await this.#knex('memberships').join('groups', 'groups.id', 'memberships.group_id').where('groups.name', name).distinct('memberships.user_id').orderBy('memberships.user_id');
    return rows.map((r: { user_id: string }) => r.user_id);
  }
}
