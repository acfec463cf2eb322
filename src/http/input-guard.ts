// The edge check every request passes before oidc-provider and our routes see it: text that
// PostgreSQL cannot store (a NUL byte) or that is not UTF-8 is refused as 400, and a body over
// the size its endpoint can need as 413. Without it such input reached a query and failed
// there as a 500 with a stack trace, which anyone could trigger without signing in.
//
// Form and JSON bodies are buffered here (within the limit), checked, and handed on unchanged:
// the request replays the buffered bytes to whichever parser reads it next (oidc-provider's
// body parser or our readForm).
import type { IncomingMessage } from 'node:http';
import querystring from 'node:querystring';
import type { Context, Next } from 'koa';
import { KeybridgeError } from '../errors.ts';
import { API_PREFIX } from '../admin-api/openapi-document.ts';
import { text, type PageText } from '../i18n/page-text.ts';

/** oidc-provider's own body parser refuses more than 56 KiB; ours answers 413 at the same size. */
export const PROVIDER_BODY_LIMIT = 56 * 1024;
/** Upstream callbacks and SAML endpoints receive signed (and encrypted) XML documents. */
export const UPSTREAM_BODY_LIMIT = 512 * 1024;
/** Any other route (admin and provisioning APIs) applies its own, tighter limit where it parses. */
export const OTHER_BODY_LIMIT = 1024 * 1024;

/** The admin API's own paths; any dot segment or encoded dot or slash keeps the full check here. */
const isAdminApiPath = (p: string) => p.startsWith(`${API_PREFIX}/`) && !/(^|\/)\.\.?(\/|$)|%2e|%2f|%5c|\\/i.test(p);
const UPSTREAM_PATHS = /^\/(callback|saml)\//;
// oidc-provider's endpoints and the login pages (whose forms readForm caps at 16 KiB anyway).
const PROVIDER_PATHS = /^\/(auth|token|me|device|request|reg|session|backchannel|challenge|credential|interaction)(\/|$)/;
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const utf8 = new TextDecoder('utf-8', { fatal: true });
// Node's percent-decoder to bytes (untyped in @types/node): each %XX becomes its byte, and
// every other character its low byte, so raw bytes arrive as they were sent.
const unescapeBuffer = (querystring as unknown as { unescapeBuffer(s: string): Buffer }).unescapeBuffer;

/** Input refused at the edge: `invalid_request`, shown as is (it names no value). */
export class RejectedInput extends KeybridgeError {
  constructor(message: string, status = 400, pageText?: PageText) {
    super('invalid_request', message, { status, expose: true, text: pageText });
  }
}

type TextProblem = 'nul' | 'utf8';
const PROBLEM_WORDS: Record<TextProblem, string> = { nul: 'must not contain NUL characters', utf8: 'must be valid UTF-8' };
/** The part of the request at fault, and its catalog key (`errors.input.part.<key>`). */
const PARTS = { address: 'address', 'query string': 'query', form: 'form', 'request body': 'body', 'client credentials': 'credentials' } as const;
type Part = keyof typeof PARTS;

function rejected(what: Part, problem: TextProblem): RejectedInput {
  return new RejectedInput(`The ${what} ${PROBLEM_WORDS[problem]}.`, 400, text(`errors.input.${problem}`, { what: text(`errors.input.part.${PARTS[what]}`) }));
}

function bodyLimit(path: string): number {
  if (PROVIDER_PATHS.test(path)) return PROVIDER_BODY_LIMIT;
  return UPSTREAM_PATHS.test(path) ? UPSTREAM_BODY_LIMIT : OTHER_BODY_LIMIT;
}

/** Why these bytes are not acceptable text, or null when they are. */
function textProblem(bytes: Uint8Array): TextProblem | null {
  if (bytes.includes(0)) return 'nul';
  try {
    utf8.decode(bytes);
  } catch {
    return 'utf8';
  }
  return null;
}

