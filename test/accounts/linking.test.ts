// The linking service on its own (embedded database): first-login policies, username
// collisions, mappers, unlinking, and the cipher that keeps upstream tokens.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openDatabase, type Database } from '../../src/storage/database.ts';
import { migrateLatest } from '../../src/storage/migrate.ts';
import { Store } from '../../src/storage/store.ts';
import { linkIdentity, resolveIdentity, unlinkIdentity } from '../../src/accounts/link-identity.ts';
import { applyMappers, mappersSchema } from '../../src/accounts/identity-mappers.ts';
import { TokenCipher, tokenBinding } from '../../src/accounts/token-cipher.ts';
import type { UpstreamIdentity } from '../../src/connectors/contract.ts';

describe('linking', () => {
  let db: Database;
  let store: Store;
  before(async () => {
    db = await openDatabase({ dataDir: ':memory:' });
    await migrateLatest(db.knex);
    store = new Store(db.knex);
  });
  after(() => db?.close());

  let n = 0;
  /** A local user with a verified email, as an operator or a static config would create it. */
  async function localUser(email: string, emailVerified = true) {
    return store.users.create({ username: `local-${++n}`, email, emailVerified });
  }
  const upstream = (over: Partial<UpstreamIdentity>): UpstreamIdentity => ({ connectorId: 'google', subject: `sub-${++n}`, username: `up${n}`, ...over });
  const events = async (type: string, userId: string) => (await store.audit.list({ type, userId })).map((e) => e.details);

  test('create: a first login creates a local user that later logins keep; the email of another user is not taken', async () => {
    const owner = await localUser('shared@example.org');
    const identity = upstream({ email: 'shared@example.org', emailVerified: true, name: 'Up Person' });
    const first = await resolveIdentity(store, identity, { firstLogin: 'create' });
    assert.equal(first.kind, 'linked');
    assert.ok(first.kind === 'linked' && first.created);
    const user = first.kind === 'linked' ? first.user : assert.fail();
    assert.notEqual(user.id, owner.id);
    assert.equal(user.email, null, 'the email stays with its owner');
    assert.equal(user.managedBy, 'google');
    const again = await resolveIdentity(store, { ...identity, name: 'Renamed' }, { firstLogin: 'create' });
    assert.ok(again.kind === 'linked' && !again.created && again.user.id === user.id);
    assert.equal(again.kind === 'linked' && again.user.name, 'Renamed', 'an upstream-created user follows the upstream profile');
    assert.deepEqual(await events('identity.linked', user.id), [{ subject: identity.subject, created: true, via: 'login' }]);
  });

  test('link-verified-email: links to the existing user only when the email is verified and the connector trusted', async () => {
    const owner = await localUser('ver@example.org');
    const trusted = { firstLogin: 'link-verified-email' as const, trustEmail: true };
    const identity = upstream({ email: 'VER@example.org', emailVerified: true });
    const linked = await resolveIdentity(store, identity, trusted);
    assert.ok(linked.kind === 'linked' && linked.user.id === owner.id && !linked.created);
    assert.equal((await store.users.findById(owner.id))!.managedBy, null, 'a linked existing user is not taken over by the upstream');
    assert.deepEqual(await events('identity.linked', owner.id), [{ subject: identity.subject, created: false, via: 'verified-email' }]);

    // Unverified upstream email: never links, asks to confirm instead.
    const other = await localUser('unver@example.org');
    const unverified = await resolveIdentity(store, upstream({ email: 'unver@example.org', emailVerified: false }), trusted);
    assert.ok(unverified.kind === 'confirm' && unverified.candidate.id === other.id);
    // Verified but the connector is not trusted for it: confirm.
    const untrusted = await resolveIdentity(store, upstream({ email: 'unver@example.org', emailVerified: true }), { firstLogin: 'link-verified-email', trustEmail: false });
    assert.equal(untrusted.kind, 'confirm');
    // The local user's own email is unverified: confirm (an attacker may have registered it).
    const weak = await localUser('weak@example.org', false);
    const weakOutcome = await resolveIdentity(store, upstream({ email: 'weak@example.org', emailVerified: true }), trusted);
    assert.ok(weakOutcome.kind === 'confirm' && weakOutcome.candidate.id === weak.id);
    // A second identity of the same upstream for an already linked user: confirm, not silent.
    const second = await resolveIdentity(store, upstream({ email: 'ver@example.org', emailVerified: true }), trusted);
    assert.equal(second.kind, 'confirm');
    // Nothing was written for the refused ones.
    assert.deepEqual((await store.identities.listForUser(other.id)).length, 0);
    assert.deepEqual((await store.identities.listForUser(weak.id)).length, 0);
    // No one holds the email: a new user.
    const fresh = await resolveIdentity(store, upstream({ email: 'nobody@example.org', emailVerified: true }), trusted);
    assert.ok(fresh.kind === 'linked' && fresh.created && fresh.user.email === 'nobody@example.org');
  });

  test('confirm: names the candidate and writes nothing; without a holder it creates', async () => {
    const owner = await localUser('conf@example.org');
    const identity = upstream({ email: 'conf@example.org', emailVerified: true });
    const before = (await store.users.list({ limit: 1000 })).total;
    const outcome = await resolveIdentity(store, identity, { firstLogin: 'confirm' });
    assert.ok(outcome.kind === 'confirm' && outcome.candidate.id === owner.id);
    assert.equal((await store.users.list({ limit: 1000 })).total, before);
    assert.equal(await store.identities.find(identity.connectorId, identity.subject), null);
    const created = await resolveIdentity(store, upstream({ email: 'free@example.org' }), { firstLogin: 'confirm' });
    assert.ok(created.kind === 'linked' && created.created);
  });

  test('username collisions get a free variant; nobody is overwritten', async () => {
    const taken = await store.users.create({ username: 'collide' });
    const a = await linkIdentity(store, upstream({ username: 'collide' }));
    const b = await linkIdentity(store, upstream({ username: 'Collide' }));
    assert.deepEqual([a.user.username, b.user.username], ['collide-2', 'Collide-3']);
    assert.equal((await store.users.findById(taken.id))!.username, 'collide');
  });

  test('mappers: upstream groups mapped, kept with a prefix or dropped; attribute rules; extra claims', async () => {
    const mappers = mappersSchema.parse({
      groups: { prefix: 'gh:', map: { admins: ['broker-admins', 'staff'] }, fromAttributes: [{ attribute: 'org.tier', equals: 'gold', groups: ['gold'] }, { attribute: 'roles', equals: 'auditor', groups: ['auditors'] }], always: ['social'] },
      claims: [{ attribute: 'org.department', claim: 'department' }, { attribute: 'missing', claim: 'nothing' }],
    });
    const identity = upstream({ groups: ['admins', 'devs'], attributes: { org: { tier: 'gold', department: 'R&D' }, roles: ['auditor', 'x'] } });
    const mapped = applyMappers(identity, mappers);
    assert.deepEqual(mapped.groups.sort(), ['auditors', 'broker-admins', 'gh:devs', 'gold', 'social', 'staff']);
    assert.deepEqual(mapped.claims, { department: 'R&D' });
    const onlyMapped = applyMappers(identity, mappersSchema.parse({ groups: { keepUpstream: false, map: { admins: 'ops' } } }));
    assert.deepEqual(onlyMapped.groups, ['ops']);

    const linked = await resolveIdentity(store, identity, { mappers });
    assert.ok(linked.kind === 'linked');
    assert.deepEqual(linked.claims, { department: 'R&D' });
    assert.deepEqual((await store.groups.groupsOf(linked.user.id)).sort(), ['auditors', 'broker-admins', 'gh:devs', 'gold', 'social', 'staff']);
    // The upstream drops the user from admins: the mapped groups go with it, others stay.
    await resolveIdentity(store, { ...identity, groups: ['devs'] }, { mappers });
    assert.deepEqual((await store.groups.groupsOf(linked.user.id)).sort(), ['auditors', 'gh:devs', 'gold', 'social']);
  });

  test('mapper config: reserved claims and bad paths are refused with a reason', () => {
    const result = mappersSchema.safeParse({ claims: [{ attribute: 'x', claim: 'sub' }, { attribute: ' bad', claim: 'ok' }, { attribute: 'y', claim: '9lives' }], groups: { extra: true } });
    assert.equal(result.success, false);
    const issues = result.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    assert.ok(issues.some((i) => /^claims\.0\.claim: .*sets itself/.test(i)), issues.join('\n'));
    assert.ok(issues.some((i) => /^claims\.1\.attribute: /.test(i)), issues.join('\n'));
    assert.ok(issues.some((i) => /^claims\.2\.claim: /.test(i)), issues.join('\n'));
    assert.ok(issues.some((i) => /^groups: .*extra/i.test(i) || /^groups\.extra/.test(i) || /unrecognized/i.test(i)), issues.join('\n'));
  });

  test('unlinking keeps the local user, drops that upstream\'s groups and profile ownership, and is audited', async () => {
    const identity = upstream({ groups: ['from-upstream'], email: 'unlink@example.org' });
    const { user, federatedIdentityId } = await linkIdentity(store, identity);
    await store.groups.addMember(user.id, 'granted-locally', 'local');
    assert.equal(await unlinkIdentity(store, federatedIdentityId!, { by: 'test' }), true);
    const after = (await store.users.findById(user.id))!;
    assert.equal(after.id, user.id);
    assert.equal(after.managedBy, null);
    assert.deepEqual(await store.groups.groupsOf(user.id), ['granted-locally']);
    assert.equal(await store.identities.find(identity.connectorId, identity.subject), null);
    assert.deepEqual(await events('identity.unlinked', user.id), [{ subject: identity.subject, by: 'test' }]);
    assert.equal(await unlinkIdentity(store, federatedIdentityId!, { by: 'test' }), false, 'a second unlink finds nothing');
    // Signing in again through that upstream creates a new link, never a second user with the same sub.
    const relinked = await linkIdentity(store, identity);
    assert.notEqual(relinked.user.id, user.id, 'the create policy makes a new user: the old one is no longer tied to the upstream');
  });

  test('concurrent first logins of one identity end in one user', async () => {
    const identity = upstream({ email: 'race@example.org' });
    const results = await Promise.all([linkIdentity(store, identity), linkIdentity(store, identity), linkIdentity(store, identity)]);
    assert.equal(new Set(results.map((r) => r.user.id)).size, 1);
  });
});

