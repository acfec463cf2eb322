import { openDatabase } from '../../src/storage/database.ts';
import { freshPostgresDatabase } from '../helpers/postgres.ts';
import { storageConformance } from './conformance.ts';

storageConformance('PostgreSQL', async () => {
  const fresh = await freshPostgresDatabase();
  if ('skip' in fresh) return fresh;
  const db = await openDatabase({ url: fresh.url });
  return {
    knex: db.knex,
    serialize: true,
    statements: db.pg?.statements,
    async cleanup() {
      await db.close();
      await fresh.drop();
    },
  };
});
