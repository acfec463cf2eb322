// `npm run bench`: Keybridge on PostgreSQL and Keybridge on the embedded PGlite, each against a
// bare oidc-provider (memory adapter, same algorithms and token settings: bench/bare-provider.ts)
// in the same run. Every server is its own Node process pinned to core 0, with PostgreSQL's
// processes pinned there too while the run lasts; the load generator runs on core 1. Each target
// gets a warm-up per server, then ROUNDS rounds alternating the servers (Keybridge on
// PostgreSQL, bare, Keybridge on PGlite, ...; backwards in every second round); the table gives
// medians and ranges.
//
// Env: BENCH_DURATION (s per run, default 10), BENCH_WARMUP (s, default 2), BENCH_ROUNDS (3),
// BENCH_CONNECTIONS (32), BENCH_LOGIN_CONCURRENCY (8), BENCH_PGLITE=0 (no embedded instance),
// BENCH_LDAP=0 (no LDAP logins), BENCH_IMPORT=0 (no directory import), BENCH_SYNC_USERS
// (entries imported, default 20,000), BENCH_PIN_POSTGRES=0 (leave PostgreSQL's affinity alone),
// BENCH_CONSOLE=0 (no admin console page timing: bench/console.ts), BENCH_ONLY=work,work (only
// those throughput targets, e.g. `client_credentials,userinfo`, and none of the admin, console,
// LDAP and import parts: a quick A/B while working on one path), BENCH_CPU_PROF=dir (the measured
// Keybridge servers, and the bare one under bare/, write a V8 CPU profile there when they stop),
// BENCH_SERVE_FLAGS (Node flags of all the Keybridge servers instead of their deployed heap settings),
// BENCH_B_FLAGS (the second PostgreSQL instance, which otherwise runs with the limiter off to
// state its cost, runs with the limiter on and these Node flags instead: an A/B of flags on
// client_credentials, alternated in the same rounds).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import knexFactory from 'knex';
import { stringify } from 'yaml';
import { freshPostgresDatabase } from '../test/helpers/postgres.ts';
import { freePort } from '../test/helpers/free-port.ts';
import { openDatabase } from '../src/storage/database.ts';
import { Store } from '../src/storage/store.ts';
import { Browser } from '../test/helpers/browser.ts';
import { signIn } from '../test/helpers/login-flow.ts';
import { startScriptFlags } from '../test/helpers/start-script.ts';
import { Attribute, Change, Client } from 'ldapts';
import ldapPlugin from '../connectors/ldap/index.ts';
import { startOpenLdap, ssha, type OpenLdapServer } from '../test/helpers/openldap.ts';
import { createDirectoryConnector } from '../test/helpers/ldap-connector.ts';
import { consoleLine, type ConsoleTimes } from './console.ts';

const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const LOGIN_CONCURRENCY = Number(process.env.BENCH_LOGIN_CONCURRENCY ?? 8);
const WITH_PGLITE = process.env.BENCH_PGLITE !== '0';
const WITH_LDAP = process.env.BENCH_LDAP !== '0' && !process.env.BENCH_ONLY;
const WITH_IMPORT = process.env.BENCH_IMPORT !== '0' && !process.env.BENCH_ONLY;
const PIN_POSTGRES = process.env.BENCH_PIN_POSTGRES !== '0';
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',')) : undefined;
const WITH_CONSOLE = process.env.BENCH_CONSOLE !== '0' && !ONLY;
const ROOT = path.resolve(import.meta.dirname, '..');
const NODE = process.execPath;
const flagsOf = (value: string | undefined) => value?.split(' ').filter(Boolean);
// The Node flags as deployed (README "Memory"), read where they are set: the Docker image's heap
// settings (production) for the PostgreSQL instances, `npm start`'s (the lean quick start on the
// embedded database: heap settings and `--liftoff-only`) for the PGlite one.
function imageFlags(): string[] {
  const found = /^ENV NODE_OPTIONS="([^"]*)"/m.exec(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'))?.[1];
  if (!found) throw new Error('bench: no NODE_OPTIONS found in the Dockerfile');
  return flagsOf(found)!;
}
const startFlags = () => {
  const { nodeOptions, nodeFlags } = startScriptFlags();
  return [...nodeOptions, ...nodeFlags];
};
const SERVE_FLAGS = flagsOf(process.env.BENCH_SERVE_FLAGS) ?? imageFlags();
const LITE_FLAGS = flagsOf(process.env.BENCH_SERVE_FLAGS) ?? startFlags();
// ... and the same glibc settings as `npm start` and the Docker image (package.json).
// A/B of Node flags: the second PostgreSQL instance (otherwise limits off) runs with these, limits on.
const B_FLAGS = flagsOf(process.env.BENCH_B_FLAGS);
const SERVE_ENV = { MALLOC_TRIM_THRESHOLD_: '131072', MALLOC_MMAP_THRESHOLD_: '131072', NODE_COMPILE_CACHE: path.join(ROOT, 'node_modules/.cache/keybridge/compile') };
const CLIENT = { id: 'bench', secret: 'bench-secret-0123456789abcdef' };
const BASIC = `Basic ${Buffer.from(`${CLIENT.id}:${CLIENT.secret}`).toString('base64')}`;
const FORM = { authorization: BASIC, 'content-type': 'application/x-www-form-urlencoded' };
const RP = 'http://127.0.0.1:9/cb';
const pinned = spawnSync('taskset', ['--version']).status === 0;
/**
 * The environment for the processes under test, without Keybridge's config overrides: a
 * DATABASE_URL meant for the test suites would replace the benchmark's fresh database.
 */
const CHILD_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => !['DATABASE_URL', 'KEYBRIDGE_ISSUER', 'KEYBRIDGE_LISTEN', 'KEYBRIDGE_CONFIG', 'PORT', 'LOG_LEVEL'].includes(k)));

/**
 * The targets (the README's "Performance" section repeats this table). Throughput targets are
 * ratios to the bare library measured in the same run; the embedded store is held to a ratio of
 * Keybridge on PostgreSQL. `min` is an absolute floor on top of the ratio.
 */
