import type { Context } from 'koa';
import type { PageRenderer } from './page-renderer.ts';
import { addCspSources, markPage, pageHeaders } from './security-headers.ts';

declare module 'koa' {
  interface DefaultState {
    /** The `ui_locales` of the login this request belongs to, when known. */
    uiLocales?: string;
    /** The language this request's pages are in, once negotiated. */
    locale?: string;
  }
}

/** Renders a template as the HTML response, with the page security headers. */
export function sendPage(ctx: Context, renderer: PageRenderer, name: string, context: Record<string, unknown>, status = 200): void {
  const locale = pageLocale(ctx, renderer);
  const body = renderer.render(name, { ...context, lang: locale, t: renderer.catalogs.translator(locale) });
  // A client's logo lives on the client's own origin; img-src 'self' would block it.
  const logoOrigin = httpOrigin((context.client as { logoUri?: unknown } | undefined)?.logoUri);
  if (logoOrigin) addCspSources(ctx, 'img-src', logoOrigin);
  ctx.status = status;
  ctx.type = 'html';
  ctx.body = body;
  ctx.set('Content-Language', locale);
  ctx.vary('Accept-Language');
  markPage(ctx);
  // Pages rendered from inside oidc-provider's own handlers do not pass back through our
  // middleware after next(), so the headers are also set right here.
  pageHeaders(ctx);
}

/**
 * The language of the pages answering this request: the login's `ui_locales` (put in
 * ctx.state.uiLocales by whoever loaded the interaction), then Accept-Language, then English.
 */
export function pageLocale(ctx: Context, renderer: PageRenderer): string {
  return (ctx.state.locale ??= renderer.catalogs.negotiate({ uiLocales: ctx.state.uiLocales, acceptLanguage: ctx.get('accept-language') }));
}

function httpOrigin(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.origin : undefined;
  } catch {
    return undefined;
  }
}
