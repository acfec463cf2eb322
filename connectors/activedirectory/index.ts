// `type: activedirectory` is the `ldap` connector with the Active Directory preset: login by
// sAMAccountName, userPrincipalName, email or DOMAIN\name, objectGUID subjects, userAccountControl
// and accountExpires checks, AD bind sub-status messages, and transitive groups in one search.
import type { ConnectorPlugin } from '../../src/connectors/contract.ts';
import { createLdapConnector } from '../ldap/index.ts';
import { ldapConfigSchema, type LdapConfig } from '../ldap/ldap-config.ts';

const plugin: ConnectorPlugin<LdapConfig> = {
  type: 'activedirectory',
  configSchema: ldapConfigSchema.transform((c) => ({ ...c, preset: 'activedirectory' as const })),
  secretFields: ['bindPassword'],
  about: { label: 'Active Directory', test: true, sync: true },
  create: createLdapConnector,
};

export default plugin;
