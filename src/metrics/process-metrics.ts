// Process-level series (CPU, memory, GC, event-loop lag: prom-client's default metrics) in one
// private registry per process, shared by every broker instance in it. They describe the
// process, not an instance; and prom-client's collectors cannot be stopped (the event-loop
// delay monitor and the GC observer live as long as the process), so one set per process is
// the only way several brokers in one process (tests, embedding) do not pile up monitors.
// Never the global default registry: an embedding application may use that for itself.
import { Registry, collectDefaultMetrics } from 'prom-client';

let shared: Registry | undefined;

export function processMetrics(): Registry {
  if (!shared) {
    shared = new Registry();
    collectDefaultMetrics({ register: shared });
  }
  return shared;
}
