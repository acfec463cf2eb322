// Which second-factor mode a login gets (src/mfa/mfa-policy.ts), on PGlite and PostgreSQL: each
// level alone (global, client, connector, group), the strictest of several, a group inherited
// through nesting, stored policies replacing the config's global default, config entries winning
// over stored rows of the same level, an unknown user getting the global mode, and the user's
// groups and stored policies read in one query; config validation and the docs' example.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { openDatabase, type Database } from '../../src/storage/database.ts';
import { migrateLatest } from '../../src/storage/migrate.ts';
import { Store } from '../../src/storage/store.ts';
import { mfaConfigSchema } from '../../src/mfa/mfa-config.ts';
import { createMfaPolicy, type MfaPolicyInput } from '../../src/mfa/mfa-policy.ts';
import { freshPostgresDatabase } from '../helpers/postgres.ts';
import { skipLoudly } from '../helpers/skip.ts';

const STORES = [
  { name: 'PGlite', open: async () => ({ db: await openDatabase({ dataDir: ':memory:' }), drop: async () => {} }) },
  {
    name: 'PostgreSQL',
    open: async () => {
      const fresh = await freshPostgresDatabase();
      if ('skip' in fresh) return fresh;
      return { db: await openDatabase({ url: fresh.url }), drop: fresh.drop };
    },
  },
];

