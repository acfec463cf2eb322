// The directory operations a connector needs: find a user by login name, check a password by
// binding as the user, re-read a user by its stable subject, tell whether an account may sign
// in, and page through every user for a sync.
import { AndFilter, EqualityFilter, FilterParser, type Client, type Entry, type Filter } from 'ldapts';
import type { ConnectorTestReport, FailureReason, LoginResult, UpstreamIdentity } from '../../src/connectors/contract.ts';
import { TestReport } from '../../src/connectors/test-report.ts';
import { classifyBindError } from './bind-errors.ts';
import { ConnectionPool, DirectoryUnavailable, loadCaBundle, type PooledConnection } from './connection-pool.ts';
import { attributeValues, firstValue, newGroupCache, resolveGroups, type GroupCache } from './group-resolver.ts';
import type { ResolvedLdapConfig } from './ldap-config.ts';
import { escapeDnValue, escapeFilterValue, guidToBytes, guidToString, normalizeDn } from './ldap-escape.ts';

/** userAccountControl bits (MS-ADTS 2.2.16). */
const UAC_ACCOUNTDISABLE = 0x2;
/** accountExpires values that mean "never". */
const AD_NEVER = new Set(['0', '9223372036854775807']);
/** FILETIME (100 ns since 1601) of the Unix epoch. */
const FILETIME_EPOCH = 116444736000000000n;
/** msDS-User-Account-Control-Computed: locked out now, by the domain's own lockout duration. */
const UF_LOCKOUT = 0x10;
/** How long a password policy's lockout duration is remembered. */
const POLICY_TTL_MS = 60_000;
/** The "until an administrator unlocks it" value of pwdAccountLockedTime. */
const PERMANENT_LOCK = /^0000/;

/** An LDAP GeneralizedTime (`20240131120000Z`, fractions and offsets allowed) in ms, or null. */
export function parseGeneralizedTime(value: string): number | null {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})?(\d{2})?(?:[.,](\d+))?(Z|[+-]\d{4})$/.exec(value);
  if (!m) return null;
  const [, y, mo, d, h, mi = '0', se = '0', frac = '', zone] = m;
  let ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(se), Math.round(Number(`0.${frac || '0'}`) * 1000));
  if (zone !== 'Z') ms -= (zone!.startsWith('-') ? -1 : 1) * (Number(zone!.slice(1, 3)) * 60 + Number(zone!.slice(3, 5))) * 60_000;
  return Number.isNaN(ms) ? null : ms;
}

/** A search refused for its size: the service account may not see every entry. */
function sizeLimitReached(err: unknown): never {
  if ((err as { code?: unknown })?.code === 4) {
    // Keeps the LDAP result code: the connection is fine, the pool need not drop it.
    const message = 'size limit reached: the service account needs olcLimits (or AD MaxPageSize) high enough to page through every user; see the README on user federation';
    throw Object.assign(new Error(message, { cause: err }), { code: 4 });
  }
  throw err;
}

const BINARY_SUBJECTS = new Set(['objectguid']);

export class LdapDirectory {
  readonly #config: ResolvedLdapConfig;
  readonly pool: ConnectionPool;
  readonly #serviceDn: string;
  readonly #userAttributes: string[];
  /** Connections whose last bind was a user's (failed binds leave boundAs null too). */
  readonly #usedForUserBind = new WeakSet<PooledConnection>();
  /** Group nesting remembered across logins and refreshes, replaced when it gets old. */
  #nesting = { cache: newGroupCache(), born: Date.now() };
  /** ppolicy entries' pwdLockoutDuration in seconds (null: unreadable), by normalized DN. */
  readonly #lockoutDurations = new Map<string, { seconds: number | null; at: number }>();
  /** The default ppolicy entry found in the directory (config wins), once looked for. */
  #defaultPolicy: { dn: string | null; at: number } | undefined;

