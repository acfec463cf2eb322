// Serves /assets/<file> from the theme's assets/ folder first, then public/, plus the browser
// libraries our pages' scripts import (VENDORED). Only plain file names: anything else
// (traversal, encoded dots or slashes, sub-folders) is a 404.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Context, Next } from 'koa';

const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
// ctx.path is not percent-decoded, so `%2e%2e` and `%2f` fail here too.
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const TYPES: Record<string, string> = {
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.js': 'text/javascript; charset=utf-8',
  '.woff2': 'font/woff2',
};

// @simplewebauthn/browser ships its ES module as many files; its one-file UMD bundle is served
// as an ES module instead: given a CommonJS-style `exports` it fills that, which we re-export.
const VENDORED: Record<string, { file: string; rewrite: (source: string) => string }> = {
  'simplewebauthn-browser.js': {
    file: path.join(REPO_ROOT, 'node_modules/@simplewebauthn/browser/dist/bundle/index.umd.min.js'),
    rewrite: (source) =>
      `const module = { exports: {} };\nconst exports = module.exports;\n${source}\n` +
      'export const { startRegistration, startAuthentication, browserSupportsWebAuthn, browserSupportsWebAuthnAutofill, platformAuthenticatorIsAvailable, WebAuthnAbortService, WebAuthnError } = module.exports;\n',
  },
};

export interface Asset {
  body: Buffer;
  etag: string;
}

/** A file's bytes with a strong ETag of their content. */
export const assetOf = (body: Buffer): Asset => ({ body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` });

/**
 * A file as an asset, its text rewritten first when `rewrite` is given (vendored browser modules
 * made importable); null when it cannot be read (absent, a directory, a package not installed).
 */
export async function readAsset(file: string, rewrite?: (source: string) => string): Promise<Asset | null> {
  try {
    const raw = await readFile(file);
    return assetOf(rewrite ? Buffer.from(rewrite(raw.toString('utf8'))) : raw);
  } catch {
    return null;
  }
}

/** Answers with the asset, or 304 when If-None-Match names its ETag. */
export function sendAsset(ctx: Context, asset: Asset, type: string, cacheControl: string): void {
  ctx.set('Cache-Control', cacheControl);
  ctx.set('ETag', asset.etag);
  if (ctx.get('if-none-match').split(/\s*,\s*/).includes(asset.etag)) {
    ctx.status = 304;
    return;
  }
  ctx.type = type;
  ctx.body = asset.body;
}

export function staticAssets(options: { themeDir?: string } = {}) {
  const dirs = [...(options.themeDir ? [path.resolve(options.themeDir, 'assets')] : []), path.join(REPO_ROOT, 'public')];
  // Only hits are cached: the set of real files is small, the set of names asked for is not.
  const cache = new Map<string, Asset>();

  async function load(name: string): Promise<Asset | null> {
    const cached = cache.get(name);
    if (cached) return cached;
    const vendored = Object.hasOwn(VENDORED, name) ? VENDORED[name] : undefined;
    let asset: Asset | null = null;
    if (vendored) asset = await readAsset(vendored.file, vendored.rewrite);
    // Not in this folder (or a directory): try the next one.
    else for (const dir of dirs) if ((asset = await readAsset(path.join(dir, name)))) break;
    if (asset) cache.set(name, asset);
    return asset;
  }

  return async function serveAsset(ctx: Context, next: Next) {
    if (!ctx.path.startsWith('/assets/') || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) return next();
    const name = ctx.path.slice('/assets/'.length);
    const type = TYPES[path.extname(name).toLowerCase()];
    const asset = NAME.test(name) && !name.includes('..') && type ? await load(name) : null;
    if (!asset) {
      ctx.status = 404;
      ctx.type = 'text/plain';
      ctx.body = 'not found';
      return;
    }
    sendAsset(ctx, asset, type, 'public, max-age=3600');
  };
}
