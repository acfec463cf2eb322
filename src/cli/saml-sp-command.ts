// `keybridge saml-sp add|list|remove`: SAML service providers kept in the database, next to the
// ones in the config file's `samlIdp.serviceProviders` (which win on the same entity ID). A
// metadata file is stored as its XML (the database row does not depend on a file on one server);
// a metadata URL is stored as the URL and fetched by the broker when needed.
import { readFile } from 'node:fs/promises';
import type { Config } from '../config/schema.ts';
import type { Store } from '../storage/store.ts';
import { createServiceProvider } from '../management/saml-service-providers.ts';
import { withStore } from './with-store.ts';

export interface AddServiceProvider {
  entityId: string;
  name?: string;
  metadataXml?: string;
  metadataUrl?: string;
}

/** Validates with the config schema and the metadata itself, then stores (src/management/saml-service-providers.ts, as the admin API does). */
export async function addServiceProvider(store: Store, config: Config, input: AddServiceProvider, fetchMetadata: typeof fetch = fetch): Promise<{ warning?: string }> {
  const { warning } = await createServiceProvider(store, config, input, {
    fetchMetadata,
    inTransaction: (tx) => tx.audit.record({ type: 'saml.sp_added', details: { sp: input.entityId, via: 'cli' } }),
  });
  return { warning };
}

const USAGE = 'usage: keybridge saml-sp add --entity-id <id> (--metadata-file <file> | --metadata-url <url>) [--name <name>]\n       keybridge saml-sp list\n       keybridge saml-sp remove <entity-id>';

export async function runSamlSp(config: Config, action: string | undefined, options: { entityId?: string; metadataFile?: string; metadataUrl?: string; name?: string; target?: string }): Promise<number> {
  if (action === 'add') {
    if (!options.entityId || Boolean(options.metadataFile) === Boolean(options.metadataUrl)) {
      console.error(USAGE);
      return 2;
    }
    let metadataXml: string | undefined;
    if (options.metadataFile) {
      try {
        metadataXml = await readFile(options.metadataFile, 'utf8');
      } catch (err) {
        console.error(`cannot read ${options.metadataFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        return 2;
      }
    }
    return withStore(config, async (store) => {
      const { warning } = await addServiceProvider(store, config, { entityId: options.entityId!, name: options.name, metadataXml, metadataUrl: options.metadataUrl });
      if (warning) console.warn(`warning: ${warning}`);
      console.log(`added SAML service provider ${options.entityId}`);
      if (!config.samlIdp.enabled) console.warn('note: samlIdp.enabled is false in the config; no service provider can sign in until it is enabled');
      return 0;
    });
  }
  if (action === 'list') {
    return withStore(config, async (store) => {
      const stored = await store.samlServiceProviders.list();
      const configured = new Set(config.samlIdp.serviceProviders.map((sp) => sp.entityId));
      for (const sp of config.samlIdp.serviceProviders) console.log(`${sp.entityId}\tconfig\t${sp.name ?? '-'}`);
      for (const row of stored) {
        const name = typeof row.settings.name === 'string' ? row.settings.name : '-';
        const note = configured.has(row.entityId) ? '\t(overridden by the config file)' : '';
        console.log(`${row.entityId}\tdatabase${row.enabled ? '' : ' (disabled)'}\t${name}${note}`);
      }
      if (!stored.length && !configured.size) console.log('no SAML service providers');
      return 0;
    });
  }
  if (action === 'remove' && options.target) {
    return withStore(config, async (store) => {
      const removed = await store.samlServiceProviders.delete(options.target!);
      if (!removed) {
        const inConfig = config.samlIdp.serviceProviders.some((sp) => sp.entityId === options.target);
        console.error(inConfig ? `service provider "${options.target}" is defined in the config file; remove it there` : `no SAML service provider "${options.target}" in the database`);
        return 2;
      }
      await store.audit.record({ type: 'saml.sp_removed', details: { sp: options.target, via: 'cli' } });
      console.log(`removed SAML service provider ${options.target}`);
      return 0;
    });
  }
  console.error(USAGE);
  return 2;
}
