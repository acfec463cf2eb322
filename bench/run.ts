// `npm run bench`: Keybridge on PostgreSQL against bare oidc-provider (memory adapter) in the
// same run. Each server is its own Node process pinned to core 0; the load generator runs on
// core 1. Prints req/s, p50/p99 latency and the ratios to the DESIGN.md targets.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { stringify } from 'yaml';
import { freshPostgresDatabase } from '../test/helpers/postgres.ts';
import { freePort } from '../test/helpers/free-port.ts';
import { Browser } from '../test/helpers/browser.ts';
import { signIn } from '../test/helpers/login-flow.ts';
import { Attribute, Change, Client } from 'ldapts';
import ldapPlugin from '../connectors/ldap/index.ts';
import { startOpenLdap, ssha, type OpenLdapServer } from '../test/helpers/openldap.ts';
import { createDirectoryConnector } from '../test/helpers/ldap-connector.ts';

const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const ROOT = path.resolve(import.meta.dirname, '..');
const NODE = process.execPath;
// The same V8 heap bounds as `npm start` and the Docker image (see README "Memory").
const SERVE_FLAGS = ['--max-old-space-size=160', '--max-semi-space-size=8'];
const CLIENT = { id: 'bench', secret: 'bench-secret-0123456789abcdef' };
const BASIC = `Basic ${Buffer.from(`${CLIENT.id}:${CLIENT.secret}`).toString('base64')}`;
const RP = 'http://127.0.0.1:9/cb';
const pinned = spawnSync('taskset', ['--version']).status === 0;
/**
 * The environment for the processes under test, without Keybridge's config overrides: a
 * DATABASE_URL meant for the test suites would replace the benchmark's fresh database.
 */
const CHILD_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => !['DATABASE_URL', 'KEYBRIDGE_ISSUER', 'KEYBRIDGE_LISTEN', 'KEYBRIDGE_CONFIG', 'PORT', 'LOG_LEVEL'].includes(k)));

interface Row { work: string; server: string; rps: number; p50: number; p99: number; errors: number; note?: string }
let kbPid = 0;
let stopLdap: () => Promise<void> = async () => {};
const rows: Row[] = [];

function pin(pid: number, core: number): void {
  if (pinned) spawnSync('taskset', ['-cp', String(core), String(pid)], { stdio: 'ignore' });
}

