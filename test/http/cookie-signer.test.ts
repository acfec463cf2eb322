// Signed cookies: Keybridge's signer makes keygrip's signatures (cookies set by earlier versions
// keep verifying), refuses anything else, and rotates keys as configured: the first key signs,
// every key verifies, a cookie signed with a dropped key no longer counts.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { CookieSigner } from '../../src/http/cookie-signer.ts';
import { freshPostgresDatabase } from '../helpers/postgres.ts';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { freePort } from '../helpers/free-port.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { Browser } from '../helpers/browser.ts';
import { signIn } from '../helpers/login-flow.ts';
import { RP } from '../faults/fault-broker.ts';

// keygrip is what the `cookies` package signs with by default: the reference.
const Keygrip = createRequire(import.meta.url)('keygrip') as new (keys: string[]) => { sign(data: string): string; index(data: string, digest: string): number };

const OLD = 'old-cookie-key-0123456789abcdefghijklmnop';
const NEW = 'new-cookie-key-0123456789abcdefghijklmnop';

describe('cookie signer', () => {
  test("signs as keygrip does, and each accepts the other's signatures", () => {
    const values = ['kb_session=abc', 'kb_interaction=Zx_9-', `kb_session=${'é'.repeat(40)}`, 'name=a\u0000b', 'x=', `kb_resume=${randomBytes(60).toString('base64url')}`];
    for (const key of [OLD, 'ключ-'.repeat(8)]) {
      const ours = new CookieSigner([key]);
      const reference = new Keygrip([key]);
      for (const data of values) {
        assert.equal(ours.sign(data), reference.sign(data), `${key}: ${JSON.stringify(data)}`);
        assert.equal(ours.index(data, reference.sign(data)), 0);
        assert.equal(reference.index(data, ours.sign(data)), 0);
      }
    }
  });

  test('finds the key that signed, among rotated keys; the first key signs', () => {
    const signer = new CookieSigner([NEW, OLD]);
    assert.equal(signer.index('a=1', new CookieSigner([OLD]).sign('a=1')), 1);
    assert.equal(signer.index('a=1', new CookieSigner([NEW]).sign('a=1')), 0);
    assert.equal(signer.sign('a=1'), new CookieSigner([NEW]).sign('a=1'));
    assert.equal(signer.verify('a=1', new CookieSigner([OLD]).sign('a=1')), true);
  });

  test('refuses a signature of other data, another key, or any other shape', () => {
    const signer = new CookieSigner([NEW, OLD]);
    const good = signer.sign('kb_session=abc');
    for (const digest of ['', good.slice(1), `${good}A`, `${good.slice(0, -1)}${good.endsWith('A') ? 'B' : 'A'}`, good.toUpperCase(), 'é'.repeat(27), '\u0000'.repeat(27), new CookieSigner(['a-third-key-0123456789abcdefghijklmnop']).sign('kb_session=abc')]) {
      assert.equal(signer.index('kb_session=abc', digest), -1, JSON.stringify(digest));
    }
    assert.equal(signer.index('kb_session=abd', good), -1, 'the signature of other data');
    assert.equal(signer.index('kb_session=abc', undefined as unknown as string), -1);
    assert.throws(() => new CookieSigner([]), /at least one key/);
  });

  describe('in the broker: rotating the cookie keys', () => {
    let db: Awaited<ReturnType<typeof freshPostgresDatabase>>;
    let broker: TestBroker | undefined;
    const CLIENT = { id: 'rp', secret: 'rp-secret-0123456789abcdef' };
    const start = async (port: number, cookieKeys: string[]) =>
      startTestBroker({
        databaseUrl: (db as { url: string }).url,
        port,
        config: {
          secrets: { cookieKeys },
          clients: [{ ...CLIENT, redirectUris: [RP], firstParty: true }],
          users: [{ username: 'alice', password: 'alice-password-1', email: 'alice@example.org' }],
        },
      });
    const authorize = (issuer: string) => `${issuer}/auth?${new URLSearchParams({ client_id: CLIENT.id, response_type: 'code', redirect_uri: RP, scope: 'openid', state: 'st' })}`;

    after(async () => {
      await broker?.close();
      if (db && !('skip' in db)) await db.drop();
    });

    test('a session signed with the old key survives a new first key, and is re-signed; dropping the old key ends it', async (t) => {
      db = await freshPostgresDatabase();
      if ('skip' in db) return skipLoudly(t, db.skip);
      const port = await freePort();
      broker = await start(port, [OLD]);
      const browser = new Browser(broker.issuer);
      assert.ok(new URL(await signIn(browser, authorize(broker.issuer), { username: 'alice', password: 'alice-password-1' })).searchParams.get('code'));
      const session = browser.cookies.get('kb_session');
      assert.ok(session, 'signed in: a session cookie');
      assert.equal(browser.cookies.get('kb_session.sig'), new CookieSigner([OLD]).sign(`kb_session=${session}`));
      await broker.close();

      broker = await start(port, [NEW, OLD]);
      const sso = await browser.go(authorize(broker.issuer));
      assert.ok(sso.url.startsWith(RP) && new URL(sso.url).searchParams.get('code'), `still signed in, no login page: ${sso.url}`);
      assert.equal(browser.cookies.get('kb_session'), session, 'the same session');
      assert.equal(browser.cookies.get('kb_session.sig'), new CookieSigner([NEW]).sign(`kb_session=${session}`), 're-signed with the new first key');
      await broker.close();

      // A signature by a key no longer configured: that cookie is ignored (a fresh login).
      browser.cookies.set('kb_session.sig', new CookieSigner([OLD]).sign(`kb_session=${session}`));
      broker = await start(port, [NEW]);
      const page = await browser.go(authorize(broker.issuer));
      assert.match(page.html, /name="password"/, 'the login form: the old key no longer counts');
    });
  });
});
