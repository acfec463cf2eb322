// Where a login's CPU goes, request by request: Keybridge on PostgreSQL and the bare
// oidc-provider (bench/bare-provider.ts), each pinned to core 0, signed in one login at a time
// from this process (run it on core 1). For each request of the flow it reports the CPU the
// server's main thread used (from /proc/<pid>/task/<pid>/stat, in 10 ms ticks: summed over
// many logins, their mean is what counts), and the statements Keybridge ran for it are in
// test/protocol/hot-path-queries.test.ts. One login at a time, nothing batches or overlaps.
// Usage: taskset -c 1 node bench/login-steps.ts   (LOGINS=200)
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { freshPostgresDatabase } from '../test/helpers/postgres.ts';
import { freePort } from '../test/helpers/free-port.ts';
import { Browser } from '../test/helpers/browser.ts';
import { signIn } from '../test/helpers/login-flow.ts';

const LOGINS = Number(process.env.LOGINS ?? 200);
// Never contacted: the client stops at the redirect.
const RP = 'http://127.0.0.1:9/cb';
const CLIENT = { id: 'bench', secret: 'bench-secret-0123456789abcdef' };
const ROOT = path.resolve(import.meta.dirname, '..');
const work = mkdtempSync(path.join(os.tmpdir(), 'keybridge-login-steps-'));
const users = Array.from({ length: 16 }, (_, i) => ({ username: `user${i}`, password: `user-password-${i}-x` }));

interface Server {
  label: string;
  child: ChildProcess;
  origin: string;
  /** What the login form posts besides the credentials. */
  extra: Record<string, string>;
}

async function spawnServer(label: string, args: string[], ready: RegExp, origin: string, extra: Record<string, string>): Promise<Server> {
  const child = spawn('taskset', ['-c', '0', process.execPath, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DATABASE_URL: '' } });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (c) => {
      out += c;
      if (ready.test(out)) resolve();
    });
    child.stderr!.on('data', (c) => (out += c));
    child.once('exit', (code) => reject(new Error(`${label} exited ${code}: ${out}`)));
  });
  return { label, child, origin, extra };
}

async function keybridge(databaseUrl: string): Promise<Server> {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const config = {
    issuer: origin, http: { listen: `127.0.0.1:${port}` }, database: { url: databaseUrl }, log: { level: 'warn' },
    clients: [{ ...CLIENT, redirectUris: [RP], firstParty: true }],
    users: users.map((u) => ({ ...u, email: `${u.username}@example.org`, groups: ['bench'] })),
    connectors: [{ id: 'local', type: 'local' }],
    limits: { ip: { login: { points: 100_000_000 }, callback: { points: 100_000_000 }, token: { points: 100_000_000 }, tokenFailures: { points: 100_000_000 } } },
  };
  const file = path.join(work, 'keybridge.yaml');
  writeFileSync(file, stringify(config));
  return spawnServer('Keybridge (PostgreSQL)', ['src/cli/main.ts', 'serve', '-c', file], /Keybridge is running/, origin, { connector: 'local' });
}

async function bare(): Promise<Server> {
  const port = await freePort();
  const file = path.join(work, 'users.json');
  writeFileSync(file, JSON.stringify(users));
  return spawnServer('bare oidc-provider', ['bench/bare-provider.ts', String(port), file], /ready/, `http://127.0.0.1:${port}`, {});
}

/** CPU (ms) the process's main thread has used so far. */
function mainThreadMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** A browser whose every request adds the server's main-thread CPU to `perStep`, by method, route and status. */
class MeteredBrowser extends Browser {
  readonly pid: number;
  readonly perStep: Map<string, number>;

  constructor(origin: string, pid: number, perStep: Map<string, number>) {
    super(origin);
    this.pid = pid;
    this.perStep = perStep;
  }

  override async request(url: string, init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<Response> {
    const before = mainThreadMs(this.pid);
    const res = await super.request(url, init);
    await res.clone().arrayBuffer();
    const route = new URL(url).pathname.replace(/^\/interaction\/[^/]+/, '/interaction/:uid').replace(/^\/auth\/[^/]+/, '/auth/:uid');
    const key = `${init.method ?? (init.form ? 'POST' : 'GET')} ${route} ${res.status}`;
    this.perStep.set(key, (this.perStep.get(key) ?? 0) + mainThreadMs(this.pid) - before);
    return res;
  }
}

async function login(server: Server, n: number, perStep?: Map<string, number>): Promise<void> {
  const pid = server.child.pid!;
  const browser = perStep ? new MeteredBrowser(server.origin, pid, perStep) : new Browser(server.origin);
  const url = `${server.origin}/auth?${new URLSearchParams({ client_id: CLIENT.id, response_type: 'code', redirect_uri: RP, scope: 'openid email groups', state: 's' })}`;
  const callback = await signIn(browser, url, { ...users[n % users.length]!, ...server.extra });
  const code = new URL(callback).searchParams.get('code');
  if (!code) throw new Error(`no code in ${callback}`);
  const before = mainThreadMs(pid);
  const res = await fetch(`${server.origin}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${CLIENT.id}:${CLIENT.secret}`).toString('base64')}` },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: RP }),
  });
  if (!res.ok) throw new Error(`token: ${res.status} ${await res.text()}`);
  await res.arrayBuffer();
  perStep?.set('POST /token 200', (perStep.get('POST /token 200') ?? 0) + mainThreadMs(pid) - before);
}

const db = await freshPostgresDatabase();
if ('skip' in db) throw new Error(`PostgreSQL is needed: ${db.skip}`);
const servers = [await keybridge(db.url), await bare()];
try {
  const results = new Map<string, Map<string, number>>();
  for (const server of servers) {
    for (let n = 0; n < 30; n++) await login(server, n);
    const perStep = new Map<string, number>();
    for (let n = 0; n < LOGINS; n++) await login(server, n, perStep);
    results.set(server.label, perStep);
  }
  const steps = [...new Set([...results.values()].flatMap((m) => [...m.keys()]))];
  console.log(`main-thread CPU per request, ms (mean of ${LOGINS} logins, one at a time)`);
  console.log(`| request | ${servers.map((s) => s.label).join(' | ')} |`);
  console.log(`| --- | ${servers.map(() => '---:').join(' | ')} |`);
  for (const step of [...steps, 'whole login']) {
    const cells = servers.map((s) => {
      const m = results.get(s.label)!;
      const ms = step === 'whole login' ? [...m.values()].reduce((a, b) => a + b, 0) : m.get(step);
      return ms === undefined ? '-' : (ms / LOGINS).toFixed(2);
    });
    console.log(`| ${step} | ${cells.join(' | ')} |`);
  }
} finally {
  await Promise.all(servers.map((s) => new Promise((exited) => s.child.once('exit', exited).kill('SIGTERM'))));
  await db.drop();
  rmSync(work, { recursive: true, force: true });
}
