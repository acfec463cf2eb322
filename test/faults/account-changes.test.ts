// An account disabled or deleted while a browser is signed in with it, or between a login's
// password and its resume. oidc-provider finds no account for the session then, and used to go
// on to its consent checks without one and fail there: every authorization request of that
// browser answered with an error page, and an error with a stack in the log. Now the login
// prompt is asked: the person sees the login form.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startFaultBroker, assertNoErrorLogs, RP, type FaultBroker } from './fault-broker.ts';
import { Browser, findForm } from '../helpers/browser.ts';
import { signIn } from '../helpers/login-flow.ts';
import { hashPassword } from '../../src/accounts/passwords.ts';

const CLIENT = { id: 'rp', secret: 'rp-secret-0123456789abcdef' };
const PASSWORD = 'changing-password-1';

describe('an account that changes under a signed-in browser', () => {
  let broker: FaultBroker;

  before(async () => {
    broker = await startFaultBroker({ config: { clients: [{ ...CLIENT, redirectUris: [RP], firstParty: true }] } });
  });
  after(() => broker?.close());

  const authorizeUrl = (extra: Record<string, string> = {}) => `${broker.issuer}/auth?${new URLSearchParams({ client_id: CLIENT.id, response_type: 'code', redirect_uri: RP, scope: 'openid', state: 'st', ...extra })}`;
  const account = async (username: string) => {
    const user = await broker.store.users.create({ username });
    await broker.store.credentials.setPassword(user.id, await hashPassword(PASSWORD));
    return user;
  };

  test('disabled, or deleted, since the browser signed in: its next authorization request shows the login form, prompt=none answers login_required, and nothing goes to the error log', async () => {
    for (const change of ['disabled', 'deleted'] as const) {
      const user = await account(`signed-in-${change}`);
      const browser = new Browser(broker.issuer);
      const first = new URL(await signIn(browser, authorizeUrl(), { username: user.username, password: PASSWORD }));
      assert.ok(first.searchParams.get('code'), 'signed in');
      // Single sign-on works while the account does.
      assert.ok(new URL((await browser.go(authorizeUrl())).url).searchParams.get('code'), 'a code without a login page');
      if (change === 'disabled') await broker.store.users.update(user.id, { enabled: false });
      else await broker.store.users.delete(user.id);
      const from = broker.logs.length;
      const page = await browser.go(authorizeUrl());
      assert.equal(page.status, 200, `${change}: ${page.status} at ${page.url}: ${page.html.slice(0, 300)}`);
      assert.match(page.html, /name="password"/, `${change}: the login form`);
      const silent = await browser.go(authorizeUrl({ prompt: 'none' }));
      assert.equal(new URL(silent.url).searchParams.get('error'), 'login_required', `${change}: ${silent.url}`);
      assertNoErrorLogs(broker.logs, from);
      if (change === 'disabled') {
        // Enabled again: the browser's session holds again, a code without a login page.
        await broker.store.users.update(user.id, { enabled: true });
        assert.ok(new URL((await browser.go(authorizeUrl())).url).searchParams.get('code'), 'single sign-on again');
      }
    }
  });

  test('disabled, or deleted, between the password and the resume: the login form again, no code, nothing in the error log', async () => {
    for (const change of ['disabled', 'deleted'] as const) {
      const user = await account(`resuming-${change}`);
      const browser = new Browser(broker.issuer);
      const page = await browser.go(authorizeUrl());
      const form = findForm(page.html, '/login');
      assert.ok(form, 'a login form');
      const posted = await browser.request(new URL(form.action, page.url).href, { form: { ...form.hidden, username: user.username, password: PASSWORD } });
      const resume = new URL(posted.headers.get('location') ?? '', broker.issuer).href;
      assert.match(new URL(resume).pathname, /^\/auth\/[^/]+$/, `the login redirects to its resume: ${posted.status}`);
      if (change === 'disabled') await broker.store.users.update(user.id, { enabled: false });
      else await broker.store.users.delete(user.id);
      const from = broker.logs.length;
      const after = await browser.go(resume);
      assert.equal(after.status, 200, `${change}: ${after.status} at ${after.url}: ${after.html.slice(0, 300)}`);
      assert.match(after.html, /name="password"/, `${change}: the login form`);
      assert.equal(new URL(after.url).searchParams.get('code'), null);
      assertNoErrorLogs(broker.logs, from);
      // The account cannot sign in on it.
      const refused = await browser.submit(after, '/login', { username: user.username, password: PASSWORD });
      assert.equal(refused.status, 401, `${change}: refused`);
    }
  });
});
