// One process at a time on an embedded PGlite data folder. PGlite is PostgreSQL running inside
// the process that opens it, with no server between processes: a second process opening the
// same folder (a CLI command beside a running broker, a second broker) would write the same
// files with its own idea of them and corrupt the database. The broker also keeps the folder's
// token records in memory (artifact-cache.ts), which is only right while it is the only writer.
//
// The lock is a file beside the folder holding the owner's process id, created exclusively. A
// lock whose process is gone (killed, crashed) is taken over.
import { closeSync, linkSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { KeybridgeError } from '../errors.ts';

export class DatabaseInUse extends KeybridgeError {
  constructor(dir: string, pid: number) {
    super(
      'database_in_use',
      `the embedded database ${dir} is in use by process ${pid} (a running Keybridge?): stop it first, or use PostgreSQL (database.url) to run several processes on one database. If process ${pid} is not Keybridge (its number was reused after a crash), delete ${dir}.lock`,
      { status: 503, expose: true },
    );
  }
}

function alive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the folder's lock for this process; returns its release. Throws DatabaseInUse if a live process holds it. */
export function lockDataDir(dir: string): () => void {
  const file = `${dir}.lock`;
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      try {
        writeSync(fd, `${process.pid}\n`);
      } finally {
        closeSync(fd);
      }
      return () => {
        try {
          if (Number(readFileSync(file, 'utf8').trim()) === process.pid) rmSync(file, { force: true });
        } catch {
          // Already gone.
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let owner = NaN;
    try {
      owner = Number(readFileSync(file, 'utf8').trim());
    } catch {
      // Removed meanwhile: try again.
    }
    if (alive(owner)) throw new DatabaseInUse(dir, owner);
    if (attempt >= 2) throw new Error(`cannot take the lock ${file} of the embedded database`);
    clearStaleLock(dir, owner);
  }
}

/**
 * Removes the lock of `dir` that was read as held by `stale`, a process that is gone. Two
 * processes starting after a crash find the same stale lock; had both deleted it, the second
 * could delete the lock the first had just created, and both would open the folder. So the lock
 * is moved aside first (a rename: it leaves the name free for one exclusive create at a time)
 * and read again there; a live process's lock, taken since it was read, goes back and stands.
 */
export function clearStaleLock(dir: string, stale: number): void {
  const file = `${dir}.lock`;
  const aside = `${file}.${process.pid}`;
  try {
    renameSync(file, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  let holder = NaN;
  try {
    holder = Number(readFileSync(aside, 'utf8').trim());
  } catch {
    // Unreadable: treated as stale.
  }
  try {
    if (holder !== stale && alive(holder)) {
      try {
        linkSync(aside, file);
      } catch {
        // Another lock is there already: it stands.
      }
      throw new DatabaseInUse(dir, holder);
    }
  } finally {
    rmSync(aside, { force: true });
  }
}
