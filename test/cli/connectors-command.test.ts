// `keybridge connectors list|test` as a person runs them (a child process), on the same service
// as the admin API: config and stored connectors listed without secrets, a test's steps printed
// with the failing field and the exit code telling ok from failed.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { freshPostgresDatabase } from '../helpers/postgres.ts';
import { freePort } from '../helpers/free-port.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { openDatabase } from '../../src/storage/database.ts';
import { migrateLatest } from '../../src/storage/migrate.ts';
import { Store } from '../../src/storage/store.ts';
import { TokenCipher, connectorSecretsBinding } from '../../src/accounts/token-cipher.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const CLI = path.join(ROOT, 'src/cli/main.ts');
const KEY = 'cli-connectors-token-key-0123456789abcdef';
const SECRET = 'cli-secret-DO-NOT-PRINT-3131';

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('keybridge connectors', () => {
  let skipped: string | undefined;
  let drop: () => Promise<void> = async () => {};
  let work: string;
  let configFile: string;
  let upstream: http.Server;

  before(async () => {
    const db = await freshPostgresDatabase();
    if ('skip' in db) {
      skipped = db.skip;
      return;
    }
    drop = db.drop;
    upstream = http.createServer((_req, res) => res.writeHead(200).end('{}'));
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    const dead = `http://127.0.0.1:${await freePort()}`;
    mkdirSync(path.join(ROOT, 'test/.work'), { recursive: true });
    work = mkdtempSync(path.join(ROOT, 'test/.work', 'cli-connectors-'));
    configFile = path.join(work, 'keybridge.yaml');
    writeFileSync(configFile, stringify({
      issuer: 'http://127.0.0.1:5599',
      database: { url: db.url },
      log: { level: 'warn' },
      secrets: { tokenKeys: [KEY] },
      connectors: [{ id: 'cfg-app', type: 'oauth2', name: 'Config app', config: { clientId: 'c', clientSecret: SECRET, authorizationUrl: `${base}/a`, tokenUrl: `${base}/t`, userinfoUrl: `${base}/u` } }],
    }));
    // A stored connector, as the admin API would have written it (secret sealed apart).
    const database = await openDatabase({ url: db.url });
    try {
      await migrateLatest(database.knex);
      await new Store(database.knex).connectors.insert({
        id: 'stored-dead', type: 'oauth2', name: 'Stored', enabled: false, position: 0, policy: null,
        config: { clientId: 'c', authorizationUrl: `${dead}/a`, tokenUrl: `${dead}/t`, userinfoUrl: `${dead}/u`, timeoutMs: 1000 },
        secrets: new TokenCipher([KEY]).seal({ clientSecret: SECRET }, connectorSecretsBinding('stored-dead')),
      });
    } finally {
      await database.close();
    }
  });
  after(async () => {
    upstream?.close();
    if (work) rmSync(work, { recursive: true, force: true });
    await drop();
  });

  test('list shows config and stored connectors, never a secret', async (t) => {
    if (skipped) return skipLoudly(t, skipped);
    const r = await run(['connectors', 'list', '-c', configFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^cfg-app\s+oauth2\s+enabled\s+config\s+Config app$/m);
    assert.match(r.stdout, /^stored-dead\s+oauth2\s+disabled\s+database\s+Stored$/m);
    const json = await run(['connectors', 'list', '--json', '-c', configFile]);
    assert.equal(json.code, 0);
    assert.deepEqual(JSON.parse(json.stdout).map((c: { id: string; secretsSet: string[] }) => [c.id, c.secretsSet]), [['cfg-app', ['clientSecret']], ['local', []], ['stored-dead', ['clientSecret']]]);
    assert.ok(!r.stdout.includes(SECRET) && !json.stdout.includes(SECRET), 'a secret was printed');
  });

  test('test prints each step; exit 0 when ok, 1 with the failing field when not, 2 for an unknown id', async (t) => {
    if (skipped) return skipLoudly(t, skipped);
    const ok = await run(['connectors', 'test', 'cfg-app', '-c', configFile]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /^ok\s+authorization\s/m);
    assert.match(ok.stdout, /connector cfg-app: ok/);
    const failed = await run(['connectors', 'test', 'stored-dead', '-c', configFile]);
    assert.equal(failed.code, 1, failed.stdout + failed.stderr);
    assert.match(failed.stdout, /^FAIL authorization .*\[config\.authorizationUrl\]/m);
    assert.ok(!failed.stdout.includes(SECRET));
    const unknown = await run(['connectors', 'test', 'nope', '-c', configFile]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /no connector "nope"/);
  });
});
