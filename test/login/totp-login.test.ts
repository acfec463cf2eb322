// The login pipeline with TOTP, recovery codes, step-up and required actions, driven through
// the real pages by a cookie-keeping HTTP client and a real relying party (openid-client).
// Codes are computed with `otpauth` from the secret the enrolment page shows.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as oidc from 'openid-client';
import * as OTPAuth from 'otpauth';
import { decodeJwt } from 'jose';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { Browser, type Page } from '../helpers/browser.ts';

const RP = 'http://127.0.0.1:9/cb';
const SECRET = 'rp-secret-0123456789abcdef';

describe('login pipeline: TOTP, recovery codes, step-up, required actions', () => {
  let broker: TestBroker;
  let rp: oidc.Configuration;
  let relaxed: oidc.Configuration;
  const secrets = new Map<string, string>();

  before(async () => {
    broker = await startTestBroker({
      config: {
        clients: [
          { id: 'rp', secret: SECRET, name: 'Relying Party', redirectUris: [RP], firstParty: true },
          { id: 'relaxed', secret: SECRET, name: 'Relaxed app', redirectUris: [RP], firstParty: true },
        ],
        users: [
          { username: 'alice', password: 'alice-password-1', groups: ['admins'] },
          { username: 'bob', password: 'bob-password-1' },
          { username: 'carol', password: 'carol-password-1' },
          { username: 'dave', password: 'dave-password-1' },
        ],
        mfa: { groups: { admins: 'required' }, clients: { relaxed: 'off' } },
        limits: { account: { freeFailures: 2, lockoutFailures: 50 } },
      },
    });
    rp = await oidc.discovery(new URL(broker.issuer), 'rp', SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
    relaxed = await oidc.discovery(new URL(broker.issuer), 'relaxed', SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
  });

  after(async () => {
    await broker?.close();
  });

  const userId = async (name: string) => (await broker.store.users.findByUsername(name))!.id;

  /** Starts a code flow; returns the first broker page and what finishing it needs. */
  async function start(browser: Browser, config = rp, extra: Record<string, string> = {}) {
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const url = oidc.buildAuthorizationUrl(config, { redirect_uri: RP, scope: 'openid', state, code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', ...extra });
    const page = await browser.go(url.href);
    return { page, finish: async (last: Page) => {
      assert.equal(last.html, '', `expected the relying party, got ${last.status} at ${last.url}: ${last.html.slice(0, 400)}`);
      const tokens = await oidc.authorizationCodeGrant(config, new URL(last.url), { pkceCodeVerifier: verifier, expectedState: state });
      return decodeJwt(tokens.id_token!);
    } };
  }

  const password = (browser: Browser, page: Page, username: string) => browser.submit(page, '/login', { username, password: `${username}-password-1` });

  const totpFor = (secret: string) => new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret.replace(/\s/g, '')), algorithm: 'SHA1', digits: 6, period: 30 });

  /** Time steps each secret's codes were used for: the broker refuses a step twice. */
  const usedSteps = new Map<string, Set<number>>();
  /** A code within the ±1 step window whose step no test has used yet. */
  function freshCode(secret: string): string {
    const used = usedSteps.get(secret) ?? new Set<number>();
    usedSteps.set(secret, used);
    for (const offset of [0, 1, -1]) {
      const timestamp = Date.now() + offset * 30_000;
      const step = Math.floor(timestamp / 30_000);
      if (used.has(step)) continue;
      used.add(step);
      return totpFor(secret).generate({ timestamp });
    }
    throw new Error('no unused TOTP step left in the window');
  }

  test('a user with no factor and an optional policy signs in with the password only: acr sfa, amr pwd', async () => {
    const browser = new Browser(broker.issuer);
    const { page, finish } = await start(browser);
    const claims = await finish(await password(browser, page, 'bob'));
    assert.equal(claims.acr, 'urn:keybridge:sfa');
    assert.deepEqual(claims.amr, ['pwd']);
  });

  test('a required policy (group admins) makes the user enrol during the login; recovery codes are shown once', async () => {
    const browser = new Browser(broker.issuer);
    const { page, finish } = await start(browser);
    let enrol = await password(browser, page, 'alice');
    assert.equal(enrol.status, 200);
    assert.match(enrol.html, /Set up two-step verification/);
    assert.match(enrol.html, /<svg/, 'a QR code rendered locally as SVG');
    const secret = /id="totp-secret">([A-Z2-7 ]+)</.exec(enrol.html)?.[1];
    assert.ok(secret, 'the secret is shown as text');
    secrets.set('alice', secret.replace(/\s/g, ''));
    // The stored secret is sealed, never the plain base32 text.
    const [row] = await broker.store.knex('mfa_factors').where({ user_id: await userId('alice') });
    assert.ok(row && !row.secret.includes(secret.replace(/\s/g, '')) && row.confirmed === false);

    const right = freshCode(secrets.get('alice')!);
    const wrong = await browser.submit(enrol, '/mfa/enrol/totp', { code: right === '000000' ? '111111' : '000000' });
    assert.equal(wrong.status, 400);
    assert.match(wrong.html, /That code is not right/);
    enrol = wrong;
    const codes = await browser.submit(enrol, '/mfa/enrol/totp', { code: right });
    assert.equal(codes.status, 200);
    const shown = [...codes.html.matchAll(/<li><code>([^<]+)<\/code><\/li>/g)].map((m) => m[1]);
    assert.equal(shown.length, 10);
    assert.equal(new Set(shown).size, 10);
    secrets.set('alice-recovery', shown.join(' '));
    const claims = await finish(await browser.submit(codes, '/continue'));
    assert.equal(claims.acr, 'urn:keybridge:mfa');
    assert.deepEqual([...(claims.amr as string[])].sort(), ['mfa', 'otp', 'pwd']);
    const events = await broker.store.audit.list({ userId: await userId('alice'), limit: 20 });
    assert.ok(events.some((e: { type: string }) => e.type === 'mfa.enrolled'));
  });

  test('the next login asks for the code; a code already used is refused, also in another login', async () => {
    const secret = secrets.get('alice')!;
    const code = freshCode(secret);
    const first = new Browser(broker.issuer);
    const a = await start(first);
    const challenge = await password(first, a.page, 'alice');
    assert.match(challenge.html, /Two-step verification/);
    // The login state stored for the next step keeps the facts, not the policies read with them
    // when the login began: a reload or a later step reads those afresh.
    const uid = new URL(challenge.url).pathname.split('/')[2];
    const row = await broker.database.artifacts('oidc_payloads').where({ kind: 'UpstreamLogin', id: `login.${uid}` }).first();
    assert.ok(row, `the login state of ${uid} is stored`);
    const stored = (typeof row.payload === 'string' ? JSON.parse(row.payload) : row.payload) as { facts: Record<string, unknown> };
    assert.deepEqual(stored.facts, { enrolled: true, actions: [] });
    const claims = await a.finish(await first.submit(challenge, '/mfa/totp', { code }));
    assert.equal(claims.acr, 'urn:keybridge:mfa');

    const second = new Browser(broker.issuer);
    const b = await start(second);
    const again = await password(second, b.page, 'alice');
    const replayed = await second.submit(again, '/mfa/totp', { code });
    assert.equal(replayed.status, 401);
    assert.match(replayed.html, /already used/);
  });

  test('wrong codes are throttled like wrong passwords', async () => {
    const browser = new Browser(broker.issuer);
    const { page } = await start(browser);
    let challenge = await password(browser, page, 'alice');
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      challenge = await browser.submit(challenge, '/mfa/totp', { code: '12345' + i });
      statuses.push(challenge.status);
    }
    assert.deepEqual(statuses.slice(0, 2), [401, 401]);
    assert.equal(statuses[3], 429, `statuses ${statuses}`);
    assert.match(challenge.html, /Too many wrong codes/);
    assert.ok(Number(challenge.headers.get('retry-after')) >= 1);
    // Let the counter go: a success resets it (the backoff here is a few seconds at most).
    await broker.store.knex('rate_limits').delete().catch(() => {});
  });

  test('a recovery code signs in once and says how many are left', async () => {
    const [code, other] = secrets.get('alice-recovery')!.split(' ');
    const browser = new Browser(broker.issuer);
    const { page, finish } = await start(browser);
    const challenge = await password(browser, page, 'alice');
    const notice = await browser.submit(challenge, '/mfa/recovery', { code: ` ${code.toUpperCase()} ` });
    assert.equal(notice.status, 200, notice.html.slice(0, 400));
    assert.match(notice.html, /9 recovery codes left/);
    const claims = await finish(await browser.submit(notice, '/continue'));
    assert.ok((claims.amr as string[]).includes('mfa'));

    const again = new Browser(broker.issuer);
    const second = await start(again);
    const refused = await again.submit(await password(again, second.page, 'alice'), '/mfa/recovery', { code });
    assert.equal(refused.status, 401);
    assert.match(refused.html, /not valid or was already used/);
    assert.ok(other);
  });

  test('step-up: a password-only session asked for urn:keybridge:mfa gets only the factor page', async () => {
    // Carol signs in with her password (no factor yet), then enrols TOTP outside this login (as
    // the account console will): her session is still password-only.
    const browser = new Browser(broker.issuer);
    const first = await start(browser);
    const claims = await first.finish(await password(browser, first.page, 'carol'));
    assert.equal(claims.acr, 'urn:keybridge:sfa');
    const carol = await userId('carol');
    const enrolment = await broker.mfa.totp.startEnrolment({ id: carol, username: 'carol' });
    assert.equal(await broker.mfa.totp.confirmEnrolment(carol, enrolment.factorId, freshCode(enrolment.secret)), 'confirmed');

    const stepUp = await start(browser, rp, { acr_values: 'urn:keybridge:mfa' });
    assert.match(stepUp.page.html, /Two-step verification/, 'no password asked again');
    assert.doesNotMatch(stepUp.page.html, /name="password"/);
    const upped = await stepUp.finish(await browser.submit(stepUp.page, '/mfa/totp', { code: freshCode(enrolment.secret) }));
    assert.equal(upped.acr, 'urn:keybridge:mfa');
    assert.ok((upped.amr as string[]).includes('otp'));
    assert.equal(upped.sub, claims.sub);
    assert.ok((upped.auth_time as number) >= (claims.auth_time as number));

    // The session is multi-factor now: asking again needs nothing more.
    const quiet = await start(browser, rp, { acr_values: 'urn:keybridge:mfa' });
    const again = await quiet.finish(quiet.page);
    assert.equal(again.acr, 'urn:keybridge:mfa');
  });

  test('a client whose MFA policy is off does not weaken a stricter level: strictest wins', async () => {
    // Alice is in admins (required): the relaxed client (off) still asks her for the code.
    const browser = new Browser(broker.issuer);
    const { page } = await start(browser, relaxed);
    const challenge = await password(browser, page, 'alice');
    assert.match(challenge.html, /Two-step verification/);
  });

  test('an administrator password reset makes the user choose a new password during the login', async () => {
    const dave = await userId('dave');
    await broker.store.mfa.addRequiredAction(dave, 'update_password');
    const browser = new Browser(broker.issuer);
    const { page, finish } = await start(browser);
    const form = await password(browser, page, 'dave');
    assert.match(form.html, /Choose a new password/);
    const mismatch = await browser.submit(form, '/password', { password: 'a-new-password-42', confirm: 'another-one-42' });
    assert.equal(mismatch.status, 400);
    assert.match(mismatch.html, /do not match/);
    const same = await browser.submit(mismatch, '/password', { password: 'dave-password-1', confirm: 'dave-password-1' });
    assert.equal(same.status, 400);
    const claims = await finish(await browser.submit(same, '/password', { password: 'Violet-Harbour-Lantern-7', confirm: 'Violet-Harbour-Lantern-7' }));
    assert.ok(claims.sub);
    assert.deepEqual(await broker.store.mfa.requiredActions(dave), []);
    const next = new Browser(broker.issuer);
    const again = await start(next);
    const done = await again.finish(await next.submit(again.page, '/login', { username: 'dave', password: 'Violet-Harbour-Lantern-7' }));
    assert.equal(done.sub, claims.sub);
  });

  test('forged and stale posts to the factor routes get a clear 400, never a 500', async () => {
    const browser = new Browser(broker.issuer);
    const { page } = await start(browser);
    const uid = /\/interaction\/([^/"]+)\/login/.exec(page.html)![1];
    const csrf = /name="csrf" value="([^"]+)"/.exec(page.html)![1];
    for (const path of ['mfa/totp', 'mfa/recovery', 'mfa/passkey', 'mfa/enrol/totp', 'mfa/enrol/passkey', 'continue', 'password', 'passkey']) {
      const res = await browser.request(`${broker.issuer}/interaction/${uid}/${path}`, { form: { csrf, code: '123\u0000456', credential: '{"id":"\u0000"}' } });
      assert.ok(res.status >= 400 && res.status < 500, `${path}: ${res.status}`);
    }
    const options = await browser.request(`${broker.issuer}/interaction/${uid}/mfa/passkey/options`);
    assert.equal(options.status, 400);
  });

  test('a user disabled between the password and the second factor is not signed in', async () => {
    const browser = new Browser(broker.issuer);
    const { page } = await start(browser);
    const challenge = await password(browser, page, 'alice');
    const alice = await userId('alice');
    await broker.store.users.update(alice, { enabled: false });
    try {
      const refused = await browser.submit(challenge, '/mfa/totp', { code: freshCode(secrets.get('alice')!) });
      assert.equal(refused.status, 401);
      assert.match(refused.html, /disabled/);
    } finally {
      await broker.store.users.update(alice, { enabled: true });
    }
  });
});

