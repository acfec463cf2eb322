// Two broker processes on one PostgreSQL database, 12 refresh chains alternating between them,
// and one process killed with SIGKILL mid-load. A client whose request failed in transit
// retries the same refresh token on the surviving instance, as a real client whose response
// was lost would. Before the refresh reuse grace, a request the dead instance had already
// rotated made that retry "reuse" and revoked the grant (1-5 of 12 chains lost); now no chain
// is lost. Bounded in count (12 chains x 24 refreshes, three kills) and loopback only.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { freshPostgresDatabase } from '../helpers/postgres.ts';
import { freePort } from '../helpers/free-port.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { codeFlowTokens, refresh, RP } from './fault-broker.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLIENT = { id: 'rp', secret: 'rp-secret-0123456789abcdef' };
const CHAINS = 12;
const REFRESHES_PER_CHAIN = 24;
// The first instance is killed (and restarted) three times, at these counts of successful
// refreshes overall: whether a kill lands between a rotation and its response is chance, so
// one kill alone would not reliably catch a regression.
const KILL_POINTS = [1, 2, 3].map((q) => (CHAINS * REFRESHES_PER_CHAIN * q) / 4);

interface Instance {
  url: string;
  child: ChildProcess;
  output: string[];
  alive: boolean;
}

async function startInstance(configFile: string, url: string): Promise<Instance> {
  const child = spawn(process.execPath, ['src/cli/main.ts', 'serve', '-c', configFile], { cwd: ROOT, env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const instance: Instance = { url, child, output: [], alive: true };
  child.stdout!.on('data', (d: Buffer) => instance.output.push(d.toString()));
  child.stderr!.on('data', (d: Buffer) => instance.output.push(d.toString()));
  child.on('exit', () => {
    instance.alive = false;
  });
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && instance.alive) {
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) return instance;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`instance at ${url} did not become ready:\n${instance.output.join('')}`);
}

describe('refresh chains survive an instance killed mid-load', () => {
  let db: Awaited<ReturnType<typeof freshPostgresDatabase>>;
  let dir: string;
  let a: Instance | undefined;
  let b: Instance | undefined;
  let aConfig: string;

  before(async () => {
    db = await freshPostgresDatabase();
    if ('skip' in db) return;
    dir = mkdtempSync(path.join(os.tmpdir(), 'kb-refresh-kill-'));
    const [issuerPort, otherPort] = [await freePort(), await freePort()];
    const config = (port: number) => ({
      issuer: `http://127.0.0.1:${issuerPort}`,
      http: { listen: `127.0.0.1:${port}` },
      database: { url: (db as { url: string }).url },
      log: { level: 'warn' },
      // This suite is about faults, not throttling: 12 sign-ins and ~200 refreshes from one IP.
      limits: { enabled: false },
      clients: [{ ...CLIENT, redirectUris: [RP], firstParty: true }],
      users: [{ username: 'alice', password: 'alice-password-1', email: 'alice@example.org' }],
    });
    writeFileSync(path.join(dir, 'a.yaml'), stringify(config(issuerPort)));
    writeFileSync(path.join(dir, 'b.yaml'), stringify(config(otherPort)));
    // One after the other: the first migrates, the second finds the schema ready.
    aConfig = path.join(dir, 'a.yaml');
    a = await startInstance(aConfig, `http://127.0.0.1:${issuerPort}`);
    b = await startInstance(path.join(dir, 'b.yaml'), `http://127.0.0.1:${otherPort}`);
  });

  after(async () => {
    for (const instance of [a, b]) if (instance?.alive) instance.child.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (db && !('skip' in db)) await db.drop();
  });

  test('no chain is lost', { timeout: 180_000 }, async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const second = b!;
    const chains: string[] = [];
    for (let i = 0; i < CHAINS; i++) chains.push((await codeFlowTokens(a!.url, CLIENT)).refresh_token);

    let succeeded = 0;
    let kills = 0;
    let retriedAfterFailure = 0;
    const lost: string[] = [];
    // Resolved while the first instance is up; requests meant for it wait while it restarts.
    let firstReady: Promise<void> = Promise.resolve();
    let restarting = false;

    const killFirst = () => {
      const victim = a!;
      victim.child.kill('SIGKILL');
      kills++;
      restarting = true;
      // Back on the same port once it died, as an orchestrator would restart it.
      firstReady = new Promise((r) => victim.child.once('exit', r)).then(async () => {
        a = await startInstance(aConfig, victim.url);
        restarting = false;
      });
    };

    const runChain = async (index: number) => {
      let token = chains[index];
      for (let i = 0; i < REFRESHES_PER_CHAIN; i++) {
        // Alternate instances while both live; a failed request is retried, same token, elsewhere.
        const toFirst = (i + index) % 2 === 0;
        if (toFirst) await firstReady;
        let target = toFirst ? a! : second;
        for (let attempt = 0; ; attempt++) {
          if (!target.alive) target = second;
          let result: Awaited<ReturnType<typeof refresh>> | undefined;
          try {
            result = await refresh(target.url, CLIENT, token);
          } catch {
            // The connection died with the instance: the response (if any) is lost.
          }
          if (result?.status === 200) {
            token = result.body.refresh_token;
            succeeded++;
            if (kills < KILL_POINTS.filter((p) => succeeded >= p).length && !restarting) killFirst();
            break;
          }
          if (result && result.status < 500) {
            lost.push(`chain ${index} step ${i}: ${result.status} ${JSON.stringify(result.body)}`);
            return;
          }
          assert.ok(attempt < 5, `chain ${index} step ${i}: no instance answered`);
          retriedAfterFailure++;
          target = second;
        }
      }
      chains[index] = token;
    };
    await Promise.all(chains.map((_, i) => runChain(i)));
    await firstReady;

    assert.equal(kills, KILL_POINTS.length, 'the first instance was killed during the load, each time');
    assert.deepEqual(lost, [], `chains lost (${retriedAfterFailure} requests were retried after the kill)`);
    // Every chain still refreshes on the survivor.
    for (const [i, token] of chains.entries()) {
      const final = await refresh(second.url, CLIENT, token);
      assert.equal(final.status, 200, `chain ${i} at the end: ${JSON.stringify(final.body)}`);
    }
    const errors = second.output.join('').split('\n').filter((l) => /"level":(50|60)/.test(l));
    assert.deepEqual(errors, [], 'the survivor logged no errors');
    t.diagnostic(`${kills} kills; requests retried on the survivor: ${retriedAfterFailure}`);
  });
});
