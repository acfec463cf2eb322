// A real mod_auth_mellon 0.18 service provider (Debian's libapache2-mod-auth-mellon) in a private
// apache2 on a free loopback port, configured the way its README says: SP key, certificate and
// metadata made by the package's own `mellon_create_metadata` (stock output, no NameIDFormat), the
// IdP's metadata saved to a file, one `MellonEnable auth` location serving a CGI that prints
// REMOTE_USER and the MELLON_* variables. Two steps: `prepareMellonSp` (the SP's metadata exists,
// so the IdP can register it), then `start(idpMetadataUrl)`.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './free-port.ts';
import { APACHE, MODULES, baseConfig, envPrinter, installMissing, makeTlsCert, shareWithApache, startApache, type ApacheInstance } from './private-apache.ts';

const run = promisify(execFile);
const CREATE_METADATA = '/usr/sbin/mellon_create_metadata';

let missing: string | null | undefined;
/** Why mod_auth_mellon cannot run here (after one apt-get install attempt when root), or null. */
export function mellonMissing(): string | null {
  if (missing === undefined) missing = installMissing(['apache2', 'libapache2-mod-auth-mellon', 'openssl'], problem);
  return missing;
}
function problem(): string | null {
  if (!existsSync(APACHE)) return 'apache2 is not installed';
  if (!existsSync(`${MODULES}/mod_auth_mellon.so`) || !existsSync(CREATE_METADATA)) return 'mod_auth_mellon (libapache2-mod-auth-mellon) is not installed';
  return null;
}

export interface MellonSp {
  baseUrl: string; // https://127.0.0.1:PORT (self-signed: browsers must ignore certificate errors)
  tlsCertPem: string;
  entityId: string;
  /** The SP metadata mellon_create_metadata wrote (register it at the IdP). */
  metadataFile: string;
  metadataXml: string;
  /** Protected by `MellonEnable auth`: prints REMOTE_USER and MELLON_* as NAME=value lines. */
  protectedUrl: string;
  /** mellon's logout endpoint (SP-initiated SLO), then to `returnTo`. */
  logoutUrl(returnTo: string): string;
  /** Unprotected page on the same server (a logout's ReturnTo). */
  publicUrl: string;
  dir: string;
  start(idpMetadataUrl: string): Promise<void>;
  logs(): Promise<string>;
  stop(): Promise<void>;
}

export async function prepareMellonSp(options: { entityId?: string } = {}): Promise<MellonSp> {
  const port = await freePort();
  const baseUrl = `https://127.0.0.1:${port}`;
  const entityId = options.entityId ?? `${baseUrl}/mellon/metadata`;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'keybridge-mellon-'));
  const sp = path.join(dir, 'sp');
  await Promise.all(['sp', 'cgi', 'post', 'public'].map((d) => fs.mkdir(path.join(dir, d))));
  // The package's recipe: mellon_create_metadata ENTITY-ID ENDPOINT-URL writes <name>.key/.cert/.xml here.
  await run(CREATE_METADATA, [entityId, `${baseUrl}/mellon`], { cwd: sp });
  const base = entityId.replace(/[^0-9A-Za-z.]/g, '_').replace(/__+/g, '_');
  const files = { key: path.join(sp, `${base}.key`), cert: path.join(sp, `${base}.cert`), xml: path.join(sp, `${base}.xml`) };
  const metadataXml = await fs.readFile(files.xml, 'utf8');
  const idpFile = path.join(dir, 'idp-metadata.xml');
  const tls = await makeTlsCert(dir);
  let apache: ApacheInstance | undefined;

  const config = () => `${baseConfig(dir, port, ['auth_mellon'], tls)}
LogLevel warn auth_mellon:info
MellonLockFile ${dir}/run/mellon.lock
MellonPostDirectory ${dir}/post

<Location />
    MellonEnable info
    MellonEndpointPath /mellon/
    MellonSPMetadataFile ${files.xml}
    MellonSPPrivateKeyFile ${files.key}
    MellonSPCertFile ${files.cert}
    MellonIdPMetadataFile ${idpFile}
    # Served over https as in production: mellon marks its cookies SameSite=None, which browsers
    # only keep with Secure.
    MellonSecureCookie On
</Location>

ScriptAlias /protected/ ${dir}/cgi/
<Location /protected/>
    AuthType Mellon
    MellonEnable auth
    Require valid-user
</Location>
Alias /public/ ${dir}/public/
<Directory ${dir}/public>
    Require all granted
</Directory>
<Directory ${dir}/cgi>
    Require all granted
</Directory>
`;

  return {
    baseUrl, entityId, metadataFile: files.xml, metadataXml, dir, tlsCertPem: tls.certPem,
    protectedUrl: `${baseUrl}/protected/whoami`,
    publicUrl: `${baseUrl}/public/index.txt`,
    logoutUrl: (returnTo) => `${baseUrl}/mellon/logout?ReturnTo=${encodeURIComponent(returnTo)}`,
    async start(idpMetadataUrl) {
      const res = await fetch(idpMetadataUrl);
      if (!res.ok) throw new Error(`IdP metadata ${idpMetadataUrl}: HTTP ${res.status}`);
      await fs.writeFile(idpFile, await res.text());
      await fs.writeFile(path.join(dir, 'cgi', 'whoami'), envPrinter('^(REMOTE_USER|AUTH_TYPE|MELLON_)'), { mode: 0o755 });
      await fs.writeFile(path.join(dir, 'public', 'index.txt'), 'public page\n');
      shareWithApache(dir);
      apache = await startApache(dir, port, config());
    },
    logs: async () => (apache ? apache.logs() : ''),
    async stop() {
      await apache?.stop();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
