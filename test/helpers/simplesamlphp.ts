// A private SimpleSAMLphp 1.19 (Debian package) per call: a real SAML 2.0 IdP on loopback, with the
// SPs, users and built-in SP ("default-sp") given by the caller. Served by `php -S` from the
// package's www/ with its own config dir (SIMPLESAMLPHP_CONFIG_DIR); /etc/simplesamlphp is never read.
// Ported from a bash recipe; needs php-cli, php-xml, php-mbstring and openssl (apt-get when root).
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './free-port.ts';

const run = promisify(execFile);
const SSP = '/usr/share/simplesamlphp';
const NAMEID = {
  email: 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress',
  transient: 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient',
  persistent: 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
  unspecified: 'urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified',
};
const POST = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST';
const REDIRECT = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect';
const RSA_SHA256 = 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256';

export interface SspServiceProvider {
  entityId: string;
  acsUrl: string; // HTTP-POST AssertionConsumerService
  sloUrl?: string; // SingleLogoutService (HTTP-Redirect); enables SLO toward this SP
  /** When set the IdP requires signed AuthnRequests and LogoutRequests from this SP. */
  signingCertPem?: string;
  /** When set assertions are encrypted to this cert: RSA-OAEP-MGF1P key transport, AES-128-CBC data
   *  (hard-coded in SimpleSAMLphp 1.19 for certificates; 'sharedkey_algorithm' only applies to a shared key). */
  encryptionCertPem?: string;
  nameIdFormat?: string; // default emailAddress
  signResponse?: boolean; // default true
  signAssertion?: boolean; // default true
  /** The AuthnContextClassRef of this SP's assertions (saml:AuthnContextClassRef filter); default
   *  PasswordProtectedTransport over https, Password over http (loopback here). */
  authnContextClassRef?: string;
  /** Put the RequestedAuthnContext the IdP parsed from the AuthnRequest into the assertion, as the
   *  attributes requestedAuthnContextClassRef (one value per class) and requestedAuthnContextComparison. */
  echoRequestedAuthnContext?: boolean;
}
export interface SspUser { username: string; password: string; attributes: Record<string, string[]> }
export interface SimpleSamlPhp {
  baseUrl: string; // http://127.0.0.1:PORT
  entityId: string; // baseUrl + /saml2/idp/metadata.php
  metadataUrl: string;
  metadataXml: string; // as served
  ssoUrl: string;
  sloUrl: string;
  certPem: string; // IdP signing certificate
  /** IdP-initiated SSO toward one SP. */
  idpInitiatedUrl(spEntityId: string, relayState?: string): string;
  /** IdP-initiated logout of the IdP session (LogoutRequests to the SPs), then to returnTo. */
  idpLogoutUrl(returnTo: string): string;
  /** default-sp: login start (ends on a page listing the attributes), metadata URL = entityID. */
  spLoginUrl: string; spMetadataUrl: string; spEntityId: string;
  /** default-sp's logout (LogoutRequest to its IdP), then to returnTo. */
  spLogoutUrl(returnTo: string): string;
  dir: string;
  /** Tail of the php server + SimpleSAMLphp logs, for assertion messages. */
  logs(): Promise<string>;
  stop(): Promise<void>;
}

const person = (u: string, cn: string, sn: string, affiliation: string[], groups: string[]): SspUser => ({
  username: u, password: `${u}pass`,
  attributes: { uid: [u], mail: [`${u}@example.org`], cn: [cn], givenName: [cn.split(' ')[0]], sn: [sn], displayName: [cn],
    eduPersonAffiliation: affiliation, groups },
});
const DEFAULT_USERS = [
  person('alice', 'Alice Anderson', 'Anderson', ['member', 'employee'], ['engineering', 'admins']),
  person('bob', 'Bob Brown', 'Brown', ['member', 'student'], ['engineering']),
  person('carol', 'Carol Clark', 'Clark', ['affiliate'], []),
];

// ------------------------------------------------------------------------------ install check ---

