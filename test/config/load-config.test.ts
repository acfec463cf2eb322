import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { loadConfig, parseConfig, substituteEnv } from '../../src/config/load-config.ts';
import { ConfigError, type ConfigIssue } from '../../src/errors.ts';

type Env = Record<string, string | undefined>;

function rejection(text: string, env: Env = {}): ConfigError {
  try {
    parseConfig(text, { env, source: 'test.yaml' });
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return err;
  }
  assert.fail('expected the config to be rejected');
}

const issuesOf = (text: string, env: Env = {}): ConfigIssue[] => rejection(text, env).issues;
const pathsOf = (text: string, env: Env = {}): string[] => issuesOf(text, env).map((i) => i.path);

function assertIssue(issues: ConfigIssue[], path: string, message: RegExp): void {
  assert.ok(issues.some((i) => i.path === path && message.test(i.message)), `${path} ${message} in ${JSON.stringify(issues)}`);
}

const base = 'issuer: http://127.0.0.1:5556\n';
const productionEnv = {
  KEYBRIDGE_ISSUER: 'https://id.example.com',
  DATABASE_URL: 'postgres://kb:pw@db.internal:5432/kb',
  // The example runs in production mode, which refuses trivial secrets.
  COOKIE_KEY: 'T3q8vZ1xKc9RmW2yLp5sHd7fJg4nBa6eQu0oXiVt',
  TOKEN_KEY: 'mK7dQ2vX9pL4wR8tZ1cF6hJ3nB5sG0yUe',
  PORTAL_CLIENT_SECRET: 'Pz4Lq9Wm2Rx7Kc1Vb8Nt5Yh3Gd6Fs0Ja',
  BILLING_CLIENT_SECRET: 'bE7rT2yU9iO4pA1sD6fG3hJ8kL5zX0cV',
};

describe('shipped config files', () => {
  test('config/dev.yaml is valid: embedded database, demo clients, user, resource and connector', async () => {
    const { config, path: file } = await loadConfig({ path: 'config/dev.yaml', env: {} });
    assert.equal(file, path.resolve('config/dev.yaml'));
    assert.equal(config.issuer, 'http://127.0.0.1:5556');
    assert.equal(config.http.listen, '127.0.0.1:5556');
    assert.equal(config.database.url, undefined);
    assert.equal(config.database.dataDir, './data');
    const app = config.clients.find((c) => c.id === 'demo-app');
    assert.ok(app);
    assert.equal(app.secret, undefined, 'public client');
    assert.equal(app.firstParty, true);
    assert.deepEqual(app.redirectUris, ['http://127.0.0.1:3000/callback']);
    assert.deepEqual(app.postLogoutRedirectUris, ['http://127.0.0.1:3000/']);
    assert.deepEqual(app.grantTypes, ['authorization_code', 'refresh_token']);
    const service = config.clients.find((c) => c.id === 'demo-service');
    assert.equal(service?.secret, 'demo-service-secret-change-me');
    assert.deepEqual(service?.grantTypes, ['client_credentials']);
    assert.deepEqual(config.resources, [{ id: 'https://api.example.test', scopes: ['read', 'write'], audience: 'https://api.example.test' }]);
    assert.equal(config.users[0].username, 'demo');
    assert.equal(config.users[0].password, 'demo-password-change-me');
    assert.deepEqual(config.users[0].groups, ['users', 'admins']);
    assert.deepEqual(config.connectors.map(({ id, type, name, enabled, config: c, storeTokens, linking }) => ({ id, type, name, enabled, config: c, storeTokens, linking })), [
      { id: 'local', type: 'local', name: 'Username and password', enabled: true, config: {}, storeTokens: false, linking: { firstLogin: 'create', trustEmail: false } },
    ]);
  });

  test('config/dev.yaml takes the demo service secret from the environment when set', async () => {
    const { config } = await loadConfig({ path: 'config/dev.yaml', env: { DEMO_SERVICE_SECRET: 's'.repeat(32) } });
    assert.equal(config.clients.find((c) => c.id === 'demo-service')?.secret, 's'.repeat(32));
  });

  test('the production example is valid once its variables are set', async () => {
    const { config } = await loadConfig({ path: 'config/examples/production.yaml', env: productionEnv });
    assert.equal(config.issuer, 'https://id.example.com');
    assert.equal(config.http.trustProxy, true);
    assert.equal(config.database.url, productionEnv.DATABASE_URL);
    assert.deepEqual(config.secrets.cookieKeys, [productionEnv.COOKIE_KEY], 'the unset previous key is dropped');
    const portal = config.clients.find((c) => c.id === 'portal');
    assert.equal(portal?.backchannelLogoutUri, 'https://portal.example.com/oidc/backchannel-logout');
    assert.equal(config.resources[0].accessTokenTtl, 300);
  });

  test('the production example names every unset variable at its path', async () => {
    await assert.rejects(loadConfig({ path: 'config/examples/production.yaml', env: {} }), (err: ConfigError) => {
      assert.ok(err instanceof ConfigError);
      assert.deepEqual(err.issues.map((i) => i.path), ['issuer', 'database.url', 'secrets.cookieKeys[0]', 'secrets.tokenKeys[0]', 'clients[0].secret', 'clients[1].secret']);
      assert.ok(err.issues.every((i) => /^environment variable [A-Z_]+ is not set$/.test(i.message)));
      return true;
    });
  });
});

