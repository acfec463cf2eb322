// ConnectorRegistry.apply: a reload swaps connectors atomically, keeps unchanged instances,
// lets a login that holds a replaced instance finish on it, closes retired instances only after
// the grace period, and keeps an older version running when the new one cannot start.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { z } from 'zod';
import { ConnectorRegistry, type ConnectorEntry } from '../../src/connectors/registry.ts';
import type { ConnectorPlugin, PasswordConnector } from '../../src/connectors/contract.ts';

interface FakeConfig {
  label: string;
  failCreate?: boolean;
}

function fakePlugin() {
  const closed: string[] = [];
  let gate: Promise<void> = Promise.resolve();
  const plugin: ConnectorPlugin<FakeConfig> = {
    type: 'fake',
    configSchema: z.strictObject({ label: z.string().min(1), failCreate: z.boolean().optional() }),
    create({ id, config }) {
      if (config.failCreate) throw new Error('cannot reach the CA file');
      let open = true;
      const connector: PasswordConnector = {
        kind: 'password',
        async login(username) {
          await gate;
          if (!open) throw new Error(`${config.label} was closed during a login`);
          return { ok: true, identity: { connectorId: id, subject: `${config.label}:${username}` } };
        },
        async close() {
          open = false;
          closed.push(config.label);
        },
      };
      return connector;
    },
  };
  return { plugin, closed, hold: (p: Promise<void>) => (gate = p) };
}

const entry = (id: string, config: FakeConfig, enabled = true): ConnectorEntry => ({ id, type: 'fake', name: id, enabled, config, origin: `database connector "${id}"` });

describe('connector registry reload', () => {
  test('unchanged instances are kept, changed ones replaced, disabled and deleted ones removed, in one swap', async () => {
    const { plugin, closed } = fakePlugin();
    const deps = { logger: pino({ level: 'silent' }), localAccounts: {} as never, plugins: new Map([['fake', plugin as ConnectorPlugin]]) };
    const registry = await ConnectorRegistry.open([entry('a', { label: 'a1' }), entry('b', { label: 'b1' }), entry('c', { label: 'c1' })], deps);
    const a = registry.get('a')!.connector;
    const before = registry.list();
    const changes = await registry.apply([entry('a', { label: 'a1' }), entry('b', { label: 'b2' }), entry('c', { label: 'c1' }, false), entry('d', { label: 'd1' })], { graceMs: 50 });
    assert.deepEqual(changes, { added: ['d'], replaced: ['b'], removed: ['c'], failed: [] });
    assert.equal(registry.get('a')!.connector, a, 'an unchanged connector keeps its instance');
    assert.deepEqual(registry.list().map((c) => c.id), ['a', 'b', 'd']);
    assert.deepEqual(before.map((c) => c.id), ['a', 'b', 'c'], 'a list read before the swap is not changed under its reader');
    assert.deepEqual(closed, [], 'retired instances live on for the grace period');
    await new Promise((r) => setTimeout(r, 120));
    assert.deepEqual(closed.sort(), ['b1', 'c1']);
    const same = await registry.apply([entry('a', { label: 'a1' }), entry('b', { label: 'b2' }), entry('d', { label: 'd1' })]);
    assert.deepEqual(same, { added: [], replaced: [], removed: [], failed: [] });
    await registry.close();
    assert.deepEqual(closed.sort(), ['a1', 'b1', 'b2', 'c1', 'd1']);
  });

  test('a login in flight on a replaced instance finishes on it', async () => {
    const { plugin, hold } = fakePlugin();
    const registry = await ConnectorRegistry.open([entry('a', { label: 'old' })], { logger: pino({ level: 'silent' }), localAccounts: {} as never, plugins: new Map([['fake', plugin as ConnectorPlugin]]) });
    let release!: () => void;
    hold(new Promise<void>((r) => (release = r)));
    const inFlight = registry.get('a')!.connector as PasswordConnector;
    const login = inFlight.login('alice', 'pw');
    await registry.apply([entry('a', { label: 'new' })], { graceMs: 1000 });
    release();
    const result = await login;
    assert.ok(result.ok);
    assert.equal(result.identity.subject, 'old:alice', 'finished on the instance it started on');
    const next = await (registry.get('a')!.connector as PasswordConnector).login('alice', 'pw');
    assert.ok(next.ok && next.identity.subject === 'new:alice', 'new logins use the new instance');
    await registry.close();
  });

  test('an entry that cannot start is reported; its running version stays; invalid config too', async () => {
    const { plugin, closed } = fakePlugin();
    const registry = await ConnectorRegistry.open([entry('a', { label: 'good' })], { logger: pino({ level: 'silent' }), localAccounts: {} as never, plugins: new Map([['fake', plugin as ConnectorPlugin]]) });
    const failing = await registry.apply([entry('a', { label: 'bad', failCreate: true }), entry('b', { label: '' })], { graceMs: 10 });
    assert.deepEqual(failing.failed.map((f) => f.id).sort(), ['a', 'b']);
    assert.match(failing.failed.find((f) => f.id === 'b')!.message, /config\.label/);
    assert.deepEqual(registry.list().map((c) => c.id), ['a']);
    const kept = await (registry.get('a')!.connector as PasswordConnector).login('x', 'y');
    assert.ok(kept.ok && kept.identity.subject === 'good:x');
    // Once fixed, the next reload runs the fixed version.
    const fixed = await registry.apply([entry('a', { label: 'fixed' })], { graceMs: 10 });
    assert.deepEqual(fixed.replaced, ['a']);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(closed, ['good']);
    await registry.close();
  });
});
