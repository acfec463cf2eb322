// A throwaway Samba 4 Active Directory DC (realm EXAMPLE.TEST) for connector tests.
//
// Samba hard-codes its LDAP ports (389/636, plus GC 3268/3269), so only one can run per host. A
// host-wide mutex (an abstract unix socket: the kernel frees it when its holder dies) serialises
// starts across test processes and concurrent calls; whoever holds it kills any Samba a crashed
// run left in a `keybridge-samba-run-*` dir. Provisioning + seeding (~10 s) happens once into a
// cached template; each start copies it into a fresh mkdtemp dir. That relocation is safe because
// the only absolute paths a provision writes are in etc/smb.conf (the ldb/tdb files store none;
// checked with grep), and the template's smb.conf carries a placeholder in their place.
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Client } from 'ldapts';

export interface SambaAd {
  url: string;
  ldapsUrl: string;
  caFile: string;
  caPem: string;
  baseDn: string;
  realm: string;
  domain: string;
  adminUpn: string;
  adminPassword: string;
  serviceUpn: string;
  servicePassword: string;
  serviceDn: string;
  smbConf: string;
  dir: string;
  stop(): Promise<void>;
}

const run = promisify(execFile);
const PY = '/usr/bin/python3'; // Debian's python carries the samba bindings; a pyenv shim would not
const TMP = os.tmpdir();
const RUN_PREFIX = 'keybridge-samba-run-';
const TEMPLATE_PREFIX = 'keybridge-samba-template-';
const STAGE_PREFIX = 'keybridge-samba-stage-';
const DIR_TOKEN = '@KEYBRIDGE_SAMBA_DIR@';
const MUTEX = '\0keybridge-samba-ad'; // Linux abstract socket name
const PORTS = [389, 636, 3268, 3269];
const SELF = fileURLToPath(import.meta.url);
const SEED = fileURLToPath(new URL('./samba-ad-seed.py', import.meta.url));
const ADMIN_PASSWORD = 'Adm1n#Pass';

// Added to [global]; provision itself persists only a few --option values.
function globalOptions(d: string): string {
  return [
    'ldap server require strong auth = no', // else simple binds on plain 389 fail with strongerAuthRequired
    'server services = ldap', // LDAP only (no kdc/drepl/kcc/smb): enough for binds, lockout, password changes
    'tls enabled = yes',
    `tls keyfile = ${d}/tls/key.pem`,
    `tls certfile = ${d}/tls/cert.pem`,
    `tls cafile = ${d}/tls/ca.pem`,
    `pid directory = ${d}/run`, // keep everything out of /run/samba and /var
    `ncalrpc dir = ${d}/run/ncalrpc`,
    `winbindd socket directory = ${d}/run/winbindd`,
    `ntp signd socket directory = ${d}/run/ntp_signd`,
    `log file = ${d}/log/samba.log`,
    'logging = file',
    'log level = 1',
  ].map((l) => `\t${l}\n`).join('');
}

export async function startSambaAd(): Promise<SambaAd | { skip: string }> {
  if (process.platform !== 'linux') return { skip: 'the Samba AD fixture needs Linux' };
  if (process.getuid?.() !== 0) return { skip: 'the Samba AD fixture needs root (Samba binds ports 389/636)' };
  const installed = ensureSamba();
  if (typeof installed === 'string') return { skip: installed };

  const mutex = await acquireMutex(120_000);
  if (!mutex) return { skip: 'another Samba AD fixture still held ports 389/636 after 120 s (stop() not called?)' };
  let dir = '';
  try {
    await killStaleRuns();
    for (const port of PORTS) {
      if (installed && (await portBusy(port))) killPackageSamba(port); // postinst may have started one
      if (await portBusy(port)) {
        mutex.close();
        return { skip: `port ${port} on 127.0.0.1 is in use: ${listener(port)}` };
      }
    }
    const template = await ensureTemplate();
    dir = await fs.mkdtemp(path.join(TMP, RUN_PREFIX));
    await run('cp', ['-a', `${template}/.`, dir]);
    const smbConf = path.join(dir, 'etc/smb.conf');
    await fs.writeFile(smbConf, (await fs.readFile(smbConf, 'utf8')).replaceAll(DIR_TOKEN, dir));
    await run('samba', ['-s', smbConf, '-M', 'single', '-D'], { cwd: dir }); // daemonises; PID in run/samba.pid
    await waitReady(dir);
    const caFile = path.join(dir, 'tls/ca.pem');
    let stopping: Promise<void> | undefined;
    return {
      url: 'ldap://127.0.0.1:389',
      ldapsUrl: 'ldaps://127.0.0.1:636',
      caFile,
      caPem: await fs.readFile(caFile, 'utf8'),
      baseDn: 'DC=example,DC=test',
      realm: 'EXAMPLE.TEST',
      domain: 'EXAMPLE',
      adminUpn: 'Administrator@example.test',
      adminPassword: ADMIN_PASSWORD,
      serviceUpn: 'svc-broker@example.test',
      servicePassword: 'Svc#Broker1',
      serviceDn: 'CN=svc-broker,CN=Users,DC=example,DC=test',
      smbConf,
      dir,
      stop: () => (stopping ??= teardown(dir).finally(() => mutex.close())),
    };
  } catch (err) {
    if (dir) await teardown(dir).catch(() => {});
    mutex.close();
    throw err;
  }
}