describe('loadConfig', () => {
  test('the file comes from options.path, else KEYBRIDGE_CONFIG, else config/dev.yaml', async () => {
    const fromEnv = await loadConfig({ env: { KEYBRIDGE_CONFIG: 'config/examples/production.yaml', ...productionEnv } });
    assert.equal(fromEnv.path, path.resolve('config/examples/production.yaml'));
    const byDefault = await loadConfig({ env: {} });
    assert.equal(byDefault.path, path.resolve('config/dev.yaml'));
  });

  test('an unreadable file is a ConfigError naming it', async () => {
    await assert.rejects(loadConfig({ path: 'config/does-not-exist.yaml', env: {} }), (err: ConfigError) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /does-not-exist\.yaml/);
      assert.match(err.issues[0].message, /no such file/);
      return true;
    });
    await assert.rejects(loadConfig({ path: 'config', env: {} }), (err: ConfigError) => err instanceof ConfigError && /is a directory/.test(err.message));
  });
});

describe('defaults', () => {
  test('a config with only an issuer gets every default', () => {
    const config = parseConfig('issuer: https://id.example.com/\n', { env: {} });
    assert.deepEqual(config, {
      mode: 'development',
      issuer: 'https://id.example.com',
      http: { listen: '127.0.0.1:5556', trustProxy: false, proxyHops: 1 },
      database: { dataDir: './data', pool: { min: 0, max: 10 }, statementTimeoutMs: 5000, acquireTimeoutMs: 3000 },
      log: { level: 'info' },
      metrics: { enabled: true },
      admin: { groups: [], consoleClients: ['keybridge-admin-console'], bodyLimit: 262144, console: { enabled: true } },
      account: { enabled: true, selfDeletion: false, reauthMaxAge: 300 },
      secrets: {},
      tokens: {
        accessToken: 3600,
        idToken: 3600,
        refreshToken: 2592000,
        authorizationCode: 60,
        clientCredentials: 3600,
        resourceAccessToken: 300,
        deviceCode: 600,
        session: 1209600,
        interaction: 3600,
        grant: 2592000,
        refreshReuseGrace: 30,
      },
      keys: { algorithms: ['ES256', 'RS256'] },
      clients: [],
      resources: [],
      users: [],
      connectors: [],
      samlIdp: { enabled: false, signatureAlgorithm: 'rsa-sha256', wantAuthnRequestsSigned: true, assertionLifetimeSeconds: 300, requestMaxAgeSeconds: 300, clockSkewSeconds: 60, serviceProviders: [] },
      limits: {
        enabled: true,
        account: { freeFailures: 3, maxBackoffSeconds: 60, lockoutFailures: 10, lockoutSeconds: 900, failureWindowSeconds: 3600 },
        ip: {
          login: { points: 30, durationSeconds: 60, blockSeconds: 0 },
          callback: { points: 120, durationSeconds: 60, blockSeconds: 0 },
          token: { points: 1200, durationSeconds: 60, blockSeconds: 0 },
          tokenFailures: { points: 60, durationSeconds: 600, blockSeconds: 0 },
        },
      },
      mfa: { mode: 'optional', groups: {}, clients: {}, connectors: {}, rememberDevice: { days: 0 }, webauthn: { userVerification: 'preferred', rpName: 'Keybridge' } },
      passwordPolicy: { minLength: 12, maxLength: 128, minScore: 3, breachedList: true, history: 5, expiryDays: 0 },
      email: { from: 'Keybridge <noreply@localhost>', retry: { maxAttempts: 8, firstDelaySeconds: 30, maxDelaySeconds: 3600 }, pollSeconds: 30, perAddressHourly: 5 },
      registration: { enabled: false, requireEmailVerification: true, allowedEmailDomains: [], fields: { username: 'required', name: 'optional', givenName: 'off', familyName: 'off' }, linkMinutes: 1440 },
      passwordReset: { linkMinutes: 30 },
      redis: {},
      ui: { title: 'Keybridge' },
    });
  });

  test('defaults inside sections and list items; partial sections keep the other defaults', () => {
    const config = parseConfig(
      `${base}tokens: { accessToken: 300 }\ndatabase: { pool: { max: 4 } }\nclients:\n  - { id: app, redirectUris: [http://a.example/cb] }\nresources:\n  - { id: https://api.example.com }\nusers:\n  - { username: alice, password: pw }\nconnectors:\n  - { id: corp, type: ldap }\n`,
      { env: {} },
    );
    assert.equal(config.tokens.accessToken, 300);
    assert.equal(config.tokens.idToken, 3600);
    assert.deepEqual(config.database.pool, { min: 0, max: 4 });
    assert.deepEqual(config.clients[0], { id: 'app', redirectUris: ['http://a.example/cb'], postLogoutRedirectUris: [], grantTypes: ['authorization_code', 'refresh_token'], firstParty: false });
    assert.deepEqual(config.resources[0], { id: 'https://api.example.com', scopes: [], audience: 'https://api.example.com' });
    assert.deepEqual(config.users[0], { username: 'alice', password: 'pw', emailVerified: true, groups: [], enabled: true });
    assert.deepEqual(config.connectors[0], {
      id: 'corp', type: 'ldap', name: 'corp', enabled: true, config: {},
      linking: { firstLogin: 'create', trustEmail: false },
      storeTokens: false,
      mappers: { groups: { keepUpstream: true, prefix: '', map: {}, fromAttributes: [], always: [] }, claims: [] },
      trustUpstreamMfa: false,
      upstreamMfa: { amr: ['mfa', 'hwk', 'swk', 'otp', 'sms', 'face', 'fpt', 'iris', 'retina', 'vbm', 'sc'], acr: [] },
    });
  });

  test('a client_credentials-only client needs no redirect URIs', () => {
    const config = parseConfig(`${base}clients:\n  - { id: svc, secret: ${'s'.repeat(16)}, grantTypes: [client_credentials] }\n`, { env: {} });
    assert.equal(config.clients[0].redirectUris, undefined);
  });
});