let missing: string | null | undefined;
/** Why SimpleSAMLphp cannot run here (after one apt-get install attempt when root), or null. */
export function simpleSamlPhpMissing(): string | null {
  if (missing !== undefined) return missing;
  const why = problem();
  if (!why) return (missing = null);
  if (process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) return (missing = `${why} (not root with apt-get, cannot install it)`);
  const policy = '/usr/sbin/policy-rc.d'; // exit 101: the package's apache2 must not start
  const ownPolicy = !existsSync(policy);
  try {
    if (ownPolicy) writeFileSync(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const pkgs = ['simplesamlphp', 'php-cli', 'php-xml', 'php-mbstring', 'php-curl', 'openssl'];
    const install = () => spawnSync('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...pkgs], { env, encoding: 'utf8', timeout: 900_000 });
    let r = install();
    if (r.status !== 0) { // stale package lists are the usual cause
      spawnSync('apt-get', ['update', '-q'], { env, timeout: 300_000 });
      r = install();
    }
    const still = problem();
    if (still) return (missing = `${still}; apt-get install: ${(r.stderr || r.stdout || String(r.error)).trim().split('\n').slice(-3).join(' | ')}`);
  } finally {
    if (ownPolicy) rmSync(policy, { force: true });
  }
  return (missing = null);
}

function problem(): string | null {
  if (!existsSync(`${SSP}/www/_include.php`)) return `SimpleSAMLphp (Debian package simplesamlphp) is not installed`;
  const m = spawnSync('php', ['-m'], { encoding: 'utf8' });
  if (m.status !== 0) return 'php (php-cli) is not installed';
  const mods = new Set(m.stdout.toLowerCase().split('\n').map((l) => l.trim()));
  const lacking = ['dom', 'xml', 'mbstring', 'openssl'].filter((x) => !mods.has(x));
  if (lacking.length) return `php lacks ${lacking.join(', ')} (php-xml, php-mbstring)`;
  if (spawnSync('openssl', ['version']).status !== 0) return 'the openssl CLI is not installed';
  return null;
}

// ------------------------------------------------------------------------------------ config ---

type Php = string | number | boolean | null | Php[] | { [key: string]: Php };
/** A PHP literal. In single-quoted strings only \\ and \' are escapes. Numeric-string keys become ints in PHP. */
function php(v: Php, indent = ''): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return `'${v.replace(/[\\']/g, '\\$&')}'`;
  if (typeof v !== 'object') return String(v);
  const inner = `${indent}    `;
  const items = Array.isArray(v) ? v.map((x) => php(x, inner)) : Object.entries(v).map(([k, x]) => `${php(k)} => ${php(x, inner)}`);
  return items.length ? `[\n${items.map((i) => inner + i).join(',\n')},\n${indent}]` : '[]';
}
const certData = (pem: string) => pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
const key = (use: 'signing' | 'encryption', pem: string) =>
  ({ signing: use === 'signing', encryption: use === 'encryption', type: 'X509Certificate', X509Certificate: certData(pem) });

type Options = Parameters<typeof startSimpleSamlPhp>[0];

/** core:PHP filter code: the IdP's own parse of the AuthnRequest's RequestedAuthnContext, as attributes. */
const ECHO_REQUESTED_AUTHN_CONTEXT = `$rac = $state['saml:RequestedAuthnContext'] ?? null;
if (is_array($rac) && !empty($rac['AuthnContextClassRef'])) {
    $attributes['requestedAuthnContextClassRef'] = array_values($rac['AuthnContextClassRef']);
    $attributes['requestedAuthnContextComparison'] = [$rac['Comparison']];
}`;

async function writeConfig(dir: string, port: number, o: Options, idpPem: string, spPem: string): Promise<void> {
  const base = `http://127.0.0.1:${port}`;
  const idp = `${base}/saml2/idp/metadata.php`;
  const sp = `${base}/module.php/saml/sp/metadata.php/default-sp`;
  const config: Php = {
    baseurlpath: `${base}/`,
    certdir: `${dir}/cert/`, loggingdir: `${dir}/log/`, datadir: `${dir}/data/`, tempdir: `${dir}/tmp`, metadatadir: `${dir}/metadata/`,
    attributenamemapdir: '/etc/simplesamlphp/attributemap/',
    technicalcontact_name: 'Test Admin', technicalcontact_email: 'admin@example.org', timezone: 'UTC',
    secretsalt: (await run('openssl', ['rand', '-hex', '16'])).stdout.trim(), // salts transient/persistent NameIDs
    'auth.adminpassword': 'adminpass',
    'admin.protectindexpage': false, 'admin.protectmetadata': false, 'admin.checkforupdates': false,
    // ReturnTo/RelayState URLs on other loopback ports: a plain domain list would need each host:port.
    'trusted.url.domains': ['127\\.0\\.0\\.1(:[0-9]+)?', 'localhost(:[0-9]+)?'], 'trusted.url.regex': true,
    showerrors: true, errorreporting: false,
    'logging.handler': 'file', 'logging.logfile': 'simplesamlphp.log', 'statistics.out': [],
    'enable.saml20-idp': true,
    'module.enable': { exampleauth: true, core: true, saml: true, admin: true },
    'store.type': 'phpsession', 'session.phpsession.savepath': `${dir}/sessions`,
    // Cookies are per host, not port: suffix the names so several instances on 127.0.0.1 don't collide.
    'session.cookie.name': `SimpleSAMLSessionID_${port}`,
    'session.phpsession.cookiename': `SimpleSAML_${port}`,
    'session.authtoken.cookiename': `SimpleSAMLAuthToken_${port}`,
    'session.cookie.secure': false, 'session.cookie.samesite': null, // plain http on loopback
    'language.cookie.secure': false, 'language.cookie.samesite': null,
    production: false,
    'metadata.sources': [{ type: 'flatfile' }],
  };
  // The 'xml' + 'url' source throws on every request while its URL is down (e.g. before the broker
  // starts), which would take the IdP down too; so fetch it ourselves and add it only when served.
  const external = o.externalIdp ? `$xml = @file_get_contents(${php(o.externalIdp.metadataUrl)}, false, stream_context_create(['http' => ['timeout' => 5]]));
if (is_string($xml) && $xml !== '') {
    $config['metadata.sources'][] = ['type' => 'xml', 'xml' => $xml];
}
` : '';
  const users: Record<string, Php> = {};
  for (const u of o.users ?? DEFAULT_USERS) users[`${u.username}:${u.password}`] = u.attributes;
  const authsources: Php = {
    admin: ['core:AdminPassword'],
    'example-userpass': { 0: 'exampleauth:UserPass', ...users },
    'default-sp': {
      0: 'saml:SP', entityID: sp, idp: o.externalIdp?.entityId ?? idp,
      privatekey: 'sp.pem', certificate: 'sp.crt', 'signature.algorithm': RSA_SHA256,
      NameIDPolicy: { Format: NAMEID.transient, AllowCreate: true },
      'sign.authnrequest': true, 'sign.logout': true,
      // Advertised in its metadata; the SP itself always rejects a response with neither part signed.
      WantAssertionsSigned: true,
    },
  };
  const hosted: Php = {
    host: '__DEFAULT__', privatekey: 'idp.pem', certificate: 'idp.crt', auth: 'example-userpass',
    'signature.algorithm': RSA_SHA256, 'sign.logout': true,
    // SSOService.php takes both bindings; advertise both so SPs may POST their AuthnRequests.
    SingleSignOnServiceBinding: ['urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect', 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST'],
    NameIDFormat: Object.values(NAMEID),
    authproc: { // a NameID for whichever format the AuthnRequest (or SP metadata) asks for
      59: { class: 'saml:TransientNameID' },
      60: { class: 'saml:PersistentNameID', attribute: 'uid' },
      61: { class: 'saml:AttributeNameID', attribute: 'mail', Format: NAMEID.email },
      62: { class: 'saml:AttributeNameID', attribute: 'uid', Format: NAMEID.unspecified },
    },
  };
  const sps: Record<string, Php> = {};
  for (const s of o.serviceProviders) {
    const keys = [...(s.signingCertPem ? [key('signing', s.signingCertPem)] : []), ...(s.encryptionCertPem ? [key('encryption', s.encryptionCertPem)] : [])];
    sps[s.entityId] = {
      AssertionConsumerService: [{ Binding: POST, Location: s.acsUrl, index: 0 }],
      ...(s.sloUrl ? { SingleLogoutService: [{ Binding: REDIRECT, Location: s.sloUrl }] } : {}),
      NameIDFormat: s.nameIdFormat ?? NAMEID.email,
      'simplesaml.nameidattribute': 'mail',
      'attributes.NameFormat': 'urn:oasis:names:tc:SAML:2.0:attrname-format:basic',
      'saml20.sign.response': s.signResponse ?? true,
      'saml20.sign.assertion': s.signAssertion ?? true,
      'signature.algorithm': RSA_SHA256,
      ...(keys.length ? { keys } : {}),
      ...(s.signingCertPem ? { 'validate.authnrequest': true, 'validate.logout': true } : {}),
      ...(s.encryptionCertPem ? { 'assertion.encryption': true } : {}),
      ...(s.authnContextClassRef || s.echoRequestedAuthnContext ? { authproc: {
        ...(s.authnContextClassRef ? { 90: { class: 'saml:AuthnContextClassRef', AuthnContextClassRef: s.authnContextClassRef } } : {}),
        ...(s.echoRequestedAuthnContext ? { 91: { class: 'core:PHP', code: ECHO_REQUESTED_AUTHN_CONTEXT } } : {}),
      } } : {}),
    };
  }
  // This IdP also knows its own default-sp (used when no external IdP is given).
  sps[sp] = {
    AssertionConsumerService: `${base}/module.php/saml/sp/saml2-acs.php/default-sp`,
    SingleLogoutService: `${base}/module.php/saml/sp/saml2-logout.php/default-sp`,
    certData: certData(spPem), 'validate.authnrequest': true, 'validate.logout': true,
  };
  const remoteIdp: Php = {
    SingleSignOnService: `${base}/saml2/idp/SSOService.php`, SingleLogoutService: `${base}/saml2/idp/SingleLogoutService.php`,
    certData: certData(idpPem),
  };
  const file = (name: string, body: string) => fs.writeFile(path.join(dir, name), `<?php\n${body}`);
  const entries = (set: Record<string, Php>) => Object.entries(set).map(([id, md]) => `$metadata[${php(id)}] = ${php(md)};\n`).join('');
  await Promise.all([
    file('config/config.php', `$config = ${php(config)};\n$config['logging.level'] = SimpleSAML\\Logger::INFO;\n${external}`),
    file('config/authsources.php', `$config = ${php(authsources)};\n`),
    file('metadata/saml20-idp-hosted.php', entries({ [idp]: hosted })),
    file('metadata/saml20-sp-remote.php', entries(sps)),
    file('metadata/saml20-idp-remote.php', entries({ [idp]: remoteIdp })),
  ]);
}

// ----------------------------------------------------------------------------------- process ---

/** Members of a process group that are still running (zombies are dead: PID 1 here reaps lazily). */
function groupMembers(pgid: number): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const fields = readFileSync(`/proc/${name}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
      if (fields[0] !== 'Z' && Number(fields[2]) === pgid) pids.push(Number(name));
    } catch { /* exited meanwhile */ }
  }
  return pids;
}

/** SIGTERM php and its workers (own process group), SIGKILL after 5 s, return once all are gone. */
async function killGroup(child: ChildProcess): Promise<void> {
  live.delete(child);
  const pgid = child.pid!;
  const signal = (sig: NodeJS.Signals) => { try { process.kill(-pgid, sig); } catch { /* already gone */ } };
  if (!groupMembers(pgid).length) return;
  signal('SIGTERM');
  const deadline = Date.now() + 5000;
  while (groupMembers(pgid).length) {
    if (Date.now() > deadline) signal('SIGKILL');
    await sleep(50);
  }
}

// A test process that exits without stop() must not leave php servers behind.
const live = new Map<ChildProcess, string>();
process.once('exit', () => {
  for (const [child, dir] of live) {
    try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ }
    rmSync(dir, { recursive: true, force: true });
  }
});

async function tail(file: string, lines: number): Promise<string> {
  const text = await fs.readFile(file, 'utf8').catch(() => '');
  return `--- ${path.basename(file)}\n${text.split('\n').slice(-lines).join('\n')}`;
}

async function selfSigned(dir: string, name: string, cn: string): Promise<string> {
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-sha256', '-nodes', '-days', '3650', '-subj', `/CN=${cn}`,
    '-keyout', path.join(dir, 'cert', `${name}.pem`), '-out', path.join(dir, 'cert', `${name}.crt`)]);
  return fs.readFile(path.join(dir, 'cert', `${name}.crt`), 'utf8');
}

export async function startSimpleSamlPhp(options: {
  serviceProviders: SspServiceProvider[];
  users?: SspUser[]; // default alice/alicepass, bob/bobpass, carol/carolpass
  /** Point default-sp at an external IdP (metadata fetched by SimpleSAMLphp per request). Default: this IdP. */
  externalIdp?: { entityId: string; metadataUrl: string };
  port?: number;
}): Promise<SimpleSamlPhp> {
  const why = simpleSamlPhpMissing();
  if (why) throw new Error(`SimpleSAMLphp cannot run here: ${why}`);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'keybridge-ssp-'));
  try {
    await Promise.all(['config', 'metadata', 'cert', 'log', 'data', 'tmp', 'sessions'].map((d) => fs.mkdir(path.join(dir, d))));
    const [certPem, spPem] = await Promise.all([
      selfSigned(dir, 'idp', '127.0.0.1 SimpleSAMLphp test IdP'), selfSigned(dir, 'sp', '127.0.0.1 SimpleSAMLphp test SP')]);
    const logFile = path.join(dir, 'log', 'php-server.log');
    const logs = async () => (await Promise.all([tail(logFile, 40), tail(path.join(dir, 'log', 'php-error.log'), 40),
      tail(path.join(dir, 'log', 'simplesamlphp.log'), 60)])).join('\n');
    // Two racing callers may be handed the same "free" port; a lost race retries with a new one.
    for (let attempt = 1; ; attempt++) {
      const port = options.port ?? (await freePort());
      const baseUrl = `http://127.0.0.1:${port}`;
      await writeConfig(dir, port, options, certPem, spPem);
      const log = openSync(logFile, 'a');
      // Detached: its own process group, so stop() reaches the PHP_CLI_SERVER_WORKERS children too.
      const child = spawn('php', ['-d', 'variables_order=EGPCS', '-d', `session.save_path=${dir}/sessions`,
        '-d', `error_log=${dir}/log/php-error.log`, '-S', `127.0.0.1:${port}`, '-t', `${SSP}/www`], {
        cwd: `${SSP}/www`, detached: true, stdio: ['ignore', log, log],
        env: { ...process.env, SIMPLESAMLPHP_CONFIG_DIR: `${dir}/config`, PHP_CLI_SERVER_WORKERS: '4' },
      });
      closeSync(log);
      child.unref();
      live.set(child, dir);
      const entityId = `${baseUrl}/saml2/idp/metadata.php`;
      let metadataXml = '';
      for (const deadline = Date.now() + 10_000; child.exitCode === null && Date.now() < deadline; await sleep(100)) {
        const xml = await fetch(entityId).then((r) => (r.ok ? r.text() : ''), () => '');
        // Our certificate in it proves the answer came from this instance, not a port-race winner.
        if (xml.includes(`entityID="${entityId}"`) && xml.includes(certData(certPem))) { metadataXml = xml; break; }
      }
      if (metadataXml) {
        let stopping: Promise<void> | undefined;
        const sp = `${baseUrl}/module.php/saml/sp/metadata.php/default-sp`;
        const q = (params: Record<string, string | undefined>) =>
          new URLSearchParams(Object.entries(params).filter((e): e is [string, string] => e[1] !== undefined)).toString();
        return {
          baseUrl, entityId, metadataUrl: entityId, metadataXml, certPem, dir, logs,
          ssoUrl: `${baseUrl}/saml2/idp/SSOService.php`,
          sloUrl: `${baseUrl}/saml2/idp/SingleLogoutService.php`,
          idpInitiatedUrl: (spEntityId, relayState) => `${baseUrl}/saml2/idp/SSOService.php?${q({ spentityid: spEntityId, RelayState: relayState })}`,
          idpLogoutUrl: (returnTo) => `${baseUrl}/saml2/idp/SingleLogoutService.php?${q({ ReturnTo: returnTo })}`,
          spLoginUrl: `${baseUrl}/module.php/core/authenticate.php?as=default-sp`,
          spMetadataUrl: sp, spEntityId: sp,
          spLogoutUrl: (returnTo) => `${baseUrl}/module.php/core/as_logout.php?${q({ AuthId: 'default-sp', ReturnTo: returnTo })}`,
          stop: () => (stopping ??= killGroup(child).then(() => fs.rm(dir, { recursive: true, force: true }))),
        };
      }
      await killGroup(child);
      const text = await logs();
      if (options.port !== undefined || attempt >= 3 || !/Address already in use/.test(text)) {
        throw new Error(`SimpleSAMLphp did not serve its metadata on ${baseUrl} within 10 s (php ${child.exitCode === null ? 'running' : `exited ${child.exitCode}`}):\n${text}`);
      }
    }
  } catch (err) {
    await fs.rm(dir, { recursive: true, force: true });
    throw err;
  }
}

