// What the server side of the account console serves: the shell in the person's language with
// a strict CSP and its messages as a JSON data block, its own modules and the vendored
// libraries, and nothing else (no traversal, no other methods, no API answers from here).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';

function rawRequest(origin: string, target: string, method = 'GET'): Promise<number> {
  const { hostname, port } = new URL(origin);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, path: target, method }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('account console shell', () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startTestBroker({ config: { ui: { title: 'Acme <Login>' } } });
  });
  after(async () => broker?.close());

  test('the shell: language from ui_locales then Accept-Language, lang attribute, messages as data, strict CSP, no caching', async () => {
    const en = await fetch(`${broker.issuer}/account/profile`);
    assert.equal(en.status, 200);
    const html = await en.text();
    assert.match(html, /<html lang="en">/);
    assert.match(html, /<title>Your account · Acme &#60;Login&#62;<\/title>/);
    const csp = en.headers.get('content-security-policy')!;
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.equal(en.headers.get('cache-control'), 'no-store');
    assert.equal(en.headers.get('content-language'), 'en');
    const data = JSON.parse(/<script type="application\/json" id="keybridge-messages">([^<]*)<\/script>/.exec(html)![1]!);
    assert.equal(data.locale, 'en');
    assert.equal(data.messages['account.nav.profile'], 'Profile');
    assert.ok(Object.keys(data.messages).every((k: string) => k.startsWith('account.') || k.startsWith('password.problem.')));
    assert.doesNotMatch(html, /<script>(?!<)/, 'no inline script');

    const de = await (await fetch(`${broker.issuer}/account/`, { headers: { 'accept-language': 'fr;q=0.9, de;q=0.8' } })).text();
    assert.match(de, /<html lang="de">/);
    assert.match(de, /"account.nav.profile":"Profil"/);
    const uiLocales = await (await fetch(`${broker.issuer}/account/?ui_locales=de`, { headers: { 'accept-language': 'en' } })).text();
    assert.match(uiLocales, /<html lang="de">/);
    const junk = await fetch(`${broker.issuer}/account/?ui_locales=${encodeURIComponent('"><script>x</script>')}`, { headers: { 'accept-language': '<script>' } });
    assert.match(await junk.text(), /<html lang="en">/);
  });

  test('modules and vendored libraries are served; anything else under /account is a 404, other methods 405', async () => {
    for (const p of ['/account/assets/app.js', '/account/assets/page-sign-in.js', '/account/assets/vendor/preact.js', '/account/assets/vendor/preact-hooks.js', '/account/assets/vendor/htm.js']) {
      const res = await fetch(`${broker.issuer}${p}`);
      assert.equal(res.status, 200, p);
      assert.match(res.headers.get('content-type')!, /^text\/javascript/);
    }
    assert.doesNotMatch(await (await fetch(`${broker.issuer}/account/assets/vendor/preact-hooks.js`)).text(), /from\s*"preact"/);
    for (const p of ['/account/assets/nope.js', '/account/assets/../src/server/start-broker.ts', '/account/assets/%2e%2e/package.json', '/account/assets/vendor/uplot.js', '/account/assets/index.html', '/account/admin', '/account/profile/x', '/account/.env']) {
      assert.equal(await rawRequest(broker.issuer, p), 404, p);
    }
    assert.equal(await rawRequest(broker.issuer, '/account/profile', 'POST'), 405);
    assert.equal(await rawRequest(broker.issuer, '/account/profile', 'HEAD'), 200);
    assert.equal(await rawRequest(broker.issuer, '/account/api'), 401, 'the API answers there, not the shell');
  });
});
