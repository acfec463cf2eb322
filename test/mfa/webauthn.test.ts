// Passkeys end to end in Chromium with a virtual authenticator, against WebauthnService on a real
// store: registration, second factor, passwordless, replays, another user's credential, a counter
// going backwards, hostile input, the page without WebAuthn, and the page's CSP. The flows run on
// PGlite; registration and passwordless sign-in run again on PostgreSQL.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser as Chromium, BrowserContext, Page } from 'playwright-core';
import { chromiumMissing, launchChromium } from '../helpers/chromium.ts';
import { freshPostgresDatabase } from '../helpers/postgres.ts';
import { skipLoudly } from '../helpers/skip.ts';
import { addVirtualAuthenticator, type VirtualAuthenticator } from '../helpers/virtual-authenticator.ts';
import { artifactChallengeStore, type ChallengeStore } from '../../src/mfa/challenge-store.ts';
import { openDatabase, type Database } from '../../src/storage/database.ts';
import { createOidcAdapter } from '../../src/storage/oidc-adapter.ts';
import { migrateDatabase } from '../../src/storage/migrate.ts';
import type { User } from '../../src/storage/types.ts';
import { startWebauthnTestApp, type WebauthnTestApp } from './webauthn-test-app.ts';

interface Browsing {
  context: BrowserContext;
  page: Page;
  authenticator: VirtualAuthenticator;
  /** Console errors and uncaught exceptions (CSP violations are console errors). */
  errors: string[];
}

async function browse(chromium: Chromium): Promise<Browsing> {
  const context = await chromium.newContext();
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  return { context, page, errors, authenticator: await addVirtualAuthenticator(page) };
}

/** Opens a page of the app, presses its button and returns what the server answered to the POST. */
async function ceremony(page: Page, url: string): Promise<Record<string, unknown>> {
  await page.goto(url);
  const [response] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST'), page.click('button')]);
  return (await response.json()) as Record<string, unknown>;
}

async function openPglite(): Promise<{ database: Database; cleanup(): Promise<void> }> {
  const database = await openDatabase({ dataDir: ':memory:' });
  await migrateDatabase(database);
  return { database, cleanup: () => database.close() };
}

