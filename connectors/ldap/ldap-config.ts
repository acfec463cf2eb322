// The `config:` block of an `ldap` (or `activedirectory`) connector, and the presets that fill
// in what a directory flavour always looks like. Every field is documented where it is defined.
import { z } from 'zod';

const ldapUrl = z.string().regex(/^ldaps?:\/\/[^\s/?#]+(:\d{1,5})?\/?$/i, 'must be an ldap:// or ldaps:// URL with a host (and optional port), nothing after it');
const attributeName = z.string().regex(/^[A-Za-z][A-Za-z0-9-]*$|^\d+(\.\d+)+$/, 'must be an LDAP attribute name');
/** A filter is written by the operator, never built from input; we only check its shape. */
const filter = z.string().regex(/^\(.*\)$/s, 'must be an LDAP filter in parentheses, e.g. (objectClass=person)');
const dn = z.string().min(3).max(1024);

const groupSource = z.discriminatedUnion('type', [
  z.strictObject({
    /** Groups that list their members by DN (groupOfNames `member`, groupOfUniqueNames `uniqueMember`). */
    type: z.literal('member').describe('member: groups that list their members by DN (groupOfNames, groupOfUniqueNames).'),
    baseDn: dn.describe('Where the groups are, e.g. ou=groups,dc=example,dc=org.'),
    filter: filter.default('(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))').describe('Which entries under baseDn are groups.'),
    attributes: z.array(attributeName).min(1).default(['member', 'uniqueMember']).describe('Member attributes to match the user\'s DN against.'),
    nested: z.boolean().default(true).describe('Follow groups that are members of groups.'),
  }),
  z.strictObject({
    /** posixGroup: members listed by a user attribute value (`memberUid: alice`); never nested. */
    type: z.literal('posix').describe('posix: posixGroup entries listing members by a user attribute value (memberUid: alice); never nested.'),
    baseDn: dn.describe('Where the groups are, e.g. ou=groups,dc=example,dc=org.'),
    filter: filter.default('(objectClass=posixGroup)').describe('Which entries under baseDn are groups.'),
    attribute: attributeName.default('memberUid').describe('The group attribute that lists its members.'),
    userAttribute: attributeName.default('uid').describe('Which attribute of the user is listed in `attribute`.'),
  }),
  z.strictObject({
    /** The user's own `memberOf` (OpenLDAP memberof overlay, AD); nested via the groups' memberOf. */
    type: z.literal('memberOf').describe("memberOf: the user's own memberOf attribute (OpenLDAP memberof overlay, AD)."),
    attribute: attributeName.default('memberOf').describe("The user's attribute listing the DNs of their groups."),
    nested: z.boolean().default(true).describe("Follow the groups' own memberOf to the groups they are in."),
  }),
  z.strictObject({
    /** Active Directory: every group the user is in, transitively, in one search (LDAP_MATCHING_RULE_IN_CHAIN). */
    type: z.literal('inChain').describe('inChain: Active Directory, every group the user is in, transitively, in one search.'),
    baseDn: dn.describe('Where the groups are searched.'),
    filter: filter.default('(objectClass=group)').describe('Which entries under baseDn are groups.'),
  }),
]);

const syncSchema = z.strictObject({
  intervalMinutes: z.number().int().min(0).max(7 * 24 * 60).default(0).describe('Run an import every this many minutes inside the broker (0: only `keybridge ldap sync`).'),
  pageSize: z.number().int().min(10).max(5000).default(500).describe('Entries per page of the simple paged results control.'),
  disableRemoved: z.boolean().default(true).describe('Disable local users whose directory entry is gone.'),
});

export const ldapConfigSchema = z
  .strictObject({
    preset: z
      .enum(['openldap', 'activedirectory'])
      .optional()
      .describe('Fills in filters, attributes and group lookups for a directory flavour; explicit fields win (type activedirectory always uses activedirectory).'),
    url: z.union([ldapUrl, z.array(ldapUrl).min(1).max(8)]).describe('The ldaps:// or ldap:// URL of the directory, or several tried in order (failover).'),
    startTls: z.boolean().default(false).describe('Upgrade ldap:// connections with StartTLS before anything is sent.'),
    allowInsecure: z.boolean().default(false).describe('Plain ldap:// without StartTLS sends passwords in clear text; it is refused for anything but a loopback host unless this is set.'),
    tls: z
      .strictObject({
        caFile: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional().describe('PEM file(s) of the CA(s) that signed the server certificate.'),
        ca: z.string().includes('-----BEGIN CERTIFICATE-----', { message: 'must be PEM text' }).optional().describe('The CA certificate(s) as inline PEM text, instead of caFile.'),
        rejectUnauthorized: z.boolean().default(true).describe('Certificate verification; turning it off is only for a lab.'),
        serverName: z.string().min(1).optional().describe('Name to check the certificate against when it differs from the URL host.'),
      })
      .default({ rejectUnauthorized: true })
      .describe('TLS for ldaps:// and StartTLS: which CA to trust and how the server certificate is checked.'),
    connectTimeoutMs: z.number().int().min(100).max(120_000).default(5000).describe('How long to wait for a connection (and StartTLS), in milliseconds.'),
    timeoutMs: z.number().int().min(100).max(300_000).default(10_000).describe('Time limit for each operation (bind, search page), in milliseconds.'),
    pool: z
      .strictObject({
        size: z.number().int().min(1).max(64).default(4).describe('Connections kept open and reused, so a login costs no TCP or TLS handshake.'),
        idleTimeoutMs: z.number().int().min(1000).max(3_600_000).default(60_000).describe('Idle connections are closed after this many milliseconds.'),
      })
      .default({ size: 4, idleTimeoutMs: 60_000 })
      .describe('Connections kept open to the directory and reused.'),
    bindDn: dn.optional().describe('Service account for searches (bind-search-bind). Leave out for anonymous search or direct bind.'),
    bindPassword: z.string().min(1).optional().describe("The service account's password (a secret: stored encrypted, never shown)."),
    userDnTemplate: z
      .string()
      .includes('{username}', { message: 'must contain {username}' })
      .optional()
      .describe("Direct bind: the user's DN from a template, `{username}` replaced by the DN-escaped login name, e.g. `uid={username},ou=people,dc=example,dc=org`. No search before the bind."),
    users: z.strictObject({
      baseDn: dn.describe('Where the users are, e.g. ou=people,dc=example,dc=org.'),
      scope: z.enum(['one', 'sub']).default('sub').describe('one: only right below baseDn; sub: the whole subtree.'),
      filter: filter.optional().describe('Which entries are users; combined with the login match.'),
      loginAttributes: z
        .array(attributeName)
        .min(1)
        .max(8)
        .optional()
        .describe('The login name is matched against each of these (OR); default uid and mail (AD: sAMAccountName, userPrincipalName, mail).'),
      subjectAttribute: attributeName.optional().describe('A stable, never-reassigned id: entryUUID (OpenLDAP, the default), objectGUID (AD). Never the DN.'),
      usernameAttribute: attributeName.optional().describe('Attribute for the username; default uid (AD: sAMAccountName).'),
      emailAttribute: attributeName.optional().describe('Attribute for the email address; default mail.'),
      nameAttribute: attributeName.optional().describe('Attribute for the full name; default cn (AD: displayName).'),
      givenNameAttribute: attributeName.optional().describe('Attribute for the given name; default givenName.'),
      familyNameAttribute: attributeName.optional().describe('Attribute for the family name; default sn.'),
      extraAttributes: z.array(attributeName).max(32).default([]).describe('Copied into the identity\'s attributes, for mappers.'),
      trustEmail: z.boolean().default(false).describe('The directory\'s email addresses are managed by administrators: mark them verified.'),
      /**
       * OpenLDAP ppolicy: the default policy entry (olcPPolicyDefault), read for
       * pwdLockoutDuration so an expired lockout is not taken for a permanent one at refresh and
       * import. A user's own pwdPolicySubentry wins. Unset: the one pwdPolicy entry in the naming
       * context, if there is exactly one; else a lock counts until an administrator clears it.
       */
      passwordPolicyDn: dn.optional().describe("OpenLDAP ppolicy: the DN of the default password policy entry, read for the lockout duration; a user's own pwdPolicySubentry wins."),
    }).describe('Where the users are and which attributes fill their identity.'),
    groups: z
      .strictObject({
        sources: z
          .array(groupSource)
          .max(8)
          .optional()
          .describe("Where group memberships come from (member, posix, memberOf, inChain), all combined; default memberOf (AD: inChain under users.baseDn)."),
        nameAttribute: attributeName.default('cn').describe('Attribute read from group entries for the group name (else the first RDN value).'),
        maxDepth: z.number().int().min(1).max(32).default(10).describe('How deep nested groups are followed.'),
        nestingCacheSeconds: z
          .number()
          .int()
          .min(0)
          .max(3600)
          .default(60)
          .describe("How long, in seconds, the nesting of groups (which sits in which) is remembered across logins; a user's own memberships are always read live, 0 reads the nesting live too."),
      })
      .optional()
      .describe("Where the user's groups (the groups claim) come from."),
    netbiosDomain: z.string().regex(/^[A-Za-z0-9._-]{1,15}$/).optional().describe('Active Directory: the NetBIOS domain, so `EXAMPLE\\alice` is accepted as a login.'),
    sync: syncSchema.optional().describe('How the directory\'s users are imported into Keybridge (on a schedule here, or with `keybridge ldap sync`).'),
  })
  .superRefine((c, ctx) => {
    // Runs even when other fields failed (`when` below), so every problem is reported at once;
    // hence the defensive reads.
    if (Boolean(c.bindDn) !== Boolean(c.bindPassword)) {
      ctx.addIssue({ code: 'custom', path: [c.bindDn ? 'bindPassword' : 'bindDn'], message: 'bindDn and bindPassword go together' });
    }
    const urls = (Array.isArray(c.url) ? c.url : [c.url]).filter((u): u is string => typeof u === 'string' && /^ldaps?:\/\/[^\s/?#]+(:\d{1,5})?\/?$/i.test(u));
    if (c.startTls && urls.some((u) => /^ldaps:/i.test(u))) {
      ctx.addIssue({ code: 'custom', path: ['startTls'], message: 'StartTLS is for ldap:// URLs; ldaps:// is already encrypted' });
    }
    if (!c.startTls && !c.allowInsecure) {
      const remotePlain = urls.find((u) => /^ldap:/i.test(u) && !isLoopbackUrl(u));
      if (remotePlain) {
        ctx.addIssue({ code: 'custom', path: ['url'], message: `${remotePlain} would send passwords unencrypted: use ldaps://, startTls: true, or allowInsecure: true` });
      }
    }
  }, { when: () => true });

export type LdapConfigInput = z.input<typeof ldapConfigSchema>;
export type LdapConfig = z.output<typeof ldapConfigSchema>;
export type GroupSource = z.output<typeof groupSource>;

function isLoopbackUrl(url: string): boolean {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** The config with every preset default applied: what the connector actually runs with. */
export interface ResolvedLdapConfig extends LdapConfig {
  urls: string[];
  activeDirectory: boolean;
  userFilter: string;
  loginAttributes: string[];
  subjectAttribute: string;
  attributeMap: { username: string; email: string; name: string; givenName: string; familyName: string };
  groupSources: GroupSource[];
  groupNameAttribute: string;
  groupMaxDepth: number;
  groupNestingCacheMs: number;
}

export function resolveLdapConfig(c: LdapConfig): ResolvedLdapConfig {
  const ad = c.preset === 'activedirectory';
  const u = c.users;
  return {
    ...c,
    urls: Array.isArray(c.url) ? c.url : [c.url],
    activeDirectory: ad,
    userFilter: u.filter ?? (ad ? '(&(objectCategory=person)(objectClass=user))' : '(|(objectClass=inetOrgPerson)(objectClass=posixAccount)(objectClass=person))'),
    loginAttributes: u.loginAttributes ?? (ad ? ['sAMAccountName', 'userPrincipalName', 'mail'] : ['uid', 'mail']),
    subjectAttribute: u.subjectAttribute ?? (ad ? 'objectGUID' : 'entryUUID'),
    attributeMap: {
      username: u.usernameAttribute ?? (ad ? 'sAMAccountName' : 'uid'),
      email: u.emailAttribute ?? 'mail',
      name: u.nameAttribute ?? (ad ? 'displayName' : 'cn'),
      givenName: u.givenNameAttribute ?? 'givenName',
      familyName: u.familyNameAttribute ?? 'sn',
    },
    groupSources: c.groups?.sources ?? (ad ? [{ type: 'inChain', baseDn: u.baseDn, filter: '(objectClass=group)' }] : [{ type: 'memberOf', attribute: 'memberOf', nested: true }]),
    groupNameAttribute: c.groups?.nameAttribute ?? 'cn',
    groupMaxDepth: c.groups?.maxDepth ?? 10,
    groupNestingCacheMs: (c.groups?.nestingCacheSeconds ?? 60) * 1000,
  };
}
