// The ldap connector's pure parts: escaping (RFC 4515 filters, RFC 4514 DNs), DN and GUID
// helpers, what each bind error means, and config validation that names the wrong field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { escapeDnValue, escapeFilterValue, firstRdnValue, guidToBytes, guidToString, normalizeDn } from '../../../connectors/ldap/ldap-escape.ts';
import { adSubStatus, classifyBindError } from '../../../connectors/ldap/bind-errors.ts';
import { parseGeneralizedTime } from '../../../connectors/ldap/ldap-directory.ts';
import plugin from '../../../connectors/ldap/index.ts';
import adPlugin from '../../../connectors/activedirectory/index.ts';
import { resolveLdapConfig } from '../../../connectors/ldap/ldap-config.ts';
import { checkConnectorEntries } from '../../../src/connectors/registry.ts';
import { loadConfig } from '../../../src/config/load-config.ts';
import { configConnectorEntries } from '../../../src/server/connector-entries.ts';

test('filter values: every metacharacter escaped, nothing else touched', () => {
  assert.equal(escapeFilterValue('*)(|(uid=*'), '\\2a\\29\\28|\\28uid=\\2a');
  assert.equal(escapeFilterValue('a\\b\0c'), 'a\\5cb\\00c');
  assert.equal(escapeFilterValue('Ève Müller'), 'Ève Müller');
  assert.equal(escapeFilterValue('plain.name@example.org'), 'plain.name@example.org');
});

test('DN values: RFC 4514 specials, leading and trailing spaces, leading #', () => {
  assert.equal(escapeDnValue('a,b+c"d\\e<f>g;h=i'), 'a\\,b\\+c\\"d\\\\e\\<f\\>g\\;h\\=i');
  assert.equal(escapeDnValue(' lead'), '\\ lead');
  assert.equal(escapeDnValue('#hash'), '\\#hash');
  assert.equal(escapeDnValue('trail '), 'trail\\ ');
  assert.equal(escapeDnValue('o(brien)*'), 'o(brien)*');
});

test('first RDN values, normalized DNs and GUIDs', () => {
  assert.equal(firstRdnValue('cn=Staff,ou=groups,dc=example,dc=org'), 'Staff');
  assert.equal(firstRdnValue('CN=All Company,CN=Users,DC=example,DC=test'), 'All Company');
  assert.equal(firstRdnValue('cn=Smith\\, John,ou=people'), 'Smith, John');
  assert.equal(firstRdnValue('cn=\\C3\\89quipe,ou=groups'), 'Équipe');
  assert.equal(normalizeDn('CN=Staff, OU=Groups ,DC=Example'), 'cn=staff,ou=groups,dc=example');
  const guid = 'ac1748eb-d967-4552-8cfd-c4f8f6a9985f';
  const bytes = guidToBytes(guid)!;
  assert.deepEqual([...bytes.slice(0, 4)], [0xeb, 0x48, 0x17, 0xac], 'first field little-endian as AD stores it');
  assert.equal(guidToString(bytes), guid);
  assert.equal(guidToBytes('not-a-guid'), null);
  assert.equal(guidToBytes('*'), null);
});

test('bind errors: AD sub-status codes map to distinct reasons; transport errors are not answers', () => {
  const ad = (sub: string) => Object.assign(new Error(`80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data ${sub}, v1db1 Code: 0x31`), { code: 49 });
  const table: Record<string, string> = {
    '52e': 'invalid_credentials', '525': 'invalid_credentials', '530': 'not_permitted', '531': 'not_permitted',
    '532': 'password_expired', '533': 'account_disabled', '568': 'not_permitted', '701': 'account_expired',
    // 775 (locked out) comes whatever the password: it must not confirm that the account exists.
    '773': 'password_change_required', '775': 'invalid_credentials', '999': 'invalid_credentials',
  };
  for (const [sub, reason] of Object.entries(table)) {
    const failure = classifyBindError(ad(sub));
    assert.equal(failure?.reason, reason, sub);
    assert.ok(failure?.detail.includes(sub));
  }
  assert.equal(adSubStatus('... data 0000052E, v2580'), '52e');
  assert.equal(classifyBindError(Object.assign(new Error('Invalid Credentials Code: 0x31'), { code: 49 }))?.reason, 'invalid_credentials');
  assert.equal(classifyBindError(Object.assign(new Error('Constraint violation'), { code: 19 }))?.reason, 'account_locked');
  assert.equal(classifyBindError(Object.assign(new Error('Unwilling'), { code: 53 }))?.reason, 'not_permitted');
  assert.equal(classifyBindError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })), null);
  assert.equal(classifyBindError(Object.assign(new Error('Strong(er) authentication required'), { code: 8 })), null);
});

test('presets: OpenLDAP and AD defaults; explicit fields win', () => {
  const base = { url: 'ldap://127.0.0.1', users: { baseDn: 'dc=example,dc=org' } };
  const open = resolveLdapConfig(plugin.configSchema.parse(base));
  assert.deepEqual(open.loginAttributes, ['uid', 'mail']);
  assert.equal(open.subjectAttribute, 'entryUUID');
  assert.deepEqual(open.groupSources, [{ type: 'memberOf', attribute: 'memberOf', nested: true }]);
  const ad = resolveLdapConfig(adPlugin.configSchema.parse(base));
  assert.equal(ad.activeDirectory, true);
  assert.deepEqual(ad.loginAttributes, ['sAMAccountName', 'userPrincipalName', 'mail']);
  assert.equal(ad.subjectAttribute, 'objectGUID');
  assert.equal(ad.groupSources[0]?.type, 'inChain');
  const custom = resolveLdapConfig(plugin.configSchema.parse({ ...base, preset: 'activedirectory', users: { baseDn: 'dc=x', loginAttributes: ['employeeID'] } }));
  assert.deepEqual(custom.loginAttributes, ['employeeID']);
});