  constructor(config: ResolvedLdapConfig) {
    this.#config = config;
    this.pool = new ConnectionPool({
      urls: config.urls,
      startTls: config.startTls,
      tls: { ca: loadCaBundle(config.tls), rejectUnauthorized: config.tls.rejectUnauthorized, serverName: config.tls.serverName },
      connectTimeoutMs: config.connectTimeoutMs,
      timeoutMs: config.timeoutMs,
      size: config.pool.size,
      idleTimeoutMs: config.pool.idleTimeoutMs,
    });
    this.#serviceDn = config.bindDn ?? '';
    const map = config.attributeMap;
    const attrs = new Set([config.subjectAttribute, map.username, map.email, map.name, map.givenName, map.familyName, ...config.users.extraAttributes]);
    for (const source of config.groupSources) {
      if (source.type === 'memberOf') attrs.add(source.attribute);
      if (source.type === 'posix') attrs.add(source.userAttribute);
    }
    // Account state: AD's flags, OpenLDAP ppolicy's lock (operational, so asked for by name).
    // msDS-User-Account-Control-Computed is constructed: AD applies its own lockout duration.
    if (config.activeDirectory) ['userAccountControl', 'accountExpires', 'lockoutTime', 'msDS-User-Account-Control-Computed'].forEach((a) => attrs.add(a));
    else ['pwdAccountLockedTime', 'pwdPolicySubentry'].forEach((a) => attrs.add(a));
    this.#userAttributes = [...attrs];
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  /**
   * The connector test: connect (on a connection of its own), bind as the service account, then
   * find one user the way logins search. Never throws.
   */
  async probe(): Promise<ConnectorTestReport> {
    const report = new TestReport();
    const c = this.#config;
    let conn: (PooledConnection & { close(): Promise<void> }) | undefined;
    try {
      await report.step('connect', 'url', async () => {
        conn = await this.pool.dedicated();
        return `connected to ${c.urls.join(', ')}${c.startTls ? ' (StartTLS)' : ''}`;
      });
      await report.step('bind', c.bindDn ? 'bindDn' : 'userDnTemplate', async () => {
        if (!c.bindDn) {
          await conn!.client.bind('', '');
          return 'bound anonymously (no bindDn)';
        }
        try {
          await conn!.client.bind(c.bindDn, c.bindPassword!);
        } catch (err) {
          const code = (err as { code?: number }).code;
          throw new Error(code === 49 ? `the service account bind was refused: invalid credentials (check bindDn and bindPassword)` : `the service account bind failed: ${(err as Error).message}`);
        }
        return `bound as ${c.bindDn}`;
      });
      await report.step('search', 'users.baseDn', async () => {
        const { searchEntries } = await conn!.client
          .search(c.users.baseDn, { scope: c.users.scope, filter: c.userFilter, attributes: [c.subjectAttribute, c.attributeMap.username], explicitBufferAttributes: this.#bufferAttributes(), sizeLimit: 5 })
          .catch((err: unknown) => {
            if ((err as { code?: unknown }).code === 4) return { searchEntries: null };
            throw err;
          });
        if (searchEntries === null) {
          report.found.usersFound = '5+';
          return `more than 5 users match ${c.userFilter} under ${c.users.baseDn}`;
        }
        const users = searchEntries.filter((e) => this.#subjectOf(e));
        report.found.usersFound = users.length;
        if (!users.length) throw new Error(`no user matches ${c.userFilter} under ${c.users.baseDn}`);
        const first = users[0]!;
        report.found.sampleUser = { dn: first.dn, username: firstValue(first, c.attributeMap.username) ?? null };
        return `found ${users.length} user(s), e.g. ${first.dn}`;
      });
    } finally {
      await conn?.close().catch(() => {});
    }
    return report.report();
  }

  /** Checks a login name and password; a wrong password is a result, a dead directory throws. */
  async login(login: string, password: string): Promise<LoginResult> {
    // An empty password would make a simple bind "unauthenticated" and succeed (RFC 4513 5.1.2).
    if (!password) return { ok: false, reason: 'invalid_credentials', detail: 'empty password' };
    const name = this.#loginName(login);
    if (!name) return { ok: false, reason: 'invalid_credentials', detail: 'login name not accepted' };

    if (this.#config.userDnTemplate && !this.#config.bindDn) return this.#directBindLogin(name, password);

    const found = await this.#withService((client) => this.#findUser(client, name));
    if (found === 'ambiguous') return { ok: false, reason: 'invalid_credentials', detail: `login name "${name}" matches several entries` };
    if (!found) return { ok: false, reason: 'invalid_credentials', detail: 'no such user' };

    // The password check and the group lookup run side by side on two connections; the groups
    // are thrown away if the password was wrong.
    const [refused, groups] = await Promise.all([this.#bindAs(found.dn, password), this.#withService((client) => this.#groups(client, found))]);
    if (refused) {
      // OpenLDAP's ppolicy refuses a locked account with a plain 49 before it looks at the
      // password: saying "locked" would tell a stranger with a wrong password that the account
      // exists. It stays a wrong password for the person; the log knows better.
      const lock = refused.reason === 'invalid_credentials' && firstValue(found, 'pwdAccountLockedTime');
      return { ok: false, reason: refused.reason, detail: lock ? `${refused.detail}; the entry has a ppolicy lock (pwdAccountLockedTime)` : refused.detail };
    }
    // The bind succeeded, so the directory's own lockout policy let the person in.
    const blocked = this.#flagState(found);
    if (blocked) return { ok: false, reason: blocked, detail: `entry state: ${blocked}` };
    return { ok: true, identity: this.#toIdentity(found, groups) };
  }

  /** Re-reads a user by subject for a refresh: gone, disabled, or the current identity. */
  async refresh(subject: string): Promise<LoginResult> {
    return this.#withService(async (client) => {
      const entry = await this.#findBySubject(client, subject);
      if (!entry) return { ok: false, reason: 'user_gone', detail: 'no entry with this subject' };
      const blocked = await this.#accountState(client, entry);
      if (blocked) return { ok: false, reason: blocked, detail: `entry state: ${blocked}` };
      return { ok: true, identity: this.#toIdentity(entry, await this.#groups(client, entry)) };
    });
  }

  /** Every user entry, page by page, with groups resolved (one group cache for the run). */
  async *listUsers(pageSize: number, cache: GroupCache): AsyncGenerator<Array<{ identity: UpstreamIdentity; blocked: FailureReason | null }>> {
    // Paging runs on a connection of its own; group lookups between pages use pooled ones.
    const pager = await this.pool.dedicated();
    try {
      await this.#ensureService(pager);
      const pages = pager.client.searchPaginated(this.#config.users.baseDn, {
        scope: this.#config.users.scope,
        filter: this.#config.userFilter,
        attributes: this.#userAttributes,
        explicitBufferAttributes: this.#bufferAttributes(),
        paged: { pageSize },
      });
      for await (const page of withSizeLimit(pages)) {
        const users = page.searchEntries.filter((entry) => this.#subjectOf(entry));
        const out = await this.#withService(async (client) => {
          const resolved = [];
          for (const entry of users) {
            resolved.push({ identity: this.#toIdentity(entry, await this.#groups(client, entry, cache)), blocked: await this.#accountState(client, entry) });
          }
          return resolved;
        });
        yield out;
      }
    } finally {
      await pager.close();
    }
  }

  /** How many user entries there are (DNs only, paged), for a progress bar. */
  async countUsers(pageSize: number): Promise<number> {
    return this.#withService(async (client) => {
      let n = 0;
      for await (const page of withSizeLimit(client.searchPaginated(this.#config.users.baseDn, {
        scope: this.#config.users.scope,
        filter: this.#config.userFilter,
        attributes: ['1.1'],
        paged: { pageSize },
      }))) n += page.searchEntries.length;
      return n;
    });
  }

  /** Names of every group under the configured group sources that have a base DN. */
  async listGroupNames(pageSize: number): Promise<string[]> {
    return this.#withService(async (client) => {
      const names = new Set<string>();
      for (const source of this.#config.groupSources) {
        if (source.type === 'memberOf') continue;
        const attr = this.#config.groupNameAttribute;
        for await (const page of withSizeLimit(client.searchPaginated(source.baseDn, { filter: source.filter, attributes: [attr], paged: { pageSize } }))) {
          for (const e of page.searchEntries) names.add(firstValue(e, attr) ?? e.dn);
        }
      }
      return [...names].sort();
    });
  }

  #toIdentity(entry: Entry, groups: string[]): UpstreamIdentity {
    const map = this.#config.attributeMap;
    const email = firstValue(entry, map.email);
    const attributes: Record<string, unknown> = { dn: entry.dn };
    for (const a of this.#config.users.extraAttributes) {
      const values = attributeValues(entry, a);
      if (values.length) attributes[a] = values.length === 1 ? values[0] : values;
    }
    return {
      connectorId: '',
      subject: this.#subjectOf(entry)!,
      username: firstValue(entry, map.username),
      email,
      emailVerified: Boolean(email) && this.#config.users.trustEmail,
      name: firstValue(entry, map.name),
      givenName: firstValue(entry, map.givenName),
      familyName: firstValue(entry, map.familyName),
      groups,
      attributes,
      amr: ['pwd'],
    };
  }

  /** The login name to search for, or null when it cannot be a name in this directory. */
  #loginName(login: string): string | null {
    let name = login.trim();
    if (!name || name.length > 256 || /[\0\r\n]/.test(name)) return null;
    // EXAMPLE\alice: the down-level logon name, accepted for the configured domain only.
    const slash = name.indexOf('\\');
    if (this.#config.activeDirectory && slash > 0) {
      const domain = name.slice(0, slash);
      if (!this.#config.netbiosDomain || domain.toLowerCase() !== this.#config.netbiosDomain.toLowerCase()) return null;
      name = name.slice(slash + 1);
    }
    return name;
  }

  async #findUser(client: Client, name: string): Promise<Entry | 'ambiguous' | null> {
    const value = escapeFilterValue(name);
    const match = this.#config.loginAttributes.map((a) => `(${a}=${value})`).join('');
    const { searchEntries } = await client.search(this.#config.users.baseDn, {
      scope: this.#config.users.scope,
      filter: `(&${this.#config.userFilter}(|${match}))`,
      attributes: this.#userAttributes,
      explicitBufferAttributes: this.#bufferAttributes(),
      sizeLimit: 2,
    }).catch(sizeLimitIsAmbiguous);
    if (searchEntries === 'ambiguous') return 'ambiguous';
    const users = searchEntries.filter((e) => this.#subjectOf(e));
    if (users.length > 1) return 'ambiguous';
    return users[0] ?? null;
  }

