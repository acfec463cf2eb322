// A real Shibboleth SP 3 (Debian's libapache2-mod-shib: shibd + mod_shib) as a private instance:
// shibd with its own config folder (copies of the package's /etc/shibboleth files), pid file,
// socket, cache and logs under a temp folder, and a private apache2 with mod_shib on a free
// loopback port (https: the stock config sets handlerSSL="true" and cookieProps="https").
// shibboleth2.xml is the stock file with only the entity IDs, the IdP's metadata URL (loaded
// with validate="true", the documented default for remote metadata) and paths changed; keys come
// from the package's shib-keygen. attribute-map.xml is the stock file with its documented
// eduPerson and LDAP blocks uncommented (mail, displayName, member need that in any deployment).
// Two steps: `prepareShibbolethSp`, then `start(idp)`, after which `metadataFile` holds the SP's
// metadata as its own /Shibboleth.sso/Metadata handler serves it.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './free-port.ts';
import { APACHE, MODULES, baseConfig, envPrinter, installMissing, makeTlsCert, readPid, shareWithApache, startApache, type ApacheInstance } from './private-apache.ts';

const run = promisify(execFile);
const SHIBD = '/usr/sbin/shibd';
const STOCK = '/etc/shibboleth';

let missing: string | null | undefined;
/** Why Shibboleth SP cannot run here (after one apt-get install attempt when root), or null. */
export function shibbolethMissing(): string | null {
  if (missing === undefined) missing = installMissing(['apache2', 'libapache2-mod-shib', 'openssl'], problem);
  return missing;
}
function problem(): string | null {
  if (!existsSync(APACHE)) return 'apache2 is not installed';
  if (!existsSync(`${MODULES}/mod_shib.so`) || !existsSync(SHIBD) || !existsSync(`${STOCK}/shibboleth2.xml`)) return 'Shibboleth SP (libapache2-mod-shib) is not installed';
  return null;
}

export interface ShibbolethSp {
  baseUrl: string; // https://127.0.0.1:PORT (self-signed: browsers must ignore certificate errors)
  entityId: string;
  /** Written by start(): the SP's metadata from its /Shibboleth.sso/Metadata handler (register it at the IdP). */
  metadataFile: string;
  /** Requires a Shibboleth session: prints REMOTE_USER, Shib-* and the mapped attributes as NAME=value lines
   *  (apache's CGI environment spells '-' in a name as '_': Shib_Identity_Provider, persistent_id). */
  protectedUrl: string;
  /** The stock logout handler (SAML 2 SLO toward the IdP, then `returnTo`). */
  logoutUrl(returnTo: string): string;
  publicUrl: string;
  dir: string;
  start(idp: { entityId: string; metadataUrl: string }): Promise<string>;
  /** shibd's log and apache's error log tails, for assertion messages. */
  logs(): Promise<string>;
  stop(): Promise<void>;
}

