// "Remember this device": a signed cookie that spares a user the second factor on this browser
// for a number of days (off unless mfa.rememberDevice.days is set). It names the user and a
// fingerprint of their confirmed factors, so removing or resetting factors forgets every device.
import { createHash } from 'node:crypto';
import type { Context } from 'koa';
import type { Store } from '../../../storage/store.ts';

const COOKIE = 'kb_mfa_device';

async function fingerprint(store: Store, userId: string): Promise<string> {
  const factors = (await store.mfa.list(userId)).filter((f) => f.confirmed).map((f) => f.id).sort();
  return createHash('sha256').update(`${userId}\n${factors.join('\n')}`).digest('base64url').slice(0, 22);
}

export async function isRemembered(ctx: Context, store: Store, userId: string): Promise<boolean> {
  const value = ctx.cookies.get(COOKIE, { signed: true });
  if (!value || value.length > 200) return false;
  const [user, expires, print] = value.split('.');
  if (user !== userId || !(Number(expires) > Date.now() / 1000)) return false;
  return print === (await fingerprint(store, userId));
}

export async function rememberDevice(ctx: Context, store: Store, userId: string, days: number, secure: boolean): Promise<void> {
  const expires = Math.floor(Date.now() / 1000) + days * 86400;
  ctx.cookies.set(COOKIE, `${userId}.${expires}.${await fingerprint(store, userId)}`, { signed: true, httpOnly: true, sameSite: 'lax', secure, path: '/interaction', maxAge: days * 86400 * 1000 });
}