export const TARGETS = {
  client_credentials: { ratio: 0.5, min: 2500, text: '>= 0.5x bare and >= 2,500/s' },
  introspection: { ratio: 0.5, min: 4000, text: '>= 0.5x bare and >= 4,000/s' },
  userinfo: { ratio: 0.5, min: 0, text: '>= 0.5x bare' },
  refresh_token: { ratio: 0.5, min: 0, text: '>= 0.5x bare (and >= 1,500/s on a quiet core)' },
  login: { ratio: 0.8, min: 0, text: '>= 0.8x bare (argon2id bounds both)' },
  embeddedOfPostgres: 0.6,
  limiterCost: 0.05,
  memory: { postgresIdleMb: 150, postgresPeakMb: 300, embeddedIdleMb: 200 },
  startMs: { postgres: 1500, embedded: 2000 },
  ldapOfRaw: 1.5,
  adminListP99Ms: 50,
} as const;
const ADMIN_CLIENT = { id: 'bench-admin', secret: 'bench-admin-secret-0123456789abcdef' };
const ADMIN_USERS = Number(process.env.BENCH_ADMIN_USERS ?? 10_000);
const round1 = (x: number | undefined) => Math.round((x ?? 0) * 10) / 10;
type Work = 'client_credentials' | 'introspection' | 'userinfo' | 'refresh_token' | 'login';
const WORK_LABEL: Record<Work, string> = {
  client_credentials: 'client_credentials (opaque)',
  introspection: 'introspection (opaque token)',
  userinfo: 'userinfo (GET /me, Bearer)',
  refresh_token: 'refresh_token (rotating, RS256 ID token)',
  login: 'full password login (/auth to token)',
};

interface Sample {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  /** CPU per request (us) of the server's process, and of PostgreSQL (which shares the servers' core) while it ran. */
  cpuUs?: number;
  pgUs?: number;
}
interface Server {
  key: 'pg' | 'pgOff' | 'bare' | 'lite';
  label: string;
  origin: string;
  child: ChildProcess;
  userinfo: string;
  /** The issuer's origin when the server is a second instance behind it: its redirects go there. */
  publicOrigin?: string;
  /** Filled in before the targets run. */
  ccToken?: string;
  userToken?: string;
  refreshPool?: string[];
}
const samples = new Map<string, Sample[]>();
const cleanups: Array<() => void> = [];

function pin(pid: number, core: number | string): void {
  if (pinned) spawnSync('taskset', ['-a', '-cp', String(core), String(pid)], { stdio: 'ignore' });
}

function rssMb(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

/** The benchmark database's transaction and row counters (PostgreSQL reports them about once a second). */
let statsUrl = '';
async function databaseCounters(): Promise<{ xacts: number; fetched: number; returned: number; seqRead: number } | undefined> {
  if (!statsUrl) return undefined;
  await new Promise((r) => setTimeout(r, 1200));
  const knex = knexFactory({ client: 'pg', connection: statsUrl, pool: { min: 0, max: 1 } });
  try {
    const { rows } = await knex.raw(`SELECT xact_commit + xact_rollback AS xacts, tup_fetched, tup_returned,
      (SELECT coalesce(sum(seq_tup_read), 0) FROM pg_stat_user_tables) AS seq_read FROM pg_stat_database WHERE datname = current_database()`);
    return { xacts: Number(rows[0].xacts), fetched: Number(rows[0].tup_fetched), returned: Number(rows[0].tup_returned), seqRead: Number(rows[0].seq_read) };
  } finally {
    await knex.destroy();
  }
}

/** The fields of /proc/<pid>/stat after the command name (state is [0], ppid [1], utime [11], stime [12]). */
function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** CPU time (ms) a process has used so far (user + system, in clock ticks of 10 ms); 0 once it is gone. */
function cpuMs(pid: number): number {
  try {
    const f = statFields(pid);
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return 0;
  }
}

/**
 * CPU time (ms) of a process's threads so far, by kind: `main` (the event loop), `v8` (V8's
 * helper threads: concurrent GC and compilation), `pool` (libuv's thread pool: argon2, crypto,
 * file I/O) and `other`.
 */
function threadCpuMs(pid: number): Record<'main' | 'v8' | 'pool' | 'other', number> {
  const out = { main: 0, v8: 0, pool: 0, other: 0 };
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ms = (Number(f[11]) + Number(f[12])) * 10;
      const kind = tid === String(pid) ? 'main' : name.startsWith('V8') || name.startsWith('v8:') ? 'v8' : name.startsWith('libuv') ? 'pool' : 'other';
      out[kind] += ms;
    } catch {}
  }
  return out;
}

/**
 * CPU time (ms) used so far by the PostgreSQL server's processes (0 where /proc or the pid is
 * missing): the live ones, and those that have exited (an autovacuum worker, a backend whose
 * connection closed), which the postmaster has reaped into its children's time. Without the
 * latter, a worker that ends during a run takes its whole CPU off that run's figure.
 */
let postmasterPid = 0;
function postgresCpuMs(): number {
  if (!postmasterPid) return 0;
  let total = 0;
  try {
    // utime, stime, cutime, cstime: its own CPU and that of its children it has reaped.
    const f = statFields(postmasterPid);
    total = (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * 10;
  } catch {}
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number)) {
    try {
      if (parentOf(pid) === postmasterPid) total += cpuMs(pid);
    } catch {}
  }
  return total;
}

function parentOf(pid: number): number {
  return Number(statFields(pid)[1]);
}

function childrenOf(parent: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (parentOf(Number(entry)) === parent) pids.push(Number(entry));
    } catch {
      // exited while listing
    }
  }
  return pids;
}

/**
 * Pins the local PostgreSQL server (postmaster and every process it has started) to core 0, the
 * servers' core, so its backends do not compete with the load generator on core 1; backends
 * forked later inherit the postmaster's affinity. Returns how to put the old affinity back
 * (called at the end, on exit and on SIGINT/SIGTERM). A server in another host or container
 * (its backend pid not visible here) is left alone.
 */
async function pinPostgres(url: string): Promise<{ note: string; restore: () => void }> {
  const none = (note: string) => ({ note, restore: () => {} });
  if (!pinned || !PIN_POSTGRES) return none('PostgreSQL not pinned (BENCH_PIN_POSTGRES=0 or no taskset)');
  // The backend's parent is the postmaster; read it while the connection (and so the backend) lives.
  const knex = knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: 1 } });
  let postmaster: number;
  try {
    postmaster = parentOf(Number((await knex.raw('SELECT pg_backend_pid() AS pid')).rows[0].pid));
    postmasterPid = postmaster;
    statsUrl = url;
  } catch {
    return none('PostgreSQL not pinned (its processes are not visible from here)');
  } finally {
    await knex.destroy();
  }
  const mask = /:\s*([0-9a-f]+)\s*$/.exec(spawnSync('taskset', ['-p', String(postmaster)], { encoding: 'utf8' }).stdout)?.[1];
  if (!mask) return none('PostgreSQL not pinned (taskset cannot read its affinity)');
  const apply = (core: string, flag: string) => {
    for (const pid of [postmaster, ...childrenOf(postmaster)]) spawnSync('taskset', ['-a', flag, core, String(pid)], { stdio: 'ignore' });
  };
  apply('0', '-cp');
  let restored = false;
  const restore = () => {
    if (restored) return;
    restored = true;
    apply(mask, '-p');
  };
  return { note: `PostgreSQL (postmaster ${postmaster} and its processes) pinned to core 0 for the run, affinity ${mask} restored after`, restore };
}

