import { startTestBroker } from '../test/helpers/test-broker.ts';
import { freshPostgresDatabase } from '../test/helpers/postgres.ts';
import { Browser } from '../test/helpers/browser.ts';
import { signIn } from '../test/helpers/login-flow.ts';

const db = await freshPostgresDatabase();
if ('skip' in db) throw new Error(db.skip);
const RP = 'http://127.0.0.1:9/cb';
const big = { points: 100_000_000 };
{ const { default: knexF } = await import('knex'); const k = knexF({ client: 'pg', connection: db.url }); const name = new URL(db.url).pathname.slice(1);
  await k.destroy(); }
const broker = await startTestBroker({
  databaseUrl: db.url,
  config: {
    clients: [{ id: 'rp', secret: 'rp-secret-0123456789abcdef', redirectUris: [RP], firstParty: true, grantTypes: ['authorization_code', 'refresh_token'] }],
    users: [{ username: 'alice', password: 'alice-password-1', email: 'alice@example.org', groups: ['staff'] }],
    limits: { ip: { login: big, callback: big, token: big, tokenFailures: big } },
  },
});
const BASIC = `Basic ${Buffer.from('rp:rp-secret-0123456789abcdef').toString('base64')}`;
async function login() {
  const url = new URL('/auth', broker.issuer);
  url.search = new URLSearchParams({ client_id: 'rp', response_type: 'code', redirect_uri: RP, scope: 'openid', state: 'st' }).toString();
  const code = new URL(await signIn(new Browser(broker.issuer), url.href, { username: 'alice', password: 'alice-password-1' })).searchParams.get('code')!;
  const r = await fetch(`${broker.url}/token`, { method: 'POST', headers: { authorization: BASIC, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: RP }) });
  if (!r.ok) throw new Error(await r.text());
}
const stats = async () => {
  await new Promise((r) => setTimeout(r, 1200));
  const { rows } = (await broker.database.knex.raw('SELECT relname, seq_scan, seq_tup_read, idx_scan, idx_tup_fetch, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables')) as { rows: Array<Record<string, string>> };
  return new Map(rows.map((r) => [r.relname, r]));
};
await broker.database.knex.raw(`INSERT INTO oidc_payloads (kind, id, payload, expires_at) SELECT 'ClientCredentials', md5(g::text), jsonb_build_object('kind','ClientCredentials','jti',md5(g::text),'clientId','rp','scope','', 'exp', 2000000000), now() + interval '1 hour' FROM generate_series(1, 100000) g`);
await broker.database.knex.raw('ANALYZE oidc_payloads');
const N = Number(process.argv[2] ?? 100);
await Promise.all(Array.from({ length: 8 }, async () => { for (let i = 0; i < N / 8; i++) await login(); }));
const a = await stats();
const M = 40;
await Promise.all(Array.from({ length: 8 }, async () => { for (let i = 0; i < M / 8; i++) await login(); }));
const b = await stats();
for (const [name, r] of b) {
  const o = a.get(name)!;
  const d = (k: string) => ((Number(r[k]) - Number(o[k])) / M).toFixed(1);
  if (Number(r.seq_tup_read) - Number(o.seq_tup_read) + Number(r.idx_tup_fetch) - Number(o.idx_tup_fetch) + Number(r.idx_scan) - Number(o.idx_scan) + Number(r.seq_scan) - Number(o.seq_scan) + Number(r.n_tup_ins) - Number(o.n_tup_ins) + Number(r.n_tup_upd) - Number(o.n_tup_upd) === 0) continue;
  console.log(name.padEnd(28), 'seq', d('seq_scan'), 'seqrows', d('seq_tup_read'), 'idx', d('idx_scan'), 'idxrows', d('idx_tup_fetch'), 'ins', d('n_tup_ins'), 'upd', d('n_tup_upd'), 'del', d('n_tup_del'));
}
{
  const { HOT_PATH_SQL } = await import('../src/storage/oidc-adapter.ts');
  const k = broker.database.knex;
  await k.raw('ANALYZE oidc_payloads');
  await k.transaction(async (tx) => {
    await tx.raw('SET LOCAL plan_cache_mode = force_generic_plan');
    await tx.raw(`PREPARE zz(text[], text[]) AS ${HOT_PATH_SQL.findWithGrant.text}`);
    const r = await tx.raw(`EXPLAIN (ANALYZE, COSTS OFF) EXECUTE zz('{AuthorizationCode,AccessToken}', '{abc,def}')`);
    console.log(r.rows.map((x: { 'QUERY PLAN': string }) => x['QUERY PLAN']).join('\n'));
    await tx.raw('DEALLOCATE zz');
  });
  const c = await k.raw(`SELECT kind, count(*) FROM oidc_payloads GROUP BY kind`);
  console.log(c.rows);
}
await broker.close();
await db.drop();
