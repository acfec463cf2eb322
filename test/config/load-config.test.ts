import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig, parseConfig, substituteEnv } from '../../src/config/load-config.ts';
import { ConfigError } from '../../src/errors.ts';

function issuesOf(fn: () => unknown): { path: string; message: string }[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return err.issues;
  }
  assert.fail('expected the config to be rejected');
}

const base = 'issuer: http://127.0.0.1:5556\n';

describe('config loading', () => {
  test('config/dev.yaml is valid and gets defaults', async () => {
    const { config } = await loadConfig({ path: 'config/dev.yaml', env: {} });
    assert.equal(config.issuer, 'http://127.0.0.1:5556');
    assert.equal(config.database.url, undefined);
    assert.equal(config.database.dataDir, './data');
    assert.equal(config.tokens.accessToken, 3600);
    assert.deepEqual(config.keys.algorithms, ['ES256', 'RS256']);
    assert.equal(config.clients.find((c) => c.id === 'demo-service')?.secret, 'demo-service-secret-change-me');
    assert.equal(config.clients.find((c) => c.id === 'demo-app')?.secret, undefined);
    assert.equal(config.users[0].username, 'demo');
  });

  test('the production example is valid once its variables are set', async () => {
    const env = { KEYBRIDGE_ISSUER: 'https://id.example.com', DATABASE_URL: 'postgres://kb:pw@db:5432/kb', PORTAL_CLIENT_SECRET: 'p'.repeat(24), BILLING_CLIENT_SECRET: 'b'.repeat(24) };
    const { config } = await loadConfig({ path: 'config/examples/production.yaml', env });
    assert.equal(config.issuer, 'https://id.example.com');
    assert.equal(config.http.trustProxy, true);
    assert.equal(config.database.url, 'postgres://kb:pw@db:5432/kb');
  });

  test('unknown keys are rejected with their path, top level and nested', () => {
    const issues = issuesOf(() => parseConfig(`${base}colour: blue\nclients:\n  - id: a\n    redirectUri: [http://x.example/cb]\n    redirectUris: [http://x.example/cb]\n`, { env: {} }));
    assert.ok(issues.some((i) => i.path === '' && /unknown key "colour"/.test(i.message)), JSON.stringify(issues));
    assert.ok(issues.some((i) => i.path === 'clients[0]' && /unknown key "redirectUri"/.test(i.message)), JSON.stringify(issues));
  });

  test('a missing secret is reported at its path', () => {
    const unset = issuesOf(() => parseConfig(`${base}clients:\n  - id: svc\n    secret: \${SVC_SECRET}\n    grantTypes: [client_credentials]\n`, { env: {} }));
    assert.deepEqual(unset.map((i) => i.path), ['clients[0].secret']);
    assert.match(unset[0].message, /SVC_SECRET is not set/);
    const absent = issuesOf(() => parseConfig(`${base}clients:\n  - id: svc\n    grantTypes: [client_credentials]\n`, { env: {} }));
    assert.deepEqual(absent.map((i) => i.path), ['clients[0].secret']);
  });

  test('bad URLs are reported at their paths', () => {
    const issues = issuesOf(() => parseConfig('issuer: not a url\nclients:\n  - id: a\n    redirectUris: [http://ok.example/cb, "relative/cb"]\n', { env: {} }));
    const paths = issues.map((i) => i.path).sort();
    assert.deepEqual(paths, ['clients[0].redirectUris[1]', 'issuer']);
  });

  test('every problem is reported at once', () => {
    const issues = issuesOf(() => parseConfig('issuer: ftp://x\nhttp: { listen: "127.0.0.1:99999" }\nclients:\n  - { id: a, redirectUris: [http://a.example/cb] }\n  - { id: a, redirectUris: [http://a.example/cb] }\nconnectors:\n  - { id: Bad_Id, type: local }\nusers:\n  - { username: bob }\n', { env: {} }));
    const paths = issues.map((i) => i.path);
    for (const p of ['issuer', 'http.listen', 'clients[1].id', 'connectors[0].id', 'users[0].password']) assert.ok(paths.includes(p), `${p} in ${JSON.stringify(paths)}`);
  });

  test('YAML syntax errors name the line', () => {
    const issues = issuesOf(() => parseConfig('issuer: http://x\nclients: [\n', { env: {} }));
    assert.match(issues[0].path, /^line \d+/);
  });

  test('environment substitution: values, defaults, escapes, optional keys', () => {
    const { value, issues } = substituteEnv({ a: '${A}', b: 'x-${B:-dflt}-y', c: '$${LITERAL}', d: '${D:-}', list: ['${A}', '${D:-}'] }, { A: 'one' });
    assert.deepEqual(issues, []);
    assert.deepEqual(value, { a: 'one', b: 'x-dflt-y', c: '${LITERAL}', list: ['one'] });
    const cfg = parseConfig(`${base}clients:\n  - id: app\n    secret: \${APP_SECRET:-}\n    redirectUris: [http://a.example/cb]\n`, { env: {} });
    assert.equal(cfg.clients[0].secret, undefined, 'unset optional secret -> public client');
  });

  test('environment overrides win over the file', () => {
    const cfg = parseConfig('issuer: http://127.0.0.1:5556\nhttp: { listen: "0.0.0.0:5556" }\n', {
      env: { KEYBRIDGE_ISSUER: 'https://id.example.com', DATABASE_URL: 'postgres://u@db/kb', PORT: '8080', LOG_LEVEL: 'debug' },
    });
    assert.equal(cfg.issuer, 'https://id.example.com');
    assert.equal(cfg.database.url, 'postgres://u@db/kb');
    assert.equal(cfg.http.listen, '0.0.0.0:8080');
    assert.equal(cfg.log.level, 'debug');
  });

  test('secret values never appear in error messages', () => {
    const secretValue = 'super-secret-value';
    const issues = issuesOf(() => parseConfig(`issuer: http://x.example\nclients:\n  - id: a\n    secret: ${secretValue}-but-none\n    tokenEndpointAuthMethod: none\n    redirectUris: [http://a.example/cb]\nusers:\n  - { username: u, password: ${secretValue}, passwordHash: "$argon2id$v=19$x" }\ndatabase: { url: "mysql://root:${secretValue}@db/x" }\n`, { env: {} }));
    assert.ok(issues.length >= 3);
    let message = '';
    try {
      parseConfig(`issuer: http://x.example\ndatabase: { url: "mysql://root:${secretValue}@db/x" }\n`, { env: {} });
    } catch (err) {
      message = (err as Error).message;
    }
    assert.ok(message.includes('database.url'));
    assert.ok(!message.includes(secretValue));
    assert.ok(!JSON.stringify(issues).includes(secretValue));
  });

  test('an unreadable file is a ConfigError naming it', async () => {
    await assert.rejects(loadConfig({ path: 'config/does-not-exist.yaml', env: {} }), (err: ConfigError) => err instanceof ConfigError && /does-not-exist\.yaml/.test(err.message));
  });
});
