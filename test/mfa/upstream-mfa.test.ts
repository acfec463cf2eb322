// upstreamMfaProof: when a connector's policy lets the upstream's amr / acr stand in for a local
// second factor, and what the broker's tokens may then say about the login. The amr and acr
// bounds every connector applies (upstream-authentication.ts) are checked here too.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { UpstreamIdentity } from '../../src/connectors/contract.ts';
import pino from 'pino';
import { parseConfig } from '../../src/config/load-config.ts';
import { ConnectorRegistry, DEFAULT_POLICY, type ConnectorPolicy } from '../../src/connectors/registry.ts';
import { configConnectorEntries } from '../../src/server/connector-entries.ts';
import { upstreamAcr, upstreamAmr } from '../../src/connectors/upstream-authentication.ts';
import { upstreamMfaProof } from '../../src/mfa/upstream-mfa.ts';
import { upstreamMfaSchema } from '../../src/mfa/upstream-mfa-policy.ts';

const ENTRA_MFA = 'http://schemas.microsoft.com/claims/multipleauthn';
const identity = (amr?: unknown, acr?: string): UpstreamIdentity => ({ connectorId: 'up', subject: 's-1', ...(amr !== undefined && { amr: amr as string[] }), ...(acr !== undefined && { acr }) });
const policy = (trust: boolean, upstreamMfa: { amr?: string[]; acr?: string[] } = {}): ConnectorPolicy => ({ ...DEFAULT_POLICY, trustUpstreamMfa: trust, upstreamMfa: upstreamMfaSchema.parse(upstreamMfa) });

describe('upstreamMfaProof', () => {
  test('the default policy trusts nothing: a password login stays a password login', () => {
    assert.deepEqual(upstreamMfaProof(identity(['pwd', 'otp']), DEFAULT_POLICY), { proved: false, amr: ['fed', 'pwd'] });
    assert.deepEqual(upstreamMfaProof(identity(['mfa'], ENTRA_MFA), DEFAULT_POLICY), { proved: false, amr: ['fed'] }, 'an untrusted mfa is not repeated');
  });

  test('trusted: an accepted amr proves it; the tokens say fed, mfa and the accepted methods', () => {
    assert.deepEqual(upstreamMfaProof(identity(['pwd', 'otp']), policy(true)), { proved: true, amr: ['fed', 'mfa', 'otp', 'pwd'] });
    assert.deepEqual(upstreamMfaProof(identity(['hwk']), policy(true)), { proved: true, amr: ['fed', 'mfa', 'hwk'] });
    assert.deepEqual(upstreamMfaProof(identity(['mfa', 'fed']), policy(true)), { proved: true, amr: ['fed', 'mfa'] }, 'no repeats');
  });

  test('trusted, but only a password (or nothing) from the upstream: not proved', () => {
    assert.deepEqual(upstreamMfaProof(identity(['pwd']), policy(true)), { proved: false, amr: ['fed', 'pwd'] });
    assert.deepEqual(upstreamMfaProof(identity(), policy(true)), { proved: false, amr: ['fed'] });
    assert.deepEqual(upstreamMfaProof(identity([], 'urn:other'), policy(true, { acr: [ENTRA_MFA] })), { proved: false, amr: ['fed'] });
  });

  test('an acr in the accepted list proves it, compared exactly', () => {
    const entra = policy(true, { acr: [ENTRA_MFA] });
    assert.deepEqual(upstreamMfaProof(identity(['pwd'], ENTRA_MFA), entra), { proved: true, amr: ['fed', 'mfa', 'pwd'] });
    assert.equal(upstreamMfaProof(identity(['pwd'], ENTRA_MFA.toUpperCase()), entra).proved, false);
    assert.equal(upstreamMfaProof(identity(['pwd'], `${ENTRA_MFA} `), entra).proved, false);
    assert.equal(upstreamMfaProof(identity(['pwd'], ENTRA_MFA), policy(false, { acr: [ENTRA_MFA] })).proved, false, 'listed but not trusted');
  });

  test('a narrowed amr list: a method left out neither proves it nor reaches the tokens', () => {
    const hardwareOnly = policy(true, { amr: ['hwk'] });
    assert.deepEqual(upstreamMfaProof(identity(['pwd', 'sms']), hardwareOnly), { proved: false, amr: ['fed', 'pwd'] });
    assert.deepEqual(upstreamMfaProof(identity(['pwd', 'sms', 'hwk']), hardwareOnly), { proved: true, amr: ['fed', 'mfa', 'hwk', 'pwd'] });
    assert.deepEqual(upstreamMfaProof(identity(['otp'], ENTRA_MFA), policy(true, { amr: [], acr: [ENTRA_MFA] })), { proved: true, amr: ['fed', 'mfa'] }, 'acr only');
  });

  test('what a third-party connector hands over is bounded again', () => {
    assert.deepEqual(upstreamMfaProof(identity('mfa'), policy(true)), { proved: false, amr: ['fed'] }, 'a string is not a list');
    assert.deepEqual(upstreamMfaProof(identity([7, { mfa: true }, 'pwd']), policy(true)), { proved: false, amr: ['fed', 'pwd'] });
    assert.deepEqual(upstreamMfaProof(identity(['otp\u0000', 'pwd']), policy(true)), { proved: false, amr: ['fed', 'pwd'] });
  });
});

