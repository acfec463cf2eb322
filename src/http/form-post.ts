// A page that makes the browser POST fields to another site (SAML HTTP-POST binding): a form
// submitted by a same-origin script, so the page keeps a strict CSP without inline script.
import type { Context, Next } from 'koa';
import type { PageRenderer } from './page-renderer.ts';
import { addCspSources } from './security-headers.ts';
import { sendPage } from './send-page.ts';
import { text, type PageText } from '../i18n/page-text.ts';

export function sendFormPost(ctx: Context, renderer: PageRenderer, post: { action: string; fields: Record<string, string>; heading: PageText | string; status?: number }): void {
  addCspSources(ctx, 'script-src', "'self'");
  sendPage(ctx, renderer, 'form-post', {
    action: post.action,
    heading: post.heading,
    fields: Object.entries(post.fields).map(([name, value]) => ({ name, value })),
  }, post.status);
}

// oidc-provider's own self-submitting page (response_mode=form_post, the device code hand-off,
// a sign-out without a session) is fixed English markup with an inline script. Recognized by its
// exact shape, it is answered with our form-post page instead: same action and fields, in the
// person's language, and under the strict CSP. Anything else passes untouched.
const PROVIDER_FORM_POST = /^<!DOCTYPE html>\n<html>\n<head>\n {2}<meta http-equiv="X-UA-Compatible" content="IE=edge">\n {2}<title>Submitting Callback<\/title>[\s\S]*?<form method="post" action="([^"]*)">\n([\s\S]*?)\n {4}<noscript>[\s\S]*<\/html>$/;
const HIDDEN_INPUT = /^<input type="hidden" name="([^"]*)" value="([^"]*)"\/>$/;
const ENTITIES: Record<string, string> = { '&amp;': '&', '&lt;': '<', '&gt;': '>', '&quot;': '"', '&#39;': "'" };
const unescapeHtml = (value: string) => value.replace(/&(?:amp|lt|gt|quot|#39);/g, (e) => ENTITIES[e]!);

/** The action and fields of oidc-provider's form_post page, or null when the body is not one. */
export function providerFormPost(body: unknown): { action: string; fields: Record<string, string> } | null {
  if (typeof body !== 'string' || body.length > 256 * 1024) return null;
  const page = PROVIDER_FORM_POST.exec(body);
  if (!page) return null;
  const fields: Record<string, string> = {};
  for (const line of page[2]!.split('\n').map((l) => l.trim()).filter(Boolean)) {
    const input = HIDDEN_INPUT.exec(line);
    if (!input) return null;
    fields[input[1]!] = unescapeHtml(input[2]!);
  }
  return { action: unescapeHtml(page[1]!), fields };
}

export function localizedProviderFormPost(renderer: PageRenderer) {
  return async function localizeFormPost(ctx: Context, next: Next) {
    await next();
    if (!ctx.response.is('html')) return;
    const post = providerFormPost(ctx.body);
    if (!post) return;
    const params = (ctx as Context & { oidc?: { params?: Record<string, unknown> } }).oidc?.params;
    if (typeof params?.ui_locales === 'string') ctx.state.uiLocales ??= params.ui_locales;
    sendFormPost(ctx, renderer, { ...post, heading: text('common.one_moment'), status: ctx.status });
  };
}

/** Sends the browser on: a redirect, or a self-submitting POST of `form` to `location`. */
export function sendOnward(ctx: Context, renderer: PageRenderer, onward: { location: string; form?: Record<string, string> }, heading: PageText | string): void {
  if (onward.form) return sendFormPost(ctx, renderer, { action: onward.location, fields: onward.form, heading });
  ctx.status = 303;
  ctx.redirect(onward.location);
}
