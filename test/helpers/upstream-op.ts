// A real upstream OpenID provider (node-oidc-provider) on loopback, for the oidc connector's
// suites: its own users, passwords, login page and process-local storage, plus the knobs
// negative tests need (down, slow, tampered ID tokens, revoked grants, how a login authenticated:
// amr and acr, and the authorization parameters each login received) and the shapes of the
// quirky upstreams the presets exist for: Entra (tenant issuers, the multi-tenant discovery
// alias, group overage answered by a fake Microsoft Graph) and Apple (an ES256 JWT as the client
// secret, the `user` form_post parameter on first authorization).
import http from 'node:http';
import { randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { Provider, type Adapter, type AdapterPayload, type ClientMetadata, type KoaContextWithOIDC } from 'oidc-provider';
import { CompactSign, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, importJWK, jwtVerify, type JWK } from 'jose';
import { Browser, findForm } from './browser.ts';
import { freePort } from './free-port.ts';

/** The fixture keeps these objects: change `claims` in a test to change what the upstream asserts next. */
export interface UpstreamUser {
  id: string;
  username: string;
  password: string;
  /** Released for the scopes that name them (see UpstreamOpOptions.scopeClaims): email, groups, tid, hd, ... */
  claims: Record<string, unknown>;
  /**
   * How the next login says it authenticated (the ID token's `amr` and `acr`); default amr
   * ['pwd'] and no acr. `amr` is passed on unchecked, so a test can make it malformed; an `acr`
   * needs UpstreamOpOptions.acrValues, or oidc-provider leaves it out.
   */
  authentication?: { amr?: unknown; acr?: string };
}

export interface AppleShim {
  clientId: string;
  teamId: string;
  keyId: string;
  /** Verifies the ES256 client_secret JWTs the connector signs with the team's private key. */
  publicKey: KeyObject | CryptoKey;
}

export interface UpstreamOpOptions {
  /** Mount the provider under this path, e.g. `/<tenant id>/v2.0` for an Entra-shaped issuer. */
  issuerPath?: string;
  users: UpstreamUser[];
  clients: ClientMetadata[];
  /** Scope → claims it releases, over the defaults (openid also carries tid, hd and groups). */
  scopeClaims?: Record<string, string[]>;
  /**
   * Put scope claims in the ID token even though an access token is issued, as Entra, Google and
   * Apple do. Off, oidc-provider keeps them to userinfo (conformIdTokenClaims).
   */
  claimsInIdToken?: boolean;
  /** Entra: these users' tokens signal group overage (`_claim_names`) instead of carrying `groups`. */
  overageFor?: string[];
  apple?: AppleShim;
  /** The acr values the OP supports (discovery's acr_values_supported); its ID tokens carry `acr` only with some. */
  acrValues?: string[];
}

/** Where the upstream sends the browser back: a redirect (query) or an auto-submitted form (form_post). */
export interface UpstreamReturn {
  method: 'GET' | 'POST';
  /** The full callback URL for GET; the form's action for POST. */
  url: string;
  params: Record<string, string>;
}

export interface IdTokenTamper {
  nonce?: string;
  sub?: string;
  iss?: string;
  aud?: string;
  /** Sign with a key that is not the OP's (same kid): a forged token. */
  foreignKey?: boolean;
}

export interface UpstreamOp {
  readonly issuer: string;
  readonly origin: string;
  /** Every request as `METHOD /path?query`, in arrival order. */
  readonly requests: string[];
  /** Client secrets the Apple shim accepted (ES256 JWTs), for assertions. */
  readonly appleSecrets: string[];
  /** The authorization request parameters of each login, as the OP parsed them (acr_values, prompt, ...). */
  readonly authorizations: Record<string, unknown>[];
  /** Hold every response this long (beyond a connector's timeout). */
  delayMs: number;
  /** Re-sign ID tokens in token responses with these claims changed (validly signed, wrong). */
  tamper: IdTokenTamper | undefined;
  /** Close the listener and every connection (connections are refused), or listen again. */
  setDown(down: boolean): Promise<void>;
  /** The upstream revokes every grant of the user, with their tokens. Returns how many grants. */
  revokeGrants(userId: string): Promise<number>;
  /** Drive the login (or the cancel button) over HTTP from an authorization URL to the callback. */
  authorize(location: string, input: { username: string; password: string } | { cancel: true }): Promise<UpstreamReturn>;
  close(): Promise<void>;
}

const DEFAULT_SCOPE_CLAIMS: Record<string, string[]> = {
  // amr, acr: how the login authenticated, which oidc-provider releases only when listed (acr
  // otherwise only when the client asks for it); real upstreams always send them.
  openid: ['sub', 'amr', 'acr', 'tid', 'hd', 'groups'],
  profile: ['name', 'given_name', 'family_name', 'preferred_username', 'nickname', 'picture'],
  email: ['email', 'email_verified'],
  groups: ['groups'],
};

/** Apple's fixed client secret audience. */
const APPLE_AUDIENCE = 'https://appleid.apple.com';

interface Stored {
  model: string;
  payload: AdapterPayload;
  expiresAt: number | undefined;
}

/** oidc-provider storage private to one fixture, so grants can be listed by user. */
function memoryAdapter(store: Map<string, Stored>) {
  return (model: string): Adapter => {
    const key = (id: string) => `${model}:${id}`;
    const live = (id: string): Stored | undefined => {
      const entry = store.get(key(id));
      if (entry?.expiresAt !== undefined && entry.expiresAt < Date.now()) {
        store.delete(key(id));
        return undefined;
      }
      return entry;
    };
    const findBy = (field: 'uid' | 'userCode', value: string) => {
      for (const [k, entry] of store) if (entry.model === model && entry.payload[field] === value) return live(k.slice(model.length + 1))?.payload;
      return undefined;
    };
    return {
      async upsert(id, payload, expiresIn) {
        store.set(key(id), { model, payload: structuredClone(payload), expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : undefined });
      },
      async find(id) {
        return live(id)?.payload;
      },
      async findByUid(uid) {
        return findBy('uid', uid);
      },
      async findByUserCode(userCode) {
        return findBy('userCode', userCode);
      },
      async consume(id) {
        const entry = live(id);
        if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
      },
      async destroy(id) {
        store.delete(key(id));
      },
      async revokeByGrantId(grantId) {
        for (const [k, entry] of store) if (entry.payload.grantId === grantId) store.delete(k);
      },
    };
  };
}

function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

function loginPage(action: string, clientId: string, error?: string): string {
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Upstream sign-in</title></head>
<body>
  <h1>Sign in to continue to ${escapeHtml(clientId)}</h1>
  ${error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : ''}
  <form method="post" action="${escapeHtml(action)}/login">
    <label>Username <input name="username" autocomplete="username" autofocus></label>
    <label>Password <input name="password" type="password" autocomplete="current-password"></label>
    <button type="submit">Sign in</button>
  </form>
  <form method="post" action="${escapeHtml(action)}/abort">
    <button type="submit">Cancel</button>
  </form>
</body></html>`;
}

async function readForm(req: http.IncomingMessage): Promise<Record<string, string>> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify(body));
}

export async function startUpstreamOp(options: UpstreamOpOptions): Promise<UpstreamOp> {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const prefix = (options.issuerPath ?? '').replace(/\/+$/, '');
  const issuer = `${origin}${prefix}`;
  const users = new Map(options.users.map((u) => [u.id, u]));
  const overage = new Set(options.overageFor ?? []);
  const store = new Map<string, Stored>();
  const requests: string[] = [];
  const appleSecrets: string[] = [];
  const authorizations: Record<string, unknown>[] = [];
  /** Apple sends the `user` parameter only on a user's first authorization of an app. */
  const appleNamed = new Set<string>();

  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const signingJwk: JWK = { ...(await exportJWK(privateKey)), kid: randomUUID(), alg: 'RS256', use: 'sig' };

  const provider = new Provider(issuer, {
    adapter: memoryAdapter(store),
    clients: options.clients,
    jwks: { keys: [signingJwk] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    scopes: ['openid', 'offline_access', 'profile', 'email', 'groups', 'name'],
    ...(options.acrValues && { acrValues: options.acrValues }),
    claims: { ...DEFAULT_SCOPE_CLAIMS, ...options.scopeClaims },
    conformIdTokenClaims: !options.claimsInIdToken,
    features: { devInteractions: { enabled: false } },
    pkce: { required: () => true },
    ttl: { AccessToken: 3600, AuthorizationCode: 60, IdToken: 3600, RefreshToken: 86_400, Grant: 86_400, Session: 86_400, Interaction: 600 },
    interactions: { url: (_ctx, interaction) => `${prefix}/interaction/${interaction.uid}` },
    async findAccount(_ctx, id) {
      const user = users.get(id);
      if (!user) return undefined;
      return {
        accountId: id,
        async claims() {
          const claims: Record<string, unknown> = { ...user.claims, sub: id };
          if (overage.has(id)) {
            // Entra's overage shape: the groups claim is replaced by a pointer to where they are.
            delete claims.groups;
            claims._claim_names = { groups: 'src1' };
            claims._claim_sources = { src1: { endpoint: `${origin}/v1.0/users/${id}/getMemberObjects` } };
          }
          return claims as { sub: string };
        },
      };
    },
    // Consent is implied: every requested scope and claim is granted without a screen.
    async loadExistingGrant(ctx: KoaContextWithOIDC) {
      const { Grant } = ctx.oidc.provider;
      const clientId = ctx.oidc.client!.clientId;
      const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session!.grantIdFor(clientId);
      const grant = (grantId ? await Grant.find(grantId) : undefined) ?? new Grant({ clientId, accountId: ctx.oidc.session!.accountId });
      grant.addOIDCScope(ctx.oidc.requestParamScopes);
      grant.addOIDCClaims(ctx.oidc.requestParamClaims);
      await grant.save();
      return grant;
    },
    // Like Google: a client allowed the refresh_token grant gets one, offline_access or not.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    // Every use rotates, so a second use of an old refresh token is reuse and revokes the grant.
    rotateRefreshToken: true,
    async renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = `<!DOCTYPE html><html><body><h1>${escapeHtml(out.error)}</h1><p>${escapeHtml(out.error_description ?? '')}</p></body></html>`;
    },
  });

  let tamper: IdTokenTamper | undefined;
  const signingKey = await importJWK(signingJwk, 'RS256');
  provider.use(async (ctx, next) => {
    await next();
    const body = ctx.body as Record<string, unknown> | string | undefined;
    if (tamper && ctx.oidc?.route === 'token' && ctx.status === 200 && typeof body === 'object' && typeof body?.id_token === 'string') {
      const { foreignKey, ...changed } = tamper;
      const claims = { ...decodeJwt(body.id_token), ...changed };
      const header = decodeProtectedHeader(body.id_token);
      const key = foreignKey ? (await generateKeyPair('RS256')).privateKey : signingKey;
      const idToken = await new CompactSign(new TextEncoder().encode(JSON.stringify(claims))).setProtectedHeader({ alg: 'RS256', kid: header.kid }).sign(key);
      ctx.body = { ...body, id_token: idToken };
    }
    // Apple posts a `user` JSON (name, email) beside the code on the first authorization only;
    // oidc-provider's form_post page has no hook for extra parameters, so it is added here.
    const apple = options.apple;
    if (apple && typeof body === 'string' && ctx.oidc?.client?.clientId === apple.clientId && /name="code"/.test(body)) {
      const accountId = ctx.oidc.session?.accountId;
      const user = accountId ? users.get(accountId) : undefined;
      if (user && !appleNamed.has(user.id)) {
        appleNamed.add(user.id);
        const value = JSON.stringify({ name: { firstName: user.claims.given_name, lastName: user.claims.family_name }, email: user.claims.email });
        ctx.body = body.replace('<noscript>', `<input type="hidden" name="user" value="${escapeHtml(value)}"/>\n    <noscript>`);
      }
    }
  });

  if (options.apple) {
    // The Apple shim: the client secret is an ES256 JWT signed by the team's key, checked here;
    // when it verifies, the registered secret stands in for it.
    const apple = options.apple;
    const proto = provider.Client.prototype as unknown as { compareClientSecret(this: { clientId: string; clientSecret: string }, actual: string): Promise<boolean> | boolean };
    const compare = proto.compareClientSecret;
    proto.compareClientSecret = async function (actual) {
      if (this.clientId !== apple.clientId) return compare.call(this, actual);
      try {
        const { payload, protectedHeader } = await jwtVerify(actual, apple.publicKey, { algorithms: ['ES256'], issuer: apple.teamId, subject: apple.clientId, audience: APPLE_AUDIENCE });
        if (protectedHeader.kid !== apple.keyId) return false;
        if (typeof payload.iat !== 'number' || typeof payload.exp !== 'number' || payload.exp - payload.iat > 15_777_000) return false;
      } catch {
        return false;
      }
      appleSecrets.push(actual);
      return compare.call(this, this.clientSecret);
    };
  }

  const providerCallback = provider.callback();
  const pending = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();
  let delayMs = 0;
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const entry = { timer: setTimeout(() => (pending.delete(entry), resolve()), ms), resolve };
      pending.add(entry);
    });

  async function interaction(req: http.IncomingMessage, res: http.ServerResponse, action: string): Promise<void> {
    const details = await provider.interactionDetails(req, res);
    const base = `${prefix}/interaction/${details.uid}`;
    if (req.method === 'GET' && action === '') {
      authorizations.push({ ...details.params });
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(loginPage(base, String(details.params.client_id)));
      return;
    }
    if (req.method === 'POST' && action === '/abort') {
      await provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'End-User aborted interaction' }, { mergeWithLastSubmission: false });
      return;
    }
    if (req.method === 'POST' && action === '/login') {
      const form = await readForm(req);
      const user = [...users.values()].find((u) => u.username === form.username);
      if (!user || user.password !== form.password) {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end(loginPage(base, String(details.params.client_id), 'Wrong username or password.'));
        return;
      }
      const { amr = ['pwd'], acr } = user.authentication ?? {};
      await provider.interactionFinished(req, res, { login: { accountId: user.id, amr: amr as string[], ...(acr !== undefined && { acr }) } }, { mergeWithLastSubmission: false });
      return;
    }
    res.writeHead(404).end();
  }

  /** A stand-in for Microsoft Graph's getMemberObjects, authenticating the OP's own access tokens. */
  async function graphMemberObjects(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const token = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const accessToken = token ? await provider.AccessToken.find(token) : undefined;
    const user = accessToken?.accountId ? users.get(accessToken.accountId) : undefined;
    if (!user) {
      sendJson(res, 401, { error: { code: 'InvalidAuthenticationToken', message: 'Access token is empty or invalid.' } }, { 'www-authenticate': 'Bearer error="invalid_token"' });
      return;
    }
    req.resume();
    const groups = Array.isArray(user.claims.groups) ? user.claims.groups : [];
    sendJson(res, 200, { '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#Collection(Edm.String)', value: groups });
  }

  /** Entra's multi-tenant discovery: the tenant's metadata with a `{tenantid}` issuer template. */
  async function tenantTemplateDiscovery(res: http.ServerResponse): Promise<void> {
    const metadata = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    const [, , ...rest] = prefix.split('/');
    metadata.issuer = `${origin}/{tenantid}${rest.length ? `/${rest.join('/')}` : ''}`;
    // Entra does not send RFC 9207's `iss` authorization response parameter.
    delete metadata.authorization_response_iss_parameter_supported;
    sendJson(res, 200, metadata);
  }

  const server = http.createServer(async (req, res) => {
    const url = req.url ?? '/';
    requests.push(`${req.method} ${url}`);
    if (delayMs > 0) await sleep(delayMs);
    if (res.destroyed) return;
    const path = url.split('?')[0];
    try {
      if (req.method === 'GET' && /^\/(organizations|common)\/v2\.0\/\.well-known\/openid-configuration$/.test(path)) return await tenantTemplateDiscovery(res);
      if (req.method === 'POST' && path === '/v1.0/me/getMemberObjects') return await graphMemberObjects(req, res);
      const interactionPath = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/interaction/[^/]+(/login|/abort)?$`).exec(path);
      if (interactionPath) return await interaction(req, res, interactionPath[1] ?? '');
      if (prefix && !(path === prefix || path.startsWith(`${prefix}/`))) {
        res.writeHead(404).end();
        return;
      }
      // Mounted the way express mounts it: oidc-provider derives its mount path from originalUrl.
      (req as http.IncomingMessage & { originalUrl?: string }).originalUrl = url;
      req.url = url.slice(prefix.length) || '/';
      await providerCallback(req, res);
    } catch (err) {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String((err as Error).message));
    }
  });

  const listen = () => new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', () => (server.off('error', reject), resolve())));
  const stop = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  await listen();
  let down = false;

  return {
    issuer,
    origin,
    requests,
    appleSecrets,
    authorizations,
    get delayMs() {
      return delayMs;
    },
    set delayMs(ms: number) {
      delayMs = ms;
    },
    get tamper() {
      return tamper;
    },
    set tamper(t: IdTokenTamper | undefined) {
      tamper = t;
    },
    async setDown(value) {
      if (value === down) return;
      down = value;
      await (value ? stop() : listen());
    },
    async revokeGrants(userId) {
      const grantIds = [...store.values()].filter((e) => e.model === 'Grant' && e.payload.accountId === userId).map((e) => e.payload.jti!);
      for (const grantId of grantIds) {
        for (const [k, entry] of store) if (entry.payload.grantId === grantId || (entry.model === 'Grant' && entry.payload.jti === grantId)) store.delete(k);
      }
      return grantIds.length;
    },
    async authorize(location, input) {
      if (!location.startsWith(origin)) throw new Error(`${location} is not on the upstream ${origin}`);
      const browser = new Browser(origin);
      let page = await browser.go(location);
      if (page.url.startsWith(origin) && findForm(page.html, '/login')) {
        page = 'cancel' in input ? await browser.submit(page, '/abort') : await browser.submit(page, '/login', { username: input.username, password: input.password });
        const error = /<p class="error"[^>]*>([^<]*)</.exec(page.html)?.[1];
        if (page.url.startsWith(origin) && error) throw new Error(`upstream login refused: ${error}`);
      }
      if (!page.url.startsWith(origin)) return { method: 'GET', url: page.url, params: Object.fromEntries(new URL(page.url).searchParams) };
      const formPost = /<form method="post" action="([^"]*)"/.exec(page.html);
      const form = formPost ? findForm(page.html, formPost[1].replace(/&amp;/g, '&')) : null;
      if (form && !new URL(form.action, page.url).href.startsWith(origin)) return { method: 'POST', url: form.action, params: form.hidden };
      throw new Error(`upstream stopped at ${page.url} (${page.status}): ${page.html.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').slice(0, 300)}`);
    },
    async close() {
      for (const entry of pending) {
        clearTimeout(entry.timer);
        entry.resolve();
      }
      if (!down) await stop();
      down = true;
    },
  };
}