describe('amr and acr bounds', () => {
  test('amr: strings of 1-64 characters, the first 16, no repeats; anything else is ignored', () => {
    assert.deepEqual(upstreamAmr(['pwd', 'otp', 'pwd']), ['pwd', 'otp']);
    assert.equal(upstreamAmr('pwd'), undefined);
    assert.equal(upstreamAmr(42), undefined);
    assert.equal(upstreamAmr([]), undefined);
    assert.equal(upstreamAmr([1, null, '', 'x'.repeat(65)]), undefined);
    assert.deepEqual(upstreamAmr([1, 'pwd', 'x'.repeat(65), 'a\nb', 'otp']), ['pwd', 'otp']);
    const many = Array.from({ length: 100 }, (_, i) => `m${i}`);
    assert.deepEqual(upstreamAmr(many), many.slice(0, 16));
    assert.deepEqual(upstreamAmr(['x'.repeat(64)]), ['x'.repeat(64)]);
  });

  test('acr: one string of 1-256 characters without control characters', () => {
    assert.equal(upstreamAcr(ENTRA_MFA), ENTRA_MFA);
    assert.equal(upstreamAcr('x'.repeat(256)), 'x'.repeat(256));
    for (const bad of ['', 'x'.repeat(257), 'urn:a\u0000', ['urn:a'], 3, null, undefined]) assert.equal(upstreamAcr(bad), undefined, JSON.stringify(bad));
  });
});

describe('from the config file to the running connector', () => {
  test("a connector entry's trustUpstreamMfa and upstreamMfa become its RegisteredConnector policy", async () => {
    const config = parseConfig(
      'issuer: http://127.0.0.1:5556\nconnectors:\n' +
        `  - { id: entra, type: oidc, trustUpstreamMfa: true, upstreamMfa: { acr: [${ENTRA_MFA}] }, config: { issuer: https://op.example.com, clientId: c, clientSecret: s } }\n` +
        '  - { id: plain, type: oidc, config: { issuer: https://op.example.com, clientId: c, clientSecret: s } }\n',
      { env: {} },
    );
    const registry = await ConnectorRegistry.open(configConnectorEntries(config), { logger: pino({ level: 'silent' }), localAccounts: {} as never });
    try {
      const entra = registry.get('entra')!.policy;
      assert.equal(entra.trustUpstreamMfa, true);
      assert.deepEqual(entra.upstreamMfa.acr, [ENTRA_MFA]);
      assert.equal(upstreamMfaProof(identity(['pwd'], ENTRA_MFA), entra).proved, true);
      const plain = registry.get('plain')!.policy;
      assert.equal(plain.trustUpstreamMfa, false);
      assert.equal(upstreamMfaProof(identity(['pwd', 'otp'], ENTRA_MFA), plain).proved, false);
    } finally {
      await registry.close();
    }
  });
});
