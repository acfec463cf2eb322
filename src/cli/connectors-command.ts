// `keybridge connectors list|test`: the connectors of the config file and the database, and a
// test of one against its upstream, on the same service as the admin API (never the HTTP API).
import type { Config } from '../config/schema.ts';
import { createLogger } from '../log.ts';
import { ConnectorService } from '../management/connectors.ts';
import { configuredTokenCipher } from '../server/connector-entries.ts';
import { KeybridgeError } from '../errors.ts';
import { withStore } from './with-store.ts';

const USAGE = 'usage: keybridge connectors list [--json]\n       keybridge connectors test <connector-id> [--json]';

export function runConnectors(config: Config, action: string | undefined, id: string | undefined, options: { json?: boolean } = {}): Promise<number> {
  if (action !== 'list' && !(action === 'test' && id)) {
    console.error(USAGE);
    return Promise.resolve(2);
  }
  return withStore(config, async (store) => {
    const logger = createLogger(config.log.level === 'info' ? 'warn' : config.log.level);
    const service = new ConnectorService({ config, store, cipher: configuredTokenCipher(config), logger });
    if (action === 'list') {
      const all = await service.list();
      if (options.json) {
        console.log(JSON.stringify(all, null, 2));
        return 0;
      }
      const rows = all.map((c) => [c.id, c.type, c.enabled ? 'enabled' : 'disabled', c.source, c.name]);
      const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i]!.length), ['ID', 'TYPE', 'STATE', 'SOURCE'][i]!.length));
      const line = (r: string[]) => r.map((v, i) => (i < 4 ? v.padEnd(widths[i]!) : v)).join('  ');
      console.log(line(['ID', 'TYPE', 'STATE', 'SOURCE', 'NAME']));
      for (const r of rows) console.log(line(r));
      return 0;
    }
    let result;
    try {
      result = await service.test(id!);
    } catch (err) {
      if (err instanceof KeybridgeError && err.status === 404) {
        console.error(`no connector "${id}" (see keybridge connectors list)`);
        return 2;
      }
      throw err;
    }
    if (options.json) console.log(JSON.stringify(result, null, 2));
    else {
      for (const s of result.steps) console.log(`${s.ok ? 'ok  ' : 'FAIL'} ${s.name.padEnd(12)} ${s.detail}${s.field && !s.ok ? ` [${s.field}]` : ''} (${s.ms} ms)`);
      console.log(result.ok ? `connector ${id}: ok` : `connector ${id}: ${result.supported ? 'failed' : 'has no test'}`);
    }
    return result.ok ? 0 : 1;
  });
}
