import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { PageRenderer } from '../../src/http/page-renderer.ts';
import { staticAssets } from '../../src/http/static-assets.ts';
import { addCspSources, securityHeaders } from '../../src/http/security-headers.ts';
import { sendPage } from '../../src/http/send-page.ts';

const EVIL = '<script>alert(1)</script>';
const client = { id: 'app', name: EVIL };

const loginContext = (over: Record<string, unknown> = {}) => ({
  uid: 'u1',
  client,
  passwordConnectors: [{ id: 'local', name: 'Local', usernameLabel: 'Username or email' }],
  redirectConnectors: [{ id: 'gh', name: 'GitHub' }, { id: 'corp-saml', name: 'Corporate SSO' }],
  selectedConnector: 'local',
  csrfToken: 'tok-123',
  loginAction: '/interaction/u1/login',
  connectorAction: '/interaction/u1/connector',
  cancelAction: '/interaction/u1/abort',
  ...over,
});

const consentContext = (over: Record<string, unknown> = {}) => ({
  uid: 'u1',
  client,
  user: { username: 'alice', name: 'Alice' },
  scopes: [{ name: 'email', description: 'Your email address' }, { name: 'custom', description: '' }],
  claims: ['groups'],
  resources: [{ id: 'https://api.example', scopes: ['read', 'write'] }],
  csrfToken: 'tok-123',
  confirmAction: '/interaction/u1/confirm',
  abortAction: '/interaction/u1/abort',
  ...over,
});

const PAGES: Record<string, Record<string, unknown>> = {
  login: loginContext({ error: 'Invalid username or password.' }),
  consent: consentContext(),
  logout: { formHtml: '<form id="op.logoutForm" method="post" action="/session/end/confirm"><input type="hidden" name="xsrf" value="x1"/></form>', clientName: 'App' },
  'logout-success': { clientName: 'App' },
  error: { title: 'Oops', message: 'Bad request', code: 'invalid_request', requestId: 'r-1' },
  'device-input': { formHtml: '<form id="op.deviceInputForm" novalidate method="post" action="/device"></form>', error: 'The code is incorrect.' },
  'device-confirm': { formHtml: '<form id="op.deviceConfirmForm" method="post" action="/device"></form>', client, userCode: 'BCDF-GHJK', deviceInfo: { ip: '203.0.113.7', userAgent: 'smart-tv/1.0' } },
  'device-success': { clientName: 'App' },
};

/** Every <form method="post">…</form> in the page. */
function postForms(html: string): string[] {
  return [...html.matchAll(/<form\b[^>]*method="post"[^>]*>[\s\S]*?<\/form>/g)].map((m) => m[0]);
}

/** The opening tag of the element whose attributes match. */
function tag(html: string, element: string, attribute: RegExp): string {
  const found = [...html.matchAll(new RegExp(`<${element}\\b[^>]*>`, 'g'))].map((m) => m[0]).find((t) => attribute.test(t));
  assert.ok(found, `no <${element}> matching ${attribute}`);
  return found;
}

