// Serves /assets/<file> from the theme's assets/ folder first, then public/. Only plain file
// names: anything else (traversal, sub-folders) is a 404.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Context, Next } from 'koa';

const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const TYPES: Record<string, string> = { '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon', '.js': 'text/javascript; charset=utf-8', '.woff2': 'font/woff2' };

export function staticAssets(options: { themeDir?: string } = {}) {
  const dirs = [...(options.themeDir ? [path.resolve(options.themeDir, 'assets')] : []), path.join(REPO_ROOT, 'public')];
  const cache = new Map<string, Buffer | null>();

  async function load(name: string): Promise<Buffer | null> {
    if (cache.has(name)) return cache.get(name)!;
    let found: Buffer | null = null;
    for (const dir of dirs) {
      try {
        found = await readFile(path.join(dir, name));
        break;
      } catch {
        // next folder
      }
    }
    cache.set(name, found);
    return found;
  }

  return async function serveAsset(ctx: Context, next: Next) {
    if (!ctx.path.startsWith('/assets/') || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) return next();
    const name = ctx.path.slice('/assets/'.length);
    const type = TYPES[path.extname(name)];
    const body = NAME.test(name) && !name.includes('..') && type ? await load(name) : null;
    if (!body) {
      ctx.status = 404;
      ctx.type = 'text/plain';
      ctx.body = 'not found';
      return;
    }
    ctx.type = type;
    ctx.set('Cache-Control', 'public, max-age=3600');
    ctx.body = body;
  };
}