describe('WebAuthn passkeys in Chromium (PGlite)', () => {
  const missing = chromiumMissing();
  let chromium: Chromium;
  let db: { database: Database; cleanup(): Promise<void> };
  let app: WebauthnTestApp;
  let alice: User;
  let bob: User;
  let b: Browsing;

  before(async () => {
    if (missing) return;
    db = await openPglite();
    app = await startWebauthnTestApp(db.database);
    alice = await app.store.users.create({ username: 'alice', name: 'Alice Liddell' });
    bob = await app.store.users.create({ username: 'bob' });
    chromium = await launchChromium();
    b = await browse(chromium);
  });

  after(async () => {
    await b?.context.close();
    await chromium?.close();
    await app?.close();
    await db?.cleanup();
  });

  test('registering a passkey stores it under its name, as a resident credential with the user handle', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const result = await ceremony(b.page, `${app.origin}/register?user=${alice.id}&name=${encodeURIComponent("  Alice's laptop ")}`);
    assert.equal(result.ok, true, JSON.stringify(result));
    const factors = await app.store.mfa.webauthnFactors(alice.id);
    assert.equal(factors.length, 1);
    assert.equal(factors[0].id, result.factorId);
    assert.equal(factors[0].name, "Alice's laptop");
    assert.equal(factors[0].data.userVerified, true);
    const held = await b.authenticator.credentials();
    assert.equal(held.length, 1);
    assert.equal(held[0].isResidentCredential, true);
    assert.equal(held[0].rpId, 'localhost');
    assert.equal(Buffer.from(held[0].userHandle ?? '', 'base64').toString('utf8'), alice.id);
    assert.equal(Buffer.from(held[0].credentialId, 'base64').toString('base64url'), factors[0].credentialId);
  });

  test('registering the same authenticator again is refused in the browser (excludeCredentials), shown in the form', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const posts = app.posts.length;
    await b.page.goto(`${app.origin}/register?user=${alice.id}&name=again`);
    await b.page.click('button');
    const error = b.page.locator('[data-webauthn-error]');
    await error.waitFor({ state: 'visible' });
    assert.match(await error.innerText(), /already registered/);
    assert.equal(app.posts.length, posts, 'the form was not submitted');
    assert.equal((await app.store.mfa.webauthnFactors(alice.id)).length, 1);
  });

  test('as a second factor: the user, verified, amr hwk + user + mfa; the counter is stored', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const result = await ceremony(b.page, `${app.origin}/authenticate?user=${alice.id}`);
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.equal(result.userId, alice.id);
    assert.equal(result.userVerified, true);
    assert.deepEqual(result.amr, ['hwk', 'user', 'mfa']);
    const [factor] = await app.store.mfa.webauthnFactors(alice.id);
    assert.equal(result.factorId, factor.id);
    const [held] = await b.authenticator.credentials();
    assert.equal(factor.signCount, held.signCount);
    assert.ok(factor.signCount > 0, 'the virtual authenticator counts');
    assert.ok(factor.lastUsedAt);
  });

  test('passwordless: no user given, the discoverable passkey names alice', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const result = await ceremony(b.page, `${app.origin}/authenticate`);
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.equal(result.userId, alice.id);
    assert.equal(result.userVerified, true);
  });

  test('conditional UI: the passkey offered in the username field signs alice in, no button pressed', async (t) => {
    if (missing) return skipLoudly(t, missing);
    // The virtual authenticator answers a conditional request by itself (as a person picking the
    // one passkey from the autofill list would).
    const [response] = await Promise.all([b.page.waitForResponse((r) => r.request().method() === 'POST'), b.page.goto(`${app.origin}/conditional`)]);
    const result = (await response.json()) as Record<string, unknown>;
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.equal(result.userId, alice.id);
    assert.equal(app.posts.at(-1)!.form.user, '', 'no user was named');
  });

  test('a replayed assertion is refused: same challenge key, and under a fresh challenge', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const last = app.posts.at(-1)!;
    assert.equal(last.result.ok, true);
    const again = await app.service.verifyAuthentication(last.form.key, last.form.credential);
    assert.deepEqual([again.ok, !again.ok && again.error], [false, 'challenge_expired']);
    // The same signed answer against a new challenge: the challenge inside it does not match.
    await app.service.authenticationOptions('fresh-key');
    const fresh = await app.service.verifyAuthentication('fresh-key', last.form.credential);
    assert.deepEqual([fresh.ok, !fresh.ok && fresh.error], [false, 'verification_failed']);
  });

  test("alice's assertion presented as bob is refused, whether by expected user or by user handle", async (t) => {
    if (missing) return skipLoudly(t, missing);
    const asBob = await ceremony(b.page, `${app.origin}/authenticate?as=${bob.id}`);
    assert.deepEqual([asBob.ok, asBob.error], [false, 'wrong_user']);
    // Options made for bob (second factor), answered with alice's credential.
    await app.service.authenticationOptions('for-bob', bob.id);
    const posted = app.posts.at(-1)!.form.credential;
    const forBob = await app.service.verifyAuthentication('for-bob', posted);
    assert.deepEqual([forBob.ok, !forBob.ok && forBob.error], [false, 'wrong_user']);
    // A user handle rewritten to name bob.
    const forged = JSON.parse(posted);
    forged.response.userHandle = Buffer.from(bob.id).toString('base64url');
    await app.service.authenticationOptions('forged');
    const handle = await app.service.verifyAuthentication('forged', JSON.stringify(forged));
    assert.deepEqual([handle.ok, !handle.ok && handle.error], [false, 'wrong_user']);
  });

  test('a counter going backwards (stored counter moved up) is refused as a possible clone', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const [factor] = await app.store.mfa.webauthnFactors(alice.id);
    await app.store.knex('mfa_factors').where({ id: factor.id }).update({ sign_count: 1000 });
    const result = await ceremony(b.page, `${app.origin}/authenticate?user=${alice.id}`);
    assert.deepEqual([result.ok, result.error], [false, 'counter_not_increased']);
    assert.match(String(result.detail), /cloned/);
    assert.equal((await app.store.mfa.webauthnFactors(alice.id))[0].signCount, 1000, 'the stored counter is not lowered');
    await app.store.knex('mfa_factors').where({ id: factor.id }).update({ sign_count: factor.signCount });
  });

  test('user verification: a second factor without it passes under "preferred" (amr without mfa); passwordless without it is refused', async (t) => {
    if (missing) return skipLoudly(t, missing);
    // A security key that can test presence but not verify the person (no PIN, no biometrics);
    // Chromium creates no discoverable credential on such a key.
    const key = await browse(chromium);
    try {
      await key.authenticator.remove();
      key.authenticator = await addVirtualAuthenticator(key.page, { transport: 'usb', hasResidentKey: false, hasUserVerification: false, isUserVerified: false });
      const registered = await ceremony(key.page, `${app.origin}/register?user=${bob.id}&name=Plain%20key`);
      assert.equal(registered.ok, true, JSON.stringify(registered));
      const second = await ceremony(key.page, `${app.origin}/authenticate?user=${bob.id}`);
      assert.equal(second.ok, true, JSON.stringify(second));
      assert.equal(second.userVerified, false);
      assert.deepEqual(second.amr, ['hwk', 'user']);
      // A tampered page asks for less than the server requires for passwordless sign-in: refused.
      const passwordless = await ceremony(key.page, `${app.origin}/authenticate?uv=discouraged&allow=${bob.id}`);
      assert.deepEqual([passwordless.ok, passwordless.error], [false, 'user_verification_required']);
      assert.deepEqual(key.errors, []);
    } finally {
      await key.context.close();
    }
  });

  test('a synced passkey (backup eligible) is a software key in amr: swk, not hwk', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const erin = await app.store.users.create({ username: 'erin' });
    const synced = await browse(chromium);
    try {
      await synced.authenticator.remove();
      synced.authenticator = await addVirtualAuthenticator(synced.page, { defaultBackupEligibility: true, defaultBackupState: true });
      const registered = await ceremony(synced.page, `${app.origin}/register?user=${erin.id}&name=Synced`);
      assert.equal(registered.ok, true, JSON.stringify(registered));
      const [factor] = await app.store.mfa.webauthnFactors(erin.id);
      assert.deepEqual([factor.data.deviceType, factor.data.backedUp], ['multiDevice', true]);
      const result = await ceremony(synced.page, `${app.origin}/authenticate?user=${erin.id}`);
      assert.equal(result.ok, true, JSON.stringify(result));
      assert.deepEqual(result.amr, ['swk', 'user', 'mfa']);
    } finally {
      await synced.context.close();
    }
  });

  test('a removed factor no longer signs in', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const other = await browse(chromium);
    try {
      const registered = await ceremony(other.page, `${app.origin}/register?user=${bob.id}&name=Phone`);
      assert.equal(registered.ok, true, JSON.stringify(registered));
      assert.equal(await app.store.mfa.remove(bob.id, String(registered.factorId)), true);
      const result = await ceremony(other.page, `${app.origin}/authenticate`);
      assert.deepEqual([result.ok, result.error], [false, 'unknown_credential']);
    } finally {
      await other.context.close();
    }
  });

  test('hostile credentials and names: ok:false with a clear error, never a throw', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const valid = JSON.parse(app.posts.find((p) => p.path === '/authenticate' && p.result.ok)!.form.credential);
    const cases: [string, unknown][] = [
      ['not JSON', '{"id":'],
      ['100 KB', JSON.stringify({ ...valid, pad: 'x'.repeat(100 * 1024) })],
      ['NUL in the id', JSON.stringify({ ...valid, id: 'ab\0cd', rawId: 'ab\0cd' })],
      ['lone surrogate', JSON.stringify({ ...valid, id: '\ud800', rawId: '\ud800' })],
      ['a number', 42],
      ['null', null],
      ['an array', '[]'],
      ['wrong types', JSON.stringify({ ...valid, response: { ...valid.response, signature: 7 } })],
      ['rawId differs', JSON.stringify({ ...valid, rawId: 'AAAA' })],
      ['over-long user handle', JSON.stringify({ ...valid, response: { ...valid.response, userHandle: 'A'.repeat(200) } })],
    ];
    for (const [what, input] of cases) {
      await app.service.authenticationOptions('hostile');
      const result = await app.service.verifyAuthentication('hostile', input);
      assert.deepEqual([result.ok, !result.ok && result.error], [false, 'malformed_response'], what);
      assert.ok(!result.ok && result.detail.length > 0, what);
    }
    // A well-formed answer whose signature bytes are garbage: verification_failed.
    await app.service.authenticationOptions('garbage');
    const garbage = await app.service.verifyAuthentication('garbage', JSON.stringify({ ...valid, response: { ...valid.response, authenticatorData: 'AAAA' } }));
    assert.deepEqual([garbage.ok, !garbage.ok && garbage.error], [false, 'verification_failed']);
    for (const name of ['', '   ', 'x'.repeat(65), 'bad\0name', 'two\nlines', '\ud800', 42 as unknown as string]) {
      const result = await app.service.verifyRegistration(alice.id, 'any', '{}', name);
      assert.deepEqual([result.ok, !result.ok && result.error], [false, 'invalid_name'], JSON.stringify(name));
    }
    const registration = await app.service.verifyRegistration(alice.id, 'any', JSON.stringify({ id: 'AAAA', rawId: 'AAAA', type: 'public-key', response: { clientDataJSON: 'AAAA' } }), 'ok');
    assert.deepEqual([registration.ok, !registration.ok && registration.error], [false, 'malformed_response']);
    // Over HTTP, through the page's form handler: a 100 KB credential is a result, not a 500.
    const response = await fetch(`${app.origin}/authenticate`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ key: 'k', credential: 'x'.repeat(100 * 1024) }) });
    assert.equal(response.status, 200);
    assert.equal(((await response.json()) as { error: string }).error, 'malformed_response');
  });

  test("the pages hold a CSP of script-src 'self' and load without a console error", async (t) => {
    if (missing) return skipLoudly(t, missing);
    const response = await fetch(`${app.origin}/authenticate`);
    const csp = response.headers.get('content-security-policy') ?? '';
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    const vendored = await fetch(`${app.origin}/assets/simplewebauthn-browser.js`);
    assert.equal(vendored.status, 200);
    assert.match(vendored.headers.get('content-type') ?? '', /javascript/);
    const fresh = await browse(chromium);
    try {
      for (const path of [`/register?user=${bob.id}`, '/authenticate', '/conditional']) {
        await fresh.page.goto(`${app.origin}${path}`);
        await fresh.page.waitForLoadState('networkidle');
      }
      // The module ran (it is what makes the button start a ceremony): the register page works.
      const result = await ceremony(fresh.page, `${app.origin}/register?user=${bob.id}&name=Key`);
      assert.equal(result.ok, true, JSON.stringify(result));
      assert.deepEqual(fresh.errors, []);
      // And a violation would have shown: an inline script on the page is refused, with a console error.
      await fresh.page.goto(`${app.origin}/authenticate`);
      await fresh.page.evaluate(() => {
        const script = document.createElement('script');
        script.textContent = 'document.title = "inline ran"';
        document.head.append(script);
      });
      await fresh.page.waitForTimeout(200);
      assert.equal(await fresh.page.title(), 'Authenticate');
      assert.match(fresh.errors.join('\n'), /Content Security Policy/);
    } finally {
      await fresh.context.close();
    }
  });

  test('without WebAuthn in the browser, [data-webauthn-only] is hidden and a submit says why instead of posting', async (t) => {
    if (missing) return skipLoudly(t, missing);
    const context = await chromium.newContext();
    try {
      const page = await context.newPage();
      await page.addInitScript(() => {
        delete (window as { PublicKeyCredential?: unknown }).PublicKeyCredential;
      });
      const posts = app.posts.length;
      await page.goto(`${app.origin}/authenticate`);
      await page.locator('button').waitFor({ state: 'hidden' });
      await page.locator('form').evaluate((form: HTMLFormElement) => form.requestSubmit());
      await page.locator('[data-webauthn-error]').waitFor({ state: 'visible' });
      assert.match(await page.locator('[data-webauthn-error]').innerText(), /does not support passkeys/);
      assert.equal(app.posts.length, posts);
    } finally {
      await context.close();
    }
  });
});

