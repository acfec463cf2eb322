// `keybridge clients ...` and `keybridge admin create-client` as a person runs them (a child
// process per command): on the embedded database, and on PostgreSQL next to a running broker,
// which must honour each change within 2 s.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { freshPostgresDatabase } from '../helpers/postgres.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { AdminApiClient } from '../helpers/admin-api.ts';
import { openDatabase } from '../../src/storage/database.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const CLI = path.join(ROOT, 'src/cli/main.ts');

interface Run { code: number | null; stdout: string; stderr: string }

function run(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

const secretOf = (r: Run) => /^client_secret: (\S+)$/m.exec(r.stdout)?.[1];

async function clientCredentials(issuer: string, id: string, secret: string, scope?: string): Promise<{ status: number; body: Record<string, any> }> {
  const res = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}` },
    body: new URLSearchParams({ grant_type: 'client_credentials', ...(scope ? { scope } : {}) }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

async function within(ms: number, what: string, check: () => Promise<boolean>): Promise<void> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > ms) assert.fail(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('keybridge clients and admin create-client', () => {
  let work: string;
  before(() => {
    mkdirSync(path.join(ROOT, 'test/.work'), { recursive: true });
    work = mkdtempSync(path.join(ROOT, 'test/.work', 'clients-cli-'));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  test('on the embedded database: add prints the secret once and stores its hash, list shows config clients, bad input names the field, remove is idempotent', async () => {
    const dataDir = path.join(work, 'embedded');
    const file = path.join(work, 'embedded.yaml');
    writeFileSync(file, `issuer: http://127.0.0.1:5556\ndatabase: { dataDir: ${JSON.stringify(dataDir)} }\nclients:\n  - { id: from-config, redirectUris: ['http://127.0.0.1:9/cb'] }\n`);
    const added = await run(['clients', 'add', 'cli-app', '--redirect-uri', 'http://127.0.0.1:9/cb', '--name', 'CLI app', '-c', file]);
    assert.equal(added.code, 0, added.stderr);
    const secret = secretOf(added)!;
    assert.match(secret, /^[A-Za-z0-9_-]{43}$/);
    assert.match(added.stdout, /^client_id: cli-app$/m);

    const list = await run(['clients', 'list', '-c', file]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^cli-app\tdatabase\tyes\tclient_secret_basic\tauthorization_code,refresh_token$/m);
    assert.match(list.stdout, /^from-config\tconfig\t/m);
    assert.equal(list.stdout.includes(secret), false);

    const bad = await run(['clients', 'add', 'bad-app', '--redirect-uri', 'https://app.example/cb#frag', '--grant', 'implicit', '-c', file]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /invalid redirectUris\.0: must not contain a fragment/);
    assert.match(bad.stderr, /invalid grantTypes\.0/);
    const noRedirect = await run(['clients', 'add', 'bad-app', '-c', file]);
    assert.equal(noRedirect.code, 2);
    assert.match(noRedirect.stderr, /invalid redirectUris: must list at least one URI/);
    const taken = await run(['clients', 'add', 'from-config', '--redirect-uri', 'http://127.0.0.1:9/cb', '-c', file]);
    assert.equal(taken.code, 1);
    assert.match(taken.stderr, /reserved by the config file/);
    const unknownScope = await run(['clients', 'add', 'bad-app', '--redirect-uri', 'http://127.0.0.1:9/cb', '--scope', 'openid', '--scope', 'nonsense', '-c', file]);
    assert.equal(unknownScope.code, 2);
    assert.match(unknownScope.stderr, /invalid scopes\.1: is not a scope the broker offers/);

    const rotated = await run(['clients', 'rotate-secret', 'cli-app', '--overlap', '60', '-c', file]);
    assert.equal(rotated.code, 0, rotated.stderr);
    const fresh = secretOf(rotated)!;
    assert.notEqual(fresh, secret);
    assert.match(rotated.stdout, /previous secret is accepted until/);

    const db = await openDatabase({ dataDir: path.join(dataDir, 'pglite') });
    try {
      const row = await db.knex('clients').where({ id: 'cli-app' }).first();
      assert.equal(row.secret_hash, createHash('sha256').update(fresh).digest('base64url'));
      assert.equal(row.previous_secret_hash, createHash('sha256').update(secret).digest('base64url'));
      assert.equal(JSON.stringify(row).includes(fresh) || JSON.stringify(row).includes(secret), false);
      const events = await db.knex('audit_events').where('type', 'like', 'admin.client.%').orderBy('id');
      assert.deepEqual(events.map((e: { type: string }) => e.type), ['admin.client.create', 'admin.client.rotate_secret']);
      assert.equal(events[0].details.actor.kind, 'cli');
      assert.equal(JSON.stringify(events).includes(secret) || JSON.stringify(events).includes(fresh), false, 'no secret in the audit');
    } finally {
      await db.close();
    }

    const removed = await run(['clients', 'remove', 'cli-app', '-c', file]);
    assert.equal(removed.code, 0, removed.stderr);
    const again = await run(['clients', 'remove', 'cli-app', '-c', file]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /was not found/);
    const usage = await run(['clients', 'frobnicate', '-c', file]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /usage: keybridge clients add/);
  });

  describe('on PostgreSQL next to a running broker', () => {
    let broker: TestBroker;
    let drop: () => Promise<void> = async () => {};
    let skipped: string | undefined;
    let file: string;

    before(async () => {
      const db = await freshPostgresDatabase();
      if ('skip' in db) {
        skipped = db.skip;
        return;
      }
      drop = db.drop;
      broker = await startTestBroker({ databaseUrl: db.url });
      file = path.join(work, 'pg.yaml');
      writeFileSync(file, `issuer: ${broker.issuer}\ndatabase: { url: ${JSON.stringify(db.url)} }\n`);
    });
    after(async () => {
      await broker?.close();
      await drop();
    });

    test('admin create-client bootstraps API access; clients add / rotate-secret / remove reach the running broker within 2 s', async (t) => {
      if (skipped) return skipLoudly(t, skipped);
      const noScope = await run(['admin', 'create-client', 'ops-bot', '-c', file]);
      assert.equal(noScope.code, 2);
      const notAdmin = await run(['admin', 'create-client', 'ops-bot', '--scope', 'openid', '-c', file]);
      assert.equal(notAdmin.code, 2);
      const boot = await run(['admin', 'create-client', 'ops-bot', '--scope', 'admin:write', '-c', file]);
      assert.equal(boot.code, 0, boot.stderr);
      assert.match(boot.stdout, /^client_id: ops-bot$/m);
      const bootSecret = secretOf(boot)!;
      let token: { status: number; body: Record<string, any> } | undefined;
      await within(2000, 'the broker accepts the bootstrap client', async () => (token = await clientCredentials(broker.issuer, 'ops-bot', bootSecret, 'admin:write')).status === 200);
      const api = new AdminApiClient(broker.issuer, token!.body.access_token);
      const listed = await api.get('/clients');
      assert.equal(listed.status, 200);
      assert.ok(listed.body.items.some((c: { id: string; scopes: string[] }) => c.id === 'ops-bot' && c.scopes.includes('admin:write')));

      const svc = await run(['clients', 'add', 'cli-svc', '--grant', 'client_credentials', '-c', file]);
      assert.equal(svc.code, 0, svc.stderr);
      const secret = secretOf(svc)!;
      await within(2000, 'the broker accepts cli-svc', async () => (await clientCredentials(broker.issuer, 'cli-svc', secret)).status === 200);
      const rotated = await run(['clients', 'rotate-secret', 'cli-svc', '--overlap', '0', '-c', file]);
      assert.equal(rotated.code, 0, rotated.stderr);
      await within(2000, 'the old secret is refused', async () => (await clientCredentials(broker.issuer, 'cli-svc', secret)).status === 401);
      assert.equal((await clientCredentials(broker.issuer, 'cli-svc', secretOf(rotated)!)).status, 200);
      const removed = await run(['clients', 'remove', 'cli-svc', '-c', file]);
      assert.equal(removed.code, 0, removed.stderr);
      await within(2000, 'the removed client is refused', async () => (await clientCredentials(broker.issuer, 'cli-svc', secretOf(rotated)!)).status === 401);
    });
  });
});
