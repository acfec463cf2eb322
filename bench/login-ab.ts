// A/B of the full local password login (no MFA) between another checkout and this one: both
// serve on one PostgreSQL (a database each), pinned to core 0 with this load generator on
// core 1, in strictly alternating rounds; reports logins/s, the server's CPU ms per login and
// PostgreSQL's (all its processes during the run: only one server runs at a time; PostgreSQL is
// not pinned here).
// Usage: git worktree add /tmp/before <rev> && ln -s "$PWD/node_modules" /tmp/before/
//        taskset -c 1 node bench/login-ab.ts /tmp/before     (ROUNDS=8, SECONDS_PER_RUN=10)
// No V8 heap flags (unlike npm start and the image): with --max-old-space-size=160, argon2id's
// 19 MiB buffers push both builds into GC-bound phases at random (3-4 x the CPU per login),
// which drowns a difference of a few percent.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { stringify } from 'yaml';
import { freshPostgresDatabase } from '../test/helpers/postgres.ts';
import path from 'node:path';
import { Browser } from '../test/helpers/browser.ts';
import { signIn } from '../test/helpers/login-flow.ts';
import { freePort } from '../test/helpers/free-port.ts';

const ROUNDS = Number(process.env.ROUNDS ?? 5);
const SECONDS = Number(process.env.SECONDS_PER_RUN ?? 10);
const CONCURRENCY = 8;
// Never contacted: the client stops at the redirect.
const RP = 'http://127.0.0.1:9/cb';
const before = process.argv[2];
if (!before) throw new Error('usage: node bench/login-ab.ts <path of the checkout to compare with>');
const checkouts = { old: path.resolve(before), new: path.resolve(import.meta.dirname, '..') };
const work = mkdtempSync(path.join(os.tmpdir(), 'keybridge-login-ab-'));
const users = Array.from({ length: 16 }, (_, i) => ({ username: `user${i}`, password: `user-password-${i}-x` }));

const databases: Array<{ drop(): Promise<void> }> = [];
let postmaster = 0;
async function database(): Promise<string> {
  const db = await freshPostgresDatabase();
  if ('skip' in db) throw new Error(`PostgreSQL is needed: ${db.skip}`);
  databases.push(db);
  if (!postmaster) {
    const { default: pg } = (await import('pg' as string)) as { default: { Client: new (url: string) => { connect(): Promise<void>; query(sql: string): Promise<{ rows: Array<{ pid: number }> }>; end(): Promise<void> } } };
    const client = new pg.Client(db.url);
    await client.connect();
    const { rows: [row] } = await client.query('SELECT pg_backend_pid() AS pid');
    postmaster = Number(statOf(row!.pid)[1]);
    await client.end();
  }
  return db.url;
}

async function start(key: 'old' | 'new'): Promise<{ child: ChildProcess; origin: string }> {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const config = {
    issuer: origin, http: { listen: `127.0.0.1:${port}` }, database: { url: await database() }, log: { level: 'warn' },
    clients: [{ id: 'bench', secret: 'bench-secret-0123456789abcdef', redirectUris: [RP], firstParty: true }],
    users: users.map((u) => ({ ...u, groups: ['bench'] })),
    connectors: [{ id: 'local', type: 'local' }],
    limits: { ip: { login: { points: 100_000_000 }, callback: { points: 100_000_000 }, token: { points: 100_000_000 }, tokenFailures: { points: 100_000_000 } } },
  };
  const file = path.join(work, `${key}.yaml`);
  writeFileSync(file, stringify(config));
  const child = spawn('taskset', ['-c', '0', process.execPath, 'src/cli/main.ts', 'serve', '-c', file], { cwd: checkouts[key], stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DATABASE_URL: '' } });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (c) => { out += c; if (/Keybridge is running/.test(out)) resolve(); });
    child.stderr!.on('data', (c) => (out += c));
    child.once('exit', (code) => reject(new Error(`${key} exited ${code}: ${out}`)));
  });
  return { child, origin };
}

