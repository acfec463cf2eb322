import type { Context } from 'koa';
import type { PageRenderer } from './page-renderer.ts';
import { addCspSources, markPage, pageHeaders } from './security-headers.ts';

/** Renders a template as the HTML response, with the page security headers. */
export function sendPage(ctx: Context, renderer: PageRenderer, name: string, context: Record<string, unknown>, status = 200): void {
  const body = renderer.render(name, context);
  // A client's logo lives on the client's own origin; img-src 'self' would block it.
  const logoOrigin = httpOrigin((context.client as { logoUri?: unknown } | undefined)?.logoUri);
  if (logoOrigin) addCspSources(ctx, 'img-src', logoOrigin);
  ctx.status = status;
  ctx.type = 'html';
  ctx.body = body;
  markPage(ctx);
  // Pages rendered from inside oidc-provider's own handlers do not pass back through our
  // middleware after next(), so the headers are also set right here.
  pageHeaders(ctx);
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