// ------------------------------------------------------------------------------------- agent ---

type Page = { url: string; status: number; html: string };
type Form = { action: string; method: string; fields: Record<string, string> };

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
const decode = (s: string) => s.replace(/&(#x[0-9a-f]+|#[0-9]+|amp|lt|gt|quot|apos);/gi, (m, e: string) =>
  e[0] !== '#' ? ENTITIES[e.toLowerCase()] : String.fromCodePoint(e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : Number(e.slice(1))));

function attributes(tag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of tag.matchAll(/([^\s=/>]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g)) {
    out[m[1].toLowerCase()] = decode(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return out;
}

/** Every <form> with what a browser would submit (no submit buttons, only checked boxes). */
function forms(html: string, baseUrl: string): Form[] {
  return [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)(?:<\/form>|$)/gi)].map(([, tag, body]) => {
    const a = attributes(tag);
    const fields: Record<string, string> = {};
    for (const [, input] of body.matchAll(/<input\b([^>]*)>/gi)) {
      const i = attributes(input);
      const type = (i.type ?? 'text').toLowerCase();
      if (!i.name || ['submit', 'button', 'image', 'reset', 'file'].includes(type)) continue;
      if ((type === 'checkbox' || type === 'radio') && !('checked' in i)) continue;
      fields[i.name] = i.value ?? (type === 'checkbox' ? 'on' : '');
    }
    for (const [, tagText, text] of body.matchAll(/<textarea\b([^>]*)>([\s\S]*?)<\/textarea>/gi)) {
      const name = attributes(tagText).name;
      if (name) fields[name] = decode(text);
    }
    return { action: new URL(a.action ?? '', baseUrl).toString(), method: (a.method ?? 'get').toUpperCase(), fields };
  });
}

/** A user agent with its own cookie jar, following redirects, for scripting SimpleSAMLphp pages over HTTP. */
export class SamlAgent {
  /** host:port -> cookie name -> value. Browsers key by host only; tests run many servers on 127.0.0.1. */
  readonly cookies = new Map<string, Map<string, string>>();

  /** GET (or POST `form`), following redirects (303/302/301 -> GET) until a non-redirect, or until
   *  `stopAt(location)` is true: then returns that Location as `url` without requesting it. */
  async go(url: string, init: { form?: Record<string, string>; stopAt?: (url: string) => boolean } = {}): Promise<Page> {
    let method = init.form ? 'POST' : 'GET';
    let body = init.form ? new URLSearchParams(init.form).toString() : undefined;
    for (let hop = 0; hop < 30; hop++) {
      const host = new URL(url).host;
      const headers: Record<string, string> = {};
      const jar = this.cookies.get(host);
      if (jar?.size) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
      if (body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
      const res = await fetch(url, { method, headers, body, redirect: 'manual' });
      this.store(host, res.headers.getSetCookie());
      const html = await res.text();
      const location = res.headers.get('location');
      if (res.status < 300 || res.status >= 400 || !location) return { url, status: res.status, html };
      const next = new URL(location, url).toString();
      if (init.stopAt?.(next)) return { url: next, status: res.status, html };
      if (res.status !== 307 && res.status !== 308) { method = 'GET'; body = undefined; }
      url = next;
    }
    throw new Error(`more than 30 redirects, last to ${url}`);
  }

  private store(host: string, setCookies: string[]): void {
    for (const line of setCookies) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq < 0) continue;
      const name = pair.slice(0, eq).trim(), value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => {
        const [k, v = ''] = a.split('=').map((s) => s.trim());
        return (/^max-age$/i.test(k) && Number(v) <= 0) || (/^expires$/i.test(k) && Date.parse(v) < Date.now());
      });
      const jar = this.cookies.get(host) ?? new Map<string, string>();
      this.cookies.set(host, jar);
      if (expired) jar.delete(name);
      else jar.set(name, value);
    }
  }

  /** The first <form> of a page: absolute action, method (upper case), fields a browser would submit. */
  static form(html: string, baseUrl: string): Form | null {
    return forms(html, baseUrl)[0] ?? null;
  }

  /** Submits SimpleSAMLphp's username/password form on `page` and returns the next page without
   *  submitting it (usually the auto-submit form POSTing SAMLResponse to an ACS; on wrong
   *  credentials the login form again). */
  async login(page: { url: string; html: string }, username: string, password: string): Promise<Page> {
    const form = forms(page.html, page.url).find((f) => 'password' in f.fields);
    if (!form) throw new Error(`no username/password form on ${page.url}:\n${page.html.slice(0, 1500)}`);
    return this.go(form.action, { form: { ...form.fields, username, password } });
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
