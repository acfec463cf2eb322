// The `ldap` connector: password logins against OpenLDAP, Active Directory or any LDAPv3
// directory (bind-search-bind with a service account, or direct bind by DN template), groups
// from the directory, refresh re-checks, and user federation (import) through paged searches.
import type { ConnectorContext, ConnectorPlugin, LoginResult, PasswordConnector, UpstreamIdentity } from '../../src/connectors/contract.ts';
import { newGroupCache } from './group-resolver.ts';
import { ldapConfigSchema, resolveLdapConfig, type LdapConfig } from './ldap-config.ts';
import { LdapDirectory } from './ldap-directory.ts';

export function createLdapConnector({ id, config, logger }: ConnectorContext<LdapConfig>): PasswordConnector {
  const resolved = resolveLdapConfig(config);
  const directory = new LdapDirectory(resolved);
  const withId = (result: LoginResult): LoginResult => (result.ok ? { ok: true, identity: { ...result.identity, connectorId: id } } : result);
  const sync = config.sync ?? { intervalMinutes: 0, pageSize: 500, disableRemoved: true };

  return {
    kind: 'password',
    usernameLabel: resolved.activeDirectory ? 'Username or email' : 'Username',
    async login(username, password) {
      return withId(await directory.login(username, password));
    },
    async refresh(identity: UpstreamIdentity) {
      return withId(await directory.refresh(identity.subject));
    },
    sync: {
      intervalMinutes: sync.intervalMinutes,
      disableRemoved: sync.disableRemoved,
      countUsers: () => directory.countUsers(sync.pageSize),
      async *listUsers() {
        const cache = newGroupCache();
        for await (const page of directory.listUsers(sync.pageSize, cache)) {
          yield page.map((u) => ({ ...u, identity: { ...u.identity, connectorId: id } }));
        }
        logger.debug({ groupsCached: cache.parents.size }, 'directory listing done');
      },
      listGroups: () => directory.listGroupNames(sync.pageSize),
    },
    test: () => directory.probe(),
    close: () => directory.close(),
  };
}

const plugin: ConnectorPlugin<LdapConfig> = {
  type: 'ldap',
  configSchema: ldapConfigSchema,
  secretFields: ['bindPassword'],
  about: { label: 'LDAP', test: true, sync: true },
  create: createLdapConnector,
};

export default plugin;