describe('rejected configs name the exact path', () => {
  test('unknown keys, top level and nested, with a suggestion for near misses', () => {
    const issues = issuesOf(`${base}colour: blue\nhttp: { port: 80 }\nclients:\n  - id: a\n    redirectUri: http://x.example/cb\n    redirectUris: [http://x.example/cb]\nconnectors:\n  - { id: corp, type: ldap, settings: {} }\n`);
    assert.deepEqual(issues.map((i) => i.path).sort(), ['clients[0].redirectUri', 'colour', 'connectors[0].settings', 'http.port']);
    assertIssue(issues, 'clients[0].redirectUri', /^unknown key \(did you mean "redirectUris"\?\)$/);
    assertIssue(issues, 'colour', /^unknown key$/);
    assertIssue(issues, 'connectors[0].settings', /^unknown key$/);
  });

  test('a missing secret: an unset ${VAR} is reported once, at the secret', () => {
    const issues = issuesOf(`${base}clients:\n  - id: svc\n    secret: \${SVC_SECRET}\n    grantTypes: [client_credentials]\n`);
    assert.deepEqual(issues, [{ path: 'clients[0].secret', message: 'environment variable SVC_SECRET is not set' }]);
    const empty = issuesOf(`${base}clients:\n  - id: svc\n    secret: \${SVC_SECRET}\n    grantTypes: [client_credentials]\n`, { SVC_SECRET: '' });
    assert.deepEqual(empty, [{ path: 'clients[0].secret', message: 'environment variable SVC_SECRET is empty' }]);
  });

  test('a missing secret: client_credentials without one', () => {
    const issues = issuesOf(`${base}clients:\n  - id: svc\n    grantTypes: [client_credentials]\n`);
    assert.deepEqual(issues, [{ path: 'clients[0].secret', message: 'is required for the client_credentials grant' }]);
  });

  for (const [issuer, message] of [
    ['not a url', /absolute http\(s\) URL/],
    ['ftp://id.example.com', /absolute http\(s\) URL/],
    ['http:/id.example.com', /absolute http\(s\) URL/],
    ['https://id.example.com/?tenant=a', /query/],
    ['https://id.example.com/#x', /fragment/],
    ['https://user:pw@id.example.com', /credentials/],
  ] as const) {
    test(`a bad issuer: ${issuer}`, () => {
      const issues = issuesOf(`issuer: "${issuer}"\n`);
      assert.deepEqual(issues.map((i) => i.path), ['issuer']);
      assert.match(issues[0].message, message);
    });
  }

  test('bad client URLs', () => {
    const issues = issuesOf(
      `${base}clients:\n  - id: a\n    redirectUris: [relative/cb, "javascript:alert(1)", "http://a.example/cb#x", http://ok.example/cb, "com.example.app:/cb"]\n    postLogoutRedirectUris: [/]\n    backchannelLogoutUri: urn:x:y\n`,
    );
    assert.deepEqual(issues.map((i) => i.path), ['clients[0].redirectUris[0]', 'clients[0].redirectUris[1]', 'clients[0].redirectUris[2]', 'clients[0].postLogoutRedirectUris[0]', 'clients[0].backchannelLogoutUri']);
    assertIssue(issues, 'clients[0].redirectUris[1]', /javascript: scheme/);
    assertIssue(issues, 'clients[0].redirectUris[2]', /fragment/);
  });

  test('connector linking, token storage and mappers are checked where they are written', () => {
    const issues = issuesOf(
      `${base}connectors:\n` +
        `  - { id: g, type: oidc, storeTokens: true, linking: { firstLogin: link-verified-email } }\n` +
        `  - { id: h, type: oidc, linking: { firstLogin: merge }, mappers: { claims: [{ attribute: dept, claim: sub }], groups: { map: { a: '' } } } }\n`,
    );
    assert.deepEqual(issues.map((i) => i.path).sort(), [
      'connectors[0].linking.trustEmail',
      'connectors[0].storeTokens',
      'connectors[1].linking.firstLogin',
      'connectors[1].mappers.claims[0].claim',
      'connectors[1].mappers.groups.map.a',
    ]);
    assertIssue(issues, 'connectors[0].storeTokens', /secrets\.tokenKeys/);
    assertIssue(issues, 'connectors[0].linking.trustEmail', /must be true/);
    assertIssue(issues, 'connectors[1].mappers.claims[0].claim', /sets itself/);
    // With a key, and trust declared, the same connector is fine.
    const ok = parseConfig(`${base}secrets: { tokenKeys: ['${'x'.repeat(32)}'] }\nconnectors:\n  - { id: g, type: oidc, storeTokens: true, linking: { firstLogin: link-verified-email, trustEmail: true } }\n`, { env: {} });
    assert.equal(ok.connectors[0].storeTokens, true);
    assert.deepEqual(ok.secrets.tokenKeys, ['x'.repeat(32)]);
  });

  test('the connector id "passkey" is reserved: passkey sign-ins are recorded under it', () => {
    assertIssue(issuesOf(`${base}connectors:\n  - { id: passkey, type: local }\n`), 'connectors[0].id', /reserved/);
  });

  test('connector upstream MFA: trust and the accepted amr / acr values, wrong types named by path', () => {
    const ok = parseConfig(
      `${base}connectors:\n` +
        `  - { id: entra, type: oidc, trustUpstreamMfa: true, upstreamMfa: { acr: [http://schemas.microsoft.com/claims/multipleauthn] } }\n` +
        `  - { id: keys, type: oidc, trustUpstreamMfa: '\${TRUST}', upstreamMfa: { amr: [hwk], acr: [] } }\n`,
      { env: { TRUST: 'true' } },
    );
    assert.equal(ok.connectors[0].trustUpstreamMfa, true);
    assert.deepEqual(ok.connectors[0].upstreamMfa.acr, ['http://schemas.microsoft.com/claims/multipleauthn']);
    assert.ok(ok.connectors[0].upstreamMfa.amr.includes('otp'), 'the default amr list stays');
    assert.equal(ok.connectors[1].trustUpstreamMfa, true, 'from the environment');
    assert.deepEqual(ok.connectors[1].upstreamMfa, { amr: ['hwk'], acr: [] });

    const issues = issuesOf(
      `${base}connectors:\n` +
        `  - { id: a, type: oidc, trustUpstreamMfa: yes-please, upstreamMfa: { amr: mfa, acr: [7], factors: [otp] } }\n` +
        `  - { id: b, type: oidc, upstreamMfa: { amr: ['two words', '', "${'x'.repeat(65)}", "nul\\0"], acr: ["${'y'.repeat(257)}"] } }\n` +
        `  - { id: c, type: saml, trustUpstreamMfa: true, upstreamMfa: { amr: [] } }\n` +
        `  - { id: d, type: saml, upstreamMfa: [mfa] }\n`,
    );
    assert.deepEqual([...new Set(issues.map((i) => i.path))].sort(), [
      'connectors[0].trustUpstreamMfa',
      'connectors[0].upstreamMfa.acr[0]',
      'connectors[0].upstreamMfa.amr',
      'connectors[0].upstreamMfa.factors',
      'connectors[1].upstreamMfa.acr[0]',
      'connectors[1].upstreamMfa.amr[0]',
      'connectors[1].upstreamMfa.amr[1]',
      'connectors[1].upstreamMfa.amr[2]',
      'connectors[1].upstreamMfa.amr[3]',
      'connectors[2].upstreamMfa',
      'connectors[3].upstreamMfa',
    ]);
    assertIssue(issues, 'connectors[1].upstreamMfa.amr[0]', /amr value: 1-64 characters without spaces/);
    assertIssue(issues, 'connectors[1].upstreamMfa.acr[0]', /acr value: 1-256 characters/);
    assertIssue(issues, 'connectors[2].upstreamMfa', /accepts no amr and no acr value/);
    assertIssue(issues, 'connectors[0].upstreamMfa.factors', /^unknown key$/);
  });

  test('duplicate ids are reported at the second occurrence', () => {
    const issues = issuesOf(
      `${base}clients:\n  - { id: a, redirectUris: [http://a.example/cb] }\n  - { id: a, redirectUris: [http://a.example/cb] }\nresources:\n  - { id: https://api.example.com }\n  - { id: https://api.example.com }\nusers:\n  - { username: Alice, password: x }\n  - { username: alice, password: y }\nconnectors:\n  - { id: corp, type: ldap }\n  - { id: other, type: saml }\n  - { id: corp, type: oidc }\n`,
    );
    assert.deepEqual(issues.map((i) => i.path), ['clients[1].id', 'resources[1].id', 'users[1].username', 'connectors[2].id']);
    assertIssue(issues, 'connectors[2].id', /duplicate connector id "corp"/);
    assertIssue(issues, 'users[1].username', /without case or Unicode compatibility differences/);
    // The decomposed spelling of a name is the same account, not a second one.
    const nfd = issuesOf(`${base}users:\n  - { username: "zo\u00eb", password: x }\n  - { username: "ZOE\u0308", password: y }\n`);
    assert.deepEqual(nfd.map((i) => i.path), ['users[1].username']);
  });

  for (const listen of ['127.0.0.1:99999', '127.0.0.1', '127.0.0.1:http', '127.0.0.1:-1']) {
    test(`a bad listen address: ${listen}`, () => {
      const issues = issuesOf(`${base}http: { listen: "${listen}" }\n`);
      assert.deepEqual(issues.map((i) => i.path), ['http.listen']);
      assert.match(issues[0].message, /port from 0 to 65535/);
    });
  }

  test('client rules across fields', () => {
    const secret = 's'.repeat(20);
    const issues = issuesOf(
      [
        base.trim(),
        'clients:',
        `  - { id: a, secret: ${secret}, tokenEndpointAuthMethod: none, redirectUris: [http://a.example/cb] }`,
        '  - { id: b, tokenEndpointAuthMethod: client_secret_post, redirectUris: [http://a.example/cb] }',
        '  - { id: c, grantTypes: [authorization_code] }',
        '  - { id: d, redirectUris: [http://a.example/cb], resources: [https://undeclared.example.com] }',
        '  - { id: e, secret: too-short, redirectUris: [http://a.example/cb] }',
        '  - { id: "bad id", redirectUris: [http://a.example/cb], grantTypes: [implicit] }',
      ].join('\n'),
    );
    assertIssue(issues, 'clients[0].secret', /must not be set when tokenEndpointAuthMethod is "none"/);
    assertIssue(issues, 'clients[1].secret', /required for tokenEndpointAuthMethod "client_secret_post"/);
    assertIssue(issues, 'clients[2].redirectUris', /authorization_code/);
    assertIssue(issues, 'clients[3].resources[0]', /no resource declared/);
    assertIssue(issues, 'clients[4].secret', /at least 16 characters/);
    assertIssue(issues, 'clients[5].id', /1-128 characters/);
    assertIssue(issues, 'clients[5].grantTypes[0]', /expected one of/);
    assert.equal(issues.length, 7, JSON.stringify(issues));
  });

  test('static users: password or passwordHash, not neither or both; argon2id only', () => {
    const issues = issuesOf(`${base}users:\n  - { username: a }\n  - { username: b, password: x, passwordHash: "$argon2id$v=19$m=19456,t=2,p=1$x$y" }\n  - { username: c, passwordHash: "$2b$10$abc" }\n  - { username: "d e", password: x, email: not-an-email }\n`);
    assert.deepEqual(issues.map((i) => i.path), ['users[2].passwordHash', 'users[3].username', 'users[3].email', 'users[0].password', 'users[1].passwordHash']);
  });

  test('other sections: log level, algorithms, pool, TTLs, connector slugs, cookie keys, database URL', () => {
    const issues = issuesOf(
      `${base}log: { level: loud }\nkeys: { algorithms: [HS256] }\ndatabase: { url: "mysql://db/x", pool: { min: 5, max: 2 } }\ntokens: { accessToken: 0, idToken: 1.5 }\nconnectors:\n  - { id: Corp_LDAP, type: ldap }\nsecrets: { cookieKeys: [short] }\n`,
    );
    assert.deepEqual(issues.map((i) => i.path).sort(), [
      'connectors[0].id',
      'database.pool.min',
      'database.url',
      'keys.algorithms[0]',
      'log.level',
      'secrets.cookieKeys[0]',
      'tokens.accessToken',
      'tokens.idToken',
    ]);
  });

  test('limits, Redis and proxy hops are checked where they are written', () => {
    const issues = issuesOf(
      `${base}http: { trustProxy: true, proxyHops: 0 }\nredis: { url: "http://cache:6379" }\nlimits: { account: { lockoutFailures: 0, freeFailures: -1 }, ip: { login: { points: 0 }, token: { durationSeconds: 1.5 } }, burst: 3 }\n`,
    );
    assert.deepEqual(issues.map((i) => i.path).sort(), [
      'http.proxyHops',
      'limits.account.freeFailures',
      'limits.account.lockoutFailures',
      'limits.burst',
      'limits.ip.login.points',
      'limits.ip.token.durationSeconds',
      'redis.url',
    ]);
    assert.ok(!JSON.stringify(issues).includes('cache:6379'), 'messages do not repeat the value');
  });

  test('every problem is reported at once, even next to a type error', () => {
    const err = rejection(
      [
        'issuer: ftp://x',
        'http: { listen: "127.0.0.1:99999", trustProxy: maybe }',
        'clients:',
        '  - { id: a, redirectUris: [http://a.example/cb] }',
        '  - { id: a, redirectUris: [http://a.example/cb] }',
        '  - { id: svc, grantTypes: [client_credentials] }',
        'connectors:',
        '  - { id: Bad_Id, type: local }',
        'users:',
        '  - { username: bob }',
        'tokens: 5',
        'mystery: 1',
        'ui: { title: ${UI_TITLE} }',
      ].join('\n'),
    );
    const paths = err.issues.map((i) => i.path);
    for (const p of ['issuer', 'http.listen', 'http.trustProxy', 'clients[1].id', 'clients[2].secret', 'connectors[0].id', 'users[0].password', 'tokens', 'mystery', 'ui.title']) {
      assert.ok(paths.includes(p), `${p} in ${JSON.stringify(paths)}`);
    }
    assert.equal(new Set(paths).size, paths.length, 'one issue per path here');
    for (const p of paths) assert.ok(err.message.includes(p), `the message lists ${p}`);
    assert.match(err.message, /in test\.yaml/);
  });

  test('YAML syntax errors carry line and column', () => {
    const issues = issuesOf('issuer: http://x.example\nclients: [\n');
    assert.match(issues[0].path, /^line \d+, column \d+$/);
    const duplicate = issuesOf('issuer: http://x.example\nissuer: http://y.example\n');
    assert.deepEqual(duplicate, [{ path: 'line 2, column 1', message: 'Map keys must be unique' }]);
    const notMapping = issuesOf('- just\n- a list\n');
    assert.deepEqual(notMapping.map((i) => i.path), ['']);
  });

  test('YAML errors keep true columns after ${...} and do not quote source tokens', () => {
    const issues = issuesOf('issuer: ${KEYBRIDGE_ISSUER}\nusers: [ { password: ${PW} } ] ]\n');
    assert.deepEqual(issues.map((i) => i.path), ['line 2, column 32'], 'the stray ] as the file has it');
    const secret = issuesOf('issuer: http://x.example\nusers:\n  - { username: a, password: hunter2-secret } extra\n');
    assert.ok(!JSON.stringify(secret).includes('hunter2'), JSON.stringify(secret));
  });
});

