// A private OpenLDAP (slapd) per call: own cn=config, own CA, own ports, seeded directory.
// Ported from a bash recipe; needs slapd, slapadd and openssl (installed via apt when root).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, openSync, closeSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client, Change, Attribute, Control } from 'ldapts';
import { freePort } from './free-port.ts';

const run = promisify(execFile);

export interface OpenLdapServer {
  url: string; // ldap://127.0.0.1:<port> (StartTLS works here too)
  ldapsUrl: string; // ldaps://127.0.0.1:<tlsPort>
  caFile: string; // CA that signed the server cert (SAN IP:127.0.0.1, DNS:localhost)
  caPem: string;
  baseDn: string;
  adminDn: string; adminPassword: string; // rootDN
  serviceDn: string; servicePassword: string; // read-only bind account
  limitedDn: string; limitedPassword: string; // read-only too, but olcLimits caps it at 5 entries per search (paged or not)
  dir: string; // private temp folder
  stop(): Promise<void>; // kills slapd by its PID file, waits for exit, removes dir
}

const BASE = 'dc=example,dc=org';
const ADMIN_DN = `cn=admin,${BASE}`;
const ADMIN_PW = 'adminpass';
const SVC_DN = `cn=svc-broker,ou=services,${BASE}`;
const SVC_PW = 'svcpass';
const LIMITED_DN = `cn=svc-limited,ou=services,${BASE}`;
const LIMITED_PW = 'limitedpass';
const RELAX = '1.3.6.1.4.1.4203.666.5.12'; // lets the rootDN write NO-USER-MODIFICATION attributes
const BINS = ['slapd', 'slapadd', 'openssl'];

/** {SSHA}: base64(sha1(password + salt) + salt); what slappasswd makes, without a spawn per user. */
export function ssha(password: string): string {
  const salt = randomBytes(8);
  const digest = createHash('sha1').update(password).update(salt).digest();
  return `{SSHA}${Buffer.concat([digest, salt]).toString('base64')}`;
}

/** Debian puts slapd in /usr/sbin, which a non-root PATH often lacks. */
function which(bin: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin', '/sbin'];
  for (const d of dirs) if (d && existsSync(path.join(d, bin))) return path.join(d, bin);
  return undefined;
}

