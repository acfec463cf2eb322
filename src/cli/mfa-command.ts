// `keybridge users mfa list <user> [--json]` and `keybridge users mfa reset <user>`: an
// operator's way to see a person's second factors and to clear them when the person lost their
// authenticator, through the same service as the admin API, audited with the CLI as the actor.
import type { Config } from '../config/schema.ts';
import type { Store } from '../storage/store.ts';
import type { AdminChange } from '../admin-api/admin-route.ts';
import { userMfaService } from '../management/user-mfa.ts';
import { withStore } from './with-store.ts';
import { cliActor } from './cli-actor.ts';

const USAGE = `usage: keybridge users mfa list <username> [--json]
       keybridge users mfa reset <username>`;

function auditAsCli(store: Store) {
  return async (change: AdminChange): Promise<void> => {
    await store.audit.record({
      type: `admin.${change.action}`,
      userId: change.target.kind === 'user' ? change.target.id : null,
      details: { actor: cliActor(), via: 'cli', target: change.target, ...(change.details ? { details: change.details } : {}) },
    });
  };
}

export function runMfa(config: Config, action: string | undefined, login: string | undefined, options: { json?: boolean }): Promise<number> {
  if ((action !== 'list' && action !== 'reset') || !login) {
    console.error(USAGE);
    return Promise.resolve(2);
  }
  return withStore(config, async (store) => {
    const user = (await store.users.findByUsername(login)) ?? (await store.users.findById(login).catch(() => null));
    if (!user) {
      console.error(`error: no user "${login}"`);
      return 1;
    }
    const mfa = userMfaService(store);
    if (action === 'reset') {
      const { factors, recoveryCodes } = await mfa.reset(user.id, auditAsCli(store));
      console.log(`removed ${factors.length} factor${factors.length === 1 ? '' : 's'} and ${recoveryCodes} recovery code${recoveryCodes === 1 ? '' : 's'} from ${user.username}`);
      return 0;
    }
    const view = await mfa.list(user.id);
    if (options.json) {
      console.log(JSON.stringify({ user: { id: user.id, username: user.username }, ...view }, null, 2));
      return 0;
    }
    if (!view.factors.length) console.log(`${user.username} has no second factors`);
    for (const f of view.factors) {
      console.log(`${f.id}\t${f.type}\t${f.name}\t${f.confirmed ? 'confirmed' : 'pending'}\tcreated ${f.createdAt}\tlast used ${f.lastUsedAt ?? '-'}`);
    }
    console.log(`recovery codes left: ${view.recoveryCodesLeft}`);
    return 0;
  });
}