describe('page templates', () => {
  const renderer = new PageRenderer({ title: 'Acme ID' });

  test('every template renders a full page with the brand and the stylesheet, and no inline script or style', () => {
    for (const [name, context] of Object.entries(PAGES)) {
      const html = renderer.render(name, context);
      assert.match(html, /^<!doctype html>\s*<html lang="en">/i, name);
      assert.match(html, /<meta name="viewport" content="width=device-width, initial-scale=1">/, name);
      assert.match(html, /<link rel="stylesheet" href="\/assets\/keybridge.css">/, name);
      assert.match(html, /<header[^>]*>[\s\S]*Acme ID[\s\S]*<\/header>/, `${name} shows the brand`);
      assert.match(html, /<h1>[^<]+/, `${name} has a heading`);
      assert.doesNotMatch(html, /style=|<style|<script|\son[a-z]+=/i, `${name} has no inline script or style (CSP)`);
    }
  });

  test('login and consent escape the client name', () => {
    for (const name of ['login', 'consent', 'device-confirm']) {
      const html = renderer.render(name, PAGES[name]);
      assert.match(html, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/, name);
      assert.ok(!html.includes(EVIL), `${name} contains the raw client name`);
    }
    assert.match(renderer.render('login', PAGES.login), /<h1>Sign in to &lt;script&gt;/);
    const prefilled = renderer.render('login', loginContext({ username: '"><b>x' }));
    assert.match(tag(prefilled, 'input', /name="username"/), /value="&quot;&gt;&lt;b&gt;x"/);
  });

  test('every form that posts on login and consent carries the csrf token', () => {
    const login = postForms(renderer.render('login', PAGES.login));
    // password form + two redirect connectors + cancel
    assert.equal(login.length, 4);
    const consent = postForms(renderer.render('consent', PAGES.consent));
    assert.equal(consent.length, 2);
    for (const form of [...login, ...consent]) {
      assert.match(form, /<input type="hidden" name="csrf" value="tok-123">/, form);
    }
  });

  test('login: password form, connector buttons, cancel and the error', () => {
    const html = renderer.render('login', PAGES.login);
    const forms = postForms(html);
    const password = forms.find((f) => f.includes('action="/interaction/u1/login"'));
    assert.ok(password, 'password form posts to loginAction');
    assert.match(tag(password, 'input', /name="username"/), /autocomplete="username"[^>]*required[^>]*autofocus/);
    assert.match(tag(password, 'input', /name="password"/), /type="password"[^>]*autocomplete="current-password"[^>]*required/);
    assert.match(tag(password, 'input', /name="connector"/), /type="hidden"[^>]*value="local"/);
    assert.doesNotMatch(password, /<select/, 'one password connector: no chooser');
    assert.match(password, /<label for="username">Username or email<\/label>/);
    assert.ok(forms.some((f) => f.includes('action="/interaction/u1/connector/gh"') && f.includes('Continue with GitHub')));
    assert.ok(forms.some((f) => f.includes('action="/interaction/u1/connector/corp-saml"') && f.includes('Continue with Corporate SSO')));
    assert.ok(forms.some((f) => f.includes('action="/interaction/u1/abort"') && /Cancel/.test(f)));
    assert.match(html, /role="alert">Invalid username or password\.</);
    assert.doesNotMatch(renderer.render('login', loginContext()), /role="alert"/, 'no alert without an error');
    assert.match(renderer.render('login', loginContext({ notice: 'Session expired' })), /class="notice"[^>]*>Session expired</);
  });

  test('login: several password connectors get a chooser with the selected one preselected', () => {
    const html = renderer.render('login', loginContext({
      passwordConnectors: [{ id: 'local', name: 'Local', usernameLabel: 'Username' }, { id: 'ldap', name: 'Corporate directory', usernameLabel: 'Windows account' }],
      selectedConnector: 'ldap',
    }));
    assert.match(html, /<select id="connector" name="connector">/);
    assert.match(html, /<option value="ldap" selected>Corporate directory<\/option>/);
    assert.match(html, /<option value="local">Local<\/option>/);
    assert.doesNotMatch(html, /type="hidden" name="connector"/);
  });

  test('login: only redirect connectors means no password form', () => {
    const html = renderer.render('login', loginContext({ passwordConnectors: [] }));
    assert.doesNotMatch(html, /name="password"/);
    assert.match(html, /Continue with GitHub/);
    assert.doesNotMatch(html, />\s*or\s*</, 'no divider without a password form');
  });

  test('client links: http(s) shown, javascript: dropped', () => {
    const good = renderer.render('login', loginContext({ client: { id: 'app', name: 'App', policyUri: 'https://app.example/privacy', logoUri: 'https://app.example/logo.png' } }));
    assert.match(good, /<a href="https:\/\/app.example\/privacy"/);
    assert.match(good, /<img class="client-logo" src="https:\/\/app.example\/logo.png"/);
    const bad = renderer.render('consent', consentContext({ client: { id: 'app', name: 'App', policyUri: 'javascript:alert(1)', tosUri: 'data:text/html,x', logoUri: 'javascript:x' } }));
    assert.doesNotMatch(bad, /javascript:|data:text/);
    assert.doesNotMatch(bad, /<img/);
    const back = renderer.render('error', { title: 'E', message: 'm', backUrl: 'javascript:alert(1)' });
    assert.doesNotMatch(back, /Go back/);
    assert.match(renderer.render('error', { title: 'E', message: 'm', backUrl: '/account' }), /<a href="\/account">Go back<\/a>/);
  });

  test('consent lists scopes, claims and resources and posts Allow and Deny to their actions', () => {
    const html = renderer.render('consent', PAGES.consent);
    assert.match(html, /<li>Your email address<\/li>/);
    assert.match(html, /<li>custom<\/li>/, 'a scope without a description shows its name');
    assert.match(html, /<code>groups<\/code>/);
    assert.match(html, /<code>https:\/\/api.example<\/code>: read, write/);
    assert.match(html, /Signed in as <strong>Alice<\/strong> \(alice\)/);
    const forms = postForms(html);
    assert.ok(forms.some((f) => f.includes('action="/interaction/u1/confirm"') && />Allow</.test(f)));
    assert.ok(forms.some((f) => f.includes('action="/interaction/u1/abort"') && />Deny</.test(f)));
  });

  test('logout embeds the provider form and targets it with both buttons', () => {
    const html = renderer.render('logout', PAGES.logout);
    assert.ok(html.includes(PAGES.logout.formHtml as string), 'trusted provider form is not escaped');
    assert.match(tag(html, 'button', /name="logout"/), /type="submit" form="op.logoutForm"[^>]*value="yes"/);
    assert.match(html, /<button type="submit" form="op.logoutForm"[^>]*>Stay signed in<\/button>/);
    assert.doesNotMatch(html, /name="csrf"/);
    assert.match(renderer.render('logout-success', {}), /<h1>You have been signed out<\/h1>/);
  });

  test('device pages target the provider forms', () => {
    const input = renderer.render('device-input', { ...PAGES['device-input'], userCode: 'AB"CD' });
    assert.ok(input.includes('<form id="op.deviceInputForm" novalidate'));
    const code = tag(input, 'input', /name="user_code"/);
    for (const attr of [/form="op.deviceInputForm"/, /autocomplete="off"/, /autofocus/, /value="AB&quot;CD"/]) assert.match(code, attr);
    assert.match(input, /<button type="submit" form="op.deviceInputForm"/);
    assert.match(input, /role="alert">The code is incorrect\.</);

    const confirm = renderer.render('device-confirm', PAGES['device-confirm']);
    assert.ok(confirm.includes('<form id="op.deviceConfirmForm"'));
    assert.match(confirm, /class="code-display">BCDF-GHJK</);
    assert.match(confirm, /203\.0\.113\.7/);
    assert.match(tag(confirm, 'button', /name="abort"/), /type="submit" form="op.deviceConfirmForm"[^>]*value="yes"/);
    assert.match(confirm, /<button type="submit" form="op.deviceConfirmForm" class="primary">Continue<\/button>/);
    assert.match(renderer.render('device-success', { clientName: 'TV' }), /Device signed in[\s\S]*close this window/);
  });

  test('the error page shows only title, message, code and reference', () => {
    const html = renderer.render('error', { ...PAGES.error, stack: 'Error: boom at secret.ts:1', detail: 'db password' });
    assert.match(html, /<h1>Oops<\/h1>/);
    assert.match(html, /role="alert">Bad request</);
    assert.match(html, /<code>invalid_request<\/code>/);
    assert.match(html, /<code>r-1<\/code>/);
    assert.doesNotMatch(html, /secret\.ts|db password/);
  });
});

