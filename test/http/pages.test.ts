import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { PageRenderer } from '../../src/http/page-renderer.ts';
import { staticAssets } from '../../src/http/static-assets.ts';
import { securityHeaders } from '../../src/http/security-headers.ts';
import { sendPage } from '../../src/http/send-page.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const client = { id: 'app', name: '<script>alert(1)</script>' };

describe('pages', () => {
  const renderer = new PageRenderer({ title: 'Acme ID' });

  test('every template renders with a representative context', () => {
    const pages: Record<string, Record<string, unknown>> = {
      login: { uid: 'u1', client, passwordConnectors: [{ id: 'local', name: 'Local', usernameLabel: 'Username or email' }], redirectConnectors: [{ id: 'gh', name: 'GitHub' }], selectedConnector: 'local', csrfToken: 'tok', loginAction: '/interaction/u1/login', connectorAction: '/interaction/u1/connector', cancelAction: '/interaction/u1/abort', error: 'Invalid username or password.' },
      consent: { uid: 'u1', client, user: { username: 'alice', name: 'Alice' }, scopes: [{ name: 'email', description: 'Your email address' }], claims: ['groups'], resources: [{ id: 'https://api.example', scopes: ['read'] }], csrfToken: 'tok', confirmAction: '/c', abortAction: '/a' },
      logout: { formHtml: '<form id="op.logoutForm" method="post" action="/session/end/confirm"></form>', clientName: 'App' },
      'logout-success': { clientName: 'App' },
      error: { title: 'Oops', message: 'Bad request', code: 'invalid_request', requestId: 'r-1' },
      'device-input': { formHtml: '<form id="op.deviceInputForm"></form>', error: 'The code you entered is incorrect.' },
      'device-confirm': { formHtml: '<form id="op.deviceConfirmForm"></form>', client, userCode: 'ABCD-EFGH', deviceInfo: { ip: '127.0.0.1', userAgent: 'curl' } },
      'device-success': { clientName: 'App' },
    };
    for (const [name, context] of Object.entries(pages)) {
      const html = renderer.render(name, context);
      assert.match(html, /<!doctype html>/i, name);
      assert.match(html, /Acme ID/, `${name} shows the brand`);
      assert.doesNotMatch(html, /<script>alert/, `${name} escapes client data`);
      assert.doesNotMatch(html, /style=|<script/i, `${name} has no inline script or style (CSP)`);
    }
    const login = renderer.render('login', pages.login);
    assert.match(login, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
    assert.match(login, /name="csrf" value="tok"/);
    assert.match(login, /Continue with GitHub/);
    assert.match(login, /role="alert">Invalid username or password/);
    assert.match(renderer.render('consent', pages.consent), /name="csrf" value="tok"/);
    assert.match(renderer.render('logout', pages.logout), /<form id="op.logoutForm"/, 'trusted provider form is not escaped');
  });

  test('a theme overrides single templates and falls back for the rest', () => {
    const theme = mkdtempSync(path.join(ROOT, 'test/.work-theme-'));
    try {
      mkdirSync(path.join(theme, 'templates'));
      writeFileSync(path.join(theme, 'templates', 'logout-success.njk'), 'THEMED {{ clientName }}');
      const themed = new PageRenderer({ title: 'T', themeDir: theme });
      assert.equal(themed.render('logout-success', { clientName: 'X' }), 'THEMED X');
      assert.match(themed.render('error', { title: 'E', message: 'm' }), /<h1>E<\/h1>/);
    } finally {
      rmSync(theme, { recursive: true, force: true });
    }
  });

  describe('over HTTP', () => {
    let server: http.Server;
    let base: string;
    before(async () => {
      const app = new Koa();
      app.use(securityHeaders());
      app.use(staticAssets());
      app.use((ctx) => {
        if (ctx.path === '/page') return sendPage(ctx, renderer, 'error', { title: 'T', message: 'm' });
        ctx.type = 'html';
        ctx.body = '<p>not ours</p>';
      });
      server = http.createServer(app.callback());
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    after(() => server.close());

    test('serves the stylesheet', async () => {
      const res = await fetch(`${base}/assets/keybridge.css`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /text\/css/);
      assert.match(await res.text(), /\.card/);
    });

    test('refuses traversal and unknown files', async () => {
      // Raw requests: fetch would normalise the dot segments before they reach the server.
      const raw = (p: string) => new Promise<{ status: number; body: string }>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: new URL(base).port, path: p }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        }).on('error', reject);
      });
      for (const p of ['/assets/../package.json', '/assets/%2e%2e/package.json', '/assets/..%2fpackage.json', '/assets/%2e%2e%2fpackage.json', '/assets/nope.css', '/assets/keybridge.json']) {
        const res = await raw(p);
        assert.equal(res.status, 404, p);
        assert.doesNotMatch(res.body, /"name": "keybridge"/, p);
      }
    });

    test('our pages get the strict CSP; other HTML does not', async () => {
      const page = await fetch(`${base}/page`);
      assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'.*frame-ancestors 'none'/);
      assert.equal(page.headers.get('cache-control'), 'no-store');
      assert.equal(page.headers.get('x-frame-options'), 'DENY');
      const other = await fetch(`${base}/other`);
      assert.equal(other.headers.get('content-security-policy'), null);
      assert.equal(other.headers.get('x-content-type-options'), 'nosniff');
    });
  });
});
