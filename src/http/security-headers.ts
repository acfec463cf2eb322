// Headers for every response, and a strict CSP for the pages Keybridge renders itself.
// Pages rendered by oidc-provider's own helpers that we did not mark (its form_post response
// uses an inline script) get no CSP from here.
import type { Context, Next } from 'koa';

/** Extra CSP sources per directive, e.g. `{ 'img-src': ['https://app.example'] }`. */
export type CspExtras = Record<string, string[]>;

declare module 'koa' {
  interface DefaultState {
    /** Set by markPage: this response is a page Keybridge rendered. */
    keybridgePage?: boolean;
    /** Sources added to the page CSP, by directive. */
    keybridgeCsp?: CspExtras;
  }
}

// No form-action by default: Chrome applies it to the redirects that follow a form POST, and
// our login and consent posts end in a redirect to the client's redirect_uri.
const BASE_CSP: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['default-src', ["'none'"]],
  ['style-src', ["'self'"]],
  ['img-src', ["'self'", 'data:']],
  ['frame-ancestors', ["'none'"]],
  ['base-uri', ["'none'"]],
];

// A source must not be able to end its directive or start a new one.
const SOURCE = /^[^\s;,]+$/;
const DIRECTIVE = /^[a-z-]+$/;

/** Marks the response as a Keybridge page: strict CSP and no caching. */
export function markPage(ctx: Context): void {
  ctx.state.keybridgePage = true;
}

/** Adds sources to one directive of this page's CSP (a new directive is appended). */
export function addCspSources(ctx: Context, directive: string, ...sources: string[]): void {
  if (!DIRECTIVE.test(directive)) throw new TypeError(`invalid CSP directive: ${directive}`);
  const bad = sources.find((s) => !SOURCE.test(s));
  if (bad !== undefined) throw new TypeError(`invalid CSP source: ${JSON.stringify(bad)}`);
  const extras: CspExtras = (ctx.state.keybridgeCsp ??= {});
  extras[directive] = [...(extras[directive] ?? []), ...sources];
}

/** The page CSP with the given extra sources merged in; invalid extras are dropped. */
export function pageCsp(extras: CspExtras = {}): string {
  const directives = new Map<string, string[]>(BASE_CSP.map(([name, sources]) => [name, [...sources]]));
  for (const [name, sources] of Object.entries(extras)) {
    if (!DIRECTIVE.test(name) || !Array.isArray(sources)) continue;
    const list = directives.get(name) ?? [];
    // 'none' must stand alone once a real source is added.
    const added = sources.filter((s) => typeof s === 'string' && SOURCE.test(s));
    if (added.length === 0) continue;
    directives.set(name, [...new Set([...list.filter((s) => s !== "'none'"), ...added])]);
  }
  return [...directives].map(([name, sources]) => `${name} ${sources.join(' ')}`).join('; ');
}

/** Sets the headers of a Keybridge page (CSP from ctx.state.keybridgeCsp, no caching). */
export function pageHeaders(ctx: Context): void {
  ctx.set('Content-Security-Policy', pageCsp(ctx.state.keybridgeCsp));
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
    // Re-applied here so extras added after sendPage still land; only if the body is still HTML.
    if (ctx.state.keybridgePage && ctx.response.is('html')) pageHeaders(ctx);
  };
}
