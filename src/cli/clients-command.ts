// `keybridge clients add|list|rotate-secret|remove` and the bootstrap `keybridge admin
// create-client NAME --scope admin:write`: OIDC clients stored in the database, through the same
// service as the admin API (src/management/clients.ts). Secrets are printed once and stored hashed.
// Running instances see a change within 2 s (the write is announced on the change feed).
import type { Config } from '../config/schema.ts';
import type { Store } from '../storage/store.ts';
import { ClientService, createClientSchema, type ClientView } from '../management/clients.ts';
import { brokerScopes } from '../oidc/create-provider.ts';
import { AdminProblem } from '../admin-api/problem.ts';
import { changedFields } from '../admin-api/admin-support.ts';
import { withStore } from './with-store.ts';
import { cliActor } from './cli-actor.ts';

export interface ClientsOptions {
  grant?: string[];
  redirectUri?: string[];
  postLogoutUri?: string[];
  scope?: string[];
  name?: string;
  authMethod?: string;
  firstParty?: boolean;
  overlap?: string;
}

const USAGE = `usage: keybridge clients add <id> [--grant <type>]... [--redirect-uri <uri>]... [--post-logout-uri <uri>]...
                              [--scope <scope>]... [--name <name>] [--auth-method <method>] [--first-party]
       keybridge clients list
       keybridge clients rotate-secret <id> [--overlap <seconds>]
       keybridge clients remove <id>
       keybridge admin create-client <name> --scope admin:write`;


async function audit(store: Store, action: string, id: string, before: ClientView | null, after: ClientView | null, details?: Record<string, unknown>): Promise<void> {
  await store.audit.record({
    type: `admin.client.${action}`,
    clientId: id,
    details: { actor: cliActor(), via: 'cli', target: { kind: 'client', id }, changes: changedFields(before, after), ...(details ? { details } : {}) },
  });
}

/** Problems as lines naming the option or field, like check-config does. */
function report(err: unknown): number {
  if (err instanceof AdminProblem) {
    if (err.errors?.length) for (const e of err.errors) console.error(`invalid ${e.path.replace(/^body\.?/, '') || 'input'}: ${e.message}`);
    else console.error(`error: ${err.message}`);
    return err.status === 400 ? 2 : 1;
  }
  throw err;
}

function printSecret(view: ClientView, secret: string | null): void {
  console.log(`client_id: ${view.id}`);
  if (secret) {
    console.log(`client_secret: ${secret}`);
    console.error('The secret is shown this once and stored hashed; keep it now.');
  }
}

export async function runClients(config: Config, command: 'clients' | 'admin', action: string | undefined, target: string | undefined, options: ClientsOptions): Promise<number> {
  const service = (store: Store) => new ClientService({ config, store, defaultScopes: brokerScopes(config) });

  if ((command === 'clients' && action === 'add' && target) || (command === 'admin' && action === 'create-client' && target)) {
    const bootstrap = command === 'admin';
    if (bootstrap && !options.scope?.length) {
      console.error(`an admin client needs --scope (admin:read, admin:write or admin:<resource>:read|write)\n${USAGE}`);
      return 2;
    }
    const input = {
      id: target,
      ...(options.name || bootstrap ? { name: options.name ?? target } : {}),
      ...(bootstrap ? { grantTypes: ['client_credentials'] } : options.grant?.length ? { grantTypes: options.grant } : {}),
      ...(options.redirectUri ? { redirectUris: options.redirectUri } : {}),
      ...(options.postLogoutUri ? { postLogoutRedirectUris: options.postLogoutUri } : {}),
      ...(options.scope?.length ? { scopes: options.scope.flatMap((s) => s.split(/\s+/)).filter(Boolean) } : {}),
      ...(options.authMethod ? { tokenEndpointAuthMethod: options.authMethod } : {}),
      ...(options.firstParty ? { firstParty: true } : {}),
    };
    const parsed = createClientSchema.safeParse(input);
    if (!parsed.success) {
      for (const i of parsed.error.issues) console.error(`invalid ${i.path.join('.') || 'input'}: ${i.message}`);
      return 2;
    }
    if (bootstrap && parsed.data.scopes?.some((s) => !s.startsWith('admin:'))) {
      console.error('admin create-client takes admin scopes only (admin:read, admin:write, admin:<resource>:read|write)');
      return 2;
    }
    return withStore(config, async (store) => {
      try {
        const made = await service(store).create(parsed.data);
        await audit(store, 'create', made.view.id, null, made.view, { secretIssued: made.secret !== null });
        printSecret(made.view, made.secret);
        return 0;
      } catch (err) {
        return report(err);
      }
    });
  }

  if (command === 'clients' && action === 'list') {
    return withStore(config, async (store) => {
      const clients = service(store);
      let after: string | undefined;
      console.log('ID\tSOURCE\tENABLED\tAUTH\tGRANTS');
      for (;;) {
        const page = await clients.list({ limit: 200, after });
        for (const c of page.items) console.log(`${c.id}\t${c.source}\t${c.enabled ? 'yes' : 'no'}\t${c.tokenEndpointAuthMethod}\t${c.grantTypes.join(',')}`);
        if (page.last === null) return 0;
        after = page.last;
      }
    });
  }

  if (command === 'clients' && action === 'rotate-secret' && target) {
    const overlap = options.overlap === undefined ? undefined : Number(options.overlap);
    if (overlap !== undefined && !/^\d+$/.test(options.overlap ?? '')) {
      console.error('invalid overlap: must be a whole number of seconds');
      return 2;
    }
    return withStore(config, async (store) => {
      try {
        const rotated = await service(store).rotateSecret(target, overlap);
        await audit(store, 'rotate_secret', target, rotated.before, rotated.view, { overlapSeconds: overlap ?? null, previousValidUntil: rotated.previousValidUntil?.toISOString() ?? null });
        printSecret(rotated.view, rotated.secret);
        console.log(rotated.previousValidUntil ? `the previous secret is accepted until ${rotated.previousValidUntil.toISOString()}` : 'the previous secret no longer works');
        return 0;
      } catch (err) {
        return report(err);
      }
    });
  }

  if (command === 'clients' && action === 'remove' && target) {
    return withStore(config, async (store) => {
      try {
        const { before, revoked } = await service(store).remove(target);
        await audit(store, 'delete', target, before, null, { revokedArtifacts: revoked });
        console.log(`removed client ${target} (${revoked} tokens, codes and grants revoked)`);
        return 0;
      } catch (err) {
        return report(err);
      }
    });
  }

  console.error(USAGE);
  return 2;
}