test('config problems are reported at their path, all at once, with no secret in them', async () => {
  const entry = (config: unknown, type = 'ldap') => ({ id: 'corp', type, name: 'Corp', enabled: true, config, origin: 'connectors[1]' });
  const cases: Array<[unknown, string, RegExp]> = [
    [{ url: 'ldap://ldap.example.org', users: { baseDn: 'dc=x' } }, 'connectors[1].config.url', /unencrypted.*ldaps:\/\/, startTls: true, or allowInsecure: true/],
    [{ url: 'ldaps://ldap.example.org', startTls: true, users: { baseDn: 'dc=x' } }, 'connectors[1].config.startTls', /already encrypted/],
    [{ url: 'ldaps://ldap.example.org/dc=x?uid', users: { baseDn: 'dc=x' } }, 'connectors[1].config.url', /nothing after it/],
    [{ url: 'http://ldap.example.org', users: { baseDn: 'dc=x' } }, 'connectors[1].config.url', /ldap:\/\/ or ldaps:\/\//],
    [{ url: 'ldaps://ldap.example.org', bindDn: 'cn=svc', users: { baseDn: 'dc=x' } }, 'connectors[1].config.bindPassword', /go together/],
    [{ url: 'ldaps://ldap.example.org', users: { baseDn: 'dc=x', filter: 'objectClass=person' } }, 'connectors[1].config.users.filter', /in parentheses/],
    [{ url: 'ldaps://ldap.example.org', users: { baseDn: 'dc=x', loginAttributes: ['uid)(x'] } }, 'connectors[1].config.users.loginAttributes[0]', /attribute name/],
    [{ url: 'ldaps://ldap.example.org', userDnTemplate: 'uid=x,dc=x', users: { baseDn: 'dc=x' } }, 'connectors[1].config.userDnTemplate', /\{username\}/],
    [{ url: 'ldaps://ldap.example.org', users: { baseDn: 'dc=x' }, groups: { sources: [{ type: 'member' }] } }, 'connectors[1].config.groups.sources[0].baseDn', /./],
    [{ url: 'ldaps://ldap.example.org', users: { baseDn: 'dc=x' }, poool: {} }, 'connectors[1].config', /poool/],
    [{ url: 'ldaps://ldap.example.org' }, 'connectors[1].config.users', /./],
  ];
  for (const [config, path, message] of cases) {
    const { issues } = await checkConnectorEntries([entry(config)]);
    const issue = issues.find((i) => i.path === path);
    assert.ok(issue, `${JSON.stringify(config)}: expected an issue at ${path}, got ${JSON.stringify(issues)}`);
    assert.match(issue.message, message);
  }
  const { issues } = await checkConnectorEntries([entry({ url: 'ldap://ldap.example.org', bindDn: 'cn=svc', bindPassword: 'hunter2-secret', startTls: false, users: {} }, 'activedirectory')]);
  assert.ok(issues.length >= 2, 'every problem at once');
  assert.ok(issues.every((i) => !i.message.includes('hunter2-secret')));
  const ok = await checkConnectorEntries([entry({ url: 'ldap://localhost:3389', users: { baseDn: 'dc=x' } }), entry({ url: ['ldaps://a.example', 'ldaps://b.example'], users: { baseDn: 'dc=x' } })]);
  assert.deepEqual(ok.issues, [], 'plain LDAP to loopback is fine; failover lists validate');
});

test('the LDAP and AD example configs are valid', async () => {
  for (const file of ['config/examples/ldap.yaml', 'config/examples/active-directory.yaml']) {
    const { config } = await loadConfig({ path: file, env: { LDAP_BIND_PASSWORD: 'x', AD_BIND_PASSWORD: 'y' } });
    const { issues } = await checkConnectorEntries(configConnectorEntries(config).filter((e) => e.type !== 'local'));
    assert.deepEqual(issues, [], file);
  }
});

test('a connector that cannot start names its config and the file', async () => {
  const { ConnectorRegistry } = await import('../../../src/connectors/registry.ts');
  const pino = (await import('pino')).default;
  await assert.rejects(
    ConnectorRegistry.open([{ id: 'corp', type: 'ldap', name: 'Corp', enabled: true, config: { url: 'ldaps://ldap.example.org', tls: { caFile: '/nonexistent/ca.pem' }, users: { baseDn: 'dc=x' } }, origin: 'connectors[0]' }], { logger: pino({ level: 'silent' }), localAccounts: {} as never }),
    (err: Error & { issues?: Array<{ path: string; message: string }> }) => {
      assert.equal(err.issues?.[0]?.path, 'connectors[0].config');
      assert.match(err.issues![0]!.message, /connector "corp" cannot start: tls\.caFile: cannot read \/nonexistent\/ca\.pem \(ENOENT\)/);
      return true;
    },
  );
});

test('GeneralizedTime: ppolicy lock times, fractions and offsets', () => {
  assert.equal(parseGeneralizedTime('20240131120000Z'), Date.UTC(2024, 0, 31, 12, 0, 0));
  assert.equal(parseGeneralizedTime('20240131120000.250Z'), Date.UTC(2024, 0, 31, 12, 0, 0, 250));
  assert.equal(parseGeneralizedTime('20240131140000+0200'), Date.UTC(2024, 0, 31, 12, 0, 0));
  assert.equal(parseGeneralizedTime('202401311200Z'), Date.UTC(2024, 0, 31, 12, 0, 0));
  assert.equal(parseGeneralizedTime('yesterday'), null);
});
