// A private apache2 (Debian package) per call, for the suites that put a real web-server SAML SP
// (mod_auth_mellon, mod_shib) in front of a CGI page: its own httpd.conf, ServerRoot, PidFile,
// ErrorLog and mutexes under the caller's temp folder, on a free loopback port, started in the
// foreground and stopped by PID. /etc/apache2 is never read; the system apache2 is never touched.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';

export const APACHE = '/usr/sbin/apache2';
export const MODULES = '/usr/lib/apache2/modules';

/** Why `packages` cannot be used here, after one apt-get install attempt when root (system services kept stopped), or null. */
export function installMissing(packages: string[], present: () => string | null): string | null {
  const why = present();
  if (!why) return null;
  if (process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) return `${why} (not root with apt-get, cannot install ${packages.join(' ')})`;
  const policy = '/usr/sbin/policy-rc.d'; // exit 101: the packages' apache2 and shibd must not start
  const ownPolicy = !existsSync(policy);
  try {
    if (ownPolicy) writeFileSync(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const install = () => spawnSync('apt-get', ['install', '-y', '-q', ...packages], { env, encoding: 'utf8', timeout: 900_000 });
    let r = install();
    if (r.status !== 0) { // stale package lists are the usual cause
      spawnSync('apt-get', ['update', '-q'], { env, timeout: 300_000 });
      r = install();
    }
    const still = present();
    if (still) return `${still}; apt-get install: ${(r.stderr || r.stdout || String(r.error)).trim().split('\n').slice(-3).join(' | ')}`;
  } finally {
    if (ownPolicy) rmSync(policy, { force: true });
  }
  return null;
}

export interface ApacheInstance {
  pid: number;
  errorLog: string;
  /** The tail of the error log, for assertion messages. */
  logs(): Promise<string>;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) try { process.kill(child.pid!, 'SIGKILL'); process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ }
});

/** The config head every instance shares: where its files live, who it runs as, the MPM. */
export function baseConfig(dir: string, port: number, modules: string[], tls?: { certFile: string; keyFile: string }): string {
  // As root apache must drop to an unprivileged user for its children; otherwise it runs as is.
  const user = process.getuid?.() === 0 ? 'User www-data\nGroup www-data\n' : '';
  const ssl = tls ? `SSLEngine on\nSSLCertificateFile ${tls.certFile}\nSSLCertificateKeyFile ${tls.keyFile}\nUseCanonicalName On\n` : '';
  return `ServerRoot ${dir}
DefaultRuntimeDir ${dir}/run
PidFile ${dir}/run/httpd.pid
Mutex file:${dir}/run default
ErrorLog ${dir}/error.log
LogLevel warn
Listen 127.0.0.1:${port}
ServerName ${tls ? 'https' : 'http'}://127.0.0.1:${port}
${user}${['mpm_prefork', 'authn_core', 'authz_core', 'authz_user', 'alias', 'cgi', 'env', ...(tls ? ['ssl'] : []), ...modules].map((m) => `LoadModule ${m}_module ${MODULES}/mod_${m}.so`).join('\n')}
StartServers 2
MinSpareServers 1
MaxSpareServers 3
${ssl}`;
}

/** Starts `apache2 -f <dir>/httpd.conf -DFOREGROUND`; resolves once it answers HTTP on `port`. */
export async function startApache(dir: string, port: number, config: string, env: Record<string, string> = {}): Promise<ApacheInstance> {
  await fs.mkdir(path.join(dir, 'run'), { recursive: true });
  const conf = path.join(dir, 'httpd.conf');
  await fs.writeFile(conf, config);
  const check = spawnSync(APACHE, ['-t', '-f', conf], { encoding: 'utf8', env: { ...process.env, ...env } });
  if (check.status !== 0) throw new Error(`apache2 -t: ${check.stderr}${check.stdout}`);
  const errorLog = path.join(dir, 'error.log');
  const child = spawn(APACHE, ['-f', conf, '-DFOREGROUND'], { detached: true, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  live.add(child);
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const logs = async () => `${stderr}${existsSync(errorLog) ? (await fs.readFile(errorLog, 'utf8')).split('\n').slice(-60).join('\n') : ''}`;
  const stop = async () => {
    if (!live.delete(child)) return;
    try { process.kill(child.pid!, 'SIGTERM'); } catch { /* gone */ }
    const kill = setTimeout(() => { try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } }, 5000);
    await exited;
    clearTimeout(kill);
    try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* children already gone */ }
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`apache2 exited (${child.exitCode}): ${await logs()}`);
    if (await answers(port)) break;
    if (Date.now() > deadline) { await stop(); throw new Error(`apache2 did not answer on port ${port}: ${await logs()}`); }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { pid: child.pid!, errorLog, logs, stop };
}

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** A self-signed loopback certificate (SAN IP:127.0.0.1) for an https instance: EC keys are quick to make. */
export async function makeTlsCert(dir: string): Promise<{ certFile: string; keyFile: string; certPem: string }> {
  const certFile = path.join(dir, 'tls.crt'), keyFile = path.join(dir, 'tls.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '30', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyFile, '-out', certFile], { stdio: 'ignore' });
  return { certFile, keyFile, certPem: await fs.readFile(certFile, 'utf8') };
}

/** A CGI script (sh) printing, as text/plain, the environment variables whose names match `pattern`, sorted. */
export function envPrinter(pattern: string): string {
  return `#!/bin/sh
printf 'Content-Type: text/plain; charset=utf-8\\r\\n\\r\\n'
env | grep -E '${pattern}' | LC_ALL=C sort
`;
}

/** Makes `dir` (a mkdtemp folder, 0700) and what is under it readable by apache's children when we run as root. */
export function shareWithApache(dir: string): void {
  if (process.getuid?.() !== 0) return;
  execFileSync('chown', ['-R', 'www-data:www-data', dir]);
}

/** Parses an envPrinter page: name -> value. */
export function parseEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

export const readPid = (file: string): number | null => {
  try { return Number(readFileSync(file, 'utf8').trim()) || null; } catch { return null; }
};