describe('environment substitution', () => {
  test('values, defaults, escapes, empty defaults remove the key or list item', () => {
    const { value, issues } = substituteEnv(
      { a: '${A}', b: 'x-${B:-dflt}-y', c: '$${LITERAL}', d: '${D:-}', e: '${A}${A}', f: 'pre ${D:-} post', list: ['${A}', '${D:-}', 3], n: 5, t: true, z: null },
      { A: 'one' },
    );
    assert.deepEqual(issues, []);
    assert.deepEqual(value, { a: 'one', b: 'x-dflt-y', c: '${LITERAL}', e: 'oneone', f: 'pre  post', list: ['one', 3], n: 5, t: true, z: null });
  });

  test('a default stands in for an empty variable; a set variable wins over the default', () => {
    assert.deepEqual(substituteEnv('${A:-d}', { A: '' }).value, 'd');
    assert.deepEqual(substituteEnv('${A:-d}', { A: 'set' }).value, 'set');
    assert.deepEqual(substituteEnv('${A:-}', { A: 'set' }).value, 'set');
  });

  test('unset variables are issues at the path of their string', () => {
    const { issues } = substituteEnv({ clients: [{ secret: '${S1}' }, { redirectUris: ['ok', 'http://${HOST}/cb'] }] }, {});
    assert.deepEqual(issues, [
      { path: 'clients[0].secret', message: 'environment variable S1 is not set' },
      { path: 'clients[1].redirectUris[1]', message: 'environment variable HOST is not set' },
    ]);
  });

  test('references work inside flow collections and with " #" in a default', () => {
    const config = parseConfig(`${base}database: { url: \${DATABASE_URL} }\nclients:\n  - { id: a, redirectUris: [\${CB:-http://a.example/cb}], secret: \${A_SECRET:-} }\nui: { title: \${TITLE:-Sign in #1} }\n`, {
      env: { DATABASE_URL: 'postgres://u:p@db/kb' },
    });
    assert.equal(config.database.url, 'postgres://u:p@db/kb');
    assert.deepEqual(config.clients[0].redirectUris, ['http://a.example/cb']);
    assert.equal(config.clients[0].secret, undefined, 'unset optional secret -> public client');
    assert.equal(config.ui.title, 'Sign in #1');
  });

  test('`secret: ${VAR:-}` makes a public client unless the variable is set', () => {
    const text = `${base}clients:\n  - id: app\n    secret: \${APP_SECRET:-}\n    redirectUris: [http://a.example/cb]\n`;
    assert.equal(parseConfig(text, { env: {} }).clients[0].secret, undefined);
    assert.equal(parseConfig(text, { env: { APP_SECRET: 'x'.repeat(20) } }).clients[0].secret, 'x'.repeat(20));
  });

  test('a substituted value is data, never YAML', () => {
    const config = parseConfig(`${base}ui: { title: "\${TITLE}" }\n`, { env: { TITLE: 'a: b\n- c\n}' } });
    assert.equal(config.ui.title, 'a: b\n- c\n}');
  });

  test('numbers and booleans may come from variables', () => {
    const config = parseConfig(`${base}http: { trustProxy: \${TRUST_PROXY:-false} }\ntokens: { accessToken: \${ACCESS_TTL:-300} }\ndatabase: { pool: { max: \${POOL_MAX} } }\n`, {
      env: { TRUST_PROXY: 'true', POOL_MAX: '25' },
    });
    assert.equal(config.http.trustProxy, true);
    assert.equal(config.tokens.accessToken, 300);
    assert.equal(config.database.pool.max, 25);
  });
});