describe('artifactChallengeStore', () => {
  let db: { database: Database; cleanup(): Promise<void> };
  let challenges: ChallengeStore;

  before(async () => {
    db = await openPglite();
    const Adapter = createOidcAdapter(db.database.artifacts);
    challenges = artifactChallengeStore(new Adapter('WebauthnChallenge'));
  });
  after(() => db?.cleanup());

  test('a value is taken once, and not after its time', async () => {
    await challenges.put('k1', { challenge: 'abc' }, 60);
    assert.deepEqual(await challenges.take('k1'), { challenge: 'abc' });
    assert.equal(await challenges.take('k1'), null);
    // A new ceremony under the same key (a second try on one login page) holds the new challenge.
    await challenges.put('k1', { challenge: 'again' }, 60);
    assert.deepEqual(await challenges.take('k1'), { challenge: 'again' });
    assert.equal(await challenges.take('k1'), null);
    await challenges.put('k2', { challenge: 'def' }, 1);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    assert.equal(await challenges.take('k2'), null);
    assert.equal(await challenges.take('never-put'), null);
  });

  test('hostile keys are misses, and refused when storing', async () => {
    for (const key of ['', 'a\0b', 'x'.repeat(201), 'with space', '\ud800', 42 as unknown as string]) {
      assert.equal(await challenges.take(key), null, JSON.stringify(key));
      await assert.rejects(challenges.put(key, {}, 60), TypeError);
    }
  });
});

