import type { Context } from 'koa';
import type { PageRenderer } from './page-renderer.ts';
import { markPage, pageHeaders } from './security-headers.ts';

/** Renders a template as the HTML response, with the page security headers. */
export function sendPage(ctx: Context, renderer: PageRenderer, name: string, context: Record<string, unknown>, status = 200): void {
  ctx.status = status;
  ctx.type = 'html';
  ctx.body = renderer.render(name, context);
  markPage(ctx);
  // Pages rendered from inside oidc-provider's own handlers do not pass back through our
  // middleware after next(), so the headers are also set right here.
  pageHeaders(ctx);
}
