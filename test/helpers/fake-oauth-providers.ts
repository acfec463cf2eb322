// Local stand-ins for GitHub (and GitHub Enterprise Server), Bitbucket Cloud and Discord: the
// OAuth 2.0 endpoints and the few REST calls a login makes, answering with those providers' real
// shapes and quirks (GitHub's 200-with-error token answers, urlencoded unless JSON is asked for,
// Link-header paging; Bitbucket's Basic client auth and `next` paging; Discord's `after` paging).
// Only the network edge is faked: connectors talk real HTTP to these servers.
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';

// ---------------------------------------------------------------------------------------------
// Shared machinery: codes, tokens, PKCE, switches for outages and latency

interface Grant {
  user: string;
  scopes: string[];
}

interface PendingCode extends Grant {
  redirectUri: string;
  challenge?: string;
  expiresAt: number;
}

interface AccessToken extends Grant {
  expiresAt?: number;
}

export interface RecordedRequest {
  method: string;
  /** The path without the query. */
  path: string;
  query: string;
  authorization?: string;
}

/** Switches every fake offers, besides its provider-specific fields. */
interface FakeControls {
  requests: RecordedRequest[];
  /** Refuse/stop answering: every connection is dropped without a response. */
  setDown(down: boolean): void;
  /** Hold every response back this long (to exercise client timeouts). */
  setDelay(ms: number): void;
  close(): Promise<void>;
}

const CODE_TTL_MS = 10 * 60_000;
const random = (bytes: number) => randomBytes(bytes).toString('hex');

class TokenBook {
  readonly codes = new Map<string, PendingCode>();
  readonly access = new Map<string, AccessToken>();
  readonly refresh = new Map<string, Grant>();

  issueCode(grant: Grant, redirectUri: string, challenge?: string): string {
    const code = random(10);
    this.codes.set(code, { ...grant, redirectUri, challenge, expiresAt: Date.now() + CODE_TTL_MS });
    return code;
  }

  /** Single use: a code is gone after the first attempt, right or wrong. */
  takeCode(code: string | undefined): PendingCode | undefined {
    if (!code) return undefined;
    const pending = this.codes.get(code);
    this.codes.delete(code);
    return pending && pending.expiresAt > Date.now() ? pending : undefined;
  }

  issueAccess(grant: Grant, prefix: string, lifetimeSeconds?: number): string {
    const token = prefix + random(18);
    this.access.set(token, { ...grant, expiresAt: lifetimeSeconds ? Date.now() + lifetimeSeconds * 1000 : undefined });
    return token;
  }

  issueRefresh(grant: Grant, prefix: string): string {
    const token = prefix + random(30);
    this.refresh.set(token, grant);
    return token;
  }

  /** The live grant behind an access token, or undefined (unknown, revoked or expired). */
  check(token: string | undefined): AccessToken | undefined {
    if (!token) return undefined;
    const t = this.access.get(token);
    if (!t || (t.expiresAt !== undefined && t.expiresAt <= Date.now())) return undefined;
    return t;
  }

  revokeUser(user: string): void {
    for (const map of [this.access, this.refresh] as Map<string, Grant>[]) {
      for (const [token, grant] of map) if (grant.user === user) map.delete(token);
    }
  }
}

function s256(verifier: string): string {
  return createHash('sha256').update(verifier).digest('base64url');
}

/** The code_verifier fits the challenge recorded with the code (or none was sent). */
function pkceOk(pending: PendingCode, verifier: string | undefined): boolean {
  if (!pending.challenge) return true;
  return typeof verifier === 'string' && s256(verifier) === pending.challenge;
}

async function readForm(req: http.IncomingMessage): Promise<Record<string, string>> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  if (/application\/json/i.test(req.headers['content-type'] ?? '')) {
    try {
      return Object.fromEntries(Object.entries(JSON.parse(text) as Record<string, unknown>).map(([k, v]) => [k, String(v)]));
    } catch {
      return {};
    }
  }
  return Object.fromEntries(new URLSearchParams(text));
}

function basicAuth(req: http.IncomingMessage): { id: string; secret: string } | undefined {
  const m = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  if (!m) return undefined;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  if (i < 0) return undefined;
  // RFC 6749 2.3.1: both halves are form-urlencoded before the Basic encoding.
  const unform = (s: string) => decodeURIComponent(s.replace(/\+/g, ' '));
  return { id: unform(decoded.slice(0, i)), secret: unform(decoded.slice(i + 1)) };
}

