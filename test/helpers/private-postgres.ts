// A PostgreSQL cluster of the suite's own (initdb on a free port, in a temporary folder), for
// tests that stop, kill or freeze the database: never the shared server. As root, the server
// runs as the `postgres` OS user (PostgreSQL refuses to run as root).
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './free-port.ts';

export interface PrivatePostgres {
  /** Connection URL of the cluster's `postgres` database. */
  url: string;
  port: number;
  /** Starts the server again after stop(), on the same port and data. */
  start(): void;
  /** Stops the server at once (pg_ctl -m immediate): connections drop, new ones are refused. */
  stop(): void;
  /** Freezes the postmaster and every backend (SIGSTOP): connections hang, nothing answers. */
  freeze(): void;
  /** Resumes a frozen server (SIGCONT). */
  thaw(): void;
  /** Stops the server and deletes its folder; safe to call more than once. */
  destroy(): void;
}

function binDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).filter((v) => existsSync(path.join(root, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
  return versions.length ? path.join(root, versions[0], 'bin') : undefined;
}

export async function privatePostgres(): Promise<PrivatePostgres | { skip: string }> {
  const bin = binDir();
  if (!bin) return { skip: 'no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb) to run a private cluster' };
  const asRoot = process.getuid?.() === 0;
  let owner: { uid: number; gid: number } | undefined;
  if (asRoot) {
    const id = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    if (id.status !== 0) return { skip: 'running as root without a postgres OS user to run a private cluster' };
    owner = { uid: Number(id.stdout.trim()), gid: Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim()) };
  }
  const run = (cmd: string, args: string[]) => {
    const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', path.join(bin, cmd), ...args]] : [path.join(bin, cmd), args];
    return execFileSync(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 60_000 });
  };

  const dir = mkdtempSync(path.join(os.tmpdir(), 'kb-private-pg-'));
  if (owner) chownSync(dir, owner.uid, owner.gid);
  const data = path.join(dir, 'data');
  const port = await freePort();
  let destroyed = false;
  let frozen = false;
  try {
    run('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync', '--no-instructions']);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    return { skip: `initdb failed: ${(err as { stderr?: string }).stderr ?? (err as Error).message}` };
  }
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50`;
  const start = () => run('pg_ctl', ['-D', data, '-o', options, '-l', path.join(dir, 'log'), '-w', '-t', '30', 'start']);

  /** The postmaster and all its children (backends and auxiliary processes). */
  const pids = (): number[] => {
    const pidFile = path.join(data, 'postmaster.pid');
    if (!existsSync(pidFile)) return [];
    const postmaster = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
    const children = spawnSync('pgrep', ['-P', String(postmaster)], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number);
    return [postmaster, ...children];
  };
  const signal = (sig: NodeJS.Signals) => {
    for (const pid of pids()) {
      try {
        process.kill(pid, sig);
      } catch {
        // already gone
      }
    }
  };

  try {
    start();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    return { skip: `pg_ctl start failed: ${(err as { stderr?: string }).stderr ?? (err as Error).message}` };
  }

  const cluster: PrivatePostgres = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    start,
    stop() {
      run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
    },
    freeze() {
      frozen = true;
      signal('SIGSTOP');
    },
    thaw() {
      frozen = false;
      signal('SIGCONT');
    },
    destroy() {
      if (destroyed) return;
      destroyed = true;
      if (frozen) cluster.thaw();
      try {
        run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } catch {
        // not running
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  // A crashed suite must not leave a server behind.
  process.once('exit', () => cluster.destroy());
  return cluster;
}