function rssMb(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

async function startProcess(args: string[], readyPattern: RegExp, env: Record<string, string> = {}): Promise<{ child: ChildProcess; ms: number }> {
  const started = performance.now();
  const child = spawn(taskOrNode(args), taskArgs(args), { cwd: ROOT, env: { ...CHILD_ENV, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
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
  return { child, ms: performance.now() - started };
}

// Servers run on core 0 from their first instruction, so start-up is measured as deployed.
function taskOrNode(_args: string[]): string {
  return pinned ? 'taskset' : NODE;
}
function taskArgs(args: string[]): string[] {
  return pinned ? ['-c', '0', NODE, ...args] : args;
}

async function cannon(work: string, server: string, opts: autocannon.Options, note?: string): Promise<Row> {
  const result = await autocannon({ connections: CONNECTIONS, duration: DURATION, ...opts });
  const row = { work, server, rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, errors: result.errors + result.non2xx, note };
  rows.push(row);
  const mem = server.startsWith('keybridge') && kbPid ? `, keybridge RSS ${rssMb(kbPid).rss.toFixed(0)} MB (peak ${rssMb(kbPid).peak.toFixed(0)})` : '';
  process.stdout.write(`  ${work} @ ${server}: ${row.rps.toFixed(0)} req/s, p50 ${row.p50} ms, p99 ${row.p99} ms, errors ${row.errors}${mem}\n`);
  return row;
}

async function post(url: string, form: Record<string, string>): Promise<Record<string, unknown>> {
  const res = await fetch(url, { method: 'POST', headers: { authorization: BASIC, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form) });
  const body = (await res.json()) as Record<string, unknown>;
  if (!res.ok) throw new Error(`${url}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

async function main(): Promise<void> {
  pin(process.pid, 1);
  const db = await freshPostgresDatabase();
  if ('skip' in db) throw new Error(`the benchmark needs PostgreSQL: ${db.skip}`);
  const work = mkdtempSync(path.join(tmpdir(), 'keybridge-bench-'));
  const children: ChildProcess[] = [];
  try {
    const kbPort = await freePort();
    const barePort = await freePort();
    const issuer = `http://127.0.0.1:${kbPort}`;
    const configFile = path.join(work, 'bench.yaml');
    const users = Array.from({ length: 16 }, (_, i) => ({ username: `user${i}`, password: `bench-password-${i}`, email: `user${i}@example.org`, groups: ['bench'] }));
    const ldap = await startOpenLdap();
    if ('skip' in ldap) throw new Error(`the benchmark needs slapd: ${ldap.skip}`);
    stopLdap = () => ldap.stop();
    const ldapConfig = {
      url: ldap.url,
      bindDn: ldap.serviceDn,
      bindPassword: ldap.servicePassword,
      users: { baseDn: `ou=people,${ldap.baseDn}` },
      groups: { sources: [{ type: 'member', baseDn: `ou=groups,${ldap.baseDn}` }] },
    };
    const base = {
      issuer,
      connectors: [{ id: 'local', type: 'local' }, { id: 'corp', type: 'ldap', name: 'Corp directory', config: ldapConfig }],
      http: { listen: `127.0.0.1:${kbPort}` },
      database: { url: db.url },
      log: { level: 'warn' },
      clients: [{ id: CLIENT.id, secret: CLIENT.secret, redirectUris: [RP], firstParty: true, grantTypes: ['authorization_code', 'refresh_token', 'client_credentials'] }],
      // The limiter stays on, as deployed; only its budgets are raised, since all load comes
      // from one address (the default would answer 429 after 1,200 token requests a minute).
      limits: { ip: { login: { points: 100_000_000 }, callback: { points: 100_000_000 }, token: { points: 100_000_000 }, tokenFailures: { points: 100_000_000 } } },
    };
    // The first start seeds the login users from config; the measured start runs like a
    // production instance, with no static users to re-check.
    const seedFile = path.join(work, 'seed.yaml');
    writeFileSync(seedFile, stringify({ ...base, users }));
    writeFileSync(configFile, stringify(base));
    // First start migrates, seeds and makes keys; the second start is the one that counts.
    const first = await startProcess([...SERVE_FLAGS, 'src/cli/main.ts', 'serve', '-c', seedFile], /Keybridge is running/);
    first.child.kill('SIGTERM');
    await new Promise((r) => first.child.once('exit', r));
    const kb = await startProcess([...SERVE_FLAGS, 'src/cli/main.ts', 'serve', '-c', configFile], /Keybridge is running/);
    children.push(kb.child);
    kbPid = kb.child.pid!;
    // A second instance on the same database with the limiter off, to state what the limiter costs.
    const offPort = await freePort();
    const offFile = path.join(work, 'limits-off.yaml');
    writeFileSync(offFile, stringify({ ...base, http: { listen: `127.0.0.1:${offPort}` }, limits: { enabled: false } }));
    const off = await startProcess([...SERVE_FLAGS, 'src/cli/main.ts', 'serve', '-c', offFile], /Keybridge is running/);
    children.push(off.child);
    const bare = await startProcess(['bench/bare-provider.ts', String(barePort)], /ready/);
    children.push(bare.child);
    await new Promise((r) => setTimeout(r, 1000));
    const idle = rssMb(kb.child.pid!);
    process.stdout.write(`Keybridge start to ready: ${kb.ms.toFixed(0)} ms (process spawn included); idle RSS ${idle.rss.toFixed(0)} MB\n`);
    process.stdout.write(`load: ${CONNECTIONS} connections, ${DURATION} s per run, servers ${pinned ? 'pinned to core 0, load on core 1' : 'unpinned (no taskset)'}\n`);

    // client_credentials
    const ccBody = 'grant_type=client_credentials';
    const ccHeaders = { authorization: BASIC, 'content-type': 'application/x-www-form-urlencoded' };
    const ccBare = await cannon('client_credentials', 'bare oidc-provider (memory)', { url: `http://127.0.0.1:${barePort}/token`, method: 'POST', headers: ccHeaders, body: ccBody });
    const ccKb = await cannon('client_credentials', 'keybridge (postgres)', { url: `${issuer}/token`, method: 'POST', headers: ccHeaders, body: ccBody });
    // The limiter's cost: limits on and off, alternated, two runs each (medians of the pairs).
    const ccOn = [ccKb.rps];
    const ccOff: number[] = [];
    for (let i = 0; i < 2; i++) {
      ccOff.push((await cannon('client_credentials', 'keybridge (postgres, limits off)', { url: `http://127.0.0.1:${offPort}/token`, method: 'POST', headers: ccHeaders, body: ccBody })).rps);
      if (i === 0) ccOn.push((await cannon('client_credentials', 'keybridge (postgres)', { url: `${issuer}/token`, method: 'POST', headers: ccHeaders, body: ccBody })).rps);
    }
    off.child.kill('SIGTERM');
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const limiterCost = 1 - mean(ccOn) / mean(ccOff);

    // introspection of an opaque access token
    const bareAt = (await post(`http://127.0.0.1:${barePort}/token`, { grant_type: 'client_credentials' })).access_token as string;
    const kbAt = (await post(`${issuer}/token`, { grant_type: 'client_credentials' })).access_token as string;
    const inBare = await cannon('introspection', 'bare oidc-provider (memory)', { url: `http://127.0.0.1:${barePort}/token/introspection`, method: 'POST', headers: ccHeaders, body: `token=${bareAt}` });
    const inKb = await cannon('introspection', 'keybridge (postgres)', { url: `${issuer}/token/introspection`, method: 'POST', headers: ccHeaders, body: `token=${kbAt}` });

    // refresh_token grant: every response hands back the next (rotated) token of that chain.
    const pool: string[] = [];
    for (let i = 0; i < CONNECTIONS * 2; i++) {
      const browser = new Browser(issuer);
      const url = new URL(`${issuer}/auth`);
      url.search = new URLSearchParams({ client_id: CLIENT.id, response_type: 'code', redirect_uri: RP, scope: 'openid email groups', state: `s${i}` }).toString();
      const user = users[i % users.length];
      const callback = await signIn(browser, url.href, { username: user.username, password: user.password, connector: 'local' });
      const code = new URL(callback).searchParams.get('code')!;
      const tokens = await post(`${issuer}/token`, { grant_type: 'authorization_code', code, redirect_uri: RP });
      pool.push(tokens.refresh_token as string);
    }
    const rf = await cannon('refresh_token', 'keybridge (postgres)', {
      url: `${issuer}/token`,
      requests: [{
        method: 'POST',
        headers: ccHeaders,
        setupRequest(req) {
          return { ...req, body: `grant_type=refresh_token&refresh_token=${pool.shift()}` };
        },
        onResponse(status, body) {
          if (status === 200) pool.push(JSON.parse(body).refresh_token);
        },
      }],
    });

    // Local password logins, each a whole browser flow: /auth -> login page -> POST -> code.
    const loginConcurrency = Number(process.env.BENCH_LOGIN_CONCURRENCY ?? 8);
    let logins = 0;
    let loginErrors = 0;
    const latencies: number[] = [];
    const deadline = performance.now() + DURATION * 1000;
    await Promise.all(Array.from({ length: loginConcurrency }, async (_, w) => {
      let n = 0;
      while (performance.now() < deadline) {
        const user = users[(w + n++) % users.length];
        const url = new URL(`${issuer}/auth`);
        url.search = new URLSearchParams({ client_id: CLIENT.id, response_type: 'code', redirect_uri: RP, scope: 'openid', state: 'x' }).toString();
        const t0 = performance.now();
        try {
          await signIn(new Browser(issuer), url.href, { username: user.username, password: user.password, connector: 'local' });
          logins++;
          latencies.push(performance.now() - t0);
        } catch {
          loginErrors++;
        }
      }
    }));
    latencies.sort((a, b) => a - b);
    const loginRow: Row = { work: 'local password login (full flow)', server: 'keybridge (postgres)', rps: logins / DURATION, p50: Math.round(latencies[Math.floor(latencies.length / 2)] ?? 0), p99: Math.round(latencies[Math.floor(latencies.length * 0.99)] ?? 0), errors: loginErrors };
    rows.push(loginRow);
    process.stdout.write(`  login @ keybridge: ${loginRow.rps.toFixed(1)} logins/s, p50 ${loginRow.p50} ms, p99 ${loginRow.p99} ms, errors ${loginErrors}, keybridge RSS ${rssMb(kbPid).rss.toFixed(0)} MB\n`);

    const ldapRows = await benchLdap(ldap, issuer, ldapConfig);
    const importRuns = await benchImport(ldap, { ...base, connectors: undefined }, work);

    const loaded = rssMb(kb.child.pid!);
    process.stdout.write('\n| work | server | req/s | p50 ms | p99 ms | errors |\n| --- | --- | ---: | ---: | ---: | ---: |\n');
    for (const r of rows) process.stdout.write(`| ${r.work} | ${r.server} | ${r.rps.toFixed(r.rps < 200 ? 1 : 0)} | ${r.p50} | ${r.p99} | ${r.errors} |\n`);
    const verdict = (ok: boolean) => (ok ? 'meets target' : 'BELOW TARGET');
    process.stdout.write(`\nclient_credentials: ${ccKb.rps.toFixed(0)}/s = ${(ccKb.rps / ccBare.rps).toFixed(2)} x bare (target >= 2500/s and >= 0.5 x): ${verdict(ccKb.rps >= 2500 && ccKb.rps / ccBare.rps >= 0.5)}\n`);
    process.stdout.write(`limiter cost on client_credentials: ${(limiterCost * 100).toFixed(1)}% (limits on ${ccOn.map((r) => r.toFixed(0)).join(', ')}/s; off ${ccOff.map((r) => r.toFixed(0)).join(', ')}/s; target <= 5%): ${verdict(limiterCost <= 0.05)}\n`);
    process.stdout.write(`refresh_token: ${rf.rps.toFixed(0)}/s (target >= 1500/s): ${verdict(rf.rps >= 1500)}\n`);
    process.stdout.write(`introspection: ${inKb.rps.toFixed(0)}/s = ${(inKb.rps / inBare.rps).toFixed(2)} x bare (target >= 4000/s): ${verdict(inKb.rps >= 4000)}\n`);
    process.stdout.write(`local password login: ${loginRow.rps.toFixed(1)}/s (target >= 80/s): ${verdict(loginRow.rps >= 80)}\n`);
    process.stdout.write(`memory: idle ${idle.rss.toFixed(0)} MB (target < 150), peak under load ${loaded.peak.toFixed(0)} MB (target < 300): ${verdict(idle.rss < 150 && loaded.peak < 300)}\n`);
    process.stdout.write(`start to ready: ${kb.ms.toFixed(0)} ms (target < 1500): ${verdict(kb.ms < 1500)}\n`);
    const ldapRatio = ldapRows.raw.rps / ldapRows.connector.rps;
    process.stdout.write(`LDAP login, same directory work: connector ${ldapRows.connector.rps.toFixed(0)}/s vs raw ldapts bind+search ${ldapRows.raw.rps.toFixed(0)}/s = ${ldapRatio.toFixed(2)} x the raw time per login (target <= 1.5 x): ${verdict(ldapRatio <= 1.5)}\n`);
    process.stdout.write(`LDAP login with the group lookup: ${ldapRows.groups.rps.toFixed(0)}/s = ${(ldapRows.raw.rps / ldapRows.groups.rps).toFixed(2)} x the raw time per login\n`);
    for (const r of importRuns) process.stdout.write(`directory import of ${r.users} entries (${r.label}): ${(r.ms / 1000).toFixed(1)} s = ${(r.users / (r.ms / 1000)).toFixed(0)} entries/s, peak RSS of the sync process ${r.peakMb.toFixed(0)} MB\n`);
    process.stdout.write(`LDAP login, whole browser flow through the broker: ${ldapRows.flow.rps.toFixed(1)}/s (p50 ${ldapRows.flow.p50} ms) = ${(ldapRows.raw.rps / ldapRows.flow.rps).toFixed(2)} x the raw time per login\n`);
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    await db.drop();
    await stopLdap();
    rmSync(work, { recursive: true, force: true });
  }
}

/** Runs `worker` from `concurrency` loops for DURATION seconds; logins/s and latency. */
async function closedLoop(work: string, server: string, concurrency: number, worker: (w: number, n: number) => Promise<void>): Promise<Row> {
  let done = 0;
  let errors = 0;
  const latencies: number[] = [];
  const deadline = performance.now() + DURATION * 1000;
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
  const row: Row = { work, server, rps: done / DURATION, p50: Math.round((latencies[Math.floor(latencies.length / 2)] ?? 0) * 10) / 10, p99: Math.round((latencies[Math.floor(latencies.length * 0.99)] ?? 0) * 10) / 10, errors };
  rows.push(row);
  process.stdout.write(`  ${work} @ ${server}: ${row.rps.toFixed(0)}/s, p50 ${row.p50} ms, p99 ${row.p99} ms, errors ${errors}\n`);
  return row;
}

/**
 * LDAP logins against one slapd: raw ldapts (per worker one connection: bind as the service
 * account, search the user, bind as the user) beside the connector's login (search, user bind,
 * group lookup, on its pool) and beside the whole browser flow through the broker.
 */
async function benchLdap(ldap: OpenLdapServer, issuer: string, ldapConfig: Record<string, unknown>): Promise<{ raw: Row; connector: Row; groups: Row; flow: Row }> {
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
 * `keybridge ldap sync` of BENCH_SYNC_USERS (default 50,000) generated entries in 10 nested-free
 * groups, into the benchmark's PostgreSQL database: a first import and an unchanged second run.
 * The sync runs as its own process; its peak RSS shows that pages, not the directory, are held.
 */
async function benchImport(ldap: OpenLdapServer, base: Record<string, unknown>, work: string): Promise<Array<{ label: string; users: number; ms: number; peakMb: number }>> {
  const total = Number(process.env.BENCH_SYNC_USERS ?? 50_000);
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
