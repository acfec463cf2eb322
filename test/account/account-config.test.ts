// The `account` config section: defaults, the documented example, environment strings, and
// every wrong value named by its path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseConfig } from '../../src/config/load-config.ts';
import { ConfigError } from '../../src/errors.ts';
import { accountConsoleClient } from '../../src/account-console/account-console.ts';

const base = 'issuer: http://127.0.0.1:5556\n';

test('defaults: on, no self-deletion, 300 s; the console client is registered for the issuer', () => {
  const config = parseConfig(base, { env: {} });
  assert.deepEqual(config.account, { enabled: true, selfDeletion: false, reauthMaxAge: 300 });
  const client = accountConsoleClient(config)!;
  assert.equal(client.client_id, 'keybridge-account-console');
  assert.deepEqual(client.redirect_uris, ['http://127.0.0.1:5556/account/callback']);
  assert.equal(client.token_endpoint_auth_method, 'none');
  assert.equal(client.first_party, true);
  assert.equal(accountConsoleClient(parseConfig(`${base}account: { enabled: false }\n`, { env: {} })), null);
  assert.equal(accountConsoleClient(parseConfig(`${base}clients: [{ id: keybridge-account-console, redirectUris: ['http://127.0.0.1:5556/account/callback'] }]\n`, { env: {} })), null, 'a config client with that id replaces it');
});

test('the example in docs/account-console.md parses, and values may come from the environment', async () => {
  const doc = await readFile(path.resolve(import.meta.dirname, '../../docs/account-console.md'), 'utf8');
  const example = /```yaml\n([\s\S]*?)```/.exec(doc)![1]!;
  assert.deepEqual(parseConfig(base + example, { env: {} }).account, { enabled: true, selfDeletion: false, reauthMaxAge: 300 });
  const fromEnv = parseConfig(`${base}account: { selfDeletion: \${DEL}, reauthMaxAge: \${AGE} }\n`, { env: { DEL: 'true', AGE: '600' } });
  assert.deepEqual(fromEnv.account, { enabled: true, selfDeletion: true, reauthMaxAge: 600 });
});

test('wrong values are reported with their path, all at once', () => {
  let error: unknown;
  try {
    parseConfig(`${base}account: { enabled: maybe, reauthMaxAge: 5, colour: blue }\n`, { env: {} });
  } catch (err) {
    error = err;
  }
  assert.ok(error instanceof ConfigError);
  const paths = error.issues.map((i) => i.path).sort();
  assert.ok(paths.includes('account.enabled'), JSON.stringify(error.issues));
  assert.ok(paths.includes('account.reauthMaxAge'), JSON.stringify(error.issues));
  assert.ok(paths.some((p) => p === 'account' || p === 'account.colour'), JSON.stringify(error.issues));
  assert.throws(() => parseConfig(`${base}account: { reauthMaxAge: 100000 }\n`, { env: {} }), /account\.reauthMaxAge/);
  assert.throws(() => parseConfig(`${base}account: { reauthMaxAge: 30.5 }\n`, { env: {} }), /account\.reauthMaxAge/);
});
