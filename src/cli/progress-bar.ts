// A one-line progress display for long CLI jobs: redrawn in place on a terminal, a line at most
// once a second (and the final one) when the output is a file or a pipe.
import type { SyncProgress } from '../federation/sync-directory.ts';

export function syncProgressLine(p: Readonly<SyncProgress>, width = 30): string {
  const counts = `created ${p.created}, updated ${p.updated}, unchanged ${p.unchanged}, disabled ${p.disabled}, enabled ${p.enabled}`;
  if (!p.total) return `${p.processed} users (${counts})`;
  const ratio = Math.min(1, p.processed / p.total);
  const filled = Math.round(ratio * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.floor(ratio * 100)).padStart(3)}% ${p.processed}/${p.total} users (${counts})`;
}

export function createProgressReporter(stream: NodeJS.WriteStream): { update(p: Readonly<SyncProgress>): void; done(p: Readonly<SyncProgress>): void } {
  let last = 0;
  return {
    update(p) {
      if (stream.isTTY) {
        stream.write(`\r\x1b[2K${syncProgressLine(p)}`);
        return;
      }
      if (Date.now() - last < 1000) return;
      last = Date.now();
      stream.write(`${syncProgressLine(p)}\n`);
    },
    done(p) {
      stream.write(stream.isTTY ? `\r\x1b[2K${syncProgressLine(p)}\n` : `${syncProgressLine(p)}\n`);
    },
  };
}