let installing: Promise<string | undefined> | undefined; // one apt-get per process, however many callers
async function install(): Promise<string | undefined> {
  if (BINS.every((b) => which(b))) return undefined;
  if (process.getuid?.() !== 0) return `slapd/openssl are missing and we are not root to apt-get install slapd ldap-utils openssl`;
  // Keep the package's postinst from creating dc=nodomain and from starting a system slapd.
  const policy = '/usr/sbin/policy-rc.d';
  const created = !existsSync(policy);
  try {
    if (created) await fs.writeFile(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
    const opts = { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, maxBuffer: 64 << 20 };
    await run('sh', ['-c', 'echo "slapd slapd/no_configuration boolean true" | debconf-set-selections'], opts);
    const apt = () => run('apt-get', ['install', '-y', '-q', 'slapd', 'ldap-utils', 'openssl'], opts);
    await apt().catch(() => run('apt-get', ['update', '-q'], opts).then(apt)); // missing/stale package lists
  } catch (err) {
    return `slapd is not installed and apt-get install failed: ${(err as Error).message.split('\n')[0]}`;
  } finally {
    if (created) await fs.rm(policy, { force: true });
  }
  return BINS.every((b) => which(b)) ? undefined : 'apt-get install slapd ran but slapd/slapadd are still missing';
}

async function makeCerts(tls: string): Promise<void> {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '3650']; // EC: fast keygen
  await run(which('openssl')!, ['req', '-x509', ...ec, '-subj', '/CN=Keybridge Test LDAP CA', '-keyout', 'ca.key', '-out', 'ca.crt',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], { cwd: tls });
  await run(which('openssl')!, ['req', '-x509', '-CA', 'ca.crt', '-CAkey', 'ca.key', ...ec, '-subj', '/CN=localhost',
    '-keyout', 'server.key', '-out', 'server.crt', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-addext', 'basicConstraints=critical,CA:FALSE', '-addext', 'extendedKeyUsage=serverAuth'], { cwd: tls });
}

function configLdif(dir: string): string {
  return `dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: ${dir}/slapd.pid
olcTLSCACertificateFile: ${dir}/tls/ca.crt
olcTLSCertificateFile: ${dir}/tls/server.crt
olcTLSCertificateKeyFile: ${dir}/tls/server.key
olcPasswordHash: {SSHA}

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb
olcModuleLoad: memberof
olcModuleLoad: refint
olcModuleLoad: ppolicy

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif
include: file:///etc/ldap/schema/cosine.ldif
include: file:///etc/ldap/schema/nis.ldif
include: file:///etc/ldap/schema/inetorgperson.ldif

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcAccess: {0}to dn.base="" by * read
olcAccess: {1}to dn.base="cn=Subschema" by users read by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: ${BASE}
olcRootDN: ${ADMIN_DN}
olcRootPW: ${ssha(ADMIN_PW)}
olcDbDirectory: ${dir}/db
olcDbMaxSize: 1073741824
olcDbNoSync: TRUE
olcSizeLimit: size.soft=500 size.hard=unlimited
olcLimits: {0}dn.exact="${LIMITED_DN}" size.soft=5 size.hard=5 size.prtotal=5
olcDbIndex: objectClass eq
olcDbIndex: uid,mail,cn,memberUid eq,sub
olcDbIndex: member,uniqueMember,memberOf eq
olcDbIndex: entryUUID eq
olcAccess: {0}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {1}to * by users read by * none

dn: olcOverlay={0}memberof,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcMemberOf
olcOverlay: {0}memberof
olcMemberOfRefInt: TRUE
olcMemberOfGroupOC: groupOfNames
olcMemberOfMemberAD: member
olcMemberOfMemberOfAD: memberOf

dn: olcOverlay={1}refint,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcRefintConfig
olcOverlay: {1}refint
olcRefintAttribute: member uniqueMember

dn: olcOverlay={2}ppolicy,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcPPolicyConfig
olcOverlay: {2}ppolicy
olcPPolicyDefault: cn=default,ou=policies,${BASE}
olcPPolicyUseLockout: FALSE
`;
}

type Attrs = Record<string, string | string[]>;
const person = (uid: string, n: number, given: string, sn: string, extra: Attrs = {}, home = uid): [string, Attrs] => [
  `uid=${uid},ou=people,${BASE}`,
  { objectClass: ['inetOrgPerson', 'posixAccount'], uid, cn: `${given} ${sn}`, givenName: given, sn, displayName: `${given} ${sn}`,
    mail: `${home}@example.org`, uidNumber: String(10000 + n), gidNumber: '5000', homeDirectory: `/home/${home}`, ...extra },
];
const group = (cn: string, members: string[]): [string, Attrs] => [`cn=${cn},ou=groups,${BASE}`, { objectClass: 'groupOfNames', cn, member: members }];
const U = (uid: string) => `uid=${uid},ou=people,${BASE}`;
const G = (cn: string) => `cn=${cn},ou=groups,${BASE}`;

async function seed(url: string): Promise<void> {
  const c = new Client({ url, timeout: 10_000 });
  try {
    await c.bind(ADMIN_DN, ADMIN_PW);
    const ou = (name: string): [string, Attrs] => [`ou=${name},${BASE}`, { objectClass: 'organizationalUnit', ou: name }];
    const entries: [string, Attrs][] = [
      [BASE, { objectClass: ['dcObject', 'organization'], dc: 'example', o: 'Example Org' }],
      ...['people', 'groups', 'posixgroups', 'services', 'policies', 'contractors'].map(ou),
      // pwdMaxFailure 0: wrong-password tests never lock anyone out. A lock set by hand
      // (pwdAccountLockedTime) lasts an hour; 000001010000Z lasts until an administrator clears it.
      [`cn=default,ou=policies,${BASE}`, { objectClass: ['device', 'pwdPolicy'], cn: 'default', pwdAttribute: 'userPassword', pwdLockout: 'TRUE', pwdMaxFailure: '0', pwdLockoutDuration: '3600' }],
      [SVC_DN, { objectClass: ['applicationProcess', 'simpleSecurityObject'], cn: 'svc-broker', userPassword: ssha(SVC_PW) }],
      [LIMITED_DN, { objectClass: ['applicationProcess', 'simpleSecurityObject'], cn: 'svc-limited', userPassword: ssha(LIMITED_PW) }],
      person('alice', 1, 'Alice', 'Anderson', { title: 'Engineering Lead', userPassword: ssha('alicepass') }),
      person('bob', 2, 'Bob', 'Brown', { userPassword: ssha('bobpass') }),
      person('carol', 3, 'Carol', 'Clark', { userPassword: ssha('carolpass') }),
      // Permanently locked (ppolicy: 000001010000Z = until an admin clears it); added with Relax below.
      person('dave', 4, 'Dave', 'Locked', { userPassword: ssha('davepass'), pwdAccountLockedTime: '000001010000Z' }),
      person('eve', 5, 'Ève', 'Müller', { userPassword: ssha('evepass') }),
      // Filter metacharacters in the uid; in a DN they need no escaping. mail/home use a plain name.
      person('o(brien)*', 6, 'Ollie', "O'Brien", { userPassword: ssha('obrienpass') }, 'obrien'),
      group('engineering', [U('alice'), U('bob')]),
      group('admins', [U('alice')]),
      group('staff', [G('engineering'), U('carol'), U('eve')]), // nested
      group('cycle-a', [U('bob')]), // cycle-b is added to it below, once it exists (so memberOf is set)
      group('cycle-b', [G('cycle-a')]),
      [G('auditors'), { objectClass: 'groupOfUniqueNames', cn: 'auditors', uniqueMember: U('carol') }],
      [`cn=developers,ou=posixgroups,${BASE}`, { objectClass: 'posixGroup', cn: 'developers', gidNumber: '5001', memberUid: ['alice', 'bob'] }],
      [`cn=operators,ou=posixgroups,${BASE}`, { objectClass: 'posixGroup', cn: 'operators', gidNumber: '5002', memberUid: ['carol', 'dave'] }],
    ];
    for (const [dn, attrs] of entries) await c.add(dn, attrs, 'pwdAccountLockedTime' in attrs ? new Control(RELAX) : undefined);
    await c.modify(G('cycle-a'), new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [G('cycle-b')] }) }));
  } finally {
    await c.unbind().catch(() => {});
  }
}

