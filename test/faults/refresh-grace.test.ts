// Refresh-token reuse grace (src/storage/refresh-grace.ts), on two instances sharing one
// PostgreSQL database: a just-rotated token presented again (its response was lost) gets the
// same successor instead of revoking the grant, even on the other instance and even when both
// presentations arrive at once; a repeat after the successor was used, or after the window,
// still revokes; refreshReuseGrace 0 restores plain reuse detection.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { freshPostgresDatabase } from '../helpers/postgres.ts';
import { freePort } from '../helpers/free-port.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { assertNoErrorLogs, codeFlowTokens, refresh, RP, startFaultBroker, type FaultBroker } from './fault-broker.ts';

const CLIENT = { id: 'rp', secret: 'rp-secret-0123456789abcdef' };

describe('refresh token reuse grace', () => {
  let db: Awaited<ReturnType<typeof freshPostgresDatabase>>;
  let a: FaultBroker;
  let b: FaultBroker;
  let strict: FaultBroker;

  before(async () => {
    db = await freshPostgresDatabase();
    if ('skip' in db) return;
    const issuerPort = await freePort();
    const config = (listen: number, extra: Record<string, unknown> = {}) => ({
      issuer: `http://127.0.0.1:${issuerPort}`,
      http: { listen: `127.0.0.1:${listen}` },
      clients: [{ ...CLIENT, redirectUris: [RP], firstParty: true }],
      users: [{ username: 'alice', password: 'alice-password-1', email: 'alice@example.org' }],
      ...extra,
    });
    // A listens on the issuer's port (the browser signs in there); B and the strict instance
    // are further instances behind the same issuer.
    a = await startFaultBroker({ databaseUrl: db.url, config: config(issuerPort) });
    b = await startFaultBroker({ databaseUrl: db.url, config: config(await freePort()) });
    strict = await startFaultBroker({ databaseUrl: db.url, config: config(await freePort(), { tokens: { refreshReuseGrace: 0 } }) });
  });

  after(async () => {
    await Promise.all([a?.close(), b?.close(), strict?.close()]);
    if (db && !('skip' in db)) await db.drop();
  });

  const newChain = async () => (await codeFlowTokens(a.url, CLIENT)).refresh_token;

  test('a repeat of a just-rotated token, on the other instance, gets the same successor', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const first = await newChain();
    const rotated = await refresh(a.url, CLIENT, first);
    assert.equal(rotated.status, 200);
    const successor = rotated.body.refresh_token;
    assert.notEqual(successor, first);

    // The response was lost: the client tries the same token again, elsewhere.
    const repeat = await refresh(b.url, CLIENT, first);
    assert.equal(repeat.status, 200, JSON.stringify(repeat.body));
    assert.equal(repeat.body.refresh_token, successor, 'the same successor, not a second one');
    assert.ok(repeat.body.access_token);

    const next = await refresh(a.url, CLIENT, successor);
    assert.equal(next.status, 200, 'the chain goes on');
    assert.equal((await refresh(b.url, CLIENT, next.body.refresh_token)).status, 200);
    assertNoErrorLogs(a.logs);
    assertNoErrorLogs(b.logs);
  });

  test('two presentations of the same token at once, on both instances, do not revoke', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    for (let round = 0; round < 5; round++) {
      const token = await newChain();
      const [x, y] = await Promise.all([refresh(a.url, CLIENT, token), refresh(b.url, CLIENT, token)]);
      assert.equal(x.status, 200, JSON.stringify(x.body));
      assert.equal(y.status, 200, JSON.stringify(y.body));
      // Each answer is a live token: whichever response the client keeps, its chain goes on.
      for (const next of new Set([x.body.refresh_token, y.body.refresh_token])) {
        const used = await refresh(a.url, CLIENT, next);
        assert.equal(used.status, 200, `round ${round}: ${JSON.stringify(used.body)}`);
      }
    }
  });

  test('a repeat after the successor was used is reuse: the grant is revoked', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const first = await newChain();
    const s1 = (await refresh(a.url, CLIENT, first)).body.refresh_token;
    const s2 = await refresh(b.url, CLIENT, s1);
    assert.equal(s2.status, 200);
    const replay = await refresh(a.url, CLIENT, first);
    assert.equal(replay.status, 400);
    assert.equal(replay.body.error, 'invalid_grant');
    assert.equal((await refresh(b.url, CLIENT, s2.body.refresh_token)).body.error, 'invalid_grant', 'the whole grant is gone');
  });

  test('outside the window, reuse revokes the grant as before', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const first = await newChain();
    const s1 = (await refresh(a.url, CLIENT, first)).body.refresh_token;
    // The rotation happened longer ago than the (default 30 s) window.
    await a.database.artifacts('oidc_payloads').where({ kind: 'RefreshToken', id: first }).update({ consumed_at: new Date(Date.now() - 31_000) });
    const replay = await refresh(b.url, CLIENT, first);
    assert.equal(replay.body.error, 'invalid_grant');
    assert.equal((await refresh(a.url, CLIENT, s1)).body.error, 'invalid_grant', 'the successor was revoked with the grant');
  });

  test('refreshReuseGrace 0: any repeat revokes at once', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const first = await newChain();
    const s1 = (await refresh(strict.url, CLIENT, first)).body.refresh_token;
    assert.ok(s1);
    assert.equal((await refresh(strict.url, CLIENT, first)).body.error, 'invalid_grant');
    assert.equal((await refresh(strict.url, CLIENT, s1)).body.error, 'invalid_grant');
  });

  test('introspection does not report a rotated token as active inside the window', async (t) => {
    if ('skip' in db) return skipLoudly(t, db.skip);
    const first = await newChain();
    assert.equal((await refresh(a.url, CLIENT, first)).status, 200);
    const res = await fetch(`${b.url}/token/introspection`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${CLIENT.id}:${CLIENT.secret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: first, token_type_hint: 'refresh_token' }),
    });
    assert.equal(((await res.json()) as { active: boolean }).active, false);
  });
});
