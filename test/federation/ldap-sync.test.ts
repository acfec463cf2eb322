// User federation from a real OpenLDAP: an import of a few thousand generated entries through
// paged searches (the server caps unpaged searches at 500), a second run that only applies
// changes, removals and locks that disable, a come-back that enables, and failures that disable
// nobody. Also the `keybridge ldap sync` command and the broker's scheduled import.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Attribute, Change, Client, Control } from 'ldapts';
import { stringify } from 'yaml';
import plugin from '../../connectors/ldap/index.ts';
import type { DirectorySync, PasswordConnector } from '../../src/connectors/contract.ts';
import { openDatabase, type Database } from '../../src/storage/database.ts';
import { migrateLatest } from '../../src/storage/migrate.ts';
import { Store } from '../../src/storage/store.ts';
import { syncDirectory, type SyncProgress } from '../../src/federation/sync-directory.ts';
import { startOpenLdap, ssha, type OpenLdapServer } from '../helpers/openldap.ts';
import { startTestBroker } from '../helpers/test-broker.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { boundClient, createDirectoryConnector } from '../helpers/ldap-connector.ts';

const run = promisify(execFile);
const USERS = 3000;
const TEAMS = 5;
const RELAX = new Control('1.3.6.1.4.1.4203.666.5.12');