describe('login pipeline: remember this device, max_age, kb_action=configure_mfa', () => {
  let broker: TestBroker;
  let rp: oidc.Configuration;
  /** Each user's TOTP secret, and the time steps its codes were used for. */
  const secrets = new Map<string, string>();
  const used = new Map<string, Set<number>>();

  before(async () => {
    broker = await startTestBroker({
      config: {
        clients: [{ id: 'rp', secret: SECRET, name: 'Relying Party', redirectUris: [RP], firstParty: true }],
        users: ['gus', 'hana', 'ivy', 'jon'].map((username) => ({ username, password: `${username}-password-1` })),
        mfa: { rememberDevice: { days: 30 } },
      },
    });
    rp = await oidc.discovery(new URL(broker.issuer), 'rp', SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
    for (const username of ['gus', 'ivy', 'jon']) {
      const id = (await broker.store.users.findByUsername(username))!.id;
      const enrolment = await broker.mfa.totp.startEnrolment({ id, username });
      secrets.set(username, enrolment.secret);
      assert.equal(await broker.mfa.totp.confirmEnrolment(id, enrolment.factorId, code(username)), 'confirmed');
    }
  });

  after(async () => {
    await broker?.close();
  });

  function code(username: string): string {
    const steps = used.get(username) ?? new Set<number>();
    used.set(username, steps);
    for (const offset of [0, 1, -1]) {
      const timestamp = Date.now() + offset * 30_000;
      if (steps.has(Math.floor(timestamp / 30_000))) continue;
      steps.add(Math.floor(timestamp / 30_000));
      return new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secrets.get(username)!) }).generate({ timestamp });
    }
    throw new Error('no unused TOTP step left in the window');
  }

  async function start(browser: Browser, extra: Record<string, string> = {}) {
    const verifier = oidc.randomPKCECodeVerifier();
    const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: RP, scope: 'openid', state: 'st', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', ...extra });
    return { page: await browser.go(url.href), finish: async (last: Page) => {
      assert.equal(last.html, '', `expected the relying party, got ${last.status}: ${last.html.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').slice(0, 300)}`);
      return decodeJwt((await oidc.authorizationCodeGrant(rp, new URL(last.url), { pkceCodeVerifier: verifier, expectedState: 'st' })).id_token!);
    } };
  }

  const signOut = (browser: Browser) => browser.cookies.delete('kb_session');

  test('remember this device: the next login on this browser skips the code; another browser, or reset factors, do not', async () => {
    const browser = new Browser(broker.issuer);
    let flow = await start(browser);
    const challenge = await browser.submit(flow.page, '/login', { username: 'gus', password: 'gus-password-1' });
    assert.match(challenge.html, /Don&#39;t ask again on this device for 30 days|Don't ask again on this device for 30 days/);
    await flow.finish(await browser.submit(challenge, '/mfa/totp', { code: code('gus'), remember: 'on' }));
    assert.ok(browser.cookies.has('kb_mfa_device'));

    signOut(browser);
    flow = await start(browser);
    const remembered = await flow.finish(await browser.submit(flow.page, '/login', { username: 'gus', password: 'gus-password-1' }));
    assert.equal(remembered.acr, 'urn:keybridge:sfa', 'no second factor was used: the token says so');

    const other = new Browser(broker.issuer);
    const elsewhere = await start(other);
    assert.match((await other.submit(elsewhere.page, '/login', { username: 'gus', password: 'gus-password-1' })).html, /Two-step verification/);

    // A client asking for MFA gets the factor even on a remembered device.
    signOut(browser);
    flow = await start(browser, { acr_values: 'urn:keybridge:mfa' });
    assert.match((await browser.submit(flow.page, '/login', { username: 'gus', password: 'gus-password-1' })).html, /Two-step verification/);
  });

  test('max_age: an old session signs in again, password and code', async () => {
    const browser = new Browser(broker.issuer);
    let flow = await start(browser);
    const first = await flow.finish(await browser.submit(await browser.submit(flow.page, '/login', { username: 'ivy', password: 'ivy-password-1' }), '/mfa/totp', { code: code('ivy') }));
    await new Promise((r) => setTimeout(r, 1100));
    flow = await start(browser, { max_age: '0' });
    assert.match(flow.page.html, /name="password"/, 'the password again');
    const challenge = await browser.submit(flow.page, '/login', { username: 'ivy', password: 'ivy-password-1' });
    assert.match(challenge.html, /Two-step verification/);
    const again = await flow.finish(await browser.submit(challenge, '/mfa/totp', { code: code('ivy') }));
    assert.ok((again.auth_time as number) > (first.auth_time as number));
    assert.equal(again.acr, 'urn:keybridge:mfa');
  });

  test('kb_action=configure_mfa: a signed-in person without a factor adds one and comes back; with one, proves it first', async () => {
    const browser = new Browser(broker.issuer);
    let flow = await start(browser);
    await flow.finish(await browser.submit(flow.page, '/login', { username: 'hana', password: 'hana-password-1' }));
    flow = await start(browser, { kb_action: 'configure_mfa' });
    assert.match(flow.page.html, /Set up two-step verification/, 'no password asked: the session is enough to add a first factor');
    const hanaSecret = /id="totp-secret">([A-Z2-7 ]+)</.exec(flow.page.html)![1].replace(/\s/g, '');
    const codes = await browser.submit(flow.page, '/mfa/enrol/totp', { code: new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(hanaSecret) }).generate() });
    assert.equal(codes.status, 200, codes.html.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').slice(0, 400));
    const claims = await flow.finish(await browser.submit(codes, '/continue'));
    assert.equal(claims.acr, 'urn:keybridge:mfa');
    assert.equal((await broker.store.mfa.list(claims.sub!)).filter((f) => f.confirmed).length, 1);

    // Jon has a factor: adding another asks for it first, then shows the enrolment as "add".
    signOut(browser);
    flow = await start(browser, { kb_action: 'configure_mfa' });
    const challenge = await browser.submit(flow.page, '/login', { username: 'jon', password: 'jon-password-1' });
    assert.match(challenge.html, /Two-step verification/);
    const add = await browser.submit(challenge, '/mfa/totp', { code: code('jon') });
    assert.match(add.html, /Add a way to confirm it is you/);
  });
});
