// Headers for every response, and a strict CSP for the pages Keybridge renders itself.
// Pages rendered by oidc-provider's own helpers that we did not mark (its form_post response
// uses an inline script) get no CSP from here.
import type { Context, Next } from 'koa';

/** Marks the response as a Keybridge page: strict CSP and no caching. */
export function markPage(ctx: Context): void {
  ctx.state.keybridgePage = true;
}

const PAGE_CSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'";

export function pageHeaders(ctx: Context): void {
  // No form-action: Chrome applies it to the redirects that follow a form POST, and our login
  // and consent posts end in a redirect to the client's redirect_uri.
  ctx.set('Content-Security-Policy', PAGE_CSP);
  ctx.set('Cache-Control', 'no-store');
  ctx.set('Pragma', 'no-cache');
}

export function securityHeaders() {
  return async function setSecurityHeaders(ctx: Context, next: Next) {
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.set('X-Frame-Options', 'DENY');
    ctx.set('Cross-Origin-Opener-Policy', 'same-origin');
    await next();
    if (ctx.state.keybridgePage) pageHeaders(ctx);
  };
}
