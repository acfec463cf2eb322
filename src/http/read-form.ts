// Reads an application/x-www-form-urlencoded body with a size limit. Our forms are small;
// anything else is refused before it is buffered.
import type { Context } from 'koa';
import { InvalidInput } from '../errors.ts';

const DEFAULT_LIMIT = 16 * 1024;
const TOO_LARGE = { key: 'errors.form_too_large' };

/** `limit` in bytes: our own forms are tiny; upstream callbacks (SAML responses) are larger. */
export async function readForm(ctx: Context, limit = DEFAULT_LIMIT): Promise<Record<string, string>> {
  if (!ctx.is('application/x-www-form-urlencoded')) {
    throw new InvalidInput('Expected a form submission (application/x-www-form-urlencoded).', { status: 415, text: { key: 'errors.form_expected' } });
  }
  const declared = Number(ctx.get('content-length') || 0);
  if (declared > limit) throw new InvalidInput('The form is too large.', { status: 413, text: TOO_LARGE });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new InvalidInput('The form is too large.', { status: 413, text: TOO_LARGE });
    chunks.push(chunk as Buffer);
  }
  const form: Record<string, string> = {};
  for (const [key, value] of new URLSearchParams(Buffer.concat(chunks).toString('utf8'))) {
    // First value wins: a repeated field must not override what the page sent.
    if (!(key in form)) form[key] = value;
  }
  return form;
}
