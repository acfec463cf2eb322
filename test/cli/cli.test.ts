// The CLI as a person runs it: a real child process per command.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { freePort } from '../helpers/free-port.ts';
import { Browser } from '../helpers/browser.ts';
import { freshPostgresDatabase } from '../helpers/postgres.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { startScriptFlags } from '../helpers/start-script.ts';
import { openDatabase } from '../../src/storage/database.ts';
import { Store } from '../../src/storage/store.ts';
import { verifyPassword } from '../../src/accounts/passwords.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const CLI = path.join(ROOT, 'src/cli/main.ts');

interface Run { code: number | null; stdout: string; stderr: string }

function run(args: string[], options: { cwd?: string; env?: Record<string, string>; input?: string; until?: RegExp } = {}): Promise<Run & { kill?: () => Promise<Run> }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: options.cwd ?? ROOT, env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn', ...options.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let resolved = false;
    const exited = new Promise<Run>((r) => child.once('exit', (code) => r({ code, stdout, stderr })));
    child.stdout.on('data', (c) => {
      stdout += c;
      if (options.until && !resolved && options.until.test(stdout)) {
        resolved = true;
        resolve({ code: null, stdout, stderr, kill: async () => { child.kill('SIGTERM'); return exited; } });
      }
    });
    child.stderr.on('data', (c) => (stderr += c));
    child.once('error', reject);
    child.stdin.end(options.input ?? '');
    exited.then((r) => {
      if (!resolved) resolve(r);
    });
  });
}