describe('directory import (ldap sync)', () => {
  let ldap: OpenLdapServer | undefined;
  let skipReason = '';
  let adminClient: Client;
  const connectors: PasswordConnector[] = [];
  const dn = (i: number) => `uid=c${i},ou=contractors,${ldap!.baseDn}`;

  function directoryConfig(overrides: Record<string, unknown> = {}) {
    return {
      url: ldap!.url,
      bindDn: ldap!.serviceDn,
      bindPassword: ldap!.servicePassword,
      users: { baseDn: `ou=contractors,${ldap!.baseDn}`, extraAttributes: ['employeeNumber'] },
      groups: { sources: [{ type: 'member', baseDn: `ou=teams,${ldap!.baseDn}` }] },
      sync: { pageSize: 200 },
      ...overrides,
    };
  }

  async function directorySync(overrides: Record<string, unknown> = {}): Promise<DirectorySync> {
    const c = await createDirectoryConnector(plugin as never, 'corp', directoryConfig(overrides));
    connectors.push(c);
    return c.sync!;
  }

  async function freshStore(): Promise<{ store: Store; db: Database }> {
    const db = await openDatabase({ dataDir: ':memory:' });
    await migrateLatest(db.knex);
    return { store: new Store(db.knex), db };
  }

  before(async () => {
    const started = await startOpenLdap();
    if ('skip' in started) {
      skipReason = started.skip;
      return;
    }
    ldap = started;
    adminClient = await boundClient(ldap.url, ldap.adminDn, ldap.adminPassword);
    await adminClient.add(`ou=teams,${ldap.baseDn}`, { objectClass: ['organizationalUnit'], ou: 'teams' });
    // Generated entries, added 25 at a time.
    for (let start = 0; start < USERS; start += 25) {
      await Promise.all(Array.from({ length: Math.min(25, USERS - start) }, (_, k) => {
        const i = start + k;
        return adminClient.add(dn(i), { objectClass: ['inetOrgPerson'], uid: `c${i}`, cn: `Contractor ${i}`, sn: `C${i}`, mail: `c${i}@contractors.example`, employeeNumber: String(i), userPassword: ssha(`pass-${i}`) });
      }));
    }
    for (let team = 0; team < TEAMS; team++) {
      const members = Array.from({ length: USERS / TEAMS }, (_, k) => dn(k * TEAMS + team));
      await adminClient.add(`cn=team-${team},ou=teams,${ldap.baseDn}`, { objectClass: ['groupOfNames'], cn: `team-${team}`, member: members });
    }
    await adminClient.add(`cn=empty-team,ou=teams,${ldap.baseDn}`, { objectClass: ['groupOfNames'], cn: 'empty-team', member: [`cn=admin,${ldap.baseDn}`] });
  });
  after(async () => {
    for (const c of connectors) await c.close?.();
    await adminClient?.unbind();
    await ldap?.stop();
  });

  test('import, re-import that only applies changes, removals, locks and come-backs', async (t) => {
    if (!ldap) return skipLoudly(t, skipReason);
    const { store, db } = await freshStore();
    try {
      // Local users already holding an imported user's name or email keep them.
      const holder = await store.users.create({ username: 'c5' });
      await store.users.create({ username: 'someone', email: 'c6@contractors.example' });
      const sync = await directorySync();
      const reports: SyncProgress[] = [];
      const first = await syncDirectory(store, 'corp', sync, { onProgress: (p) => reports.push(p) });
      assert.deepEqual(
        { total: first.total, processed: first.processed, created: first.created, updated: first.updated, unchanged: first.unchanged, disabled: first.disabled, groups: first.groups },
        { total: USERS, processed: USERS, created: USERS, updated: 0, unchanged: 0, disabled: 0, groups: TEAMS + 1 },
      );
      const processedSeen = reports.map((r) => r.processed);
      assert.ok(processedSeen.length >= USERS / 200, `progress after every page (${processedSeen.length} reports)`);
      assert.deepEqual(processedSeen, [...processedSeen].sort((a, b) => a - b), 'progress only goes up');
      assert.equal(await store.users.count(), USERS + 2);
      assert.equal((await store.users.findByUsername('c5'))?.id, holder.id, 'the local c5 is untouched');
      const c5 = await store.users.findByUsername('c5-2');
      assert.equal(c5?.managedBy, 'corp', 'the imported c5 got a free variant of the name');
      assert.equal((await store.users.findByUsername('c6'))?.email, null, 'an email held by someone else is not taken over');
      assert.ok(await store.groups.findByName('empty-team'), 'groups without members are imported too');
      assert.equal((await store.groups.findByName('empty-team'))?.source, 'corp', 'imported groups belong to the connector (read-only in the admin API)');

      const c7 = (await store.users.findByUsername('c7'))!;
      assert.equal(c7.managedBy, 'corp');
      assert.equal(c7.name, 'Contractor 7');
      assert.equal(c7.email, 'c7@contractors.example');
      assert.deepEqual(await store.groups.groupsOf(c7.id), ['team-2']);
      assert.equal((await store.audit.list({ type: 'identity.linked' })).length >= 1, true);

      const second = await syncDirectory(store, 'corp', sync);
      assert.deepEqual([second.created, second.updated, second.unchanged, second.disabled, second.enabled], [0, 0, USERS, 0, 0], 'a second run with nothing changed writes nothing but timestamps');

      // Upstream changes: 5 renamed, 3 deleted, 2 locked, 1 moved to another team.
      for (const i of [10, 11, 12, 13, 14]) await adminClient.modify(dn(i), new Change({ operation: 'replace', modification: new Attribute({ type: 'cn', values: [`Renamed ${i}`] }) }));
      for (const i of [20, 21, 22]) await adminClient.del(dn(i));
      for (const i of [30, 31]) await adminClient.modify(dn(i), new Change({ operation: 'add', modification: new Attribute({ type: 'pwdAccountLockedTime', values: ['000001010000Z'] }) }), RELAX);
      await adminClient.modify(`cn=team-0,ou=teams,${ldap.baseDn}`, new Change({ operation: 'delete', modification: new Attribute({ type: 'member', values: [dn(40)] }) }));
      await adminClient.modify(`cn=team-1,ou=teams,${ldap.baseDn}`, new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [dn(40)] }) }));

      const third = await syncDirectory(store, 'corp', sync);
      assert.deepEqual(
        { processed: third.processed, created: third.created, updated: third.updated, unchanged: third.unchanged, disabled: third.disabled },
        { processed: USERS - 3, created: 0, updated: 8, unchanged: USERS - 3 - 8, disabled: 5 },
      );
      assert.equal((await store.users.findByUsername('c10'))?.name, 'Renamed 10', 'profile follows the directory');
      assert.deepEqual(await store.groups.groupsOf((await store.users.findByUsername('c40'))!.id), ['team-1']);
      for (const u of ['c20', 'c30']) assert.equal((await store.users.findByUsername(u))?.enabled, false, `${u} disabled`);
      assert.equal((await store.users.findByUsername('c21'))?.username, 'c21', 'removed users are disabled, not deleted');
      const disabledEvents = await store.audit.list({ type: 'user.disabled' });
      assert.deepEqual(disabledEvents.map((e) => e.details.reason).sort(), ['account_locked', 'account_locked', 'removed_upstream', 'removed_upstream', 'removed_upstream']);

      // Unlocked upstream: enabled again. Nothing else changes.
      await adminClient.modify(dn(30), new Change({ operation: 'delete', modification: new Attribute({ type: 'pwdAccountLockedTime', values: [] }) }), RELAX);
      const fourth = await syncDirectory(store, 'corp', sync);
      assert.deepEqual([fourth.updated, fourth.enabled, fourth.disabled, fourth.created], [1, 1, 0, 0]);
      assert.equal((await store.users.findByUsername('c30'))?.enabled, true);
      assert.equal((await store.users.findByUsername('c31'))?.enabled, false);
    } finally {
      await db.close();
    }
  });

  test('a listing that fails midway or comes back empty disables nobody', async (t) => {
    if (!ldap) return skipLoudly(t, skipReason);
    const { store, db } = await freshStore();
    try {
      const sync = await directorySync({ users: { baseDn: `ou=people,${ldap.baseDn}` } });
      const first = await syncDirectory(store, 'corp', sync);
      assert.equal(first.created, 6);

      // The directory dies after the first page.
      const dying: DirectorySync = {
        ...sync,
        async *listUsers() {
          for await (const page of sync.listUsers()) {
            yield page.slice(0, 2);
            throw new Error('connection reset');
          }
        },
      };
      await assert.rejects(syncDirectory(store, 'corp', dying), /connection reset/);
      // A filter that matches nothing now: the broker refuses to treat that as "everyone left".
      const empty = await directorySync({ users: { baseDn: `ou=people,${ldap.baseDn}`, filter: '(objectClass=doesNotExist)' } });
      await assert.rejects(syncDirectory(store, 'corp', empty), /listed no users/);
      const users = (await store.users.list({ limit: 100 })).items;
      assert.equal(users.length, 6);
      assert.ok(users.every((u) => u.enabled || u.username === 'dave'), 'nobody was disabled but the locked user');
      assert.deepEqual(await store.audit.list({ type: 'user.disabled' }), []);
      const failed = await store.audit.list({ type: 'sync.failed' });
      assert.deepEqual(failed.map((e) => e.details.error).sort(), ['connection reset', 'the directory listed no users although users were imported before; nothing was disabled (check users.baseDn and users.filter)']);
    } finally {
      await db.close();
    }
  });

  test('a service account capped by a size limit: the import fails, says what to change, and disables nobody', async (t) => {
    if (!ldap) return skipLoudly(t, skipReason);
    const { store, db } = await freshStore();
    try {
      const full = await directorySync({ users: { baseDn: `ou=people,${ldap.baseDn}` } });
      const first = await syncDirectory(store, 'corp', full);
      assert.ok(first.created > 5);
      const capped = await directorySync({ bindDn: ldap.limitedDn, bindPassword: ldap.limitedPassword, users: { baseDn: `ou=people,${ldap.baseDn}` }, sync: { pageSize: 10 } });
      await assert.rejects(syncDirectory(store, 'corp', capped), /^Error: size limit reached: the service account needs olcLimits \(or AD MaxPageSize\)/);
      const [failed] = await store.audit.list({ type: 'sync.failed' });
      assert.match(String(failed?.details.error), /^size limit reached/);
      assert.deepEqual(await store.audit.list({ type: 'user.disabled' }), [], 'first.disabled users aside, nobody else');
    } finally {
      await db.close();
    }
  });

  test('`keybridge ldap sync <connector>` imports with a progress line and a summary', async (t) => {
    if (!ldap) return skipLoudly(t, skipReason);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'kb-sync-'));
    try {
      const configFile = path.join(dir, 'keybridge.yaml');
      await writeFile(configFile, stringify({
        issuer: 'http://127.0.0.1:1',
        database: { dataDir: path.join(dir, 'data') },
        log: { level: 'warn' },
        connectors: [{ id: 'corp', type: 'ldap', name: 'Corp', config: { ...directoryConfig(), users: { baseDn: `ou=people,${ldap.baseDn}` } } }],
      }));
      const node = process.execPath;
      const main = path.resolve(import.meta.dirname, '../../src/cli/main.ts');
      // Only PATH from our environment: DATABASE_URL (set for the PostgreSQL suites) would
      // override the config's database and point the import at a shared one.
      const opts = { env: { PATH: process.env.PATH ?? '' } };
      const { stdout, stderr } = await run(node, [main, 'ldap', 'sync', 'corp', '-c', configFile], opts);
      assert.match(stderr, /\[#{30}\] 100% 6\/6 users \(created 6, updated 0, unchanged 0, disabled 1, enabled 0\)/);
      assert.match(stdout, /^imported corp: 6 users \(6 created, 0 updated, 0 unchanged, 1 disabled, 0 enabled again\), 6 groups$/m);
      const again = await run(node, [main, 'sync', 'corp', '-c', configFile], opts);
      assert.match(again.stdout, /6 users \(0 created, 0 updated, 6 unchanged/);

      const unknown = await run(node, [main, 'ldap', 'sync', 'nope', '-c', configFile], opts).catch((e) => e);
      assert.equal(unknown.code, 2);
      assert.match(unknown.stderr, /no connector "nope" \(known: local, corp\)/);
      const local = await run(node, [main, 'ldap', 'sync', 'local', '-c', configFile], opts).catch((e) => e);
      assert.equal(local.code, 2);
      assert.match(local.stderr, /cannot list its users/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('the broker runs the configured import on its own schedule', async (t) => {
    if (!ldap) return skipLoudly(t, skipReason);
    const broker = await startTestBroker({
      syncFirstRunMs: 10,
      config: { connectors: [{ id: 'corp', type: 'ldap', name: 'Corp', config: { ...directoryConfig(), users: { baseDn: `ou=people,${ldap.baseDn}` }, sync: { intervalMinutes: 60 } } }] },
    });
    try {
      let done;
      for (let i = 0; i < 200 && !done; i++) {
        await new Promise((r) => setTimeout(r, 50));
        [done] = await broker.store.audit.list({ type: 'sync.completed' });
      }
      assert.ok(done, 'the scheduled import ran');
      assert.equal(done.details.created, 6);
      assert.ok(await broker.store.users.findByUsername('eve'));
    } finally {
      await broker.close();
    }
  });
});
