// `keybridge users links <user>` and `keybridge users unlink <user> <connector>`: an operator's
// view of which upstream identities a local user has, and removing one. Unlinking keeps the
// user (and its `sub`); it is audited like every link.
import type { Config } from '../config/schema.ts';
import { unlinkIdentity } from '../accounts/link-identity.ts';
import { withStore } from './with-store.ts';

export function runLinks(config: Config, action: 'links' | 'unlink', login: string, connectorId: string | undefined): Promise<number> {
  return withStore(config, async (store) => {
    const user = (await store.users.findByUsername(login)) ?? (await store.users.findById(login).catch(() => null));
    if (!user) {
      console.error(`no user "${login}"`);
      return 2;
    }
    const identities = await store.identities.listForUser(user.id);
    if (action === 'links') {
      if (!identities.length) console.log(`${user.username} has no linked upstream identities`);
      for (const f of identities) {
        console.log(`${f.connectorId}\t${f.subject}\t${f.username ?? '-'}\t${f.email ?? '-'}\tlinked ${f.createdAt.toISOString()}\tlast login ${f.lastLoginAt?.toISOString() ?? '-'}`);
      }
      return 0;
    }
    if (!connectorId) {
      console.error('usage: keybridge users unlink <username> <connector>');
      return 2;
    }
    const targets = identities.filter((f) => f.connectorId === connectorId);
    if (!targets.length) {
      console.error(`${user.username} has no identity from connector "${connectorId}" (linked: ${identities.map((f) => f.connectorId).join(', ') || 'none'})`);
      return 2;
    }
    for (const f of targets) await unlinkIdentity(store, f.id, { by: 'cli' });
    const remaining = identities.length - targets.length;
    const password = await store.credentials.getPasswordHash(user.id);
    console.log(`unlinked ${targets.length} ${connectorId} identit${targets.length === 1 ? 'y' : 'ies'} from ${user.username}`);
    if (!remaining && !password) console.warn(`warning: ${user.username} now has no way to sign in (no password, no linked identity)`);
    return 0;
  });
}