/** CPU seconds (user + system) a process has used. */
function cpu(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const statOf = (pid: number) => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
/**
 * CPU seconds PostgreSQL's processes have used: the postmaster's own and its reaped children's,
 * and every live child's (a backend that exits during a run still counts).
 */
function postgresCpu(postmaster: number): number {
  const f = statOf(postmaster);
  let total = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const c = statOf(Number(entry));
      if (Number(c[1]) === postmaster) total += Number(c[11]) + Number(c[12]);
    } catch {
      // exited while listing
    }
  }
  return total / 100;
}

async function loop(origin: string, seconds: number): Promise<number> {
  let done = 0;
  const deadline = performance.now() + seconds * 1000;
  await Promise.all(Array.from({ length: CONCURRENCY }, async (_, w) => {
    for (let n = 0; performance.now() < deadline; n++) {
      const u = users[(w * 3 + n) % users.length];
      const url = `${origin}/auth?${new URLSearchParams({ client_id: 'bench', response_type: 'code', redirect_uri: RP, scope: 'openid', state: 's' })}`;
      const callback = await signIn(new Browser(origin), url, { ...u, connector: 'local' });
      const code = new URL(callback).searchParams.get('code')!;
      const res = await fetch(`${origin}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from('bench:bench-secret-0123456789abcdef').toString('base64')}` }, body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: RP }) });
      if (!res.ok) throw new Error(`token ${res.status}`);
      await res.arrayBuffer();
      done++;
    }
  }));
  return done / seconds;
}

const servers = { old: await start('old'), new: await start('new') };
const results: Record<string, number[]> = { old: [], new: [] };
const cpuPerLogin: Record<string, number[]> = { old: [], new: [] };
const pgPerLogin: Record<string, number[]> = { old: [], new: [] };
for (const key of ['old', 'new'] as const) await loop(servers[key].origin, 3);
for (let r = 0; r < ROUNDS; r++) {
  for (const key of ['old', 'new'] as const) {
    const before = cpu(servers[key].child.pid!);
    const pgBefore = postgresCpu(postmaster);
    const rps = await loop(servers[key].origin, SECONDS);
    const ms = ((cpu(servers[key].child.pid!) - before) * 1000) / (rps * SECONDS);
    const pgMs = ((postgresCpu(postmaster) - pgBefore) * 1000) / (rps * SECONDS);
    results[key].push(rps);
    cpuPerLogin[key].push(ms);
    pgPerLogin[key].push(pgMs);
    console.log(`round ${r + 1} ${key}: ${rps.toFixed(1)}/s, server CPU ${ms.toFixed(1)} ms per login, PostgreSQL ${pgMs.toFixed(2)} ms`);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`logins/s: median before ${median(results.old).toFixed(1)}/s, this checkout ${median(results.new).toFixed(1)}/s, ratio ${(median(results.new) / median(results.old)).toFixed(3)}; ranges old ${Math.min(...results.old).toFixed(1)}-${Math.max(...results.old).toFixed(1)}, new ${Math.min(...results.new).toFixed(1)}-${Math.max(...results.new).toFixed(1)}`);
console.log(`server CPU per login: median before ${median(cpuPerLogin.old).toFixed(1)} ms, this checkout ${median(cpuPerLogin.new).toFixed(1)} ms, ratio ${(median(cpuPerLogin.new) / median(cpuPerLogin.old)).toFixed(3)}`);
console.log(`PostgreSQL CPU per login: median before ${median(pgPerLogin.old).toFixed(2)} ms, this checkout ${median(pgPerLogin.new).toFixed(2)} ms, ratio ${(median(pgPerLogin.new) / median(pgPerLogin.old)).toFixed(3)}`);
await Promise.all(Object.values(servers).map((s) => new Promise((exited) => s.child.once('exit', exited).kill('SIGTERM'))));
for (const db of databases) await db.drop();
process.exit(0);
