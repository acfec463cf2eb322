// `keybridge audit tail`: the operator's view of the audit trail until the admin API exists.
// Newest N events, printed oldest first, one line each (or JSON lines); optionally following
// new ones. Field values are untrusted (usernames typed at the login form, client ids from
// requests), so anything that could steer a terminal or fake a column is escaped.
import type { Config } from '../config/schema.ts';
import type { Store } from '../storage/store.ts';
import type { AuditEvent } from '../storage/types.ts';
import type { AuditQuery } from '../storage/audit-repository.ts';
import { withStore } from './with-store.ts';

export interface AuditTailFlags {
  type?: string;
  user?: string;
  since?: string;
  limit?: string;
  json?: boolean;
  follow?: boolean;
}

const USAGE = 'usage: keybridge audit tail [--type T | --type prefix.*] [--user U] [--since 30m|1h|2d|ISO-time] [--limit N] [--json] [--follow]';
const UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
const ISO_TIME = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;
const TYPE = /^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*(?:\.\*)?$/i;
const MAX_LIMIT = 10_000;
const FOLLOW_POLL_MS = 1_000;

class FlagError extends Error {}

/** Control characters, separators and bidirectional overrides as \uXXXX (`space` too, for plain fields). */
function escape(text: string, space: boolean): string {
  const pattern = space ? /[\s\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g : /[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
  return text.replace(pattern, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function parseSince(value: string, now: number): Date {
  const relative = /^(\d{1,6})([smhdw])$/.exec(value);
  if (relative) return new Date(now - Number(relative[1]) * UNITS[relative[2]]);
  if (ISO_TIME.test(value)) {
    const at = Date.parse(value);
    if (!Number.isNaN(at)) return new Date(at);
  }
  throw new FlagError('--since must be a duration like 30m, 1h, 2d (s, m, h, d, w) or an ISO 8601 time like 2025-01-31T08:00:00Z');
}

function parseFlags(flags: AuditTailFlags): Omit<AuditQuery, 'userId' | 'afterId'> {
  const filter: Omit<AuditQuery, 'userId' | 'afterId'> = { limit: 50 };
  if (flags.type !== undefined) {
    if (flags.type.length > 100 || !TYPE.test(flags.type)) throw new FlagError('--type must be an event type (login.failure) or a prefix ending in .* (login.*)');
    filter.type = flags.type;
  }
  if (flags.limit !== undefined) {
    if (!/^\d{1,6}$/.test(flags.limit) || Number(flags.limit) < 1 || Number(flags.limit) > MAX_LIMIT) throw new FlagError(`--limit must be a whole number from 1 to ${MAX_LIMIT}`);
    filter.limit = Number(flags.limit);
  }
  if (flags.since !== undefined) filter.since = parseSince(flags.since, Date.now());
  if (flags.user !== undefined && (!flags.user || flags.user.length > 256)) throw new FlagError('--user must be a username or a user id');
  return filter;
}

async function resolveUser(store: Store, login: string): Promise<string> {
  const byName = await store.users.findByUsername(login);
  if (byName) return byName.id;
  const byId = await store.users.findById(login).catch(() => null);
  if (byId) return byId.id;
  // Events outlive their users: a deleted user's id still matches.
  process.stderr.write(`note: no user named "${escape(login, true)}"; matching it as a user id\n`);
  return login;
}

export async function runAudit(config: Config, sub: string | undefined, flags: AuditTailFlags): Promise<number> {
  if (sub !== 'tail') {
    process.stderr.write(`${sub ? `unknown audit command: ${escape(sub, true)}\n` : ''}${USAGE}\n`);
    return 2;
  }
  let filter: ReturnType<typeof parseFlags>;
  try {
    filter = parseFlags(flags);
  } catch (err) {
    if (!(err instanceof FlagError)) throw err;
    process.stderr.write(`error: ${err.message}\n${USAGE}\n`);
    return 2;
  }

  return withStore(config, async (store) => {
    const userId = flags.user !== undefined ? await resolveUser(store, flags.user) : undefined;
    const usernames = new Map<string, string | null>();
    const usernameOf = async (id: string | null): Promise<string | null> => {
      if (!id) return null;
      if (!usernames.has(id)) usernames.set(id, (await store.users.findById(id).catch(() => null))?.username ?? null);
      return usernames.get(id)!;
    };
    const print = async (events: AuditEvent[]) => {
      let out = '';
      for (const e of events) {
        const username = await usernameOf(e.userId);
        if (flags.json) {
          out += `${escape(JSON.stringify({ id: e.id, at: e.at.toISOString(), type: e.type, outcome: e.outcome, userId: e.userId, username, clientId: e.clientId, connectorId: e.connectorId, ip: e.ip, details: e.details }), false)}\n`;
          continue;
        }
        const fields = [e.at.toISOString(), escape(e.type, true), e.outcome];
        if (e.userId) fields.push(`user=${escape(username ?? e.userId, true)}`);
        if (e.clientId) fields.push(`client=${escape(e.clientId, true)}`);
        if (e.connectorId) fields.push(`connector=${escape(e.connectorId, true)}`);
        if (e.ip) fields.push(`ip=${escape(e.ip, true)}`);
        if (Object.keys(e.details).length) fields.push(escape(JSON.stringify(e.details), false));
        out += `${fields.join(' ')}\n`;
      }
      if (out) process.stdout.write(out);
    };

    // The newest id before reading the tail: following starts after whatever is older.
    const newest = (await store.audit.query({ limit: 1 })).at(-1)?.id ?? '0';
    const tail = await store.audit.query({ ...filter, userId });
    await print(tail);
    if (!flags.follow) {
      if (!tail.length && !flags.json) process.stderr.write('no audit events match\n');
      return 0;
    }

    let lastId = [newest, tail.at(-1)?.id ?? '0'].reduce((a, b) => (BigInt(a) > BigInt(b) ? a : b));
    let stop: () => void = () => {};
    let stopped = false;
    const onSignal = () => {
      stopped = true;
      stop();
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      while (!stopped) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, FOLLOW_POLL_MS);
          stop = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        if (stopped) break;
        // `since` only trims the first screen; new events are newer anyway.
        const fresh = await store.audit.query({ type: filter.type, userId, afterId: lastId, limit: 500 });
        await print(fresh);
        if (fresh.length) lastId = fresh.at(-1)!.id;
      }
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    return 0;
  });
}
