// Every migration, in order. Static imports: the list is the schema's history.
import type { Knex } from 'knex';
import * as m0001 from './0001-initial.ts';
import * as m0002 from './0002-directory-sync.ts';
import * as m0003 from './0003-upstream-tokens.ts';
import * as m0004 from './0004-saml.ts';
import * as m0005 from './0005-rate-limits.ts';
import * as m0006 from './0006-username-keys.ts';
import * as m0007 from './0007-admin-users.ts';
import * as m0008 from './0008-client-secrets.ts';
import * as m0009 from './0009-connector-admin.ts';
import * as m0010 from './0010-group-nesting.ts';
import * as m0011 from './0011-connector-status.ts';
import * as m0012 from './0012-mfa.ts';
import * as m0013 from './0013-mfa-policies.ts';
import * as m0014 from './0014-password-policy.ts';
import * as m0015 from './0015-email.ts';
import * as m0016 from './0016-account-console.ts';

export interface Migration {
  name: string;
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

export const migrations: readonly Migration[] = [m0001, m0002, m0003, m0004, m0005, m0006, m0007, m0008, m0009, m0010, m0011, m0012, m0013, m0014, m0015, m0016];