describe('environment overrides', () => {
  test('KEYBRIDGE_ISSUER, DATABASE_URL, PORT and LOG_LEVEL win over the file', () => {
    const config = parseConfig(`issuer: http://127.0.0.1:5556\nhttp: { listen: "0.0.0.0:5556" }\ndatabase: { url: postgres://file/db }\n`, {
      env: { KEYBRIDGE_ISSUER: 'https://id.example.com/', DATABASE_URL: 'postgres://u@db/kb', PORT: '8080', LOG_LEVEL: 'debug' },
    });
    assert.equal(config.issuer, 'https://id.example.com', 'validated and normalized like the file value');
    assert.equal(config.database.url, 'postgres://u@db/kb');
    assert.equal(config.http.listen, '0.0.0.0:8080', 'PORT keeps the host');
    assert.equal(config.log.level, 'debug');
  });

  test('overrides fill sections the file leaves out', () => {
    const config = parseConfig(base, { env: { DATABASE_URL: 'postgresql://u@db/kb', PORT: '9000' } });
    assert.equal(config.database.url, 'postgresql://u@db/kb');
    assert.equal(config.database.dataDir, './data');
    assert.equal(config.http.listen, '127.0.0.1:9000');
  });

  test('KEYBRIDGE_LISTEN sets the address; PORT then replaces its port', () => {
    assert.equal(parseConfig(base, { env: { KEYBRIDGE_LISTEN: '[::]:7000' } }).http.listen, '[::]:7000');
    assert.equal(parseConfig(base, { env: { KEYBRIDGE_LISTEN: '0.0.0.0:7000', PORT: '8080' } }).http.listen, '0.0.0.0:8080');
  });

  test('a bad override is reported at its path, naming the variable', () => {
    const issues = issuesOf(base, { KEYBRIDGE_ISSUER: 'id.example.com', PORT: 'eighty', LOG_LEVEL: 'loud', DATABASE_URL: 'mysql://db/x' });
    assertIssue(issues, 'issuer', /\(set by KEYBRIDGE_ISSUER\)$/);
    assertIssue(issues, 'http.listen', /^PORT must be a port number/);
    assertIssue(issues, 'log.level', /\(set by LOG_LEVEL\)$/);
    assertIssue(issues, 'database.url', /\(set by DATABASE_URL\)$/);
  });
});

