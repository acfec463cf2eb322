// Every URL Keybridge hands out (discovery, form actions, redirects) derives from the configured
// issuer, never from the request: a spoofed Host, X-Forwarded-Host or X-Forwarded-Proto, or an
// absolute-form request target, must not put another origin into discovery or a form. The
// client address behind trusted proxies is the one the outermost of them appended to
// X-Forwarded-For, not the leftmost entry, which the client writes itself.
import type Koa from 'koa';
import type { Context, Next } from 'koa';

export interface OriginOptions {
  issuer: string;
  trustProxy: boolean;
  /** How many trusted proxies append to X-Forwarded-For. */
  proxyHops: number;
}

/** Pins protocol, host and origin on the app's request prototype: no per-request cost. */
export function pinOrigin(app: Koa, options: OriginOptions): void {
  const issuer = new URL(options.issuer);
  const protocol = issuer.protocol.slice(0, -1);
  const origin = issuer.origin;
  const pathOf = (originalUrl: string) => {
    if (originalUrl.startsWith('/')) return originalUrl;
    // Absolute-form target ("GET http://evil.example/x"): keep only its path and query.
    try {
      const url = new URL(originalUrl);
      return `${url.pathname}${url.search}`;
    } catch {
      return '/';
    }
  };
  Object.defineProperties(app.request, {
    protocol: { get: () => protocol, configurable: true },
    secure: { get: () => protocol === 'https', configurable: true },
    host: { get: () => issuer.host, configurable: true },
    hostname: { get: () => issuer.hostname, configurable: true },
    origin: { get: () => origin, configurable: true },
    href: {
      get(this: Koa.Request) {
        return `${origin}${pathOf(this.originalUrl)}`;
      },
      configurable: true,
    },
    URL: {
      get(this: Koa.Request) {
        return new URL(`${origin}${pathOf(this.originalUrl)}`);
      },
      configurable: true,
    },
  });
  app.proxy = options.trustProxy;
  if (options.trustProxy) app.maxIpsCount = options.proxyHops;
}

/** Discovery and the JWKS may be cached by relying parties; keys roll over within minutes. */
export function metadataCaching() {
  return async function cacheMetadata(ctx: Context, next: Next) {
    await next();
    if (ctx.status !== 200 || ctx.method !== 'GET') return;
    if (ctx.path === '/.well-known/openid-configuration') ctx.set('Cache-Control', 'public, max-age=3600');
    else if (ctx.path === '/jwks') ctx.set('Cache-Control', 'public, max-age=300');
  };
}
