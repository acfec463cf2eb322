// A fresh PostgreSQL database per run, created through the admin URL in DATABASE_URL (default:
// the local server) and dropped at the end.
import { randomBytes } from 'node:crypto';
import knexFactory from 'knex';

export async function freshPostgresDatabase(): Promise<{ url: string; drop(): Promise<void> } | { skip: string }> {
  const adminUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const admin = knexFactory({ client: 'pg', connection: { connectionString: adminUrl, connectionTimeoutMillis: 3000 }, pool: { min: 0, max: 1 } });
  const name = `kb_test_${randomBytes(6).toString('hex')}`;
  try {
    await admin.raw(`CREATE DATABASE ${name}`);
  } catch (err) {
    await admin.destroy();
    return { skip: `PostgreSQL is not reachable at ${adminUrl.replace(/:[^:@/]*@/, ':***@')} (${(err as Error).message})` };
  }
  await admin.destroy();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.href,
    async drop() {
      const k = knexFactory({ client: 'pg', connection: adminUrl, pool: { min: 0, max: 1 } });
      try {
        await k.raw('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ? AND pid <> pg_backend_pid()', [name]);
        await k.raw(`DROP DATABASE IF EXISTS ${name}`);
      } finally {
        await k.destroy();
      }
    },
  };
}
