// A page that makes the browser POST fields to another site (SAML HTTP-POST binding): a form
// submitted by a same-origin script, so the page keeps a strict CSP without inline script.
import type { Context } from 'koa';
import type { PageRenderer } from './page-renderer.ts';
import { addCspSources } from './security-headers.ts';
import { sendPage } from './send-page.ts';
import type { PageText } from '../i18n/page-text.ts';

export function sendFormPost(ctx: Context, renderer: PageRenderer, post: { action: string; fields: Record<string, string>; heading: PageText }): void {
  addCspSources(ctx, 'script-src', "'self'");
  sendPage(ctx, renderer, 'form-post', {
    action: post.action,
    heading: post.heading,
    fields: Object.entries(post.fields).map(([name, value]) => ({ name, value })),
  });
}

/** Sends the browser on: a redirect, or a self-submitting POST of `form` to `location`. */
export function sendOnward(ctx: Context, renderer: PageRenderer, onward: { location: string; form?: Record<string, string> }, heading: PageText): void {
  if (onward.form) return sendFormPost(ctx, renderer, { action: onward.location, fields: onward.form, heading });
  ctx.status = 303;
  ctx.redirect(onward.location);
}
