// The narrow view of local users that the `local` connector is given (no knex for connectors).
import type { LocalAccount, LocalAccounts } from '../connectors/contract.ts';
import type { Store } from '../storage/store.ts';
import type { User } from '../storage/types.ts';
import { profileFields } from './profile-fields.ts';

export function createLocalAccounts(store: Store): LocalAccounts {
  async function toAccount(user: User | null): Promise<LocalAccount | null> {
    if (!user) return null;
    const [groups, passwordHash] = await Promise.all([store.groups.groupsOf(user.id), store.credentials.getPasswordHash(user.id)]);
    return {
      ...profileFields(user),
      enabled: user.enabled,
      groups,
      passwordHash,
    };
  }
  return {
    async findForLogin(login) {
      const trimmed = login.trim();
      if (!trimmed || trimmed.length > 256) return null;
      return toAccount(await store.users.findForLogin(trimmed));
    },
    async findById(id) {
      return toAccount(await store.users.findById(id));
    },
  };
}