describe('themes', () => {
  let theme: string;
  before(() => {
    theme = mkdtempSync(path.join(os.tmpdir(), 'keybridge-theme-'));
    mkdirSync(path.join(theme, 'templates'));
    mkdirSync(path.join(theme, 'assets'));
    writeFileSync(path.join(theme, 'templates', 'logout-success.njk'), 'THEMED {{ clientName }} {{ brand }}');
    writeFileSync(path.join(theme, 'assets', 'logo.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    writeFileSync(path.join(theme, 'assets', 'keybridge.css'), '/* themed */ body { color: red; }');
    // Outside assets/: must never be served.
    writeFileSync(path.join(theme, 'secret.css'), '/* secret */');
  });
  after(() => rmSync(theme, { recursive: true, force: true }));

  test('a theme overrides single templates and the rest fall back to the built-in ones', () => {
    const themed = new PageRenderer({ title: 'T', themeDir: theme });
    assert.equal(themed.render('logout-success', { clientName: 'X' }), 'THEMED X T');
    assert.match(themed.render('error', { title: 'E', message: 'm' }), /<h1>E<\/h1>/);
    assert.match(new PageRenderer({ title: 'T' }).render('logout-success', {}), /You have been signed out/, 'no theme: built-in');
  });

  test('a themed layout applies to every built-in page', () => {
    const layoutTheme = mkdtempSync(path.join(os.tmpdir(), 'keybridge-layout-'));
    try {
      writeFileSync(path.join(layoutTheme, 'layout.njk'), '<main id="themed">{% block content %}{% endblock %}</main>');
      const html = new PageRenderer({ title: 'T', themeDir: layoutTheme }).render('error', { title: 'E', message: 'm' });
      assert.match(html, /^<main id="themed">[\s\S]*<h1>E<\/h1>/);
    } finally {
      rmSync(layoutTheme, { recursive: true, force: true });
    }
  });

  describe('assets over HTTP', () => {
    let server: http.Server;
    let base: string;
    before(async () => {
      const app = new Koa();
      app.use(staticAssets({ themeDir: theme }));
      server = http.createServer(app.callback());
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    after(() => server.close());

    test('theme assets win over public/, and public/ fills the gaps', async () => {
      const css = await fetch(`${base}/assets/keybridge.css`);
      assert.match(await css.text(), /themed/);
      const svg = await fetch(`${base}/assets/logo.svg`);
      assert.equal(svg.status, 200);
      assert.equal(svg.headers.get('content-type'), 'image/svg+xml');
    });

    test('no way out of the assets folder to a servable file', async () => {
      const port = new URL(base).port;
      for (const p of ['/assets/../secret.css', '/assets/%2e%2e/secret.css', '/assets/..%2fsecret.css', '/assets/..%2Fsecret.css', '/assets/%2e%2e%2fsecret.css']) {
        const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
          http.get({ host: '127.0.0.1', port, path: p }, (r) => {
            let body = '';
            r.on('data', (c) => (body += c));
            r.on('end', () => resolve({ status: r.statusCode!, body }));
          }).on('error', reject);
        });
        assert.equal(res.status, 404, p);
        assert.doesNotMatch(res.body, /secret/, p);
      }
    });
  });
});

describe('over HTTP', () => {
  const renderer = new PageRenderer({ title: 'Acme ID' });
  let server: http.Server;
  let base: string;
  let port: number;

  /** Raw requests: fetch would normalise dot segments before they reach the server. */
  const raw = (p: string, method = 'GET', headers: Record<string, string> = {}) =>
    new Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }>((resolve, reject) => {
      http.request({ host: '127.0.0.1', port, path: p, method, headers }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
      }).on('error', reject).end();
    });

  before(async () => {
    const app = new Koa();
    app.use(securityHeaders());
    app.use(staticAssets());
    app.use((ctx) => {
      switch (ctx.path) {
        case '/page':
          return sendPage(ctx, renderer, 'error', { title: 'T', message: 'm' }, 400);
        case '/page-with-form-action':
          addCspSources(ctx, 'form-action', "'self'", 'https://rp.example');
          return sendPage(ctx, renderer, 'error', { title: 'T', message: 'm' });
        case '/page-extras-after':
          // Extras added after sendPage land through the middleware on the way out.
          sendPage(ctx, renderer, 'error', { title: 'T', message: 'm' });
          ctx.state.keybridgeCsp = { 'img-src': ['https://cdn.example'] };
          return;
        case '/page-with-logo':
          return sendPage(ctx, renderer, 'login', loginContext({ client: { id: 'a', name: 'A', logoUri: 'https://rp.example/img/logo.png' } }));
        case '/json':
          ctx.body = { ok: true };
          return;
        default:
          // Stands in for oidc-provider's own HTML (form_post with its inline script).
          ctx.type = 'html';
          ctx.body = `<p>not ours, ${ctx.method}</p>`;
      }
    });
    server = http.createServer(app.callback());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as AddressInfo).port;
    base = `http://127.0.0.1:${port}`;
  });
  after(() => server.close());

  test('serves the stylesheet with its type, caching and a working ETag', async () => {
    const res = await fetch(`${base}/assets/keybridge.css`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/css; charset=utf-8');
    assert.equal(res.headers.get('cache-control'), 'public, max-age=3600');
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.match(await res.text(), /\.card\s*\{/);
    const etag = res.headers.get('etag');
    assert.ok(etag, 'ETag set');
    const again = await fetch(`${base}/assets/keybridge.css`, { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304);
    assert.equal(await again.text(), '');
    const head = await raw('/assets/keybridge.css', 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assert.equal(head.headers['content-type'], 'text/css; charset=utf-8');
  });

  test('refuses traversal, odd names and unknown files', async () => {
    for (const p of [
      '/assets/../package.json',
      '/assets/%2e%2e/package.json',
      '/assets/%2e%2e%2fpackage.json',
      '/assets/..%2fpackage.json',
      '/assets/..%5cpackage.json',
      '/assets/../src/http/static-assets.ts',
      '/assets/%2E%2E/%2E%2E/etc/passwd',
      '/assets/.hidden.css',
      '/assets/sub/keybridge.css',
      '/assets/nope.css',
      '/assets/keybridge.json',
    ]) {
      const res = await raw(p);
      assert.equal(res.status, 404, p);
      assert.doesNotMatch(res.body, /"name": "keybridge"|root:|import /, p);
    }
  });

  test('requests outside /assets/ and non-GET methods pass through', async () => {
    const post = await raw('/assets/keybridge.css', 'POST');
    assert.match(post.body, /not ours, POST/);
    assert.match((await raw('/assetsx/keybridge.css')).body, /not ours, GET/);
  });

  test('every response gets the base security headers', async () => {
    for (const p of ['/page', '/other', '/json', '/assets/keybridge.css', '/assets/missing.css']) {
      const res = await raw(p);
      assert.equal(res.headers['x-content-type-options'], 'nosniff', p);
      assert.equal(res.headers['referrer-policy'], 'no-referrer', p);
      assert.equal(res.headers['x-frame-options'], 'DENY', p);
      assert.equal(res.headers['cross-origin-opener-policy'], 'same-origin', p);
    }
  });

  test('our pages get the strict CSP without form-action, and no caching', async () => {
    const page = await fetch(`${base}/page`);
    assert.equal(page.status, 400);
    assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(page.headers.get('content-security-policy'), "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'");
    assert.equal(page.headers.get('cache-control'), 'no-store');
  });

  test('callers can add CSP sources, before or after sendPage', async () => {
    const withForm = (await fetch(`${base}/page-with-form-action`)).headers.get('content-security-policy') ?? '';
    assert.match(withForm, /; form-action 'self' https:\/\/rp\.example$/);
    const after = (await fetch(`${base}/page-extras-after`)).headers.get('content-security-policy') ?? '';
    assert.match(after, /img-src 'self' data: https:\/\/cdn\.example;/);
    const logo = (await fetch(`${base}/page-with-logo`)).headers.get('content-security-policy') ?? '';
    assert.match(logo, /img-src 'self' data: https:\/\/rp\.example;/, 'the client logo origin is allowed');
    assert.throws(() => addCspSources({ state: {} } as never, 'img-src', "x; script-src 'unsafe-inline'"), /invalid CSP source/);
  });

  test('HTML and JSON we did not mark get no CSP and no no-store', async () => {
    const other = await fetch(`${base}/other`);
    assert.match(other.headers.get('content-type') ?? '', /text\/html/);
    assert.equal(other.headers.get('content-security-policy'), null);
    assert.notEqual(other.headers.get('cache-control'), 'no-store');
    const json = await fetch(`${base}/json`);
    assert.equal(json.headers.get('content-security-policy'), null);
  });
});