  async #findBySubject(client: Client, subject: string): Promise<Entry | null> {
    const attribute = this.#config.subjectAttribute;
    let filter: Filter | string;
    if (BINARY_SUBJECTS.has(attribute.toLowerCase())) {
      const bytes = guidToBytes(subject);
      if (!bytes) return null;
      // Built as a filter object: ldapts re-encodes \hh escapes of a filter string as UTF-8
      // characters, which mangles every byte >= 0x80 of a binary value.
      filter = new AndFilter({ filters: [FilterParser.parseString(this.#config.userFilter), new EqualityFilter({ attribute, value: Buffer.from(bytes) })] });
    } else {
      filter = `(&${this.#config.userFilter}(${attribute}=${escapeFilterValue(subject)}))`;
    }
    const { searchEntries } = await client.search(this.#config.users.baseDn, {
      scope: this.#config.users.scope,
      filter,
      attributes: this.#userAttributes,
      explicitBufferAttributes: this.#bufferAttributes(),
      sizeLimit: 2,
    });
    return searchEntries.length === 1 ? searchEntries[0]! : null;
  }

  async #directBindLogin(name: string, password: string): Promise<LoginResult> {
    const dn = this.#config.userDnTemplate!.replaceAll('{username}', escapeDnValue(name));
    return this.pool.use(async (conn) => {
      const refused = await tryBind(conn, dn, password);
      if (refused) return { ok: false, reason: refused.reason, detail: refused.detail };
      const { searchEntries } = await conn.client.search(dn, { scope: 'base', attributes: this.#userAttributes, explicitBufferAttributes: this.#bufferAttributes() });
      const entry = searchEntries[0];
      if (!entry || !this.#subjectOf(entry)) return { ok: false, reason: 'upstream_error', detail: `cannot read ${this.#config.subjectAttribute} of the bound user` };
      const blocked = this.#flagState(entry);
      if (blocked) return { ok: false, reason: blocked, detail: `entry state: ${blocked}` };
      return { ok: true, identity: this.#toIdentity(entry, await this.#groups(conn.client, entry)) };
    });
  }

  /** Binds a pooled connection as the user; null when accepted, the failure otherwise. */
  #bindAs(dn: string, password: string) {
    return this.pool.use((conn) => {
      this.#usedForUserBind.add(conn);
      return tryBind(conn, dn, password);
    }, (conn) => conn.boundAs !== this.#serviceDn);
  }

  #groups(client: Client, entry: Entry, cache = this.#sharedNesting()): Promise<string[]> {
    return resolveGroups(client, entry, {
      sources: this.#config.groupSources,
      nameAttribute: this.#config.groupNameAttribute,
      maxDepth: this.#config.groupMaxDepth,
      cache,
    });
  }

  #sharedNesting(): GroupCache | undefined {
    const ttl = this.#config.groupNestingCacheMs;
    if (ttl <= 0) return undefined;
    if (Date.now() - this.#nesting.born > ttl) this.#nesting = { cache: newGroupCache(), born: Date.now() };
    return this.#nesting.cache;
  }

  /**
   * Why a re-read entry (refresh, import) may not sign in. Lockouts follow the directory's own
   * policy: AD's computed lockout flag, ppolicy's pwdLockoutDuration.
   */
  async #accountState(client: Client, entry: Entry): Promise<FailureReason | null> {
    const flagged = this.#flagState(entry);
    if (flagged) return flagged;
    if (this.#config.activeDirectory) {
      return Number(firstValue(entry, 'msDS-User-Account-Control-Computed') ?? 0) & UF_LOCKOUT ? 'account_locked' : null;
    }
    return (await this.#ppolicyLocked(client, entry)) ? 'account_locked' : null;
  }

  /**
   * AD's account flags. Enough after a successful bind: the directory has then already applied
   * its own lockout policy (an expired ppolicy lock stays on the entry until that bind clears it).
   */
  #flagState(entry: Entry): FailureReason | null {
    if (this.#config.activeDirectory) {
      const uac = Number(firstValue(entry, 'userAccountControl') ?? 0);
      if (uac & UAC_ACCOUNTDISABLE) return 'account_disabled';
      const expires = firstValue(entry, 'accountExpires');
      if (expires && !AD_NEVER.has(expires) && /^\d+$/.test(expires)) {
        const nowFiletime = BigInt(Date.now()) * 10000n + FILETIME_EPOCH;
        if (BigInt(expires) <= nowFiletime) return 'account_expired';
      }
    }
    return null;
  }

  /** ppolicy's rule: locked while now < pwdAccountLockedTime + pwdLockoutDuration (0: until unlocked). */
  async #ppolicyLocked(client: Client, entry: Entry): Promise<boolean> {
    const lockedAt = firstValue(entry, 'pwdAccountLockedTime');
    if (!lockedAt) return false;
    const since = PERMANENT_LOCK.test(lockedAt) ? null : parseGeneralizedTime(lockedAt);
    if (since === null) return true;
    const policyDn = firstValue(entry, 'pwdPolicySubentry') ?? (await this.#defaultPolicyDn(client));
    const seconds = policyDn ? await this.#lockoutDuration(client, policyDn) : null;
    // Unknown policy or duration 0: locked until an administrator unlocks, as ppolicy does for 0.
    if (!seconds) return true;
    return Date.now() < since + seconds * 1000;
  }

  async #lockoutDuration(client: Client, policyDn: string): Promise<number | null> {
    const key = policyDn.toLowerCase();
    const cached = this.#lockoutDurations.get(key);
    if (cached && Date.now() - cached.at < POLICY_TTL_MS) return cached.seconds;
    const { searchEntries } = await client.search(policyDn, { scope: 'base', filter: '(objectClass=*)', attributes: ['pwdLockoutDuration'] }).catch(() => ({ searchEntries: [] as Entry[] }));
    const raw = searchEntries[0] ? firstValue(searchEntries[0], 'pwdLockoutDuration') : undefined;
    const seconds = searchEntries[0] ? (raw && /^\d+$/.test(raw) ? Number(raw) : 0) : null;
    this.#lockoutDurations.set(key, { seconds, at: Date.now() });
    return seconds;
  }

  /**
   * The configured default policy, or the one pwdPolicy entry in the users' naming context
   * (ppolicy's own default lives in cn=config, which a service account cannot read).
   */
  async #defaultPolicyDn(client: Client): Promise<string | null> {
    if (this.#config.users.passwordPolicyDn) return this.#config.users.passwordPolicyDn;
    if (this.#defaultPolicy && Date.now() - this.#defaultPolicy.at < POLICY_TTL_MS) return this.#defaultPolicy.dn;
    let dn: string | null = null;
    try {
      const root = await client.search('', { scope: 'base', filter: '(objectClass=*)', attributes: ['namingContexts'] });
      const users = normalizeDn(this.#config.users.baseDn);
      const context = attributeValues(root.searchEntries[0] ?? { dn: '' }, 'namingContexts').find((c) => users.endsWith(normalizeDn(c)));
      if (context) {
        const { searchEntries } = await client.search(context, { scope: 'sub', filter: '(objectClass=pwdPolicy)', attributes: ['1.1'], sizeLimit: 2 });
        if (searchEntries.length === 1) dn = searchEntries[0]!.dn;
      }
    } catch {
      dn = null; // two or more policies (size limit), or none readable: no default known
    }
    this.#defaultPolicy = { dn, at: Date.now() };
    return dn;
  }

  #subjectOf(entry: Entry): string | null {
    const attr = this.#config.subjectAttribute;
    for (const key of Object.keys(entry)) {
      if (key.toLowerCase() !== attr.toLowerCase()) continue;
      const raw = entry[key];
      const v = Array.isArray(raw) ? raw[0] : raw;
      if (Buffer.isBuffer(v)) return v.length === 16 && BINARY_SUBJECTS.has(attr.toLowerCase()) ? guidToString(v) : v.toString('hex');
      return v ? String(v) : null;
    }
    return null;
  }

  #bufferAttributes(): string[] {
    return BINARY_SUBJECTS.has(this.#config.subjectAttribute.toLowerCase()) ? [this.#config.subjectAttribute] : [];
  }

  /** Runs fn on a connection bound as the service account (or anonymous without one). */
  #withService<T>(fn: (client: Client) => Promise<T>): Promise<T> {
    return this.pool.use(async (conn) => {
      await this.#ensureService(conn);
      return fn(conn.client);
    }, (conn) => conn.boundAs === this.#serviceDn);
  }

  async #ensureService(conn: PooledConnection): Promise<void> {
    if (conn.boundAs === this.#serviceDn) return;
    if (!this.#config.bindDn) {
      // Anonymous: a fresh connection is anonymous; one used for a user bind is not.
      if (conn.boundAs === null && !this.#usedForUserBind.has(conn)) {
        conn.boundAs = '';
        return;
      }
      conn.boundAs = null;
      await conn.client.bind('', '');
      conn.boundAs = '';
      return;
    }
    conn.boundAs = null;
    try {
      await conn.client.bind(this.#config.bindDn, this.#config.bindPassword!);
    } catch (err) {
      // A refused service account is an operator problem, not the person's: the directory is unusable.
      throw new DirectoryUnavailable(`the service account bind was refused (${(err as Error).message})`, { cause: err });
    }
    conn.boundAs = this.#serviceDn;
  }
}

async function tryBind(conn: PooledConnection, dn: string, password: string) {
  conn.boundAs = null;
  try {
    await conn.client.bind(dn, password);
    conn.boundAs = dn;
    return null;
  } catch (err) {
    const failure = classifyBindError(err);
    if (!failure) throw err;
    return failure;
  }
}

/** Pages of a paged search, with a size-limit refusal explained. */
async function* withSizeLimit<T>(pages: AsyncIterable<T>): AsyncGenerator<T> {
  try {
    yield* pages;
  } catch (err) {
    sizeLimitReached(err);
  }
}

/** sizeLimit 2 exceeded means at least two matches. */
function sizeLimitIsAmbiguous(err: unknown): { searchEntries: 'ambiguous' } {
  if ((err as { code?: unknown }).code === 4) return { searchEntries: 'ambiguous' };
  throw err;
}