describe('secrets stay out of error messages', () => {
  test('client secrets, passwords, hashes, cookie keys and database credentials', () => {
    const secret = 'Sup3r-S3cret-Value';
    const err = rejection(
      [
        'issuer: http://x.example',
        'clients:',
        `  - { id: a, secret: ${secret}-client, tokenEndpointAuthMethod: none, redirectUris: [http://a.example/cb] }`,
        `  - { id: b, secret: ${secret.slice(0, 8)}, redirectUris: [http://a.example/cb] }`,
        'users:',
        `  - { username: u, password: ${secret}-password, passwordHash: "${secret}-hash" }`,
        `secrets: { cookieKeys: [${secret}] }`,
        `database: { url: "mysql://root:${secret}@db/x" }`,
      ].join('\n'),
    );
    for (const p of ['clients[0].secret', 'clients[1].secret', 'users[0].passwordHash', 'secrets.cookieKeys[0]', 'database.url']) {
      assert.ok(err.issues.some((i) => i.path === p), `${p} in ${JSON.stringify(err.issues)}`);
    }
    assert.ok(!err.message.includes(secret.slice(0, 8)), err.message);
    assert.ok(!JSON.stringify(err.issues).includes(secret.slice(0, 8)));
  });

  test('a secret from the environment is not echoed either', () => {
    const err = rejection(`${base}clients:\n  - { id: a, secret: \${A_SECRET}, tokenEndpointAuthMethod: none, redirectUris: [http://a.example/cb] }\n`, { A_SECRET: 'from-env-secret-value' });
    assertIssue(err.issues, 'clients[0].secret', /none/);
    assert.ok(!err.message.includes('from-env-secret-value'));
  });
});