for (const backend of STORES) {
  describe(`MFA policy resolution on ${backend.name}`, () => {
    let db: Database;
    let store: Store;
    let drop = async () => {};
    let skipped: string | undefined;
    const ids: Record<string, string> = {};

    before(async () => {
      const opened = await backend.open();
      if ('skip' in opened) {
        skipped = opened.skip;
        return;
      }
      ({ db, drop } = opened);
      await migrateLatest(db.knex);
      store = new Store(db.knex);
      // dana is in "oncall", which is inside "ops", which is inside "admins"; eve is in "staff".
      for (const username of ['dana', 'eve', 'finn']) ids[username] = (await store.users.create({ username })).id;
      await store.groups.setMemberships(ids.dana, ['oncall']);
      await store.groups.setMemberships(ids.eve, ['staff']);
      const [admins, ops, oncall] = await store.groups.ensure(['admins', 'ops', 'oncall']).then((gs) => ['admins', 'ops', 'oncall'].map((n) => gs.find((g) => g.name === n)!));
      assert.ok(await store.groups.nest(ops.id, admins.id));
      assert.ok(await store.groups.nest(oncall.id, ops.id));
    });

    after(async () => {
      await db?.close();
      await drop();
    });

    const live = (t: { skip(msg: string): void }) => {
      if (skipped) skipLoudly(t as never, skipped);
      return !skipped;
    };
    const policy = (mfa: Record<string, unknown>) => createMfaPolicy({ config: { mfa: mfaConfigSchema.parse(mfa) }, store });
    const login = (user: string, clientId = 'app', connectorId: string | null = 'local'): MfaPolicyInput => ({ userId: ids[user] ?? user, clientId, connectorId });
    const clearStored = () => db.knex('mfa_policies').delete();

    test('the default is optional, globally', async (t) => {
      if (!live(t)) return;
      assert.deepEqual(await policy({}).resolve(login('eve')), { mode: 'optional', because: ['global'] });
    });

    test('each level alone decides when the others are off or unset', async (t) => {
      if (!live(t)) return;
      assert.deepEqual(await policy({ mode: 'off' }).resolve(login('eve')), { mode: 'off', because: ['global'] });
      assert.deepEqual(await policy({ mode: 'off', clients: { app: 'required' } }).resolve(login('eve')), { mode: 'required', because: ['client:app'] });
      assert.deepEqual(await policy({ mode: 'off', clients: { app: 'required' } }).resolve(login('eve', 'other')), { mode: 'off', because: ['global'] });
      assert.deepEqual(await policy({ mode: 'off', connectors: { 'corp-ldap': 'optional' } }).resolve(login('eve', 'app', 'corp-ldap')), { mode: 'optional', because: ['connector:corp-ldap'] });
      assert.deepEqual(await policy({ mode: 'off', connectors: { 'corp-ldap': 'optional' } }).resolve(login('eve', 'app', null)), { mode: 'off', because: ['global'] }, 'no connector (a passkey sign-in): the connector level does not apply');
      assert.deepEqual(await policy({ mode: 'off', groups: { staff: 'required' } }).resolve(login('eve')), { mode: 'required', because: ['group:staff'] });
      assert.deepEqual(await policy({ mode: 'off', groups: { staff: 'required' } }).resolve(login('finn')), { mode: 'off', because: ['global'] }, 'finn is in no group');
    });

    test('the strictest level wins, and every level that set it is named', async (t) => {
      if (!live(t)) return;
      const p = policy({ mode: 'off', clients: { app: 'optional' }, connectors: { local: 'off' }, groups: { staff: 'required' } });
      assert.deepEqual(await p.resolve(login('eve')), { mode: 'required', because: ['group:staff'] });
      assert.deepEqual(await p.resolve(login('finn')), { mode: 'optional', because: ['client:app'] });
      // off at a level never weakens a stricter one elsewhere.
      assert.deepEqual(await policy({ mode: 'optional', clients: { app: 'off' } }).resolve(login('finn')), { mode: 'optional', because: ['global'] });
      assert.deepEqual(await policy({ mode: 'required', clients: { app: 'required' }, groups: { staff: 'required' } }).resolve(login('eve')), { mode: 'required', because: ['global', 'client:app', 'group:staff'] });
    });

    test('a group counts through nesting: a member of a subgroup gets the parent group policy', async (t) => {
      if (!live(t)) return;
      assert.deepEqual(await policy({ mode: 'off', groups: { admins: 'required' } }).resolve(login('dana')), { mode: 'required', because: ['group:admins'] });
      assert.deepEqual(await policy({ mode: 'off', groups: { ops: 'optional', oncall: 'optional' } }).resolve(login('dana')), { mode: 'optional', because: ['group:oncall', 'group:ops'] });
      assert.deepEqual(await policy({ mode: 'off', groups: { admins: 'required' } }).resolve(login('eve')), { mode: 'off', because: ['global'] });
    });

    test('stored policies apply at every level; a stored global mode replaces the config default until deleted', async (t) => {
      if (!live(t)) return;
      const p = policy({ mode: 'off' });
      await store.mfaPolicies.set('global', '', 'optional');
      assert.deepEqual(await p.resolve(login('finn')), { mode: 'optional', because: ['global'] });
      await store.mfaPolicies.set('global', '', 'off');
      assert.deepEqual(await policy({ mode: 'required' }).resolve(login('finn')), { mode: 'off', because: ['global'] }, 'stored off beats a config required: the config is only the default');
      await store.mfaPolicies.remove('global', '');
      assert.deepEqual(await policy({ mode: 'required' }).resolve(login('finn')), { mode: 'required', because: ['global'] });

      await store.mfaPolicies.set('client', 'app', 'optional');
      await store.mfaPolicies.set('connector', 'corp-ldap', 'required');
      await store.mfaPolicies.set('group', 'admins', 'required');
      await store.mfaPolicies.set('group', 'staff', 'optional');
      assert.deepEqual(await p.resolve(login('finn', 'app', 'local')), { mode: 'optional', because: ['client:app'] });
      assert.deepEqual(await p.resolve(login('finn', 'other', 'corp-ldap')), { mode: 'required', because: ['connector:corp-ldap'] });
      assert.deepEqual(await p.resolve(login('dana', 'other', 'local')), { mode: 'required', because: ['group:admins'] });
      assert.deepEqual(await p.resolve(login('eve', 'app', 'local')), { mode: 'optional', because: ['client:app', 'group:staff'] });
      await clearStored();
    });

    test('a config entry wins over a stored row of the same level (the API refuses to change it)', async (t) => {
      if (!live(t)) return;
      await store.mfaPolicies.set('client', 'app', 'required');
      assert.deepEqual(await policy({ mode: 'off', clients: { app: 'optional' } }).resolve(login('finn')), { mode: 'optional', because: ['client:app'] });
      assert.deepEqual(await policy({ mode: 'off' }).resolve(login('finn')), { mode: 'required', because: ['client:app'] });
      await clearStored();
    });

    test('an unknown user gets the global, client and connector levels only', async (t) => {
      if (!live(t)) return;
      await store.mfaPolicies.set('group', 'staff', 'required');
      assert.deepEqual(await policy({ groups: { admins: 'required' } }).resolve(login('no-such-user')), { mode: 'optional', because: ['global'] });
      assert.deepEqual(await policy({ mode: 'off', clients: { app: 'required' } }).resolve(login('no-such-user')), { mode: 'required', because: ['client:app'] });
      await clearStored();
    });

    test("config keys are the map's own: a client named like an Object method is just a client", async (t) => {
      if (!live(t)) return;
      assert.deepEqual(await policy({ mode: 'off' }).resolve(login('finn', 'constructor', 'local')), { mode: 'off', because: ['global'] });
      assert.deepEqual(await policy({ mode: 'off', clients: { constructor: 'required' } }).resolve(login('finn', 'constructor')), { mode: 'required', because: ['client:constructor'] });
    });

    test("the user's groups and the stored policies are read in one query", async (t) => {
      if (!live(t)) return;
      await store.mfaPolicies.set('group', 'admins', 'required');
      const queries: string[] = [];
      const count = (q: { sql: string }) => queries.push(q.sql);
      db.knex.on('query', count);
      try {
        assert.equal((await policy({ mode: 'off' }).resolve(login('dana'))).mode, 'required');
      } finally {
        db.knex.removeListener('query', count);
        await clearStored();
      }
      assert.equal(queries.length, 1, queries.join('\n'));
    });
  });
}