export async function prepareShibbolethSp(options: { entityId?: string } = {}): Promise<ShibbolethSp> {
  const port = await freePort();
  const baseUrl = `https://127.0.0.1:${port}`;
  const entityId = options.entityId ?? `${baseUrl}/shibboleth`;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'keybridge-shib-'));
  // shibd resolves <SHIBSP_CFGDIR>/shibboleth/..., <SHIBSP_RUNDIR>/shibboleth/shibd.sock and so on.
  const etc = path.join(dir, 'shibboleth');
  await Promise.all(['shibboleth', 'cache/shibboleth', 'log', 'run/shibboleth', 'cgi', 'public'].map((d) => fs.mkdir(path.join(dir, d), { recursive: true })));
  const metadataFile = path.join(dir, 'sp-metadata.xml');
  const env = { SHIBSP_CONFIG: path.join(etc, 'shibboleth2.xml'), SHIBSP_CFGDIR: dir, SHIBSP_CACHEDIR: path.join(dir, 'cache'), SHIBSP_LOGDIR: path.join(dir, 'log'), SHIBSP_RUNDIR: path.join(dir, 'run') };
  let shibd: ChildProcess | undefined;
  let shibdExit: Promise<void> | undefined;
  let apache: ApacheInstance | undefined;
  let tlsPem = '';

  const logs = async () => {
    const read = async (f: string) => (existsSync(f) ? (await fs.readFile(f, 'utf8')).split('\n').slice(-40).join('\n') : '');
    return `--- shibd.log\n${await read(path.join(dir, 'log', 'shibd.log'))}\n--- apache\n${apache ? await apache.logs() : ''}`;
  };
  const stopShibd = async () => {
    if (!shibd || shibd.exitCode !== null) return;
    const pid = readPid(path.join(dir, 'run', 'shibd.pid')) ?? shibd.pid!;
    try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
    const kill = setTimeout(() => { try { process.kill(-shibd!.pid!, 'SIGKILL'); } catch { /* gone */ } }, 5000);
    await shibdExit;
    clearTimeout(kill);
  };
  const onExit = () => { try { if (shibd?.exitCode === null) process.kill(-shibd.pid!, 'SIGKILL'); } catch { /* gone */ } };
  process.once('exit', onExit);

  return {
    baseUrl, entityId, metadataFile, dir, logs,
    protectedUrl: `${baseUrl}/protected/whoami`,
    publicUrl: `${baseUrl}/public/index.txt`,
    logoutUrl: (returnTo) => `${baseUrl}/Shibboleth.sso/Logout?return=${encodeURIComponent(returnTo)}`,
    async start(idp) {
      // The package's files, then only entity IDs, URLs and paths changed.
      for (const f of await fs.readdir(STOCK)) if (!f.startsWith('example-')) await fs.copyFile(path.join(STOCK, f), path.join(etc, f));
      const stock = await fs.readFile(path.join(STOCK, 'shibboleth2.xml'), 'utf8');
      const config = stock
        .replace('entityID="https://sp.example.org/shibboleth"', `entityID="${entityId}"`)
        .replace('<SSO entityID="https://idp.example.org/idp/shibboleth"', `<SSO entityID="${idp.entityId}"`)
        .replace('<!-- Map to extract attributes', `<MetadataProvider type="XML" validate="true" url="${idp.metadataUrl}" backingFilePath="idp-metadata.xml" maxRefreshDelay="7200"/>\n\n        <!-- Map to extract attributes`);
      if (config.split(entityId).length !== 2 || !config.includes(idp.metadataUrl)) throw new Error('the stock shibboleth2.xml changed shape: entity IDs not replaced');
      await fs.writeFile(path.join(etc, 'shibboleth2.xml'), config);
      // Operators uncomment the eduPerson and LDAP blocks to get mail, displayName and member.
      const map = await fs.readFile(path.join(STOCK, 'attribute-map.xml'), 'utf8');
      await fs.writeFile(path.join(etc, 'attribute-map.xml'), uncommentBlocks(map, ['<!-- Other eduPerson attributes', '<!-- Older LDAP-defined attributes']));
      for (const logger of ['shibd.logger', 'native.logger']) {
        const text = await fs.readFile(path.join(STOCK, logger), 'utf8');
        await fs.writeFile(path.join(etc, logger), text.replaceAll('/var/log/shibboleth', path.join(dir, 'log')));
      }
      // Keys as the package makes them (shib-keygen), one pair for signing and one for encryption.
      const owner = process.getuid?.() === 0 ? ['-u', 'root', '-g', 'root'] : ['-u', '', '-g', ''];
      for (const prefix of ['sp-signing', 'sp-encrypt']) await run('/usr/sbin/shib-keygen', ['-o', etc, '-n', prefix, '-h', '127.0.0.1', '-e', entityId, ...owner]);
      const tls = await makeTlsCert(dir);
      tlsPem = tls.certPem;
      await fs.writeFile(path.join(dir, 'cgi', 'whoami'), envPrinter('^(REMOTE_USER|AUTH_TYPE|Shib_[A-Za-z_]+|mail|displayName|member|persistent_id|eppn|uid)='), { mode: 0o755 });
      await fs.writeFile(path.join(dir, 'public', 'index.txt'), 'public page\n');
      shareWithApache(dir);

      const asUser = process.getuid?.() === 0 ? ['-u', 'www-data', '-g', 'www-data'] : [];
      shibd = spawn(SHIBD, ['-F', '-f', '-c', env.SHIBSP_CONFIG, '-p', path.join(dir, 'run', 'shibd.pid'), ...asUser], { detached: true, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
      let stderr = '';
      shibd.stderr!.on('data', (d) => (stderr += d));
      shibdExit = new Promise((r) => shibd!.once('exit', () => r()));
      const socket = path.join(dir, 'run', 'shibboleth', 'shibd.sock');
      const deadline = Date.now() + 30_000;
      while (!existsSync(socket)) {
        if (shibd.exitCode !== null) throw new Error(`shibd exited (${shibd.exitCode}): ${stderr}\n${await logs()}`);
        if (Date.now() > deadline) { await stopShibd(); throw new Error(`shibd did not open ${socket}: ${stderr}\n${await logs()}`); }
        await new Promise((r) => setTimeout(r, 100));
      }
      apache = await startApache(dir, port, `${baseConfig(dir, port, [], tls)}
LoadModule mod_shib ${MODULES}/mod_shib.so
ShibConfig ${env.SHIBSP_CONFIG}
ShibCompatValidUser Off
<Location /Shibboleth.sso>
    AuthType None
    Require all granted
</Location>
ScriptAlias /protected/ ${dir}/cgi/
<Location /protected/>
    AuthType shibboleth
    ShibRequestSetting requireSession 1
    Require shib-session
</Location>
Alias /public/ ${dir}/public/
<Directory ${dir}/public>
    Require all granted
</Directory>
<Directory ${dir}/cgi>
    Require all granted
</Directory>
`, env);
      const metadata = await get(`${baseUrl}/Shibboleth.sso/Metadata`, tlsPem);
      if (metadata.status !== 200 || !metadata.body.includes(entityId)) throw new Error(`/Shibboleth.sso/Metadata answered ${metadata.status}: ${metadata.body.slice(0, 500)}\n${await logs()}`);
      await fs.writeFile(metadataFile, metadata.body);
      return metadata.body;
    },
    async stop() {
      process.removeListener('exit', onExit);
      await apache?.stop();
      await stopShibd();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

/** Removes the comment markers around each block that follows one of `headings` (comment lines kept). */
function uncommentBlocks(xml: string, headings: string[]): string {
  let out = xml;
  for (const heading of headings) {
    const at = out.indexOf(heading);
    if (at < 0) throw new Error(`the stock attribute-map.xml has no "${heading}" block`);
    const open = out.indexOf('<!--', out.indexOf('-->', at));
    const close = out.indexOf('-->', open);
    out = out.slice(0, open) + out.slice(open + 4, close) + out.slice(close + 3);
  }
  return out;
}

function get(url: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https.get(url, { ca }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}
