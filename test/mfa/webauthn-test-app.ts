// A tiny koa app (not the broker) with three pages built on the real public/webauthn.js and a
// real WebauthnService: register a passkey, authenticate (second factor or passwordless), and
// passwordless through conditional UI. Its issuer is http://localhost:<port>: WebAuthn refuses IP
// addresses as an RP ID, and localhost is a secure context over plain http. Every POST's form
// and result is recorded so a suite can replay what the browser sent. `?uv=discouraged` plays a
// tampered page that asks the authenticator for less user verification than the server wants
// (and, with `&allow=<user id>`, names that user's credentials in a passwordless request).
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import Koa from 'koa';
import { readForm } from '../../src/http/read-form.ts';
import { addCspSources, markPage, securityHeaders } from '../../src/http/security-headers.ts';
import { staticAssets } from '../../src/http/static-assets.ts';
import { artifactChallengeStore } from '../../src/mfa/challenge-store.ts';
import { WebauthnService, type UserVerificationPolicy } from '../../src/mfa/webauthn.ts';
import { createOidcAdapter } from '../../src/storage/oidc-adapter.ts';
import type { Database } from '../../src/storage/database.ts';
import { Store } from '../../src/storage/store.ts';
import { freePort } from '../helpers/free-port.ts';

export interface Posted {
  path: string;
  form: Record<string, string>;
  result: Record<string, unknown>;
}

export interface WebauthnTestApp {
  origin: string;
  store: Store;
  service: WebauthnService;
  posts: Posted[];
  close(): Promise<void>;
}

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title>
<script type="module" src="/assets/webauthn.js"></script></head><body>${body}</body></html>`;
}

function ceremonyForm(kind: string, action: string, options: unknown, fields: Record<string, string>): string {
  const hidden = Object.entries(fields).map(([k, v]) => `<input type="hidden" name="${escape(k)}" value="${escape(v)}">`).join('');
  return `<form method="post" action="${action}" data-webauthn="${kind}" data-webauthn-options="${escape(JSON.stringify(options))}">
${hidden}<input type="hidden" name="credential" value="">
<p data-webauthn-error hidden></p>
<button type="submit" data-webauthn-only>Go</button></form>`;
}

export async function startWebauthnTestApp(database: Database, options: { userVerification?: UserVerificationPolicy } = {}): Promise<WebauthnTestApp> {
  const port = await freePort();
  const origin = `http://localhost:${port}`;
  const store = new Store(database.knex);
  const Adapter = createOidcAdapter(database.artifacts);
  const service = new WebauthnService({ store, issuer: origin, rpName: 'Keybridge test', userVerification: options.userVerification, challenges: artifactChallengeStore(new Adapter('WebauthnChallenge')) });
  const posts: Posted[] = [];
  const key = () => randomBytes(16).toString('base64url');

  const app = new Koa();
  app.use(securityHeaders());
  app.use(staticAssets());
  app.use(async (ctx, next) => {
    if (ctx.method !== 'GET') return next();
    markPage(ctx);
    addCspSources(ctx, 'script-src', "'self'");
    ctx.type = 'html';
    const user = typeof ctx.query.user === 'string' ? ctx.query.user : '';
    const tampered = ctx.query.uv === 'discouraged';
    if (ctx.path === '/register') {
      const found = await store.users.findById(user);
      if (!found) return (ctx.status = 404);
      const k = key();
      const opts = await service.registrationOptions(found, k);
      ctx.body = page('Register', ceremonyForm('register', '/register', tampered ? { ...opts, authenticatorSelection: { ...opts.authenticatorSelection, userVerification: 'discouraged' } } : opts, { key: k, user, name: String(ctx.query.name ?? 'My passkey') }));
    } else if (ctx.path === '/authenticate') {
      // ?user=: second factor for that user; ?as=: passwordless options, but verified as that user.
      const k = key();
      const opts = await service.authenticationOptions(k, user || undefined);
      if (tampered && typeof ctx.query.allow === 'string') {
        opts.allowCredentials = (await store.mfa.webauthnFactors(ctx.query.allow)).map((f) => ({ id: f.credentialId, type: 'public-key' as const }));
      }
      ctx.body = page('Authenticate', ceremonyForm('authenticate', '/authenticate', tampered ? { ...opts, userVerification: 'discouraged' } : opts, { key: k, user: user || String(ctx.query.as ?? '') }));
    } else if (ctx.path === '/conditional') {
      const k = key();
      const opts = await service.authenticationOptions(k);
      ctx.body = page('Sign in', `<label>Username <input name="username" autocomplete="username webauthn"></label>${ceremonyForm('conditional', '/authenticate', opts, { key: k, user: '' })}`);
    } else if (ctx.path === '/favicon.ico') {
      ctx.status = 204;
    } else {
      return next();
    }
  });
  app.use(async (ctx) => {
    if (ctx.method !== 'POST' || (ctx.path !== '/register' && ctx.path !== '/authenticate')) return (ctx.status = 404);
    // Larger than any real answer, so the service's own limit is what a huge credential meets.
    const form = await readForm(ctx, 512 * 1024);
    const result = ctx.path === '/register'
      ? await service.verifyRegistration(form.user, form.key, form.credential, form.name)
      : await service.verifyAuthentication(form.key, form.credential, form.user || undefined);
    posts.push({ path: ctx.path, form, result });
    ctx.body = result;
  });

  const server = http.createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    origin,
    store,
    service,
    posts,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
