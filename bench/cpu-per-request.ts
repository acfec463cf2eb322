// CPU time per request (the broker process and its PostgreSQL backends) for client_credentials,
// introspection and userinfo: a measure that holds on a busy machine, where throughput does not.
// Usage: node bench/cpu-per-request.ts [seconds per target] [targets, comma-separated: cc,introspection,userinfo]
// (`npm run bench` is the reference).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { startTestBroker } from '../test/helpers/test-broker.ts';
import { freshPostgresDatabase } from '../test/helpers/postgres.ts';
import { Browser } from '../test/helpers/browser.ts';
import { signIn } from '../test/helpers/login-flow.ts';

const SECONDS = Number(process.argv[2] ?? 5);
const db = await freshPostgresDatabase();
if ('skip' in db) throw new Error(db.skip);
const RP = 'http://127.0.0.1:9/cb';
const big = { points: 100_000_000 };
const broker = await startTestBroker({
  databaseUrl: db.url,
  config: {
    clients: [{ id: 'rp', secret: 'rp-secret-0123456789abcdef', redirectUris: [RP], firstParty: true, grantTypes: ['authorization_code', 'refresh_token', 'client_credentials'] }],
    users: [{ username: 'alice', password: 'alice-password-1', email: 'alice@example.org', groups: ['staff'] }],
    limits: { ip: { login: big, callback: big, token: big, tokenFailures: big } },
  },
});
const BASIC = `Basic ${Buffer.from('rp:rp-secret-0123456789abcdef').toString('base64')}`;
const url = new URL('/auth', broker.issuer);
url.search = new URLSearchParams({ client_id: 'rp', response_type: 'code', redirect_uri: RP, scope: 'openid offline_access groups email profile', prompt: 'consent', state: 'st' }).toString();
const code = new URL(await signIn(new Browser(broker.issuer), url.href, { username: 'alice', password: 'alice-password-1' })).searchParams.get('code')!;
const form = { authorization: BASIC, 'content-type': 'application/x-www-form-urlencoded' };
const tokens = (await (await fetch(`${broker.url}/token`, { method: 'POST', headers: form, body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: RP }) })).json()) as { access_token: string };
const cc = (await (await fetch(`${broker.url}/token`, { method: 'POST', headers: form, body: new URLSearchParams({ grant_type: 'client_credentials' }) })).json()) as { access_token: string };

const dbName = new URL(db.url).pathname.slice(1);
const pgPids = async (): Promise<number[]> => {
  const rows = (await broker.database.knex.raw('SELECT pid FROM pg_stat_activity WHERE datname = ?', [dbName])) as { rows: Array<{ pid: number }> };
  return rows.rows.map((r) => r.pid);
};
const ticks = (pid: number): number => {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
};
const HZ = 100;
const AUTOCANNON = new URL('../node_modules/autocannon/autocannon.js', import.meta.url).href;

const commits = async (): Promise<number> => {
  await new Promise((r) => setTimeout(r, 1500)); // backends report their counts about once a second
  const rows = (await broker.database.knex.raw('SELECT xact_commit FROM pg_stat_database WHERE datname = ?', [dbName])) as { rows: Array<{ xact_commit: string }> };
  return Number(rows.rows[0]!.xact_commit);
};

async function run(name: string, opts: Record<string, unknown>): Promise<void> {
  const xacts0 = await commits();
  const pids = await pgPids();
  const pg0 = pids.reduce((s, p) => s + ticks(p), 0);
  const cpu0 = process.cpuUsage();
  const script = `import a from '${AUTOCANNON}'; const r = await a(${JSON.stringify({ connections: 32, duration: SECONDS, ...opts })}); console.log(JSON.stringify({ n: r.requests.total, rps: r.requests.average, non2xx: r.non2xx }));`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  await new Promise((r) => child.on('exit', r));
  const cpu = process.cpuUsage(cpu0);
  const pids1 = new Set([...pids, ...(await pgPids())]);
  const pg1 = [...pids1].reduce((s, p) => s + ticks(p), 0);
  const r = JSON.parse(out) as { n: number; rps: number; non2xx: number };
  const xacts = ((await commits()) - xacts0 - 2) / r.n;
  const nodeUs = (cpu.user + cpu.system) / r.n;
  const pgUs = ((pg1 - pg0) * 1e6) / HZ / r.n;
  console.log(`${name.padEnd(14)} ${String(Math.round(r.rps)).padStart(6)}/s non2xx ${r.non2xx}  node ${nodeUs.toFixed(0)} us/req  pg ${pgUs.toFixed(0)} us/req  total ${(nodeUs + pgUs).toFixed(0)} us/req  transactions ${xacts.toFixed(2)}/req`);
}

const TARGETS = new Set((process.argv[3] ?? 'cc,introspection,userinfo').split(','));
if (TARGETS.has('cc')) await run('cc', { url: `${broker.url}/token`, method: 'POST', headers: form, body: 'grant_type=client_credentials' });
if (TARGETS.has('introspection')) await run('introspection', { url: `${broker.url}/token/introspection`, method: 'POST', headers: form, body: `token=${cc.access_token}` });
if (TARGETS.has('userinfo')) await run('userinfo', { url: `${broker.url}/me`, headers: { authorization: `Bearer ${tokens.access_token}` } });
await broker.close();
await db.drop();