/** null when Samba is usable, a skip reason when not; true when it was installed just now. */
function ensureSamba(): string | true | null {
  const ok = () =>
    ['samba', 'samba-tool', 'openssl'].every((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status === 0) &&
    spawnSync(PY, ['-c', 'import samba.samdb']).status === 0;
  if (ok()) return null;
  if (!existsSync('/usr/bin/apt-get')) return 'Samba is not installed and there is no apt-get to install it';
  const policy = '/usr/sbin/policy-rc.d'; // exit 101: postinst must not start system daemons
  const ownPolicy = !existsSync(policy);
  if (ownPolicy) spawnSync('sh', ['-c', `printf '#!/bin/sh\\nexit 101\\n' >${policy} && chmod +x ${policy}`]);
  try {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const install = () => spawnSync('apt-get', ['install', '-y', '-q', 'samba', 'ldap-utils', 'openssl'], { env, encoding: 'utf8', timeout: 900_000 });
    let r = install();
    if (r.status !== 0) { // stale package lists are the usual cause
      spawnSync('apt-get', ['update', '-q'], { env, timeout: 300_000 });
      r = install();
    }
    if (r.status !== 0 || !ok()) return `installing samba failed: ${(r.stderr || r.stdout || String(r.error)).trim().split('\n').slice(-3).join(' | ')}`;
  } finally {
    if (ownPolicy) spawnSync('rm', ['-f', policy]);
  }
  return true;
}

/** Host-wide mutex; retried until `ms` passed. The server is unref'd so it never keeps node alive. */
async function acquireMutex(ms: number): Promise<net.Server | null> {
  const deadline = Date.now() + ms;
  for (;;) {
    const srv = net.createServer();
    const got = await new Promise<boolean>((resolve) => {
      srv.once('error', () => resolve(false));
      srv.listen(MUTEX, () => resolve(true));
    });
    if (got) return srv.unref();
    if (Date.now() > deadline) return null;
    await sleep(250);
  }
}

/** Run/stage dirs present while we hold the mutex are left over from a crashed run. */
async function killStaleRuns(): Promise<void> {
  for (const name of await fs.readdir(TMP)) {
    if (name.startsWith(RUN_PREFIX) || name.startsWith(STAGE_PREFIX)) await teardown(path.join(TMP, name));
  }
}

/** Kill the Samba whose PID file is in `dir` (only if that process has files in `dir` open), then rm dir. */
async function teardown(dir: string): Promise<void> {
  const pid = readPid(dir);
  if (pid > 0 && alive(pid) && holdsFileIn(pid, dir)) {
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + 10_000;
    while (alive(pid) && Date.now() < deadline) await sleep(50);
    if (alive(pid)) process.kill(pid, 'SIGKILL');
    while (alive(pid)) await sleep(50);
  }
  await fs.rm(dir, { recursive: true, force: true });
}

/** Samba rewrites its command line ("samba: root process"), so look at its open files instead. */
function holdsFileIn(pid: number, dir: string): boolean {
  try {
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith(`${dir}/`);
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

function readPid(dir: string): number {
  try {
    return Number(readFileSync(path.join(dir, 'run/samba.pid'), 'utf8').trim());
  } catch {
    return 0;
  }
}

/** Running and not a zombie (our container's init may not reap the daemonised Samba). */
function alive(pid: number): boolean {
  try {
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function portBusy(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(true));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(false)));
  });
}

function listener(port: number): string {
  const out = spawnSync('ss', ['-ltnpH', `sport = :${port}`], { encoding: 'utf8' }).stdout?.trim();
  return out || 'unknown process';
}

