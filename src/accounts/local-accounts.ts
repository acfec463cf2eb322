// The narrow view of local users that the `local` connector is given (no knex for connectors).
import type { LocalAccount, LocalAccounts } from '../connectors/contract.ts';
import type { Store } from '../storage/store.ts';
import type { LoginAccount } from '../storage/user-repository.ts';
import { profileFields } from './profile-fields.ts';

export function createLocalAccounts(store: Store): LocalAccounts {
  // The user, its groups, its password hash and the password's policy facts: one statement per login.
  const toAccount = (found: LoginAccount | null): LocalAccount | null =>
    found ? { ...profileFields(found.user), enabled: found.user.enabled, groups: found.groups, passwordHash: found.passwordHash, passwordFacts: found.passwordFacts } : null;
  return {
    async findForLogin(login) {
      const trimmed = login.trim();
      if (!trimmed || trimmed.length > 256) return null;
      return toAccount(await store.users.findLoginAccount({ login: trimmed }));
    },
    async findById(id) {
      return toAccount(await store.users.findLoginAccount({ id }));
    },
  };
}
