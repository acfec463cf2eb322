// A page that makes the browser POST fields to another site (SAML HTTP-POST binding): a form
// submitted by a same-origin script, so the page keeps a strict CSP without inline script.
import type { Context } from 'koa';
import type { PageRenderer } from './page-renderer.ts';
import { addCspSources } from './security-headers.ts';
import { sendPage } from './send-page.ts';

export function sendFormPost(ctx: Context, renderer: PageRenderer, post: { action: string; fields: Record<string, string>; destination: string }): void {
  addCspSources(ctx, 'script-src', "'self'");
  sendPage(ctx, renderer, 'form-post', {
    action: post.action,
    destination: post.destination,
    fields: Object.entries(post.fields).map(([name, value]) => ({ name, value })),
  });
}