/** True once an anonymous rootDSE read succeeds. */
async function answers(url: string): Promise<boolean> {
  const c = new Client({ url, timeout: 1000, connectTimeout: 1000 });
  const ok = await c.search('', { scope: 'base', attributes: ['namingContexts'] }).then(() => true, () => false);
  await c.unbind().catch(() => {});
  return ok;
}

// A test process that exits without stop() (crash, forgotten after()) must not leave slapds behind.
const live = new Map<ChildProcess, string>();
process.once('exit', () => {
  for (const [child, dir] of live) { child.kill('SIGKILL'); rmSync(dir, { recursive: true, force: true }); }
});

/** SIGTERM by the PID file, wait (up to 5 s, then SIGKILL) until the process is gone. */
async function kill(dir: string, child: ChildProcess): Promise<void> {
  live.delete(child);
  if (child.exitCode !== null || child.signalCode !== null) return; // never signal a stale PID
  const pid = Number(await fs.readFile(path.join(dir, 'slapd.pid'), 'utf8').catch(() => child.pid));
  const gone = once(child, 'exit');
  process.kill(pid, 'SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await gone;
  clearTimeout(timer);
}

export async function startOpenLdap(): Promise<OpenLdapServer | { skip: string }> {
  const missing = await (installing ??= install());
  if (missing) return { skip: missing };
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'keybridge-slapd-'));
  try {
    await Promise.all(['db', 'slapd.d', 'tls'].map((d) => fs.mkdir(path.join(dir, d))));
    await makeCerts(path.join(dir, 'tls'));
    await fs.writeFile(path.join(dir, 'config.ldif'), configLdif(dir));
    await run(which('slapadd')!, ['-n', '0', '-F', path.join(dir, 'slapd.d'), '-l', path.join(dir, 'config.ldif')]);
    const logFile = path.join(dir, 'slapd.log');
    // Two racing callers may be handed the same "free" port; a lost race just retries with new ones.
    for (let attempt = 1; ; attempt++) {
      const url = `ldap://127.0.0.1:${await freePort()}`, ldapsUrl = `ldaps://127.0.0.1:${await freePort()}`;
      // Foreground (-d) so stderr is a log we can show and this process reaps it; in our process
      // group so Ctrl-C reaches it; unref'd so it never keeps the test process alive.
      const log = openSync(logFile, 'a');
      const child = spawn(which('slapd')!, ['-d', 'stats', '-F', path.join(dir, 'slapd.d'), '-h', `${url}/ ${ldapsUrl}/`],
        { stdio: ['ignore', log, log] });
      closeSync(log);
      child.unref();
      live.set(child, dir);
      // slapd writes its PID file only after binding its ports, so a matching PID file proves the
      // answer came from our slapd and not from another instance that won a port race.
      const ours = async () => child.exitCode === null && child.signalCode === null &&
        (await fs.readFile(path.join(dir, 'slapd.pid'), 'utf8').catch(() => '')).trim() === String(child.pid) && (await answers(url));
      const deadline = Date.now() + 10_000;
      let up = false;
      while (!(up = await ours()) && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      if (up) {
        const stop = () => kill(dir, child).then(() => fs.rm(dir, { recursive: true, force: true }));
        await seed(url).catch(async (err) => { await stop(); throw err; });
        const caFile = path.join(dir, 'tls', 'ca.crt');
        return { url, ldapsUrl, caFile, caPem: await fs.readFile(caFile, 'utf8'), baseDn: BASE, adminDn: ADMIN_DN, adminPassword: ADMIN_PW,
          serviceDn: SVC_DN, servicePassword: SVC_PW, limitedDn: LIMITED_DN, limitedPassword: LIMITED_PW, dir, stop };
      }
      const why = child.exitCode !== null ? `slapd exited with code ${child.exitCode}` : 'no answer within 10 s';
      await kill(dir, child);
      const logTail = (await fs.readFile(logFile, 'utf8').catch(() => '')).split('\n').slice(-30).join('\n');
      if (attempt >= 3 || !/Address already in use/.test(logTail)) {
        throw new Error(`slapd did not come up on ${url} (${why}); log tail:\n${logTail}`);
      }
    }
  } catch (err) {
    await fs.rm(dir, { recursive: true, force: true });
    throw err;
  }
}