describe('keybridge CLI', () => {
  let work: string;
  before(() => {
    mkdirSync(path.join(ROOT, 'test/.work'), { recursive: true });
    work = mkdtempSync(path.join(ROOT, 'test/.work', 'cli-'));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  function writeConfig(name: string, text: string): string {
    const file = path.join(work, name);
    writeFileSync(file, text);
    return file;
  }

  test('check-config accepts config/dev.yaml', async () => {
    const r = await run(['check-config', '-c', 'config/dev.yaml']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /configuration is valid/);
  });

  test('check-config reports every problem with its path, including connector config', async () => {
    const file = writeConfig('bad.yaml', [
      'issuer: http://127.0.0.1:5556',
      `database: { dataDir: ${JSON.stringify(path.join(work, 'data-bad'))} }`,
      'connectors:',
      '  - { id: local, type: local, config: { shoeSize: 44 } }',
      '  - { id: mystery, type: no-such-connector }',
    ].join('\n'));
    const r = await run(['check-config', '-c', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /connectors\[0\]\.config: .*shoeSize/);
    assert.match(r.stderr, /connectors\[1\]\.type: unknown connector type "no-such-connector"/);
  });

  for (const [what, yaml, pathPattern] of [
    ['an unknown key', 'issuer: http://127.0.0.1:5556\nlisten: 1234\n', /listen: unknown key/],
    ['a missing secret', 'issuer: http://127.0.0.1:5556\nclients:\n  - { id: svc, secret: "${SVC_SECRET}", grantTypes: [client_credentials] }\n', /clients\[0\]\.secret: environment variable SVC_SECRET is not set/],
    ['a bad URL', 'issuer: 127.0.0.1:5556\n', /issuer: must be an absolute http\(s\) URL/],
  ] as const) {
    test(`serve refuses to start with ${what}, naming the path`, async () => {
      const file = writeConfig(`serve-bad-${what.replace(/\W+/g, '-')}.yaml`, yaml);
      const r = await run(['serve', '-c', file]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, pathPattern);
      assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/, 'no stack trace for a config error');
    });
  }

  test('serve with config/dev.yaml starts on the embedded database, answers, and stops on SIGTERM', async () => {
    const port = await freePort();
    const cwd = mkdtempSync(path.join(work, 'start-'));
    const started = await run(['serve', '-c', path.join(ROOT, 'config/dev.yaml')], {
      cwd,
      env: { PORT: String(port), KEYBRIDGE_ISSUER: `http://127.0.0.1:${port}` },
      until: /Keybridge is running/,
    });
    assert.ok(started.kill, `did not start: ${started.stderr}`);
    try {
      assert.match(started.stdout, new RegExp(`http://127\\.0\\.0\\.1:${port}/auth\\?client_id=demo-app`));
      assert.match(started.stdout, /Demo user: demo \/ demo-password-change-me/);
      assert.match(started.stdout, new RegExp(`Admin console: http://127\\.0\\.0\\.1:${port}/admin/ \\(for members of admins\\)`));
      assert.match(started.stdout, new RegExp(`Account console: http://127\\.0\\.0\\.1:${port}/account/`));
      assert.equal((await fetch(`http://127.0.0.1:${port}/admin/`)).status, 200);
      assert.equal((await fetch(`http://127.0.0.1:${port}/account/`)).status, 200);
      // The demo config lets people create an account from the login page (mails go to the log).
      const login = await new Browser(`http://127.0.0.1:${port}`).go(`http://127.0.0.1:${port}/auth?client_id=demo-app&response_type=code&scope=openid&redirect_uri=${encodeURIComponent('http://127.0.0.1:3000/callback')}&code_challenge=${'a'.repeat(43)}&code_challenge_method=S256`);
      assert.match(login.html, /id="create-account"/);
      assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
      assert.deepEqual(await (await fetch(`http://127.0.0.1:${port}/readyz`)).json(), { status: 'ready' });
      const discovery = await (await fetch(`http://127.0.0.1:${port}/.well-known/openid-configuration`)).json();
      assert.equal(discovery.issuer, `http://127.0.0.1:${port}`);
    } finally {
      const stopped = await started.kill!();
      assert.equal(stopped.code, 0, stopped.stderr);
      // Nothing of ours calls a deprecated API (oidc-provider's `.app` getter printed one at every start).
      assert.doesNotMatch(stopped.stderr, /DeprecationWarning/, stopped.stderr);
    }
  });

  test("npm start's Node flags are ones this Node takes: its heap settings in NODE_OPTIONS, its V8 flag on the command line", () => {
    const { nodeOptions, nodeFlags } = startScriptFlags();
    // A flag Node refuses (a V8 flag in NODE_OPTIONS, one a Node upgrade dropped) would stop the quick start.
    const r = spawnSync(process.execPath, [...nodeFlags, '-e', 'process.stdout.write("ok")'], { env: { PATH: process.env.PATH ?? '', NODE_OPTIONS: nodeOptions.join(' ') }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'ok');
    assert.equal(r.stderr, '');
  });

  test('the ready line counts from process start (module loading included), not from startBroker', async () => {
    const port = await freePort();
    const cwd = mkdtempSync(path.join(work, 'ready-'));
    const spawned = performance.now();
    const started = await run(['serve', '-c', path.join(ROOT, 'config/dev.yaml')], {
      cwd,
      env: { PORT: String(port), KEYBRIDGE_ISSUER: `http://127.0.0.1:${port}`, LOG_LEVEL: 'info' },
      until: /"keybridge ready"/,
    });
    const wall = performance.now() - spawned;
    assert.ok(started.kill, `did not start: ${started.stderr}`);
    try {
      const line = started.stdout.split('\n').find((l) => l.includes('"keybridge ready"'))!;
      const ready = JSON.parse(line) as { ms: number; startBrokerMs: number };
      // Loading the modules before startBroker takes time of its own: the reported figure includes it.
      assert.ok(ready.ms > ready.startBrokerMs, line);
      assert.ok(ready.ms <= wall, `${ready.ms} ms reported, ${Math.round(wall)} ms seen from the parent`);
    } finally {
      await started.kill!();
    }
  });

  test('migrate, users add, keys rotate on the embedded database', async () => {
    const dataDir = path.join(work, 'data-ops');
    const file = writeConfig('ops.yaml', `issuer: http://127.0.0.1:5556\ndatabase: { dataDir: ${JSON.stringify(dataDir)} }\n`);
    const m1 = await run(['migrate', '-c', file]);
    assert.equal(m1.code, 0, m1.stderr);
    assert.match(m1.stdout, /applied: 0001-initial/);
    const m2 = await run(['migrate', '-c', file]);
    assert.match(m2.stdout, /up to date/);

    const add = await run(['users', 'add', 'zoe', '--email', 'zoe@example.org', '--group', 'ops', '--group', 'dev', '--password-stdin', '-c', file], { input: 'zoe-password-1\n' });
    assert.equal(add.code, 0, add.stderr);
    const dup = await run(['users', 'add', 'ZOE', '--password-stdin', '-c', file], { input: 'marble-canyon-whistle-8\n' });
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /already exists/);
    // The password policy applies: a breached password is refused with its reason, nothing is created.
    const weak = await run(['users', 'add', 'walt', '--password-stdin', '-c', file], { input: 'Password1234\n' });
    assert.equal(weak.code, 2);
    assert.match(weak.stderr, /password refused \(breached\)/);
    assert.doesNotMatch(weak.stderr + weak.stdout, /Password1234/);
    const nopw = await run(['users', 'add', 'yan', '-c', file]);
    assert.equal(nopw.code, 2);

    // No keys exist until a broker starts; rotation creates the first set as well.
    const r1 = await run(['keys', 'rotate', '-c', file]);
    assert.equal(r1.code, 0, r1.stderr);
    const r2 = await run(['keys', 'rotate', '-c', file]);
    assert.equal(r2.code, 0, r2.stderr);

    const db = await openDatabase({ dataDir: path.join(dataDir, 'pglite') });
    try {
      const store = new Store(db.knex);
      const zoe = await store.users.findByUsername('zoe');
      assert.equal(zoe?.email, 'zoe@example.org');
      assert.deepEqual(await store.groups.groupsOf(zoe!.id), ['dev', 'ops']);
      assert.equal(await verifyPassword((await store.credentials.getPasswordHash(zoe!.id))!, 'zoe-password-1'), true);
      assert.equal(await store.users.findByUsername('walt'), null);
      assert.equal((await store.passwords.recentHashes(zoe!.id, 5)).length, 1);
      const keys = await store.signingKeys.listPublishable();
      assert.deepEqual(keys.filter((k) => k.status === 'active').map((k) => k.alg).sort(), ['ES256', 'RS256']);
      assert.equal(keys.filter((k) => k.status === 'retired').length, 2);
    } finally {
      await db.close();
    }
  });

  test('users links and users unlink: list a user\'s upstream identities, remove one, keep the user', async () => {
    const dataDir = path.join(work, 'data-links');
    const file = writeConfig('links.yaml', `issuer: http://127.0.0.1:5556\ndatabase: { dataDir: ${JSON.stringify(dataDir)} }\n`);
    assert.equal((await run(['migrate', '-c', file])).code, 0);
    let userId = '';
    const seed = await openDatabase({ dataDir: path.join(dataDir, 'pglite') });
    try {
      const store = new Store(seed.knex);
      const uma = await store.users.create({ username: 'uma' });
      userId = uma.id;
      await store.identities.create({ userId, connectorId: 'github', subject: '4242', username: 'uma-gh', email: 'uma@example.org' });
      await store.identities.create({ userId, connectorId: 'google', subject: 'g-1', username: null });
      await store.groups.setMemberships(userId, ['gh-org'], 'github');
    } finally {
      await seed.close();
    }
    const links = await run(['users', 'links', 'uma', '-c', file]);
    assert.equal(links.code, 0, links.stderr);
    assert.match(links.stdout, /^github\t4242\tuma-gh\tuma@example\.org/m);
    assert.match(links.stdout, /^google\tg-1\t-/m);
    const wrong = await run(['users', 'unlink', 'uma', 'gitlab', '-c', file]);
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /no identity from connector "gitlab" \(linked: github, google\)/);
    assert.equal((await run(['users', 'unlink', 'nobody', 'github', '-c', file])).code, 2);
    const unlink = await run(['users', 'unlink', 'uma', 'github', '-c', file]);
    assert.equal(unlink.code, 0, unlink.stderr);
    assert.match(unlink.stdout, /unlinked 1 github identity from uma/);
    const last = await run(['users', 'unlink', 'uma', 'google', '-c', file]);
    assert.match(last.stderr, /now has no way to sign in/);

    const db = await openDatabase({ dataDir: path.join(dataDir, 'pglite') });
    try {
      const store = new Store(db.knex);
      assert.equal((await store.users.findById(userId))?.username, 'uma', 'the user stays');
      assert.deepEqual(await store.identities.listForUser(userId), []);
      assert.deepEqual(await store.groups.groupsOf(userId), []);
      assert.deepEqual((await store.audit.list({ type: 'identity.unlinked', userId })).map((e) => [e.connectorId, e.details.by]).sort(), [['github', 'cli'], ['google', 'cli']]);
    } finally {
      await db.close();
    }
  });

  test('unknown commands print usage and exit 2', async () => {
    const r = await run(['frobnicate']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /Usage: keybridge/);
  });
});

describe('serve hint and production warnings', () => {
  let work: string;
  before(() => {
    mkdirSync(path.join(ROOT, 'test/.work'), { recursive: true });
    work = mkdtempSync(path.join(ROOT, 'test/.work', 'cli-hint-'));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  test('serve prints no password and no client secret for a config other than the shipped demo', async (t) => {
    const db = await freshPostgresDatabase();
    if ('skip' in db) return skipLoudly(t, db.skip);
    const port = await freePort();
    const secret = 'Pz4Lq9Wm2Rx7Kc1Vb8Nt5Yh3Gd6Fs0JaQe';
    // The shipped demo's user and password, in a copy of the config elsewhere: someone's own
    // config, so nothing of it is printed.
    const file = path.join(work, 'mine.yaml');
    writeFileSync(file, [
      `issuer: http://127.0.0.1:${port}`,
      `http: { listen: 127.0.0.1:${port} }`,
      `database: { url: ${db.url} }`,
      'clients:',
      `  - { id: portal, secret: ${secret}, redirectUris: [http://127.0.0.1:3000/callback] }`,
      'users:',
      '  - { username: demo, password: demo-password-change-me }',
      'connectors:',
      '  - { id: local, type: local }',
    ].join('\n'));
    try {
      const started = await run(['serve', '-c', file], { until: /code=CODE/ });
      assert.ok(started.kill, `did not start: ${started.stderr}`);
      try {
        assert.match(started.stdout, /client_id=portal/);
        assert.match(started.stdout, /curl -s \S+\/token -u 'portal:<client-secret>' -d grant_type=authorization_code/);
        assert.doesNotMatch(started.stdout, new RegExp(secret), 'the real secret is never printed');
        assert.doesNotMatch(started.stdout, /Demo user|demo-password-change-me/);
        // Not production mode, so the production problems are warnings, one line each with the path.
        assert.match(started.stderr, /^warning: users\[0\]\.password: is a well-known or demo password/m);
        assert.match(started.stderr, /^warning: issuer: must be an https URL/m);
      } finally {
        const stopped = await started.kill!();
        assert.equal(stopped.code, 0, stopped.stderr);
      }
    } finally {
      await db.drop();
    }
  });

  test('serve refuses to start in production mode (NODE_ENV=production) on the shipped demo config, listing every problem', async () => {
    const r = await run(['serve', '-c', 'config/dev.yaml'], { env: { NODE_ENV: 'production' } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /production mode/);
    for (const p of ['issuer', 'clients\\[1\\]\\.secret', 'users\\[0\\]\\.password']) assert.match(r.stderr, new RegExp(`^  - ${p}: `, 'm'));
    assert.doesNotMatch(r.stderr, /demo-password-change-me|demo-service-secret-change-me/, 'no value is echoed');
    assert.doesNotMatch(r.stdout, /Keybridge is running/);
  });

  test('check-config lists production problems as warnings outside production mode, as errors in it', async () => {
    const dev = await run(['check-config', '-c', 'config/dev.yaml']);
    assert.equal(dev.code, 0, dev.stderr);
    assert.match(dev.stderr, /^warning: clients\[1\]\.secret: .*\(refused in production mode\)$/m);
    assert.match(dev.stdout, /configuration is valid/);
    const file = path.join(work, 'prod.yaml');
    writeFileSync(file, 'mode: production\nissuer: http://id.example.com\nsecrets: { cookieKeys: ["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"] }\n');
    const prod = await run(['check-config', '-c', file]);
    assert.equal(prod.code, 1);
    assert.match(prod.stderr, /^  - issuer: must be an https URL/m);
    assert.match(prod.stderr, /^  - secrets\.cookieKeys\[0\]: is not random enough/m);
  });
});