describe('upstream token cipher', () => {
  const tokens = { accessToken: 'at-123', refreshToken: 'rt-456', expiresAt: 1_900_000_000 };
  const key1 = 'k'.repeat(32);
  const key2 = 'another-key-of-at-least-32-characters';
  const binding = tokenBinding('google', 'sub-1');

  test('round trip; ciphertext reveals nothing and differs each time', () => {
    const cipher = new TokenCipher([key1]);
    const a = cipher.encrypt(tokens, binding);
    const b = cipher.encrypt(tokens, binding);
    assert.notEqual(a, b);
    assert.doesNotMatch(a, /at-123|rt-456/);
    assert.doesNotMatch(Buffer.from(a.split('.')[3], 'base64url').toString('latin1'), /at-123|rt-456/);
    assert.deepEqual(cipher.decrypt(a, binding), tokens);
  });

  test('tampered, moved to another identity, or under an unknown key: null', () => {
    const cipher = new TokenCipher([key1]);
    const sealed = cipher.encrypt(tokens, binding);
    const parts = sealed.split('.');
    const body = Buffer.from(parts[3], 'base64url');
    body[0] ^= 1;
    assert.equal(cipher.decrypt([...parts.slice(0, 3), body.toString('base64url')].join('.'), binding), null);
    assert.equal(cipher.decrypt(sealed, tokenBinding('google', 'sub-2')), null);
    assert.equal(new TokenCipher([key2]).decrypt(sealed, binding), null);
    assert.equal(cipher.decrypt('garbage', binding), null);
  });

  test('rotation: a new first key encrypts, the old one still decrypts', () => {
    const old = new TokenCipher([key1]).encrypt(tokens, binding);
    const rotated = new TokenCipher([key2, key1]);
    assert.deepEqual(rotated.decrypt(old, binding), tokens);
    const fresh = rotated.encrypt(tokens, binding);
    assert.equal(new TokenCipher([key1]).decrypt(fresh, binding), null);
    assert.deepEqual(new TokenCipher([key2]).decrypt(fresh, binding), tokens);
  });
});
