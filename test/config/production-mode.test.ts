// Production mode (`mode: production` or NODE_ENV=production): weak secrets and passwords,
// plain-http redirect URIs and issuer refuse the config, every problem at once with its path;
// outside production mode the same problems are warnings.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load-config.ts';
import { productionChecks, productionWarnings, weakSecretReason } from '../../src/config/production-checks.ts';
import { ConfigError } from '../../src/errors.ts';

const random = () => randomBytes(36).toString('base64url');
const HASH = '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA';

/** A config fit for production; each test spoils one part of it. */
function goodConfig(): Record<string, unknown> {
  return {
    issuer: 'https://id.example.com',
    secrets: { cookieKeys: [random(), random()], tokenKeys: [random()] },
    clients: [
      { id: 'portal', secret: random(), redirectUris: ['https://portal.example.com/cb', 'http://127.0.0.1:8080/cb', 'http://localhost:3000/cb', 'com.example.app:/oauth'], postLogoutRedirectUris: ['https://portal.example.com/', 'http://[::1]:3000/'] },
      { id: 'spa', redirectUris: ['https://spa.example.com/cb'] },
    ],
    users: [{ username: 'ops', passwordHash: HASH }],
    connectors: [{ id: 'google', type: 'oidc', config: { issuer: 'https://accounts.google.com', clientId: 'x.apps.googleusercontent.com', clientSecret: 'GOCSPX-short-but-issued' } }],
  };
}

const WEAK_YAML = {
  issuer: 'http://id.example.com',
  secrets: { cookieKeys: ['a'.repeat(40), 'cookie-key-change-me-cookie-key-change-me'], tokenKeys: ['abcd'.repeat(10)] },
  clients: [
    { id: 'portal', secret: 'Short-But-Valid-16', redirectUris: ['http://portal.example.com/cb'], postLogoutRedirectUris: ['http://portal.example.com/'] },
    { id: 'worker', secret: '0123456789abcdefghijklmnopqrstuvwxyz', grantTypes: ['client_credentials'] },
  ],
  users: [
    { username: 'demo', password: 'demo-password-change-me' },
    { username: 'alice', password: 'alice-2024-alice' },
    { username: 'bob', password: 'short' },
    { username: 'carol', password: 'Xk8#qL2!vR9@mT4$' },
    { username: 'dave', passwordHash: HASH },
  ],
  connectors: [{ id: 'corp', type: 'ldap', config: { url: 'ldaps://ldap.example.com', bindDN: 'cn=kb', bindPassword: 'change-me' } }],
};

const WEAK_PATHS = [
  'issuer',
  'secrets.cookieKeys[0]',
  'secrets.cookieKeys[1]',
  'secrets.tokenKeys[0]',
  'clients[0].secret',
  'clients[0].redirectUris[0]',
  'clients[0].postLogoutRedirectUris[0]',
  'clients[1].secret',
  'users[0].password',
  'users[1].password',
  'users[2].password',
  'users[3].password',
  'connectors[0].config.bindPassword',
];

function refusal(raw: Record<string, unknown>, env: Record<string, string> = {}): ConfigError {
  try {
    parseConfig(stringify(raw), { env, source: 'prod.yaml' });
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return err;
  }
  assert.fail('expected production mode to refuse the config');
}

/** Every string value in a config, for "no message echoes a value". */
function values(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.flatMap(values);
  if (v && typeof v === 'object') return Object.values(v).flatMap(values);
  return [];
}

