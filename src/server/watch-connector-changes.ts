// Tells this instance when the stored connectors changed (on any instance), so it reloads them
// without a restart. Today a tiny poll of the connectors table (row count and a digest of ids
// and updated_at, one aggregate over a table of tens of rows) every second; the change feed
// (LISTEN/NOTIFY) can replace the poll behind this same function.
import type { Logger } from 'pino';
import type { ConnectorRepository } from '../storage/connector-repository.ts';
import { isDatabaseUnavailable } from '../storage/database-unavailable.ts';

export interface ConnectorWatch {
  /** Looks now (after a change made on this instance) and waits for the reload it triggers. */
  check(): Promise<void>;
  stop(): Promise<void>;
}

/** `stamp`: the table's changeStamp() taken before the connectors running now were loaded. */
export function watchConnectorChanges(deps: { connectors: ConnectorRepository; logger: Logger; stamp: string; intervalMs?: number; onChange: () => Promise<void> }): ConnectorWatch {
  let stamp = deps.stamp;
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = false;

  const look = async () => {
    const next = await deps.connectors.changeStamp();
    if (next === stamp) return;
    stamp = next;
    await deps.onChange();
  };

  // One look at a time; a check asked for during a look runs right after it.
  const check = (): Promise<void> => {
    if (stopped) return Promise.resolve();
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          await look();
        } while (again && !stopped);
      } catch (err) {
        // An outage is logged once by the database layer; the next look after it catches up.
        if (isDatabaseUnavailable(err)) deps.logger.debug('connector change check skipped: database unavailable');
        else deps.logger.warn({ err }, 'connector change check failed');
      } finally {
        running = undefined;
      }
    })();
    return running;
  };

  const timer = setInterval(() => void check(), deps.intervalMs ?? 1000);
  timer.unref();
  return {
    check,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