/**
 * Text that needs no decoding to be known good: ASCII without NUL and without `%` (which is all
 * a percent-decoder would change). Almost every request's path, query, form and credentials are
 * such text; only the rest is decoded and checked byte by byte.
 */
const PLAIN_ASCII = /^[\x01-\x24\x26-\x7f]*$/;

/** Checks URL-encoded text (a path, a query string, a form body) after percent-decoding. */
function checkEncoded(raw: string, what: Part): void {
  if (!raw || PLAIN_ASCII.test(raw)) return;
  const problem = textProblem(unescapeBuffer(raw));
  if (problem) throw rejected(what, problem);
}

/** Raw bytes always; a NUL written as a JSON escape too, unless `escapes` is false (see below). */
function checkJson(body: Buffer, escapes: boolean): void {
  const problem = textProblem(body);
  if (problem) throw rejected('request body', problem);
  if (!escapes) return;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return; // malformed JSON is the parser's to refuse
  }
  const stack: unknown[] = [parsed];
  while (stack.length) {
    const v = stack.pop();
    if (typeof v === 'string' && v.includes('\0')) throw rejected('request body', 'nul');
    if (v && typeof v === 'object') {
      for (const [k, item] of Object.entries(v)) {
        if (k.includes('\0')) throw rejected('request body', 'nul');
        stack.push(item);
      }
    }
  }
}

/** Client credentials in HTTP Basic are form-encoded (RFC 6749 2.3.1) and reach a lookup. */
function checkBasicAuth(header: string): void {
  const m = /^basic\s+(\S+)\s*$/i.exec(header);
  if (!m) return;
  const decoded = Buffer.from(m[1], 'base64');
  const latin1 = decoded.toString('latin1');
  if (PLAIN_ASCII.test(latin1)) return;
  const problem = textProblem(decoded) ?? textProblem(unescapeBuffer(latin1));
  if (problem) throw rejected('client credentials', problem);
}

/** 413, and the connection is not reused: the rest of the body is never read. */
function tooLarge(ctx: Context): RejectedInput {
  ctx.set('Connection', 'close');
  return new RejectedInput('The request body is too large.', 413, text('errors.input.too_large'));
}

async function readBody(ctx: Context, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  // Not destroyed when reading stops early: the 413 must still reach the client.
  for await (const chunk of ctx.req.iterator({ destroyOnReturn: false })) {
    size += (chunk as Buffer).length;
    if (size > limit) throw tooLarge(ctx);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, size);
}

/** Makes the request readable again, yielding the bytes already read from it. */
function replayBody(req: IncomingMessage, body: Buffer): void {
  async function* replay() {
    if (body.length) yield body;
  }
  Object.defineProperty(req, 'readable', { value: true, configurable: true, writable: true });
  Object.defineProperty(req, 'iterator', { value: replay, configurable: true, writable: true });
  Object.defineProperty(req, Symbol.asyncIterator, { value: replay, configurable: true, writable: true });
}

export function inputGuard() {
  return async function guardInput(ctx: Context, next: Next) {
    checkEncoded(ctx.path, 'address');
    checkEncoded(ctx.querystring, 'query string');
    const authorization = ctx.get('authorization');
    if (authorization) checkBasicAuth(authorization);

    if (BODY_METHODS.has(ctx.method)) {
      const limit = bodyLimit(ctx.path);
      if ((ctx.request.length ?? 0) > limit) throw tooLarge(ctx);
      const kind = ctx.is('urlencoded', 'json', '+json');
      if (kind && ctx.req.readable) {
        const body = await readBody(ctx, limit);
        if (kind === 'urlencoded') checkEncoded(body.toString('latin1'), 'form');
        // The admin API checks JSON escapes itself as it parses (checkText in admin-api.ts) and
        // answers with the field that holds the NUL (body.config.clientId), which the console
        // shows at that field; raw NUL bytes and bad UTF-8 are still refused here.
        else checkJson(body, !isAdminApiPath(ctx.path));
        replayBody(ctx.req, body);
      }
    }
    await next();
  };
}