describe('client secrets and resource token lifetimes', () => {
  test('a client secret with non-ASCII characters or spaces is refused, without echoing it', () => {
    for (const secret of ['sécret-sécret-sécret-sécret', 'a secret with spaces in it', 'ключ-ключ-ключ-ключ-ключ']) {
      const issues = issuesOf(`${base}clients:\n  - { id: svc, secret: "${secret}", grantTypes: [client_credentials] }\n`);
      assertIssue(issues, 'clients[0].secret', /printable ASCII/);
      assert.ok(issues.every((i) => !i.message.includes(secret)), 'the secret is not echoed');
    }
    const ok = parseConfig(`${base}clients:\n  - { id: svc, secret: "Az09!#$%&()*+,-./:;<=>?@[]^_{|}~", grantTypes: [client_credentials] }\n`, { env: {} });
    assert.equal(ok.clients[0].secret, 'Az09!#$%&()*+,-./:;<=>?@[]^_{|}~');
  });

  test('resource JWT access tokens default to 5 minutes; a resource may set its own', () => {
    const config = parseConfig(`${base}resources:\n  - { id: https://api.example.test }\n  - { id: https://long.example.test, accessTokenTtl: 900 }\n`, { env: {} });
    assert.equal(config.tokens.resourceAccessToken, 300);
    assert.equal(config.tokens.accessToken, 3600, 'opaque access tokens keep their lifetime');
    assert.equal(config.resources[0].accessTokenTtl, undefined);
    assert.equal(config.resources[1].accessTokenTtl, 900);
    assert.equal(parseConfig(`${base}tokens: { resourceAccessToken: 120 }\n`, { env: {} }).tokens.resourceAccessToken, 120);
  });

  test('mode defaults to development; the production example is in production mode', async () => {
    assert.equal(parseConfig(base, { env: {} }).mode, 'development');
    assert.equal((await loadConfig({ path: 'config/examples/production.yaml', env: productionEnv })).config.mode, 'production');
  });
});