describe('WebAuthn passkeys in Chromium (PostgreSQL)', () => {
  const missing = chromiumMissing();
  let chromium: Chromium;
  let database: Database;
  let drop: (() => Promise<void>) | undefined;
  let skip: string | null = missing;
  let app: WebauthnTestApp;

  before(async () => {
    if (skip) return;
    const fresh = await freshPostgresDatabase();
    if ('skip' in fresh) {
      skip = fresh.skip;
      return;
    }
    drop = fresh.drop;
    database = await openDatabase({ url: fresh.url });
    await migrateDatabase(database);
    app = await startWebauthnTestApp(database, { userVerification: 'required' });
    chromium = await launchChromium();
  });

  after(async () => {
    await chromium?.close();
    await app?.close();
    await database?.close();
    await drop?.();
  });

  test('register, then passwordless sign-in once; the replay is refused', async (t) => {
    if (skip) return skipLoudly(t, skip);
    const carol = await app.store.users.create({ username: 'carol' });
    const b = await browse(chromium);
    try {
      const registered = await ceremony(b.page, `${app.origin}/register?user=${carol.id}&name=Security%20key`);
      assert.equal(registered.ok, true, JSON.stringify(registered));
      assert.equal((await app.store.mfa.webauthnFactors(carol.id))[0].name, 'Security key');
      const signedIn = await ceremony(b.page, `${app.origin}/authenticate`);
      assert.equal(signedIn.ok, true, JSON.stringify(signedIn));
      assert.equal(signedIn.userId, carol.id);
      const last = app.posts.at(-1)!;
      const replay = await app.service.verifyAuthentication(last.form.key, last.form.credential);
      assert.deepEqual([replay.ok, !replay.ok && replay.error], [false, 'challenge_expired']);
      assert.deepEqual(b.errors, []);
    } finally {
      await b.context.close();
    }
  });

  test('under a "required" policy an authenticator that cannot verify the person is refused at registration', async (t) => {
    if (skip) return skipLoudly(t, skip);
    const dave = await app.store.users.create({ username: 'dave' });
    const b = await browse(chromium);
    try {
      await b.authenticator.remove();
      b.authenticator = await addVirtualAuthenticator(b.page, { transport: 'usb', hasResidentKey: false, hasUserVerification: false, isUserVerified: false });
      const refused = await ceremony(b.page, `${app.origin}/register?user=${dave.id}&uv=discouraged`);
      assert.deepEqual([refused.ok, refused.error], [false, 'user_verification_required']);
      assert.deepEqual(await app.store.mfa.webauthnFactors(dave.id), []);
    } finally {
      await b.context.close();
    }
  });
});