/** RSS in MB once three readings 0.5 s apart agree within 2 MB (at most 30 s). */
async function settledRss(pid: number): Promise<number> {
  const readings: number[] = [];
  const until = Date.now() + 30_000;
  for (;;) {
    readings.push(rssMb(pid).rss);
    const last = readings.slice(-3);
    if ((last.length === 3 && Math.max(...last) - Math.min(...last) < 2) || Date.now() > until) return last[last.length - 1];
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function startProcess(args: string[], readyPattern: RegExp, extraEnv: Record<string, string> = {}): Promise<{ child: ChildProcess; ms: number }> {
  const started = performance.now();
  const env = { ...SERVE_ENV, ...extraEnv };
  // Servers run on core 0 from their first instruction, so start-up is measured as deployed.
  const child = pinned
    ? spawn('taskset', ['-c', '0', NODE, ...args], { cwd: ROOT, env: { ...CHILD_ENV, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(NODE, args, { cwd: ROOT, env: { ...CHILD_ENV, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      if (readyPattern.test(out)) resolve();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code}:\n${out}`)));
  });
  cleanups.push(() => child.kill('SIGTERM'));
  return { child, ms: performance.now() - started };
}

/**
 * The admin console's page times (bench/console.ts) in a process of their own with every core,
 * as the script measures them when run alone. Run inside this process, Chromium inherited its
 * pinning to the load generator's core (p50 1.2-1.45 s, against 0.74-0.77 s on the whole
 * machine, the same script in the same hour); with this process given every core for that part,
 * a full run still printed 1.18 s, for a reason not pinned down.
 */
async function consoleInOwnProcess(): Promise<ConsoleTimes> {
  const args = ['bench/console.ts', '--json'];
  const [command, argv] = pinned ? ['taskset', ['-c', `0-${availableParallelism() - 1}`, NODE, ...args]] : [NODE, args];
  const child = spawn(command, argv, { cwd: ROOT, env: CHILD_ENV, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  // 'close', not 'exit': the process can exit before its output has all been read.
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  if (code !== 0) throw new Error(`bench/console.ts exited ${code}:\n${err}`);
  return JSON.parse(out.trim().split('\n').at(-1)!) as ConsoleTimes;
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
}

async function post(url: string, form: Record<string, string>): Promise<Record<string, unknown>> {
  const res = await fetch(url, { method: 'POST', headers: FORM, body: new URLSearchParams(form) });
  const body = (await res.json()) as Record<string, unknown>;
  if (!res.ok) throw new Error(`${url}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

function authorizationUrl(server: Server, scope: string): string {
  const url = new URL(`${server.origin}/auth`);
  url.search = new URLSearchParams({ client_id: CLIENT.id, response_type: 'code', redirect_uri: RP, scope, state: 'bench' }).toString();
  return url.href;
}

/** One whole sign-in: /auth, the login page, the password POST, the code exchanged at /token. */
async function fullLogin(server: Server, user: { username: string; password: string }, scope = 'openid email groups'): Promise<Record<string, unknown>> {
  const connector = server.key === 'bare' ? {} : { connector: 'local' };
  const callback = await signIn(new Browser(server.origin, { publicOrigin: server.publicOrigin }), authorizationUrl(server, scope), { ...user, ...connector });
  const code = new URL(callback).searchParams.get('code');
  if (!code) throw new Error(`no code in ${callback}`);
  return post(`${server.origin}/token`, { grant_type: 'authorization_code', code, redirect_uri: RP });
}

/** Runs `worker` from `concurrency` loops for `seconds`; completions/s and latency. */
async function closedLoop(work: string, server: string, concurrency: number, worker: (w: number, n: number) => Promise<void>, seconds = DURATION, quiet = false): Promise<Sample> {
  let done = 0;
  let errors = 0;
  const latencies: number[] = [];
  const deadline = performance.now() + seconds * 1000;
  await Promise.all(Array.from({ length: concurrency }, async (_, w) => {
    for (let n = 0; performance.now() < deadline; n++) {
      const t0 = performance.now();
      try {
        await worker(w, n);
        done++;
        latencies.push(performance.now() - t0);
      } catch {
        errors++;
      }
    }
  }));
  latencies.sort((a, b) => a - b);
  const sample = { rps: done / seconds, p50: round1(latencies[Math.floor(latencies.length / 2)]), p99: round1(latencies[Math.floor(latencies.length * 0.99)]), errors };
  if (!quiet) process.stdout.write(`  ${work} @ ${server}: ${sample.rps.toFixed(1)}/s, p50 ${sample.p50} ms, p99 ${sample.p99} ms, errors ${errors}\n`);
  return sample;
}

async function cannon(opts: autocannon.Options, seconds: number): Promise<Sample> {
  const result = await autocannon({ connections: CONNECTIONS, duration: seconds, ...opts });
  return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, errors: result.errors + result.non2xx + result.timeouts };
}

/** Signs in until `server` holds 2 x CONNECTIONS refresh chains (outside the timed runs). */
async function fillRefreshPool(server: Server, users: Array<{ username: string; password: string }>): Promise<void> {
  const pool = (server.refreshPool ??= []);
  let next = 0;
  await Promise.all(Array.from({ length: LOGIN_CONCURRENCY }, async () => {
    while (pool.length < CONNECTIONS * 2) {
      const tokens = await fullLogin(server, users[next++ % users.length]!);
      pool.push(tokens.refresh_token as string);
      server.userToken ??= tokens.access_token as string;
    }
  }));
}

/**
 * Rotating refreshes: every response hands back the next token of its chain. A run's end drops
 * the answers still in flight (up to one chain per connection), so the pool is refilled first.
 */
async function refreshRun(server: Server, seconds: number, users: Array<{ username: string; password: string }>): Promise<Sample> {
  await fillRefreshPool(server, users);
  const pool = server.refreshPool!;
  return cannon({
    url: `${server.origin}/token`,
    requests: [{
      method: 'POST',
      headers: FORM,
      setupRequest: (req) => ({ ...req, body: `grant_type=refresh_token&refresh_token=${pool.shift()}` }),
      onResponse(status, body) {
        if (status === 200) pool.push(JSON.parse(body).refresh_token);
      },
    }],
  }, seconds);
}

/** One run of `work` against `server` for `seconds`. */
function runOnce(work: Work, server: Server, seconds: number, users: Array<{ username: string; password: string }>): Promise<Sample> {
  switch (work) {
    case 'client_credentials':
      return cannon({ url: `${server.origin}/token`, method: 'POST', headers: FORM, body: 'grant_type=client_credentials' }, seconds);
    case 'introspection':
      return cannon({ url: `${server.origin}/token/introspection`, method: 'POST', headers: FORM, body: `token=${server.ccToken}` }, seconds);
    case 'userinfo':
      return cannon({ url: server.userinfo, method: 'GET', headers: { authorization: `Bearer ${server.userToken}` } }, seconds);
    case 'refresh_token':
      return refreshRun(server, seconds, users);
    case 'login':
      return closedLoop('login', server.label, LOGIN_CONCURRENCY, async (w, n) => {
        const tokens = await fullLogin(server, users[(w * 3 + n) % users.length]!, 'openid');
        if (!tokens.access_token) throw new Error('no access token');
      }, seconds, true);
  }
}

/**
 * Warm-up per server, then ROUNDS rounds over the servers: in the given order, and backwards in
 * every second round, so that no server always runs right after the one whose writes
 * PostgreSQL's autovacuum then catches up with, or always first.
 */
async function measure(work: Work, servers: Server[], users: Array<{ username: string; password: string }>): Promise<void> {
  for (const s of servers) await runOnce(work, s, WARMUP, users);
  for (let round = 0; round < ROUNDS; round++) {
    for (const s of round % 2 ? [...servers].reverse() : servers) {
      const cpu0 = cpuMs(s.child.pid!);
      const threads0 = threadCpuMs(s.child.pid!);
      const onPg = s.key === 'pg' || s.key === 'pgOff';
      const counters0 = onPg ? await databaseCounters() : undefined;
      const pg0 = onPg ? postgresCpuMs() : 0;
      const sample = await runOnce(work, s, DURATION, users);
      const done = sample.rps * DURATION;
      const pgCpu = onPg ? postgresCpuMs() - pg0 : 0;
      const nodeCpu = cpuMs(s.child.pid!) - cpu0;
      const threads1 = threadCpuMs(s.child.pid!);
      const byThread = (['main', 'v8', 'pool', 'other'] as const).map((k) => `${k} ${((threads1[k] - threads0[k]) * 1000 / done).toFixed(0)}`).join(', ');
      const counters1 = counters0 ? await databaseCounters() : undefined;
      const perReq = (x: number) => (x / done).toFixed(2);
      const db = counters0 && counters1 ? `, ${perReq(counters1.xacts - counters0.xacts - 1)} transactions and ${perReq(counters1.fetched - counters0.fetched)} rows fetched, ${perReq(counters1.returned - counters0.returned)} returned (${perReq(counters1.seqRead - counters0.seqRead)} by sequential scans) per request` : '';
      // Per request of the run; a refresh run's figures also carry the sign-ins that refill its pool first.
      const cpu = ` (CPU ${(nodeCpu * 1000 / done).toFixed(0)} us/req [${byThread}]${onPg ? `, PostgreSQL ${(pgCpu * 1000 / done).toFixed(0)} us/req` : ''}${db})`;
      const key = `${work}|${s.key}`;
      samples.set(key, [...(samples.get(key) ?? []), { ...sample, cpuUs: (nodeCpu * 1000) / done, pgUs: onPg ? (pgCpu * 1000) / done : undefined }]);
      const mem = s.key === 'bare' ? '' : `, RSS ${rssMb(s.child.pid!).rss.toFixed(0)} MB`;
      process.stdout.write(`  ${work} @ ${s.label}: ${sample.rps.toFixed(sample.rps < 200 ? 1 : 0)}/s, p50 ${sample.p50} ms, p99 ${sample.p99} ms, errors ${sample.errors}${mem}${cpu}\n`);
    }
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}
const fmt = (x: number) => (x < 200 ? x.toFixed(1) : Math.round(x).toLocaleString('en-US'));
const verdict = (ok: boolean) => (ok ? 'met' : 'NOT MET');

/** Table size per stored token: pg_total_relation_size('oidc_payloads') before and after N tokens. */
async function payloadFootprint(url: string): Promise<{ bytes: number; rows: number; payloadBytes: number }> {
  const knex = knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: 1 } });
  try {
    const { rows } = await knex.raw("SELECT pg_total_relation_size('oidc_payloads')::bigint AS bytes, count(*)::bigint AS rows, coalesce(avg(pg_column_size(payload)), 0)::float AS payload FROM oidc_payloads");
    return { bytes: Number(rows[0].bytes), rows: Number(rows[0].rows), payloadBytes: Number(rows[0].payload) };
  } finally {
    await knex.destroy();
  }
}

async function main(): Promise<void> {
  const began = performance.now();
  pin(process.pid, 1);
  const db = await freshPostgresDatabase();
  if ('skip' in db) throw new Error(`the benchmark needs PostgreSQL: ${db.skip}`);
  const work = mkdtempSync(path.join(tmpdir(), 'keybridge-bench-'));
  let stopLdap: () => Promise<void> = async () => {};
  let unpinPostgres = () => {};
  const onSignal = () => {
    unpinPostgres();
    for (const c of cleanups) c();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', () => unpinPostgres());
  try {
    const users = Array.from({ length: 16 }, (_, i) => ({ username: `user${i}`, password: `bench-password-${i}` }));
    const seedUsers = users.map((u) => ({ ...u, email: `${u.username}@example.org`, groups: ['bench'] }));
    const usersFile = path.join(work, 'users.json');
    writeFileSync(usersFile, JSON.stringify(users));
    let ldap: OpenLdapServer | undefined;
    let ldapConfig: Record<string, unknown> | undefined;
    if (WITH_LDAP || WITH_IMPORT) {
      const started = await startOpenLdap();
      if ('skip' in started) throw new Error(`the LDAP parts need slapd (BENCH_LDAP=0 BENCH_IMPORT=0 skip them): ${started.skip}`);
      ldap = started;
      stopLdap = () => started.stop();
      ldapConfig = {
        url: ldap.url,
        bindDn: ldap.serviceDn,
        bindPassword: ldap.servicePassword,
        users: { baseDn: `ou=people,${ldap.baseDn}` },
        groups: { sources: [{ type: 'member', baseDn: `ou=groups,${ldap.baseDn}` }] },
      };
    }
    const kbPort = await freePort();
    const issuer = `http://127.0.0.1:${kbPort}`;
    const common = {
      log: { level: 'warn' },
      clients: [
        { id: CLIENT.id, secret: CLIENT.secret, redirectUris: [RP], firstParty: true, grantTypes: ['authorization_code', 'refresh_token', 'client_credentials'] },
        { id: ADMIN_CLIENT.id, secret: ADMIN_CLIENT.secret, grantTypes: ['client_credentials'], scopes: ['admin:read'] },
      ],
      // The limiter stays on, as deployed; only its budgets are raised, since all load comes
      // from one address (the default would answer 429 after 1,200 token requests a minute).
      limits: { ip: { login: { points: 100_000_000 }, callback: { points: 100_000_000 }, token: { points: 100_000_000 }, tokenFailures: { points: 100_000_000 } } },
    };
    const base = {
      ...common,
      issuer,
      connectors: [{ id: 'local', type: 'local' }, ...(WITH_LDAP ? [{ id: 'corp', type: 'ldap', name: 'Corp directory', config: ldapConfig }] : [])],
      http: { listen: `127.0.0.1:${kbPort}` },
      database: { url: db.url },
    };
    // The first start migrates, seeds the login users and makes keys; the measured start runs
    // like a production instance, with no static users to re-check.
    const startKeybridge = async (name: string, config: Record<string, unknown>, flags: string[]) => {
      const seedFile = path.join(work, `${name}-seed.yaml`);
      const file = path.join(work, `${name}.yaml`);
      writeFileSync(seedFile, stringify({ ...config, users: seedUsers }));
      writeFileSync(file, stringify(config));
      const first = await startProcess([...flags, 'src/cli/main.ts', 'serve', '-c', seedFile], /Keybridge is running/);
      await stopProcess(first.child);
      const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
      const measured = await startProcess([...flags, ...profile, 'src/cli/main.ts', 'serve', '-c', file], /Keybridge is running/);
      return { first: first.ms, ...measured };
    };

    const pgStart = await startKeybridge('postgres', base, SERVE_FLAGS);
    const pinning = await pinPostgres(db.url);
    unpinPostgres = pinning.restore;
    // A second instance on the same database with the limiter off, to state what the limiter costs
    // (with BENCH_B_FLAGS: limiter on, other Node flags, to compare the flags in the same rounds).
    const offPort = await freePort();
    const offConfig = { ...base, http: { listen: `127.0.0.1:${offPort}` }, ...(B_FLAGS ? {} : { limits: { enabled: false } }) };
    const off = await startProcess([...(B_FLAGS ?? SERVE_FLAGS), 'src/cli/main.ts', 'serve', '-c', writeConfig(work, 'limits-off', offConfig)], /Keybridge is running/);
    let liteStart: { first: number; child: ChildProcess; ms: number } | undefined;
    const litePort = await freePort();
    if (WITH_PGLITE) {
      liteStart = await startKeybridge('pglite', { ...common, issuer: `http://127.0.0.1:${litePort}`, connectors: [{ id: 'local', type: 'local' }], http: { listen: `127.0.0.1:${litePort}` }, database: { dataDir: path.join(work, 'pglite') } }, LITE_FLAGS);
    }
    const barePort = await freePort();
    const bareProfile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}/bare`] : [];
    const bare = await startProcess([...bareProfile, 'bench/bare-provider.ts', String(barePort), usersFile], /ready/);
    await new Promise((r) => setTimeout(r, 1000));

    const server = (key: Server['key'], label: string, origin: string, child: ChildProcess): Server => ({ key, label, origin, child, userinfo: `${origin}/me` });
    const kb = server('pg', 'keybridge (postgres)', issuer, pgStart.child);
    const kbOff = { ...server('pgOff', B_FLAGS ? `keybridge (postgres, flags ${B_FLAGS.join(' ')})` : 'keybridge (postgres, limits off)', `http://127.0.0.1:${offPort}`, off.child), publicOrigin: issuer };
    const bareServer = server('bare', 'bare oidc-provider (memory)', `http://127.0.0.1:${barePort}`, bare.child);
    const lite = liteStart ? server('lite', 'keybridge (pglite)', `http://127.0.0.1:${litePort}`, liteStart.child) : undefined;
    const servers = [kb, bareServer, ...(lite ? [lite] : [])];
    // Idle RSS once it has settled: PGlite's WebAssembly is compiled in the background for a few
    // seconds after the ready line, with a transient peak (README "Memory").
    const idle: Record<string, number> = {};
    for (const s of servers.filter((x) => x.key !== 'bare')) idle[s.key] = await settledRss(s.child.pid!);

    process.stdout.write(`Keybridge on PostgreSQL: start to ready ${pgStart.ms.toFixed(0)} ms (process spawn included; first start with migrations ${pgStart.first.toFixed(0)} ms), idle RSS ${idle.pg!.toFixed(0)} MB\n`);
    if (liteStart) process.stdout.write(`Keybridge on PGlite: start to ready ${liteStart.ms.toFixed(0)} ms (first start with initdb and migrations ${liteStart.first.toFixed(0)} ms), idle RSS ${idle.lite!.toFixed(0)} MB\n`);
    process.stdout.write(`load: ${CONNECTIONS} connections (logins: ${LOGIN_CONCURRENCY} concurrent flows), ${WARMUP} s warm-up per server and target, then ${ROUNDS} rounds of ${DURATION} s alternating the servers (backwards every second round); servers ${pinned ? 'pinned to core 0, load on core 1' : 'unpinned (no taskset)'}; ${pinning.note}\n`);

    // Tokens for introspection and userinfo, and a pool of refresh chains, per server. The
    // limits-off instance signs in as many users too, so that the two instances compared for the
    // limiter's cost hold the same state (sessions, caches, code warmed by the logins).
    for (const s of [...servers, kbOff]) {
      s.ccToken = (await post(`${s.origin}/token`, { grant_type: 'client_credentials' })).access_token as string;
      await fillRefreshPool(s, users);
    }

    // client_credentials, with the limits-off instance in each round for the limiter's cost,
    // and the token table's growth per stored token.
    const before = await payloadFootprint(db.url);
    if (!ONLY || ONLY.has('client_credentials')) await measure('client_credentials', [kb, kbOff, bareServer, ...(lite ? [lite] : [])], users);
    const after = await payloadFootprint(db.url);
    await stopProcess(off.child);
    for (const w of ['introspection', 'userinfo', 'refresh_token', 'login'] as const) if (!ONLY || ONLY.has(w)) await measure(w, servers, users);
    const peak = Object.fromEntries(servers.filter((s) => s.key !== 'bare').map((s) => [s.key, rssMb(s.child.pid!).peak]));

    const adminList = ONLY && !ONLY.has('admin') ? undefined : await benchAdminList(issuer, db.url);

    const consoleRun = WITH_CONSOLE ? await consoleInOwnProcess() : undefined;
    const ldapRows = WITH_LDAP ? await benchLdap(ldap!, issuer, ldapConfig!) : undefined;
    const importRuns = WITH_IMPORT ? await benchImport(ldap!, { ...base, connectors: undefined }, work) : [];

    // The table.
    const stats = (work: Work, key: Server['key']) => {
      const xs = (samples.get(`${work}|${key}`) ?? []).map((s) => s.rps);
      return xs.length ? { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), errors: (samples.get(`${work}|${key}`) ?? []).reduce((a, s) => a + s.errors, 0), p99: round1(median((samples.get(`${work}|${key}`) ?? []).map((s) => s.p99))) } : undefined;
    };
    const out: string[] = ['', `| work | server | median/s | range/s | p99 ms (median) | bare median/s | ratio to bare | target | ${''}|`, '| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |'];
    for (const w of Object.keys(WORK_LABEL) as Work[]) {
      if (ONLY && !ONLY.has(w)) continue;
      const b = stats(w, 'bare')!;
      const t = TARGETS[w];
      const p = stats(w, 'pg')!;
      const ratio = p.median / b.median;
      // Two decimals, or three where two would round a miss up to the target (0.497 is not 0.50).
      const shown = (Number(ratio.toFixed(2)) >= t.ratio) === (ratio >= t.ratio) ? ratio.toFixed(2) : ratio.toFixed(3);
      out.push(`| ${WORK_LABEL[w]} | Keybridge, PostgreSQL | ${fmt(p.median)} | ${fmt(p.min)}-${fmt(p.max)} | ${p.p99} | ${fmt(b.median)} (${fmt(b.min)}-${fmt(b.max)}) | ${shown} | ${t.text} | ${verdict(ratio >= t.ratio && p.median >= t.min)}${p.errors ? `, ${p.errors} errors` : ''} |`);
      const l = stats(w, 'lite');
      if (l) {
        const ofPg = l.median / p.median;
        out.push(`| ${WORK_LABEL[w]} | Keybridge, PGlite | ${fmt(l.median)} | ${fmt(l.min)}-${fmt(l.max)} | ${l.p99} | ${fmt(b.median)} | ${(l.median / b.median).toFixed(2)} (${ofPg.toFixed(2)}x PostgreSQL) | >= ${TARGETS.embeddedOfPostgres}x Keybridge on PostgreSQL | ${verdict(ofPg >= TARGETS.embeddedOfPostgres)}${l.errors ? `, ${l.errors} errors` : ''} |`);
      }
      if (b.errors) out.push(`| ${WORK_LABEL[w]} | bare | | | | | | | ${b.errors} errors |`);
    }
    // Round by round: each Keybridge run on PostgreSQL against the bare run of the same round, a
    // few seconds apart. A slow stretch of the VM that falls on one server's run moves a median
    // of one side; here it shows as one round out of line with the others.
    const roundLines: string[] = [];
    for (const w of Object.keys(WORK_LABEL) as Work[]) {
      const [ks, bs] = [samples.get(`${w}|pg`), samples.get(`${w}|bare`)];
      if ((ONLY && !ONLY.has(w)) || !ks || !bs || ks.length !== bs.length) continue;
      const ratios = ks.map((k, i) => k.rps / bs[i]!.rps);
      roundLines.push(`| ${WORK_LABEL[w]} | ${ratios.map((r) => r.toFixed(2)).join(', ')} | ${median(ratios).toFixed(2)} |`);
    }
    if (roundLines.length) out.push('', 'Ratio to bare round by round (Keybridge on PostgreSQL against the bare run of the same round)', '| work | rounds | median |', '| --- | --- | ---: |', ...roundLines);
    // What the CPU says: the servers' core is the bottleneck, so a server's rate is about 1 / (its
    // CPU per request + PostgreSQL's, which runs on the same core). PostgreSQL's share alone bounds
    // the ratio even for a broker that cost no more CPU per request than the bare library.
    const cpuOf = (w: Work, key: Server['key'], f: 'cpuUs' | 'pgUs') => median((samples.get(`${w}|${key}`) ?? []).map((x) => x[f] ?? 0));
    const cpuLines: string[] = [];
    for (const w of Object.keys(WORK_LABEL) as Work[]) {
      if ((ONLY && !ONLY.has(w)) || !samples.has(`${w}|pg`)) continue;
      const [k, pgUs, b] = [cpuOf(w, 'pg', 'cpuUs'), cpuOf(w, 'pg', 'pgUs'), cpuOf(w, 'bare', 'cpuUs')];
      cpuLines.push(`| ${WORK_LABEL[w]} | ${k.toFixed(0)} | ${pgUs.toFixed(0)} | ${b.toFixed(0)} | ${(b / (k + pgUs)).toFixed(2)} | ${(b / (b + pgUs)).toFixed(2)} |`);
    }
    if (cpuLines.length) {
      out.push('', 'CPU per request on the servers\' core (us, medians of the rounds): the ratio the CPU predicts, bare / (Keybridge + PostgreSQL), and the most PostgreSQL\'s own share leaves, bare / (bare + PostgreSQL)');
      out.push('| work | Keybridge process | PostgreSQL | bare process | predicted ratio | bound with PostgreSQL on the core |', '| --- | ---: | ---: | ---: | ---: | ---: |', ...cpuLines);
    }
    const on = stats('client_credentials', 'pg');
    const offStats = stats('client_credentials', 'pgOff');
    const limiterCost = on && offStats ? 1 - on.median / offStats.median : 0;
    if (on && offStats && B_FLAGS) out.push('', `client_credentials with ${B_FLAGS.join(' ')} instead of ${SERVE_FLAGS.join(' ')}: ${(((offStats.median / on.median) - 1) * 100).toFixed(1)}% (median ${fmt(offStats.median)}/s, ${fmt(offStats.min)}-${fmt(offStats.max)}, against ${fmt(on.median)}/s, ${fmt(on.min)}-${fmt(on.max)}, alternated in the same rounds)`);
    else if (on && offStats) out.push('', `limiter cost on client_credentials: ${(limiterCost * 100).toFixed(1)}% (limits on: median ${fmt(on.median)}/s, ${fmt(on.min)}-${fmt(on.max)}; limits off, alternated in the same rounds: median ${fmt(offStats.median)}/s, ${fmt(offStats.min)}-${fmt(offStats.max)}; target <= ${TARGETS.limiterCost * 100}%): ${verdict(limiterCost <= TARGETS.limiterCost)}`);
    const m = TARGETS.memory;
    out.push(`memory, PostgreSQL: idle ${idle.pg!.toFixed(0)} MB (target < ${m.postgresIdleMb}), peak under load ${peak.pg!.toFixed(0)} MB (target < ${m.postgresPeakMb}): ${verdict(idle.pg! < m.postgresIdleMb && peak.pg! < m.postgresPeakMb)}`);
    out.push(`start to ready, PostgreSQL: ${pgStart.ms.toFixed(0)} ms (target < ${TARGETS.startMs.postgres}): ${verdict(pgStart.ms < TARGETS.startMs.postgres)}`);
    if (liteStart) {
      out.push(`memory, PGlite: idle ${idle.lite!.toFixed(0)} MB (target < ${m.embeddedIdleMb}): ${verdict(idle.lite! < m.embeddedIdleMb)}; peak under load ${peak.lite!.toFixed(0)} MB`);
      out.push(`start to ready, PGlite (existing data dir): ${liteStart.ms.toFixed(0)} ms (target < ${TARGETS.startMs.embedded}): ${verdict(liteStart.ms < TARGETS.startMs.embedded)}; first start (initdb, migrations, seeding ${users.length} users) ${liteStart.first.toFixed(0)} ms`);
    }
    const tokens = after.rows - before.rows;
    if (tokens > 0) out.push(`token storage (PostgreSQL): ${tokens.toLocaleString('en-US')} client_credentials tokens grew oidc_payloads by ${((after.bytes - before.bytes) / 1048576).toFixed(1)} MB = ${Math.round((after.bytes - before.bytes) / tokens)} bytes/token with indexes (payload column ${Math.round(after.payloadBytes)} bytes on average); table now ${(after.bytes / 1048576).toFixed(1)} MB for ${after.rows.toLocaleString('en-US')} rows`);
    if (adminList) out.push(`admin API, list users by prefix among ${ADMIN_USERS.toLocaleString('en-US')} users (PostgreSQL, 4 concurrent, pages of 50): ${adminList.rps.toFixed(0)}/s, p50 ${adminList.p50} ms, p99 ${adminList.p99} ms (target p99 < ${TARGETS.adminListP99Ms} ms): ${verdict(adminList.p99 < TARGETS.adminListP99Ms && adminList.errors === 0)}${adminList.errors ? `, ${adminList.errors} errors` : ''}`);
    if (consoleRun) out.push(consoleLine(consoleRun));
    if (ldapRows) {
      const ldapRatio = ldapRows.raw.rps / ldapRows.connector.rps;
      out.push(`LDAP login, same directory work: connector ${ldapRows.connector.rps.toFixed(0)}/s vs raw ldapts bind+search ${ldapRows.raw.rps.toFixed(0)}/s = ${ldapRatio.toFixed(2)} x the raw time per login (target <= ${TARGETS.ldapOfRaw} x): ${verdict(ldapRatio <= TARGETS.ldapOfRaw)}`);
      out.push(`LDAP login with the group lookup: ${ldapRows.groups.rps.toFixed(0)}/s = ${(ldapRows.raw.rps / ldapRows.groups.rps).toFixed(2)} x the raw time per login`);
      out.push(`LDAP login, whole browser flow through the broker: ${ldapRows.flow.rps.toFixed(1)}/s (p50 ${ldapRows.flow.p50} ms) = ${(ldapRows.raw.rps / ldapRows.flow.rps).toFixed(2)} x the raw time per login`);
    }
    for (const r of importRuns) out.push(`directory import of ${r.users} entries (${r.label}): ${(r.ms / 1000).toFixed(1)} s = ${(r.users / (r.ms / 1000)).toFixed(0)} entries/s, peak RSS of the sync process ${r.peakMb.toFixed(0)} MB`);
    out.push(`whole run: ${((performance.now() - began) / 60000).toFixed(1)} min`);
    process.stdout.write(`${out.join('\n')}\n`);
  } finally {
    for (const c of cleanups) c();
    unpinPostgres();
    await new Promise((r) => setTimeout(r, 500));
    await db.drop();
    await stopLdap();
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * The admin API's user search, as the console uses it: ADMIN_USERS users stored (straight into
 * the database, outside the timing), then prefix searches of about 100 matches each, a page of 50.
 */
async function benchAdminList(issuer: string, url: string): Promise<Sample> {
  const database = await openDatabase({ url });
  try {
    const store = new Store(database.knex);
    for (let i = 0; i < ADMIN_USERS; i += 1000) {
      await store.users.createMany(Array.from({ length: Math.min(1000, ADMIN_USERS - i) }, (_, j) => {
        const n = String(i + j).padStart(5, '0');
        return { username: `person${n}`, email: `person${n}@example.org`, name: `Person ${n}` };
      }));
    }
  } finally {
    await database.close();
  }
  const token = (await (await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${ADMIN_CLIENT.id}:${ADMIN_CLIENT.secret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'admin:read' }),
  })).json()) as { access_token: string };
  const prefixes = Math.max(1, Math.floor(ADMIN_USERS / 100));
  const search = async (w: number, n: number) => {
    const q = `person${String((w * 7919 + n * 104729) % prefixes).padStart(3, '0')}`;
    const res = await fetch(`${issuer}/admin/api/v1/users?q=${q}&limit=50`, { headers: { authorization: `Bearer ${token.access_token}` } });
    const body = (await res.json()) as { items?: unknown[] };
    if (res.status !== 200 || !body.items?.length) throw new Error(`list users: ${res.status}`);
  };
  await closedLoop('admin list users (warm-up)', 'keybridge (postgres)', 4, search, WARMUP, true);
  return closedLoop('admin list users', 'keybridge (postgres)', 4, search, DURATION);
}

function writeConfig(dir: string, name: string, config: Record<string, unknown>): string {
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, stringify(config));
  return file;
}

/**
 * LDAP logins against one slapd: raw ldapts (per worker one connection: bind as the service
 * account, search the user, bind as the user) beside the connector's login (search, user bind,
 * group lookup, on its pool) and beside the whole browser flow through the broker.
 */
async function benchLdap(ldap: OpenLdapServer, issuer: string, ldapConfig: Record<string, unknown>): Promise<{ raw: Sample; connector: Sample; groups: Sample; flow: Sample }> {
  const USERS = 32;
  const admin = new Client({ url: ldap.url });
  await admin.bind(ldap.adminDn, ldap.adminPassword);
  for (let i = 0; i < USERS; i++) {
    await admin.add(`uid=ldapuser${i},ou=people,${ldap.baseDn}`, { objectClass: ['inetOrgPerson'], uid: `ldapuser${i}`, cn: `LDAP User ${i}`, sn: 'User', mail: `ldapuser${i}@example.org`, userPassword: ssha(`ldap-pass-${i}`) });
  }
  await admin.modify(`cn=engineering,ou=groups,${ldap.baseDn}`, new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: Array.from({ length: USERS }, (_, i) => `uid=ldapuser${i},ou=people,${ldap.baseDn}`) }) }));
  await admin.unbind();
  const concurrency = 4;

  const clients = await Promise.all(Array.from({ length: concurrency }, async () => new Client({ url: ldap.url })));
  const raw = await closedLoop('LDAP bind+search (raw ldapts)', 'slapd', concurrency, async (w, n) => {
    const c = clients[w]!;
    const i = (w * 7 + n) % USERS;
    await c.bind(ldap.serviceDn, ldap.servicePassword);
    const { searchEntries } = await c.search(`ou=people,${ldap.baseDn}`, { filter: `(uid=ldapuser${i})`, attributes: ['uid', 'mail', 'cn'] });
    await c.bind(searchEntries[0]!.dn, `ldap-pass-${i}`);
  });
  await Promise.all(clients.map((c) => c.unbind()));

  // The connector twice: doing what raw does (search and bind, no group lookup), then as configured.
  const runConnector = async (work: string, config: Record<string, unknown>) => {
    const connector = await createDirectoryConnector(ldapPlugin as never, 'corp', config);
    try {
      return await closedLoop(work, 'slapd', concurrency, async (w, n) => {
        const i = (w * 7 + n) % USERS;
        const r = await connector.login(`ldapuser${i}`, `ldap-pass-${i}`);
        if (!r.ok) throw new Error(r.reason);
      });
    } finally {
      await connector.close?.();
    }
  };
  const sameWork = await runConnector('LDAP login (ldap connector, search+bind)', { ...ldapConfig, groups: { sources: [] } });
  const withGroups = await runConnector('LDAP login (ldap connector, + group lookup)', ldapConfig);

  const flow = await closedLoop('LDAP login (whole browser flow)', 'keybridge (postgres)', concurrency, async (w, n) => {
    const i = (w * 7 + n) % USERS;
    const url = new URL(`${issuer}/auth`);
    url.search = new URLSearchParams({ client_id: CLIENT.id, response_type: 'code', redirect_uri: RP, scope: 'openid groups', state: 'x' }).toString();
    await signIn(new Browser(issuer), url.href, { username: `ldapuser${i}`, password: `ldap-pass-${i}`, connector: 'corp' });
  });
  return { raw, connector: sameWork, groups: withGroups, flow };
}

