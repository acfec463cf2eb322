// One directory import whose progress is stored as it goes (connector_syncs), so any instance
// can report it: the admin API's on-demand imports and the scheduled ones alike. The caller holds
// the connector's import lease and has stored the run as started; this renews the lease while
// the import runs, stores progress (at most twice a second) and the outcome, then releases it.
import type { Logger } from 'pino';
import type { DirectorySync } from '../connectors/contract.ts';
import type { Mappers } from '../accounts/identity-mappers.ts';
import type { Store } from '../storage/store.ts';
import { syncDirectory, type SyncProgress } from './sync-directory.ts';

export const SYNC_LEASE_MS = 10 * 60_000;
const RENEW_MS = 60_000;
const PROGRESS_WRITE_MS = 500;

export async function runRecordedSync(deps: { store: Store; logger: Logger }, run: { syncId: string; connectorId: string; sync: DirectorySync; mappers?: Mappers; lease: string; holder: string }): Promise<SyncProgress | null> {
  const { store, logger } = deps;
  let written = 0;
  let renewed = Date.now();
  let writing: Promise<unknown> = Promise.resolve();
  try {
    const result = await syncDirectory(store, run.connectorId, run.sync, {
      mappers: run.mappers,
      onProgress: (p: Readonly<SyncProgress>) => {
        const now = Date.now();
        if (now - written >= PROGRESS_WRITE_MS) {
          written = now;
          writing = writing.then(() => store.connectors.updateSync(run.syncId, { progress: { ...p } })).catch((err) => logger.warn({ err }, 'import progress not stored'));
        }
        if (now - renewed >= RENEW_MS) {
          renewed = now;
          store.leases.acquire(run.lease, run.holder, SYNC_LEASE_MS).catch((err) => logger.warn({ err }, 'import lease renewal failed'));
        }
      },
    });
    await writing;
    await store.connectors.updateSync(run.syncId, { state: 'succeeded', progress: { ...result }, finished: true });
    return result;
  } catch (err) {
    await writing;
    logger.error({ err }, 'directory import failed');
    await store.connectors.updateSync(run.syncId, { state: 'failed', error: (err as Error).message.slice(0, 2000), finished: true }).catch(() => {});
    return null;
  } finally {
    // Released, not left to expire, so the next run may start on any instance.
    await store.leases.release(run.lease, run.holder).catch(() => {});
  }
}