test('config validation names each wrong field', () => {
  const result = mfaConfigSchema.safeParse({ mode: 'sometimes', groups: { admins: 'always', '  ': 'required' }, clients: { 'bad id': 'off' }, connectors: { Corp: 'off' }, rememberDevice: { days: 366 }, webauthn: { userVerification: 'maybe' }, extra: 1 });
  assert.ok(!result.success);
  const issues = result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).sort();
  assert.deepEqual(issues, [
    ': Unrecognized key: "extra"',
    'clients.bad id: is not a client id (1-128 characters of A-Z a-z 0-9 . _ ~ -)',
    'connectors.Corp: is not a connector id (1-64 lowercase letters, digits and "-")',
    'groups.  : must name a group',
    'groups.admins: must be "required", "optional" or "off"',
    'mode: must be "required", "optional" or "off"',
    'rememberDevice.days: must be from 0 (off) to 365 days',
    'webauthn.userVerification: must be "required", "preferred" or "discouraged"',
  ]);
  assert.equal(mfaConfigSchema.parse({ rememberDevice: { days: '30' } }).rememberDevice.days, 30, 'from ${ENV}');
  assert.deepEqual(mfaConfigSchema.parse({ groups: { ' Admins ': 'required' } }).groups, { Admins: 'required' });
});

test("the docs' config example is valid", async () => {
  const page = await readFile(new URL('../../docs/admin-api/mfa-policies.md', import.meta.url), 'utf8');
  const example = /```yaml\n([\s\S]*?)```/.exec(page)![1];
  const { mfa } = parse(example) as { mfa: unknown };
  assert.deepEqual(mfaConfigSchema.parse(mfa), {
    mode: 'optional',
    groups: { admins: 'required' },
    clients: { 'demo-app': 'required' },
    connectors: { 'corp-ldap': 'required' },
    rememberDevice: { days: 0 },
    webauthn: { userVerification: 'preferred', rpName: 'Keybridge' },
  });
});
