// A minimal cookie-keeping user agent for driving the broker's real pages over HTTP: it
// follows redirects on the broker's origin and stops at any other origin (the relying party).
export interface Page {
  url: string;
  status: number;
  html: string;
  headers: Headers;
}

export class Browser {
  readonly cookies = new Map<string, string>();
  readonly origin: string;
  /** The public issuer origin, when the browser talks to one instance behind it (as a load balancer would route). */
  readonly publicOrigin: string | undefined;

  constructor(origin: string, options: { publicOrigin?: string } = {}) {
    this.origin = origin;
    this.publicOrigin = options.publicOrigin;
  }

  /** A URL on the public issuer origin, sent to this browser's instance instead. */
  #route(url: string): string {
    return this.publicOrigin && url.startsWith(this.publicOrigin) ? this.origin + url.slice(this.publicOrigin.length) : url;
  }

  #store(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => /^\s*expires=/i.test(a) && new Date(a.split('=')[1]).getTime() < Date.now()) || attrs.some((a) => /^\s*max-age=0/i.test(a));
      if (expired || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  #cookieHeader(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  async request(url: string, init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<Response> {
    const headers: Record<string, string> = { accept: 'text/html', ...init.headers };
    if (this.cookies.size && url.startsWith(this.origin)) headers.cookie = this.#cookieHeader();
    let body: string | undefined;
    if (init.form) {
      body = new URLSearchParams(init.form).toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
    }
    const res = await fetch(url, { method: init.method ?? (init.form ? 'POST' : 'GET'), headers, body, redirect: 'manual' });
    if (url.startsWith(this.origin)) this.#store(res);
    return res;
  }

  /** Requests `url` and follows redirects while they stay on the broker; returns the last page or the first off-origin Location. */
  async go(target: string, init: { method?: string; form?: Record<string, string> } = {}): Promise<Page> {
    const url = this.#route(target);
    let res = await this.request(url, init);
    let current = url;
    for (let hops = 0; hops < 20; hops++) {
      const location = res.headers.get('location');
      if (res.status < 300 || res.status >= 400 || !location) break;
      const next = this.#route(new URL(location, current).href);
      if (!next.startsWith(this.origin)) return { url: next, status: res.status, html: '', headers: res.headers };
      current = next;
      res = await this.request(current);
    }
    return { url: current, status: res.status, html: await res.text(), headers: res.headers };
  }

  /** Submits the form whose action contains `actionPart`, with hidden inputs kept and `fields` filled in. */
  async submit(page: Page, actionPart: string, fields: Record<string, string> = {}): Promise<Page> {
    const form = findForm(page.html, actionPart);
    if (!form) throw new Error(`no form with action containing "${actionPart}" on ${page.url}:\n${page.html.slice(0, 2000)}`);
    return this.go(new URL(form.action, page.url).href, { method: 'POST', form: { ...form.hidden, ...fields } });
  }
}

function decode(s: string): string {
  return s.replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>');
}

export function findForm(html: string, actionPart: string): { action: string; hidden: Record<string, string> } | null {
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const action = /action="([^"]*)"/i.exec(m[1])?.[1];
    if (action === undefined || !decode(action).includes(actionPart)) continue;
    const hidden: Record<string, string> = {};
    for (const input of m[2].matchAll(/<input\b([^>]*)>/gi)) {
      if (!/type="hidden"/i.test(input[1])) continue;
      const name = /name="([^"]*)"/i.exec(input[1])?.[1];
      const value = /value="([^"]*)"/i.exec(input[1])?.[1] ?? '';
      if (name) hidden[decode(name)] = decode(value);
    }
    return { action: decode(action), hidden };
  }
  return null;
}
