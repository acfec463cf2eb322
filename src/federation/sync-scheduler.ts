// Runs each directory connector's import on its configured interval. Several instances may run
// against one database: a lease in the database makes one of them do each run, and a crashed
// holder's lease expires. Connectors added, changed or removed at runtime (admin API) get their
// schedule on `refresh()`. Each run's progress is stored, as for imports started through the API.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { ConnectorRegistry, RegisteredConnector } from '../connectors/registry.ts';
import type { Store } from '../storage/store.ts';
import { runRecordedSync, SYNC_LEASE_MS } from './recorded-sync.ts';

export interface SyncScheduler {
  /** Schedules the registry's connectors as they are now (after a reload). */
  refresh(): void;
  stop(): Promise<void>;
}

interface Job {
  registered: RegisteredConnector;
  timers: NodeJS.Timeout[];
}

export function scheduleDirectorySyncs(deps: { store: Store; registry: ConnectorRegistry; logger: Logger; firstRunMs?: number }): SyncScheduler {
  const holder = randomUUID();
  const jobs = new Map<string, Job>();
  const running = new Set<Promise<void>>();
  let stopped = false;

  const schedule = (registered: RegisteredConnector): Job => {
    const sync = registered.connector.sync!;
    const lease = `sync:${registered.id}`;
    const logger = deps.logger.child({ connector: { type: registered.type, id: registered.id } });
    let busy = false;

    const run = async () => {
      if (busy || stopped || deps.registry.get(registered.id) !== registered) return;
      busy = true;
      try {
        if (!(await deps.store.leases.acquire(lease, holder, SYNC_LEASE_MS))) {
          logger.debug('directory import skipped: another instance holds the lease');
          return;
        }
        const syncId = randomUUID();
        try {
          await deps.store.connectors.startSync(syncId, registered.id, {});
        } catch (err) {
          await deps.store.leases.release(lease, holder).catch(() => {});
          throw err;
        }
        const result = await runRecordedSync({ store: deps.store, logger }, { syncId, connectorId: registered.id, sync, mappers: registered.policy.mappers, lease, holder });
        if (result) logger.info({ ...result }, 'directory import done');
      } catch (err) {
        logger.error({ err }, 'directory import failed');
      } finally {
        busy = false;
      }
    };
    const track = () => {
      const p = run();
      running.add(p);
      void p.finally(() => running.delete(p));
    };
    const first = setTimeout(track, deps.firstRunMs ?? 5_000);
    const every = setInterval(track, sync.intervalMinutes * 60_000);
    first.unref();
    every.unref();
    return { registered, timers: [first, every] };
  };

  const refresh = () => {
    if (stopped) return;
    const wanted = new Map(deps.registry.list().filter((r) => r.connector.sync && r.connector.sync.intervalMinutes > 0).map((r) => [r.id, r]));
    for (const [id, job] of jobs) {
      if (wanted.get(id) === job.registered) continue;
      for (const t of job.timers) clearTimeout(t);
      jobs.delete(id);
    }
    for (const [id, registered] of wanted) if (!jobs.has(id)) jobs.set(id, schedule(registered));
  };
  refresh();

  return {
    refresh,
    async stop() {
      stopped = true;
      for (const job of jobs.values()) for (const t of job.timers) clearTimeout(t);
      jobs.clear();
      await Promise.allSettled([...running]);
    },
  };
}