describe('production mode', () => {
  test('mode: production refuses every weak secret, password and plain-http URL at once, each at its path', () => {
    const err = refusal({ mode: 'production', ...WEAK_YAML });
    assert.deepEqual(err.issues.map((i) => i.path), WEAK_PATHS);
    assert.match(err.message, /production mode/);
    const secrets = values(WEAK_YAML).filter((s) => s.length >= 6 && !/^https?:|^ldaps?:|^(demo|alice|bob|carol|dave|portal|worker|corp|ldap)$|^cn=/.test(s));
    for (const issue of err.issues) {
      for (const s of secrets) assert.ok(!issue.message.includes(s), `${issue.path} does not echo a value`);
    }
    const by = (path: string) => err.issues.filter((i) => i.path === path).map((i) => i.message).join(' | ');
    assert.match(by('issuer'), /https/);
    assert.match(by('secrets.cookieKeys[0]'), /not random enough/);
    assert.match(by('secrets.cookieKeys[1]'), /placeholder/);
    assert.match(by('secrets.tokenKeys[0]'), /not random enough/);
    assert.match(by('clients[0].secret'), /at least 32/);
    assert.match(by('clients[1].secret'), /not random enough/, 'a run of ascending characters');
    assert.match(by('clients[0].redirectUris[0]'), /https .*loopback/);
    assert.match(by('users[0].password'), /well-known or demo/);
    assert.match(by('users[1].password'), /username/);
    assert.match(by('users[2].password'), /too short/);
    assert.match(by('users[3].password'), /passwordHash/, 'a strong password still must not be plain text in production');
    assert.match(by('connectors[0].config.bindPassword'), /placeholder/);
  });

  test('NODE_ENV=production turns production mode on without mode in the file', () => {
    const err = refusal(WEAK_YAML, { NODE_ENV: 'production' });
    assert.deepEqual(err.issues.map((i) => i.path), WEAK_PATHS);
    const config = parseConfig(stringify(goodConfig()), { env: { NODE_ENV: 'production' } });
    assert.equal(config.mode, 'production', 'the effective mode is on the config');
  });

  test('a config fit for production starts: random secrets, https and loopback redirect URIs, hashed users, upstream-issued secrets', () => {
    const config = parseConfig(stringify({ mode: 'production', ...goodConfig() }), { env: {} });
    assert.equal(config.mode, 'production');
    assert.deepEqual(productionChecks(config), []);
  });

  test('two-step verification needs tokenKeys in production (TOTP secrets are sealed with them); mfa off does not', () => {
    const raw = goodConfig();
    raw.secrets = { cookieKeys: (raw.secrets as { cookieKeys: string[] }).cookieKeys };
    const err = refusal({ mode: 'production', ...raw });
    assert.deepEqual(err.issues.map((i) => i.path), ['secrets.tokenKeys']);
    assert.match(err.issues[0].message, /two-step verification/);
    assert.deepEqual(productionChecks(parseConfig(stringify({ mode: 'production', ...raw, mfa: { mode: 'off' } }), { env: {} })), []);
    assert.equal(refusal({ mode: 'production', ...raw, mfa: { mode: 'off', groups: { admins: 'required' } } }).issues[0].path, 'secrets.tokenKeys');
  });

  test('two clients sharing one secret are refused', () => {
    const raw = goodConfig();
    const clients = raw.clients as Record<string, unknown>[];
    clients.push({ id: 'worker', secret: clients[0].secret, grantTypes: ['client_credentials'] });
    const err = refusal({ mode: 'production', ...raw });
    assert.deepEqual(err.issues.map((i) => i.path), ['clients[2].secret']);
    assert.match(err.issues[0].message, /same as clients\[0\]\.secret/);
  });

  test('outside production mode the same problems are warnings, one line each with its path', () => {
    const config = parseConfig(stringify(WEAK_YAML), { env: {} });
    assert.equal(config.mode, 'development');
    const warnings = productionWarnings(config);
    assert.equal(warnings.length, WEAK_PATHS.length);
    WEAK_PATHS.forEach((path, i) => assert.ok(warnings[i].startsWith(`warning: ${path}: `), warnings[i]));
    assert.ok(warnings.every((w) => !w.includes('\n')));
    assert.deepEqual(productionWarnings(parseConfig(stringify({ mode: 'production', ...goodConfig() }), { env: {} })), []);
  });

  test('random-looking: long random values pass; short, repeated, sequential, low-variety and placeholder values do not', () => {
    for (const good of [randomBytes(16).toString('hex'), randomBytes(24).toString('base64url'), randomBytes(48).toString('base64'), 'T3q8vZ1xKc9RmW2yLp5sHd7fJg4nBa6eQu0oXiVt']) {
      assert.equal(weakSecretReason(good), null, good);
    }
    for (const bad of ['Kc9RmW2yLp5sHd7f', 'z'.repeat(64), 'abc'.repeat(20), 'aB3$'.repeat(12), 'abcdefghijklmnopqrstuvwxyz012345', 'aabbaabbaabbccddccddccddaabbaabbccdd', 'my-cookie-key-please-change-me-now-1234', 'Xk9-example-Xk9-Qm2-Wn7-Rt5-Pv8-Lz3']) {
      assert.notEqual(weakSecretReason(bad), null, bad);
    }
  });
});
