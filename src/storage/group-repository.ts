import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { Group, GroupMember } from './types.ts';
import { uniquely } from './unique-violation.ts';
import { inTransaction } from './in-transaction.ts';
import { accountWrite } from './account-cache.ts';
import { userGroupsSubquery } from './user-groups-sql.ts';

interface Row {
  id: string;
  name: string;
  description: string | null;
  source: string;
  created_at: Date;
  updated_at: Date;
}

const fromRow = (r: Row): Group => ({ id: r.id, name: r.name, description: r.description, source: r.source, createdAt: r.created_at, updatedAt: r.updated_at });

// Serializes nesting changes, so two concurrent requests cannot each add half of a cycle.
const NESTING_LOCK = 0x4b425f47; // "KB_G"

const escapeLike = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);

/** Nesting `child` inside `parent` would close this loop (child, parent, ..., child). */
export class GroupCycle extends Error {
  readonly path: Group[];

  constructor(path: Group[]) {
    super(`nesting would make a cycle: ${path.map((g) => `"${g.name}"`).join(' inside ')}`);
    this.name = 'GroupCycle';
    this.path = path;
  }
}

/** The shortest path from `from` up to `to` over (via -> id) edges, both ends included; null when there is none. */
function pathUp(from: string, to: string, edges: ReadonlyArray<{ id: string; via: string | null }>): string[] | null {
  const parents = new Map<string, string[]>();
  for (const e of edges) if (e.via !== null) parents.set(e.via, [...(parents.get(e.via) ?? []), e.id]);
  const previous = new Map<string, string | null>([[from, null]]);
  const queue = [from];
  for (let at = queue.shift(); at !== undefined; at = queue.shift()) {
    if (at === to) {
      const path: string[] = [];
      for (let step: string | null | undefined = at; step; step = previous.get(step)) path.unshift(step);
      return path;
    }
    for (const next of parents.get(at) ?? []) {
      if (!previous.has(next)) {
        previous.set(next, at);
        queue.push(next);
      }
    }
  }
  return null;
}

export class GroupRepository {
  readonly #knex: Knex;

  constructor(knex: Knex) {
    this.#knex = knex;
  }

