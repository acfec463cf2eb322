// The built-in `local` password connector: accounts stored in Keybridge itself.
import { z } from 'zod';
import type { ConnectorPlugin, LocalAccount, LoginResult, UpstreamIdentity } from '../../src/connectors/contract.ts';
import { hashPassword, verifyPassword } from '../../src/accounts/passwords.ts';

const configSchema = z.strictObject({
  allowEmailLogin: z.boolean().default(true).describe("Accept the account's email address in the username field too."),
  usernameLabel: z
    .string()
    .min(1)
    .max(64)
    .optional()
    .describe('Label of the username field on the login form; default "Username or email" (or "Username" without email login).'),
});

type LocalConfig = z.output<typeof configSchema>;

function toIdentity(connectorId: string, account: LocalAccount): UpstreamIdentity {
  return {
    connectorId,
    subject: account.id,
    localUserId: account.id,
    username: account.username,
    email: account.email ?? undefined,
    emailVerified: account.emailVerified,
    name: account.name ?? undefined,
    givenName: account.givenName ?? undefined,
    familyName: account.familyName ?? undefined,
    groups: account.groups,
    amr: ['pwd'],
    ...(account.passwordFacts ? { localPassword: account.passwordFacts } : {}),
  };
}

const plugin: ConnectorPlugin<LocalConfig> = {
  type: 'local',
  configSchema,
  about: { label: 'Local accounts', test: false, sync: false },
  async create({ id, config, services }) {
    // Unknown users and users without a password still pay for one argon2 verification, so
    // response time does not reveal which usernames exist.
    const dummyHash = await hashPassword(`keybridge-dummy-${Math.random()}`);
    const accounts = services.localAccounts;

    return {
      kind: 'password',
      usernameLabel: config.usernameLabel ?? (config.allowEmailLogin ? 'Username or email' : 'Username'),

      async login(username: string, password: string): Promise<LoginResult> {
        // An identifier with `@` is an email (usernames never contain one); without email login
        // it matches nobody.
        const account = config.allowEmailLogin || !username.includes('@') ? await accounts.findForLogin(username) : null;
        const matches = await verifyPassword(account?.passwordHash ?? dummyHash, password);
        if (!account || !account.passwordHash || !matches) {
          return { ok: false, reason: 'invalid_credentials', detail: account ? 'wrong password' : 'no such user' };
        }
        if (!account.enabled) return { ok: false, reason: 'account_disabled' };
        return { ok: true, identity: toIdentity(id, account) };
      },

      async refresh(identity: UpstreamIdentity): Promise<LoginResult> {
        const account = await accounts.findById(identity.localUserId ?? identity.subject);
        if (!account) return { ok: false, reason: 'user_gone' };
        if (!account.enabled) return { ok: false, reason: 'account_disabled' };
        return { ok: true, identity: toIdentity(id, account) };
      },
    };
  },
};

export default plugin;