function bearer(req: http.IncomingMessage, schemes = /^(?:Bearer|token)\s+(\S+)$/i): string | undefined {
  return schemes.exec(req.headers.authorization ?? '')?.[1];
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(JSON.stringify(body));
}

function redirect(res: http.ServerResponse, to: string, params: Record<string, string | undefined>): void {
  const url = new URL(to);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.set(k, v);
  res.writeHead(302, { location: url.toString() });
  res.end();
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => Promise<void> | void;

/** A node:http server on a free 127.0.0.1 port, with the down/delay switches and a request log. */
async function serve(handler: Handler): Promise<{ origin: string } & FakeControls> {
  let down = false;
  let delay = 0;
  const requests: RecordedRequest[] = [];
  const server = http.createServer((req, res) => {
    if (down) {
      req.socket.destroy();
      return;
    }
    const url = new URL(req.url ?? '/', 'http://fake');
    requests.push({ method: req.method ?? 'GET', path: url.pathname, query: url.search, authorization: req.headers.authorization });
    const run = async () => {
      try {
        await handler(req, res, url);
      } catch (err) {
        if (!res.headersSent) sendJson(res, 500, { message: String(err) });
        else res.destroy();
      }
    };
    if (delay > 0) setTimeout(run, delay).unref();
    else void run();
  });
  // Keep-alive sockets would hold close() back.
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    requests,
    setDown(d) {
      down = d;
      if (d) server.closeAllConnections();
    },
    setDelay(ms) {
      delay = ms;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Which user the next authorization approves: `login` on the request, else signInAs, else the first. */
function pickUser<U>(users: U[], key: (u: U) => string, chosen: string | undefined, override: string | null): U | 'deny' | undefined {
  const name = override ?? chosen ?? (users[0] ? key(users[0]) : undefined);
  if (name === 'deny') return 'deny';
  return users.find((u) => key(u) === name);
}

function splitScopes(scope: string | null | undefined): string[] {
  return (scope ?? '').split(/[\s,]+/).filter(Boolean);
}

/** Stable small integers for names (org and team ids). */
function idOf(name: string): number {
  return createHash('sha256').update(name).digest().readUInt32BE(0) % 90_000_000 + 1_000_000;
}

// ---------------------------------------------------------------------------------------------
// GitHub (github.com and GitHub Enterprise Server)

export interface FakeGitHubUser {
  id: number;
  login: string;
  name?: string | null;
  /** Public profile email, may be null. */
  email?: string | null;
  emails: { email: string; primary: boolean; verified: boolean; visibility?: 'public' | 'private' | null }[];
  orgs?: string[];
  /** `name` defaults to the slug in title case ("core-devs" → "Core Devs"). */
  teams?: { org: string; slug: string; name?: string }[];
}

export interface FakeGitHub extends FakeControls {
  /** Web origin: authorize at `${url}/login/oauth/authorize`, token at `${url}/login/oauth/access_token`. */
  url: string;
  /** REST API base: `${url}/api/v3` (enterprise) or `${url}/api`. */
  apiUrl: string;
  authorizeUrl: string;
  tokenUrl: string;
  /** Which user the next authorization approves (default the first user); `login` on /authorize overrides it; 'deny' answers error=access_denied. */
  signInAs(login: string | 'deny'): void;
  /** Revoke every token of a user (API calls with them then get 401 Bad credentials). */
  revokeTokens(login: string): void;
}

export interface FakeGitHubOptions {
  clientId: string;
  clientSecret: string;
  users: FakeGitHubUser[];
  /** GitHub Enterprise Server: the REST API lives at /api/v3 on the web host. */
  enterprise?: boolean;
  /** GitHub Apps with expiring user tokens: expires_in, refresh_token (rotating). */
  expiringTokens?: boolean;
  /** Access token lifetime with expiringTokens (GitHub: 8 hours). */
  accessTokenLifetimeSeconds?: number;
  /** Cap on per_page (GitHub: 100); set it low to make listings page. */
  maxPerPage?: number;
}

const GH_DOCS = 'https://docs.github.com/rest';
const GH_TOKEN_ERRORS: Record<string, string> = {
  incorrect_client_credentials: 'The client_id and/or client_secret passed are incorrect.',
  redirect_uri_mismatch: 'The redirect_uri MUST match the registered callback URL for this application.',
  bad_verification_code: 'The code passed is incorrect or expired.',
  bad_refresh_token: 'The refresh token passed is incorrect or expired.',
  unsupported_grant_type: 'The grant type is not supported.',
};

export async function startFakeGitHub(options: FakeGitHubOptions): Promise<FakeGitHub> {
  const book = new TokenBook();
  const users = options.users;
  const maxPerPage = options.maxPerPage ?? 100;
  const lifetime = options.accessTokenLifetimeSeconds ?? 28_800;
  const apiPrefix = options.enterprise ? '/api/v3' : '/api';
  let chosen: string | undefined;
  let origin = '';

  const userJson = (u: FakeGitHubUser, full: boolean) => ({
    login: u.login,
    id: u.id,
    node_id: Buffer.from(`04:User${u.id}`).toString('base64'),
    avatar_url: `${origin}/avatars/u/${u.id}?v=4`,
    gravatar_id: '',
    url: `${origin}${apiPrefix}/users/${u.login}`,
    html_url: `${origin}/${u.login}`,
    type: 'User',
    site_admin: false,
    name: u.name ?? null,
    company: null,
    blog: '',
    location: null,
    email: u.email ?? null,
    hireable: null,
    bio: null,
    twitter_username: null,
    public_repos: 2,
    public_gists: 0,
    followers: 1,
    following: 0,
    created_at: '2015-03-04T10:11:12Z',
    updated_at: '2024-01-02T03:04:05Z',
    ...(full ? { private_gists: 0, total_private_repos: 0, owned_private_repos: 0, two_factor_authentication: true } : {}),
  });
  const orgJson = (login: string) => ({
    login,
    id: idOf(`org:${login}`),
    node_id: Buffer.from(`012:Organization${idOf(`org:${login}`)}`).toString('base64'),
    url: `${origin}${apiPrefix}/orgs/${login}`,
    repos_url: `${origin}${apiPrefix}/orgs/${login}/repos`,
    members_url: `${origin}${apiPrefix}/orgs/${login}/members{/member}`,
    avatar_url: `${origin}/avatars/o/${idOf(`org:${login}`)}?v=4`,
    description: null,
  });
  const teamJson = (t: { org: string; slug: string; name?: string }) => ({
    name: t.name ?? t.slug.split('-').map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join(' '),
    id: idOf(`team:${t.org}/${t.slug}`),
    node_id: Buffer.from(`04:Team${idOf(`team:${t.org}/${t.slug}`)}`).toString('base64'),
    slug: t.slug,
    description: '',
    privacy: 'closed',
    notification_setting: 'notifications_enabled',
    url: `${origin}${apiPrefix}/organizations/${idOf(`org:${t.org}`)}/team/${idOf(`team:${t.org}/${t.slug}`)}`,
    html_url: `${origin}/orgs/${t.org}/teams/${t.slug}`,
    permission: 'pull',
    parent: null,
    members_count: 3,
    repos_count: 1,
    created_at: '2019-05-06T07:08:09Z',
    updated_at: '2023-05-06T07:08:09Z',
    organization: { ...orgJson(t.org), name: t.org, type: 'Organization', html_url: `${origin}/${t.org}` },
  });

  const tokenAnswer = (req: http.IncomingMessage, res: http.ServerResponse, body: Record<string, string | number>) => {
    // GitHub answers urlencoded unless asked for JSON, and errors with HTTP 200.
    if (/application\/json/i.test(req.headers.accept ?? '')) {
      sendJson(res, 200, body);
    } else {
      res.writeHead(200, { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' });
      res.end(new URLSearchParams(Object.entries(body).map(([k, v]) => [k, String(v)])).toString());
    }
  };
  const tokenError = (req: http.IncomingMessage, res: http.ServerResponse, error: string) =>
    tokenAnswer(req, res, { error, error_description: GH_TOKEN_ERRORS[error] ?? error, error_uri: `https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#${error.replace(/_/g, '-')}` });

  const issueTokens = (grant: Grant) => {
    const body: Record<string, string | number> = {
      access_token: book.issueAccess(grant, options.expiringTokens ? 'ghu_' : 'gho_', options.expiringTokens ? lifetime : undefined),
      token_type: 'bearer',
      scope: grant.scopes.join(','),
    };
    if (options.expiringTokens) {
      body.expires_in = lifetime;
      body.refresh_token = book.issueRefresh(grant, 'ghr_');
      body.refresh_token_expires_in = 15_897_600;
    }
    return body;
  };

  /** Link-header paging over `items`, as the REST API does. */
  const page = (res: http.ServerResponse, url: URL, items: unknown[], headers: Record<string, string>) => {
    const perPage = Math.min(Math.max(Number(url.searchParams.get('per_page')) || 30, 1), maxPerPage);
    const n = Math.max(Number(url.searchParams.get('page')) || 1, 1);
    const last = Math.max(Math.ceil(items.length / perPage), 1);
    const link = (p: number, rel: string) => {
      const u = new URL(url.pathname, origin);
      u.searchParams.set('per_page', String(perPage));
      u.searchParams.set('page', String(p));
      return `<${u}>; rel="${rel}"`;
    };
    const links = [
      ...(n > 1 ? [link(n - 1, 'prev'), link(1, 'first')] : []),
      ...(n < last ? [link(n + 1, 'next'), link(last, 'last')] : []),
    ];
    sendJson(res, 200, items.slice((n - 1) * perPage, n * perPage), { ...headers, ...(links.length ? { link: links.join(', ') } : {}) });
  };

  const controls = await serve(async (req, res, url) => {
    const p = url.pathname;
    if (req.method === 'GET' && p === '/login/oauth/authorize') {
      const q = url.searchParams;
      const redirectUri = q.get('redirect_uri');
      if (q.get('client_id') !== options.clientId || !redirectUri) {
        res.writeHead(404, { 'content-type': 'text/html' });
        res.end('<h1>404 unknown application</h1>');
        return;
      }
      const state = q.get('state') ?? undefined;
      const method = q.get('code_challenge_method');
      if (q.get('code_challenge') && method !== 'S256') {
        redirect(res, redirectUri, { error: 'invalid_request', error_description: 'code_challenge_method must be S256', state });
        return;
      }
      const user = pickUser(users, (u) => u.login, chosen, q.get('login'));
      if (user === 'deny' || !user) {
        redirect(res, redirectUri, {
          error: 'access_denied',
          error_description: 'The user has denied your application access.',
          error_uri: 'https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#access-denied',
          state,
        });
        return;
      }
      const code = book.issueCode({ user: user.login, scopes: splitScopes(q.get('scope')) }, redirectUri, q.get('code_challenge') ?? undefined);
      redirect(res, redirectUri, { code, state });
      return;
    }

    if (req.method === 'POST' && p === '/login/oauth/access_token') {
      const form = await readForm(req);
      const basic = basicAuth(req);
      const clientId = form.client_id ?? basic?.id;
      const clientSecret = form.client_secret ?? basic?.secret;
      if (clientId !== options.clientId || clientSecret !== options.clientSecret) return tokenError(req, res, 'incorrect_client_credentials');
      const grantType = form.grant_type ?? 'authorization_code';
      if (grantType === 'refresh_token') {
        const grant = options.expiringTokens ? book.refresh.get(form.refresh_token ?? '') : undefined;
        if (!grant) return tokenError(req, res, 'bad_refresh_token');
        book.refresh.delete(form.refresh_token); // rotation: a refresh token is single use
        return tokenAnswer(req, res, issueTokens(grant));
      }
      if (grantType !== 'authorization_code') return tokenError(req, res, 'unsupported_grant_type');
      const pending = book.takeCode(form.code);
      if (!pending) return tokenError(req, res, 'bad_verification_code');
      if (form.redirect_uri && form.redirect_uri !== pending.redirectUri) return tokenError(req, res, 'redirect_uri_mismatch');
      if (!pkceOk(pending, form.code_verifier)) return tokenError(req, res, 'bad_verification_code');
      return tokenAnswer(req, res, issueTokens(pending));
    }

    if (p.startsWith(`${apiPrefix}/`)) {
      const route = p.slice(apiPrefix.length);
      const publicUser = /^\/users\/([^/]+)$/.exec(route);
      if (req.method === 'GET' && publicUser) {
        const u = users.find((x) => x.login.toLowerCase() === decodeURIComponent(publicUser[1]).toLowerCase());
        return u ? sendJson(res, 200, userJson(u, false)) : sendJson(res, 404, { message: 'Not Found', documentation_url: GH_DOCS, status: '404' });
      }
      const token = bearer(req);
      if (!token) return sendJson(res, 401, { message: 'Requires authentication', documentation_url: GH_DOCS, status: '401' });
      const grant = book.check(token);
      if (!grant) return sendJson(res, 401, { message: 'Bad credentials', documentation_url: GH_DOCS, status: '401' });
      const user = users.find((u) => u.login === grant.user);
      if (!user) return sendJson(res, 401, { message: 'Bad credentials', documentation_url: GH_DOCS, status: '401' });
      const has = (...s: string[]) => s.some((x) => grant.scopes.includes(x));
      const headers = { 'x-oauth-scopes': grant.scopes.join(', '), 'x-github-media-type': 'github.v3; format=json' };
      if (req.method !== 'GET') return sendJson(res, 404, { message: 'Not Found', documentation_url: GH_DOCS, status: '404' }, headers);
      switch (route) {
        case '/user':
          return sendJson(res, 200, userJson(user, true), headers);
        case '/user/emails':
          if (!has('user', 'user:email')) return sendJson(res, 404, { message: 'Not Found', documentation_url: GH_DOCS, status: '404' }, { ...headers, 'x-accepted-oauth-scopes': 'user, user:email' });
          return page(res, url, user.emails.map((e) => ({ email: e.email, primary: e.primary, verified: e.verified, visibility: e.visibility ?? (e.primary ? 'private' : null) })), headers);
        case '/user/orgs': {
          // Without read:org only public memberships show; the fake has none, which is what
          // a connector that forgets the scope would see for private ones.
          const orgs = has('read:org', 'user', 'admin:org') ? [...new Set([...(user.orgs ?? []), ...(user.teams ?? []).map((t) => t.org)])] : [];
          return page(res, url, orgs.map(orgJson), { ...headers, 'x-accepted-oauth-scopes': 'admin:org, read:org, repo, user, write:org' });
        }
        case '/user/teams':
          if (!has('read:org', 'user', 'repo')) return sendJson(res, 403, { message: 'Resource not accessible by integration', documentation_url: GH_DOCS, status: '403' }, headers);
          return page(res, url, (user.teams ?? []).map(teamJson), { ...headers, 'x-accepted-oauth-scopes': 'read:org, repo, user' });
      }
      return sendJson(res, 404, { message: 'Not Found', documentation_url: GH_DOCS, status: '404' }, headers);
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('Not Found');
  });
  origin = controls.origin;

  return {
    ...controls,
    url: origin,
    apiUrl: origin + apiPrefix,
    authorizeUrl: `${origin}/login/oauth/authorize`,
    tokenUrl: `${origin}/login/oauth/access_token`,
    signInAs(login) {
      chosen = login;
    },
    revokeTokens(login) {
      book.revokeUser(login);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Bitbucket Cloud

export interface FakeBitbucketUser {
  /** With braces, as Bitbucket writes them: `{6f3c...}`; made up from the username when absent. */
  uuid?: string;
  username: string;
  displayName?: string;
  accountId?: string;
  emails: { email: string; primary: boolean; confirmed: boolean }[];
  /** Workspace slugs the user is a member of. */
  workspaces?: string[];
}

export interface FakeBitbucket extends FakeControls {
  url: string;
  /** `${url}/2.0`, as https://api.bitbucket.org/2.0 */
  apiUrl: string;
  authorizeUrl: string;
  tokenUrl: string;
  signInAs(username: string | 'deny'): void;
  revokeTokens(username: string): void;
}

export interface FakeBitbucketOptions {
  clientId: string;
  clientSecret: string;
  users: FakeBitbucketUser[];
  /** Cap on pagelen (Bitbucket: 100); set it low to make listings page. */
  maxPerPage?: number;
}

function uuidOf(name: string): string {
  const h = createHash('sha256').update(name).digest('hex');
  return `{${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}}`;
}

export async function startFakeBitbucket(options: FakeBitbucketOptions): Promise<FakeBitbucket> {
  const book = new TokenBook();
  const users = options.users;
  const maxPerPage = options.maxPerPage ?? 100;
  let chosen: string | undefined;
  let origin = '';
  const uuid = (u: FakeBitbucketUser) => u.uuid ?? uuidOf(`bb:${u.username}`);
  const accountId = (u: FakeBitbucketUser) => u.accountId ?? `557058:${uuidOf(`acc:${u.username}`).slice(1, -1)}`;

  const userJson = (u: FakeBitbucketUser) => ({
    display_name: u.displayName ?? u.username,
    links: {
      self: { href: `${origin}/2.0/users/${encodeURIComponent(uuid(u))}` },
      avatar: { href: `${origin}/account/${u.username}/avatar/` },
      html: { href: `${origin}/${encodeURIComponent(uuid(u))}/` },
    },
    created_on: '2016-02-03T04:05:06.000000+00:00',
    type: 'user',
    uuid: uuid(u),
    has_2fa_enabled: null,
    username: u.username,
    is_staff: false,
    account_id: accountId(u),
    nickname: u.username,
    account_status: 'active',
    location: null,
  });

  /** Bitbucket's paged envelope: {pagelen, values, page, size, next?}. */
  const paged = (res: http.ServerResponse, url: URL, values: unknown[]) => {
    const pagelen = Math.min(Math.max(Number(url.searchParams.get('pagelen')) || 10, 1), maxPerPage);
    const n = Math.max(Number(url.searchParams.get('page')) || 1, 1);
    const body: Record<string, unknown> = { pagelen, values: values.slice((n - 1) * pagelen, n * pagelen), page: n, size: values.length };
    if (n * pagelen < values.length) {
      const next = new URL(url.pathname, origin);
      next.searchParams.set('pagelen', String(pagelen));
      next.searchParams.set('page', String(n + 1));
      body.next = next.toString();
    }
    if (n > 1) {
      const previous = new URL(url.pathname, origin);
      previous.searchParams.set('pagelen', String(pagelen));
      previous.searchParams.set('page', String(n - 1));
      body.previous = previous.toString();
    }
    sendJson(res, 200, body);
  };
  const apiError = (res: http.ServerResponse, status: number, message: string, detail?: unknown) =>
    sendJson(res, status, { type: 'error', error: { message, ...(detail ? { detail } : {}) } });

  const issueTokens = (grant: Grant, refreshToken?: string) => ({
    access_token: book.issueAccess(grant, '', 7200),
    scopes: grant.scopes.join(' '),
    token_type: 'bearer',
    expires_in: 7200,
    state: refreshToken ? 'refresh_token' : 'authorization_code',
    // Bitbucket keeps handing back the same refresh token.
    refresh_token: refreshToken ?? book.issueRefresh(grant, ''),
  });

  const controls = await serve(async (req, res, url) => {
    const p = url.pathname;
    if (req.method === 'GET' && p === '/site/oauth2/authorize') {
      const q = url.searchParams;
      const redirectUri = q.get('redirect_uri');
      if (q.get('client_id') !== options.clientId || !redirectUri || q.get('response_type') !== 'code') {
        res.writeHead(400, { 'content-type': 'text/html' });
        res.end('<h1>Invalid client_id, redirect_uri or response_type</h1>');
        return;
      }
      const state = q.get('state') ?? undefined;
      const user = pickUser(users, (u) => u.username, chosen, q.get('login'));
      if (user === 'deny' || !user) {
        redirect(res, redirectUri, { error: 'access_denied', error_description: 'The resource owner or authorization server denied the request.', state });
        return;
      }
      // Bitbucket grants the consumer's configured scopes whatever is asked; the fake grants
      // what is asked, or account+email by default.
      const scopes = splitScopes(q.get('scope'));
      const code = book.issueCode({ user: user.username, scopes: scopes.length ? scopes : ['account', 'email'] }, redirectUri, q.get('code_challenge') ?? undefined);
      redirect(res, redirectUri, { code, state });
      return;
    }

    if (req.method === 'POST' && p === '/site/oauth2/access_token') {
      const form = await readForm(req);
      const basic = basicAuth(req);
      if (!basic || basic.id !== options.clientId || basic.secret !== options.clientSecret) {
        return sendJson(res, 400, { error: 'invalid_client', error_description: 'Invalid OAuth client credentials' });
      }
      if (form.grant_type === 'refresh_token') {
        const grant = book.refresh.get(form.refresh_token ?? '');
        if (!grant) return sendJson(res, 400, { error: 'invalid_grant', error_description: 'Invalid refresh_token' });
        return sendJson(res, 200, issueTokens(grant, form.refresh_token));
      }
      if (form.grant_type !== 'authorization_code') return sendJson(res, 400, { error: 'unsupported_grant_type', error_description: 'Unsupported grant type' });
      const pending = book.takeCode(form.code);
      if (!pending || (form.redirect_uri && form.redirect_uri !== pending.redirectUri) || !pkceOk(pending, form.code_verifier)) {
        return sendJson(res, 400, { error: 'invalid_grant', error_description: 'The specified code is not valid.' });
      }
      return sendJson(res, 200, issueTokens(pending));
    }

    if (p.startsWith('/2.0/')) {
      const token = bearer(req, /^Bearer\s+(\S+)$/i);
      const grant = book.check(token);
      if (!grant) return apiError(res, 401, token ? 'Access token expired. Use your refresh token to obtain a new access token.' : 'Authentication required');
      const user = users.find((u) => u.username === grant.user);
      if (!user) return apiError(res, 401, 'Access token expired. Use your refresh token to obtain a new access token.');
      const needs = (scope: string) => {
        if (grant.scopes.includes(scope)) return false;
        apiError(res, 403, 'Your credentials lack one or more required privilege scopes.', { granted: grant.scopes, required: [scope] });
        return true;
      };
      const route = p.slice('/2.0'.length);
      if (req.method === 'GET' && route === '/user') {
        if (needs('account')) return;
        return sendJson(res, 200, userJson(user));
      }
      if (req.method === 'GET' && route === '/user/emails') {
        if (needs('email')) return;
        return paged(res, url, user.emails.map((e) => ({
          is_primary: e.primary,
          is_confirmed: e.confirmed,
          type: 'email',
          email: e.email,
          links: { self: { href: `${origin}/2.0/user/emails/${encodeURIComponent(e.email)}` } },
        })));
      }
      if (req.method === 'GET' && route === '/user/permissions/workspaces') {
        if (needs('account')) return;
        return paged(res, url, (user.workspaces ?? []).map((slug) => ({
          type: 'workspace_membership',
          permission: 'member',
          last_accessed: null,
          added_on: '2020-01-01T00:00:00+00:00',
          user: { type: 'user', uuid: uuid(user), display_name: user.displayName ?? user.username, account_id: accountId(user), nickname: user.username },
          workspace: { type: 'workspace', uuid: uuidOf(`ws:${slug}`), name: slug, slug, links: { html: { href: `${origin}/${slug}/` } } },
        })));
      }
      return apiError(res, 404, 'Resource not found');
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('Not Found');
  });
  origin = controls.origin;

  return {
    ...controls,
    url: origin,
    apiUrl: `${origin}/2.0`,
    authorizeUrl: `${origin}/site/oauth2/authorize`,
    tokenUrl: `${origin}/site/oauth2/access_token`,
    signInAs(username) {
      chosen = username;
    },
    revokeTokens(username) {
      book.revokeUser(username);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Discord

export interface FakeDiscordUser {
  /** A snowflake, as a string. */
  id: string;
  username: string;
  globalName?: string | null;
  email?: string | null;
  verified?: boolean;
  guilds?: { id: string; name: string }[];
}

export interface FakeDiscord extends FakeControls {
  url: string;
  /** `${url}/api` (the fake also answers under /api/v10). */
  apiUrl: string;
  authorizeUrl: string;
  tokenUrl: string;
  signInAs(username: string | 'deny'): void;
  revokeTokens(username: string): void;
}

export interface FakeDiscordOptions {
  clientId: string;
  clientSecret: string;
  users: FakeDiscordUser[];
  /** Cap on the guild listing's limit (Discord: 200); set it low to make it page. */
  maxPerPage?: number;
}

export async function startFakeDiscord(options: FakeDiscordOptions): Promise<FakeDiscord> {
  const book = new TokenBook();
  const users = options.users;
  const maxPerPage = options.maxPerPage ?? 200;
  let chosen: string | undefined;

  const userJson = (u: FakeDiscordUser, withEmail: boolean) => ({
    id: u.id,
    username: u.username,
    avatar: createHash('md5').update(u.id).digest('hex'),
    discriminator: '0',
    public_flags: 0,
    flags: 0,
    banner: null,
    accent_color: null,
    global_name: u.globalName ?? null,
    avatar_decoration_data: null,
    banner_color: null,
    clan: null,
    mfa_enabled: false,
    locale: 'en-US',
    premium_type: 0,
    // Only with the `email` scope are these two keys present at all.
    ...(withEmail ? { email: u.email ?? null, verified: u.verified ?? false } : {}),
  });

  const issueTokens = (grant: Grant) => ({
    token_type: 'Bearer',
    access_token: book.issueAccess(grant, '', 604_800),
    expires_in: 604_800,
    refresh_token: book.issueRefresh(grant, ''),
    scope: grant.scopes.join(' '),
  });

  const controls = await serve(async (req, res, url) => {
    const p = url.pathname;
    if (req.method === 'GET' && p === '/oauth2/authorize') {
      const q = url.searchParams;
      const redirectUri = q.get('redirect_uri');
      if (q.get('client_id') !== options.clientId || !redirectUri || q.get('response_type') !== 'code') {
        sendJson(res, 400, { message: 'Invalid OAuth2 request', code: 50035 });
        return;
      }
      const state = q.get('state') ?? undefined;
      const user = pickUser(users, (u) => u.username, chosen, q.get('login'));
      if (user === 'deny' || !user) {
        redirect(res, redirectUri, { error: 'access_denied', error_description: 'The resource owner or authorization server denied the request', state });
        return;
      }
      const code = book.issueCode({ user: user.username, scopes: splitScopes(q.get('scope')) }, redirectUri, q.get('code_challenge') ?? undefined);
      redirect(res, redirectUri, { code, state });
      return;
    }

    if (req.method === 'POST' && /^\/api(\/v\d+)?\/oauth2\/token$/.test(p)) {
      const form = await readForm(req);
      const basic = basicAuth(req);
      const clientId = basic?.id ?? form.client_id;
      const clientSecret = basic?.secret ?? form.client_secret;
      if (clientId !== options.clientId || clientSecret !== options.clientSecret) return sendJson(res, 401, { error: 'invalid_client' });
      if (form.grant_type === 'refresh_token') {
        const grant = book.refresh.get(form.refresh_token ?? '');
        if (!grant) return sendJson(res, 400, { error: 'invalid_grant', error_description: 'Invalid "refresh_token" in request.' });
        book.refresh.delete(form.refresh_token);
        return sendJson(res, 200, issueTokens(grant));
      }
      if (form.grant_type !== 'authorization_code') return sendJson(res, 400, { error: 'unsupported_grant_type' });
      const pending = book.takeCode(form.code);
      if (!pending) return sendJson(res, 400, { error: 'invalid_grant', error_description: 'Invalid "code" in request.' });
      if (form.redirect_uri !== pending.redirectUri) return sendJson(res, 400, { error: 'invalid_grant', error_description: 'Invalid "redirect_uri" in request.' });
      if (!pkceOk(pending, form.code_verifier)) return sendJson(res, 400, { error: 'invalid_grant', error_description: 'Invalid "code_verifier" in request.' });
      return sendJson(res, 200, issueTokens(pending));
    }

    const api = /^\/api(?:\/v\d+)?(\/.*)$/.exec(p);
    if (api) {
      const grant = book.check(bearer(req, /^Bearer\s+(\S+)$/i));
      const user = grant && users.find((u) => u.username === grant.user);
      if (!grant || !user) return sendJson(res, 401, { message: '401: Unauthorized', code: 0 });
      if (req.method === 'GET' && api[1] === '/users/@me') {
        if (!grant.scopes.includes('identify') && !grant.scopes.includes('email')) return sendJson(res, 401, { message: '401: Unauthorized', code: 0 });
        return sendJson(res, 200, userJson(user, grant.scopes.includes('email')));
      }
      if (req.method === 'GET' && api[1] === '/users/@me/guilds') {
        if (!grant.scopes.includes('guilds')) return sendJson(res, 403, { message: 'Missing Access', code: 50001 });
        // Discord pages by `after` (a guild id) and `limit`, in id order; no Link header.
        const limit = Math.min(Math.max(Number(url.searchParams.get('limit')) || 200, 1), maxPerPage);
        const after = BigInt(url.searchParams.get('after') || '0');
        const guilds = [...(user.guilds ?? [])].sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1)).filter((g) => BigInt(g.id) > after);
        return sendJson(res, 200, guilds.slice(0, limit).map((g) => ({ id: g.id, name: g.name, icon: null, banner: null, owner: false, permissions: '104324673', features: [] })));
      }
      return sendJson(res, 404, { message: '404: Not Found', code: 0 });
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('Not Found');
  });

  return {
    ...controls,
    url: controls.origin,
    apiUrl: `${controls.origin}/api`,
    authorizeUrl: `${controls.origin}/oauth2/authorize`,
    tokenUrl: `${controls.origin}/api/oauth2/token`,
    signInAs(username) {
      chosen = username;
    },
    revokeTokens(username) {
      book.revokeUser(username);
    },
  };
}