  async create(name: string, description: string | null = null, source = 'local'): Promise<Group> {
    const [row] = await uniquely(`group "${name}"`, () => this.#knex<Row>('groups').insert({ id: randomUUID(), name, description, source }).returning('*'));
    return fromRow(row as Row);
  }

  async findById(id: string): Promise<Group | null> {
    const row = await this.#knex<Row>('groups').where({ id }).first();
    return row ? fromRow(row) : null;
  }

  /** The group, locked for update until the transaction ends (read-check-write of the admin API). */
  async lock(id: string): Promise<Group | null> {
    const row = await this.#knex<Row>('groups').where({ id }).forUpdate().first();
    return row ? fromRow(row) : null;
  }

  /** Groups by name after `afterName`, optionally those whose name or description contains `q`. */
  async page(options: { q?: string; afterName?: string; limit: number }): Promise<Group[]> {
    const query = this.#knex<Row>('groups').orderBy('name').limit(options.limit);
    if (options.q) {
      const like = `%${escapeLike(options.q)}%`;
      query.where((w) => w.whereILike('name', like).orWhereILike('description', like));
    }
    if (options.afterName !== undefined) query.where('name', '>', options.afterName);
    return (await query).map(fromRow);
  }

  async update(id: string, patch: { name?: string; description?: string | null }): Promise<Group | null> {
    const [row] = await uniquely(`group "${patch.name}"`, () => this.#knex<Row>('groups').where({ id }).update({ ...patch, updated_at: new Date() }).returning('*'));
    // A renamed group changes every member's claim (and its descendants' members').
    if (patch.name !== undefined) accountWrite(this.#knex);
    return row ? fromRow(row as Row) : null;
  }

  /** The direct parents and children of a group. */
  async neighbours(id: string): Promise<{ parents: Group[]; children: Group[] }> {
    const parents = await this.#knex<Row>('groups').join('group_parents', 'group_parents.parent_id', 'groups.id').where('group_parents.group_id', id).select('groups.*').orderBy('groups.name');
    const children = await this.#knex<Row>('groups').join('group_parents', 'group_parents.group_id', 'groups.id').where('group_parents.parent_id', id).select('groups.*').orderBy('groups.name');
    return { parents: parents.map(fromRow), children: children.map(fromRow) };
  }

  /**
   * Puts `childId` inside `parentId`; false when it already was. Throws GroupCycle when `parentId`
   * is `childId` or already inside it. Runs under a lock, so concurrent nestings cannot race.
   */
  async nest(childId: string, parentId: string): Promise<boolean> {
    return inTransaction(this.#knex, async (trx) => {
      await trx.raw('SELECT pg_advisory_xact_lock(?)', [NESTING_LOCK]);
      // Every edge above the parent (UNION keeps each once, so a diamond-shaped hierarchy costs its
      // edges, not its paths); the cycle's path is then found among them.
      const { rows } = (await trx.raw(
        `WITH RECURSIVE up(id, via) AS (
           SELECT ?::text, NULL::text
           UNION SELECT gp.parent_id, gp.group_id FROM group_parents gp JOIN up ON gp.group_id = up.id)
         SELECT id, via FROM up`,
        [parentId],
      )) as { rows: Array<{ id: string; via: string | null }> };
      const path = pathUp(parentId, childId, rows);
      if (path) {
        const ids = [childId, ...path];
        const byId = new Map((await trx<Row>('groups').whereIn('id', ids)).map((r) => [r.id, fromRow(r)]));
        throw new GroupCycle(ids.map((id) => byId.get(id)!));
      }
      const inserted = await trx('group_parents').insert({ group_id: childId, parent_id: parentId }).onConflict(['group_id', 'parent_id']).ignore().returning('group_id');
      accountWrite(trx);
      return inserted.length > 0;
    });
  }

  async unnest(childId: string, parentId: string): Promise<boolean> {
    const removed = (await this.#knex('group_parents').where({ group_id: childId, parent_id: parentId }).delete()) > 0;
    accountWrite(this.#knex);
    return removed;
  }

  /** Direct members by username after `after` ([username, userId]), with each membership's sources. */
  async members(groupId: string, options: { after?: [string, string]; limit: number }): Promise<GroupMember[]> {
    const query = this.#knex('memberships')
      .join('users', 'users.id', 'memberships.user_id')
      .where('memberships.group_id', groupId)
      .groupBy('users.id', 'users.username')
      .select('users.id as user_id', 'users.username', this.#knex.raw('array_agg(memberships.source ORDER BY memberships.source) AS sources'))
      .orderBy([{ column: 'users.username' }, { column: 'users.id' }])
      .limit(options.limit);
    if (options.after) query.whereRaw('(users.username, users.id) > (?, ?)', options.after);
    const rows = (await query) as Array<{ user_id: string; username: string; sources: string[] }>;
    return rows.map((r) => ({ userId: r.user_id, username: r.username, sources: r.sources }));
  }

  /** Every source with a membership in this group. */
  async sourcesIn(groupId: string): Promise<string[]> {
    const rows = await this.#knex('memberships').where({ group_id: groupId }).distinct('source').orderBy('source');
    return rows.map((r: { source: string }) => r.source);
  }

  /** Which sources assert that this user is in this group. */
  async membershipSources(groupId: string, userId: string): Promise<string[]> {
    const rows = await this.#knex('memberships').where({ group_id: groupId, user_id: userId }).orderBy('source').select('source');
    return rows.map((r: { source: string }) => r.source);
  }

  /** Adds or removes one source's membership by ids; true when something changed. */
  async setMember(groupId: string, userId: string, member: boolean, source = 'local'): Promise<boolean> {
    const changed = member
      ? (await this.#knex('memberships').insert({ user_id: userId, group_id: groupId, source }).onConflict(['user_id', 'group_id', 'source']).ignore().returning('user_id')).length > 0
      : (await this.#knex('memberships').where({ user_id: userId, group_id: groupId, source }).delete()) > 0;
    accountWrite(this.#knex, userId);
    return changed;
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
  async ensure(names: readonly string[], source = 'local'): Promise<Group[]> {
    const unique = [...new Set(names)];
    if (unique.length === 0) return [];
    // A group an upstream (or the config) brings in first is that source's: read-only in the admin API.
    await this.#knex('groups').insert(unique.map((name) => ({ id: randomUUID(), name, source }))).onConflict('name').ignore();
    return (await this.#knex<Row>('groups').whereIn('name', unique).orderBy('name')).map(fromRow);
  }

  /** The user's groups and their ancestors, by name. */
  async groupsOf(userId: string): Promise<string[]> {
    const { rows } = (await this.#knex.raw(`SELECT ${userGroupsSubquery('?')} AS groups`, [userId])) as { rows: Array<{ groups: string[] | null }> };
    return rows[0]?.groups ?? [];
  }

  /** Makes the memberships asserted by `source` exactly `names`; other sources' stay as they are. */
  async setMemberships(userId: string, names: readonly string[], source = 'local'): Promise<void> {
    const run = async (trx: Knex) => {
      const groups = await new GroupRepository(trx).ensure(names, source);
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
    const ids = new Map((await this.ensure(pairs.map((p) => p.group), source)).map((g) => [g.name, g.id]));
    await this.#knex('memberships')
      .insert(pairs.map((p) => ({ user_id: p.userId, group_id: ids.get(p.group), source })))
      .onConflict(['user_id', 'group_id', 'source'])
      .ignore();
    for (const p of pairs) accountWrite(this.#knex, p.userId);
  }

  async addMember(userId: string, name: string, source = 'local'): Promise<void> {
    const [group] = await this.ensure([name], source);
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