/**
 * `keybridge ldap sync` of BENCH_SYNC_USERS (default 20,000) generated entries in 10 nested-free
 * groups, into the benchmark's PostgreSQL database: a first import and an unchanged second run.
 * The sync runs as its own process; its peak RSS shows that pages, not the directory, are held.
 */
async function benchImport(ldap: OpenLdapServer, base: Record<string, unknown>, work: string): Promise<Array<{ label: string; users: number; ms: number; peakMb: number }>> {
  const total = Number(process.env.BENCH_SYNC_USERS ?? 20_000);
  const admin = new Client({ url: ldap.url });
  await admin.bind(ldap.adminDn, ldap.adminPassword);
  const t0 = performance.now();
  const password = ssha('import-user');
  const dn = (i: number) => `uid=imp${i},ou=contractors,${ldap.baseDn}`;
  for (let start = 0; start < total; start += 50) {
    await Promise.all(Array.from({ length: Math.min(50, total - start) }, (_, k) => {
      const i = start + k;
      return admin.add(dn(i), { objectClass: ['inetOrgPerson'], uid: `imp${i}`, cn: `Imported ${i}`, sn: 'Imported', mail: `imp${i}@import.example`, userPassword: password });
    }));
  }
  for (let g = 0; g < 10; g++) {
    const members = [];
    for (let i = g; i < total; i += 10) members.push(dn(i));
    await admin.add(`cn=import-team-${g},ou=groups,${ldap.baseDn}`, { objectClass: ['groupOfNames'], cn: `import-team-${g}`, member: members });
  }
  await admin.unbind();
  process.stdout.write(`  generated ${total} directory entries in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);

  const configFile = path.join(work, 'import.yaml');
  writeFileSync(configFile, stringify({
    ...base,
    connectors: [{ id: 'imp', type: 'ldap', config: {
      url: ldap.url, bindDn: ldap.serviceDn, bindPassword: ldap.servicePassword,
      users: { baseDn: `ou=contractors,${ldap.baseDn}` },
      groups: { sources: [{ type: 'member', baseDn: `ou=groups,${ldap.baseDn}`, filter: '(cn=import-team-*)' }] },
      sync: { pageSize: 500 },
    } }],
  }));
  const runs = [];
  for (const label of ['first import', 'second run, nothing changed']) {
    const started = performance.now();
    const child = spawn(NODE, [...SERVE_FLAGS, 'src/cli/main.ts', 'ldap', 'sync', 'imp', '-c', configFile], { cwd: ROOT, env: CHILD_ENV, stdio: ['ignore', 'pipe', 'pipe'] });
    pin(child.pid!, 0);
    let peak = 0;
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    const poll = setInterval(() => {
      try {
        peak = Math.max(peak, rssMb(child.pid!).peak);
      } catch {
        // exited between polls
      }
    }, 100);
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    clearInterval(poll);
    if (code !== 0) throw new Error(`ldap sync exited ${code}:\n${out.slice(-2000)}`);
    const ms = performance.now() - started;
    process.stdout.write(`  ${label}: ${out.trim().split('\n').at(-1)} in ${(ms / 1000).toFixed(1)} s, peak RSS ${peak.toFixed(0)} MB\n`);
    runs.push({ label, users: total, ms, peakMb: peak });
  }
  return runs;
}


main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
