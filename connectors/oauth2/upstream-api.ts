// Authenticated GETs against a provider's REST API: one timeout per call, status codes sorted
// into "unavailable" (thrown on) and "rejected" (a result), and the three paging styles the
// presets meet (Link header, a `next` URL in the body, Discord's `after` cursor).
import { UpstreamRejected, UpstreamUnavailable, unavailable, upstreamMessage } from './upstream-errors.ts';

/** A listing longer than this many pages is treated as a loop or a misbehaving upstream. */
const MAX_PAGES = 50;

export interface UpstreamApiOptions {
  fetch: typeof fetch;
  timeoutMs: number;
  /** Sent with every call (Accept, and GitHub's required User-Agent). */
  headers?: Record<string, string>;
}

export class UpstreamApi {
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;
  readonly #headers: Record<string, string>;

  constructor(options: UpstreamApiOptions) {
    this.#fetch = options.fetch;
    this.#timeoutMs = options.timeoutMs;
    this.#headers = { accept: 'application/json', 'user-agent': 'Keybridge', ...options.headers };
  }

  /** GET `url` with the access token; the parsed JSON body and the response headers. */
  async get(url: string, accessToken: string): Promise<{ body: unknown; headers: Headers }> {
    const what = `GET ${new URL(url).pathname}`;
    let res: Response;
    let text: string;
    try {
      res = await this.#fetch(url, {
        headers: { ...this.#headers, authorization: `Bearer ${accessToken}` },
        redirect: 'error',
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      text = await res.text();
    } catch (err) {
      throw unavailable(what, this.#timeoutMs, err);
    }
    if (res.status === 429 || res.status >= 500 || isRateLimited(res)) {
      throw new UpstreamUnavailable(`${what} answered HTTP ${res.status}`);
    }
    if (!res.ok) throw new UpstreamRejected(`${what} answered HTTP ${res.status}${upstreamMessage(text)}`, res.status);
    try {
      return { body: JSON.parse(text) as unknown, headers: res.headers };
    } catch {
      throw new UpstreamRejected(`${what} did not answer JSON`);
    }
  }

  async getJson(url: string, accessToken: string): Promise<unknown> {
    return (await this.get(url, accessToken)).body;
  }

  /** Every item of a JSON-array listing paged by `Link: <...>; rel="next"` (GitHub). */
  async listByLinkHeader(url: string, accessToken: string): Promise<unknown[]> {
    const items: unknown[] = [];
    let next: string | undefined = url;
    for (let n = 0; next; n++) {
      if (n === MAX_PAGES) throw new UpstreamRejected(`${new URL(url).pathname} has more than ${MAX_PAGES} pages`);
      const { body, headers } = await this.get(next, accessToken);
      if (!Array.isArray(body)) throw new UpstreamRejected(`${new URL(url).pathname} did not answer a list`);
      items.push(...body);
      next = sameOrigin(url, nextLink(headers.get('link')));
    }
    return items;
  }

  /** Every item of a `{ values: [...], next?: url }` listing (Bitbucket). */
  async listByNextUrl(url: string, accessToken: string): Promise<unknown[]> {
    const items: unknown[] = [];
    let next: string | undefined = url;
    for (let n = 0; next; n++) {
      if (n === MAX_PAGES) throw new UpstreamRejected(`${new URL(url).pathname} has more than ${MAX_PAGES} pages`);
      const body = (await this.getJson(next, accessToken)) as { values?: unknown; next?: unknown } | null;
      if (!body || !Array.isArray(body.values)) throw new UpstreamRejected(`${new URL(url).pathname} did not answer a paged list`);
      items.push(...body.values);
      next = sameOrigin(url, typeof body.next === 'string' ? body.next : undefined);
    }
    return items;
  }

  /** Every item of a listing paged by `limit` and `after=<last id>` (Discord). */
  async listByCursor(url: string, accessToken: string, limit: number): Promise<{ id: string }[]> {
    const items: { id: string }[] = [];
    let after: string | undefined;
    for (let n = 0; ; n++) {
      if (n === MAX_PAGES) throw new UpstreamRejected(`${new URL(url).pathname} has more than ${MAX_PAGES} pages`);
      const page = new URL(url);
      page.searchParams.set('limit', String(limit));
      if (after) page.searchParams.set('after', after);
      const body = await this.getJson(page.toString(), accessToken);
      if (!Array.isArray(body) || !body.every((x) => typeof x?.id === 'string')) throw new UpstreamRejected(`${page.pathname} did not answer a list of objects with ids`);
      items.push(...(body as { id: string }[]));
      // A page shorter than `limit` is the last one (Discord caps limit at 200; we ask for that).
      if (body.length < limit) return items;
      after = (body[body.length - 1] as { id: string }).id;
    }
  }
}

function nextLink(header: string | null): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(',')) {
    const m = /^\s*<([^>]+)>\s*;(.*)$/.exec(part);
    if (m && /\brel\s*=\s*"?([^";]*\s)?next(\s[^";]*)?"?/i.test(m[2])) return m[1];
  }
  return undefined;
}

/** Paging links are only followed on the API's own origin: the token must not travel elsewhere. */
function sameOrigin(base: string, next: string | undefined): string | undefined {
  if (!next) return undefined;
  const resolved = new URL(next, base);
  if (resolved.origin !== new URL(base).origin) throw new UpstreamRejected(`paging link of ${new URL(base).pathname} points to another origin`);
  return resolved.toString();
}

/** GitHub signals an exhausted rate limit with 403 and x-ratelimit-remaining: 0. */
function isRateLimited(res: Response): boolean {
  return res.status === 403 && res.headers.get('x-ratelimit-remaining') === '0';
}