/** Only after we installed the package: stop a system samba/smbd its postinst may have started. */
function killPackageSamba(port: number): void {
  for (const m of listener(port).matchAll(/\("(samba|smbd)",pid=(\d+)/g)) process.kill(Number(m[2]), 'SIGTERM');
  spawnSync('sleep', ['1']);
}

/** The provisioned + seeded prefix, cached per (seed script, this file, Samba version). */
async function ensureTemplate(): Promise<string> {
  const version = spawnSync('samba', ['--version'], { encoding: 'utf8' }).stdout;
  const hash = createHash('sha256').update(readFileSync(SEED)).update(readFileSync(SELF)).update(version).digest('hex').slice(0, 16);
  const template = path.join(TMP, TEMPLATE_PREFIX + hash);
  if (existsSync(path.join(template, 'etc/smb.conf'))) return template;

  const stage = await fs.mkdtemp(path.join(TMP, STAGE_PREFIX));
  try {
    await makeTls(path.join(stage, 'tls'));
    await fs.writeFile(path.join(stage, 'empty.conf'), ''); // never read the system /etc/samba/smb.conf
    await step('provision', 'samba-tool', ['domain', 'provision', '-s', path.join(stage, 'empty.conf'),
      '--realm=EXAMPLE.TEST', '--domain=EXAMPLE', '--server-role=dc', '--dns-backend=NONE', '--use-rfc2307',
      `--adminpass=${ADMIN_PASSWORD}`, `--targetdir=${stage}`, '--host-name=dc1', '--host-ip=127.0.0.1',
      '--option=interfaces = 127.0.0.1', '--option=bind interfaces only = yes']);
    const conf = path.join(stage, 'etc/smb.conf');
    const generated = (await fs.readFile(conf, 'utf8')).replace(/^\s*server services\s*=.*\n/m, ''); // default list incl. s3fs, winbindd
    await fs.writeFile(conf, generated.replace('[global]\n', `[global]\n${globalOptions(stage)}`));
    await fs.mkdir(path.join(stage, 'run'));
    await fs.mkdir(path.join(stage, 'log'));
    await step('seed', PY, [SEED, conf]);
    await fs.writeFile(conf, (await fs.readFile(conf, 'utf8')).replaceAll(stage, DIR_TOKEN));
    await fs.rm(path.join(stage, 'empty.conf'));
    for (const name of await fs.readdir(TMP)) { // drop templates of older fixture versions
      if (name.startsWith(TEMPLATE_PREFIX)) await fs.rm(path.join(TMP, name), { recursive: true, force: true });
    }
    await fs.rename(stage, template); // atomic: a half-built template is never visible
    return template;
  } finally {
    await fs.rm(stage, { recursive: true, force: true });
  }
}

/** Own CA + server cert: Samba's self-generated one has no IP SAN, so 127.0.0.1 would fail verification. */
async function makeTls(d: string): Promise<void> {
  await fs.mkdir(d, { recursive: true });
  const ssl = (args: string[]) => step('openssl', 'openssl', args, d);
  await ssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '3650', '-subj', '/CN=Keybridge Test Samba AD CA',
    '-keyout', 'ca.key', '-out', 'ca.pem', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  await ssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=dc1.example.test', '-keyout', 'key.pem', '-out', 'server.csr']);
  await fs.writeFile(path.join(d, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:dc1.example.test\n' +
    'extendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n');
  await ssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '3650',
    '-extfile', 'ext.cnf', '-out', 'cert.pem']);
  await fs.chmod(path.join(d, 'key.pem'), 0o600); // Samba refuses a key file others can read
  await fs.chmod(path.join(d, 'ca.key'), 0o600);
  for (const f of ['server.csr', 'ext.cnf', 'ca.srl']) await fs.rm(path.join(d, f), { force: true });
}

async function step(what: string, cmd: string, args: string[], cwd?: string): Promise<void> {
  try {
    await run(cmd, args, { cwd, maxBuffer: 16 << 20 });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    const tail = `${e.stdout ?? ''}\n${e.stderr ?? ''}`.trim().split('\n').slice(-20).join('\n');
    throw new Error(`Samba fixture: ${what} failed: ${e.message.split('\n')[0]}\n${tail}`);
  }
}

/** Polls a rootDSE search on 389 (Samba needs ~1-2 s); fails early if the daemon died. */
async function waitReady(dir: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  let last = '';
  while (Date.now() < deadline) {
    const client = new Client({ url: 'ldap://127.0.0.1:389', connectTimeout: 1000, timeout: 2000 });
    try {
      await client.search('', { scope: 'base', attributes: ['defaultNamingContext'] });
      return;
    } catch (err) {
      last = (err as Error).message;
    } finally {
      await client.unbind().catch(() => {});
    }
    if (readPid(dir) > 0 && !alive(readPid(dir))) break;
    await sleep(100);
  }
  const log = await fs.readFile(path.join(dir, 'log/samba.log'), 'utf8').catch(() => '(no log)');
  throw new Error(`Samba did not become ready on 127.0.0.1:389 (${last}); samba.log tail:\n${log.split('\n').slice(-30).join('\n')}`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
