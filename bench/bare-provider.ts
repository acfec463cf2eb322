// The anchor: bare oidc-provider with its in-memory adapter and the same client, claims and
// token settings as the Keybridge bench config (rotating refresh tokens, RS256 ID tokens,
// opaque access tokens), in its own process. Its login interaction is the least a password
// login can be: a form, then an argon2id verification with Keybridge's parameters (OWASP:
// 19 MiB, t=2, p=1), so both sides of the login comparison are bound by the same hash.
// Usage: node bench/bare-provider.ts <port> <users.json: [{ username, password }]>
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import Provider, { type Configuration } from 'oidc-provider';
import { hash, verify } from '@node-rs/argon2';

const OWASP = { memoryCost: 19456, timeCost: 2, parallelism: 1 } as const;
const port = Number(process.argv[2]);
const usersFile = process.argv[3];
const issuer = `http://127.0.0.1:${port}`;

const users = new Map<string, string>();
const seed = usersFile ? (JSON.parse(readFileSync(usersFile, 'utf8')) as Array<{ username: string; password: string }>) : [];
for (const u of seed) users.set(u.username, await hash(u.password, OWASP));
// Unknown usernames pay a verification too, as in Keybridge's local connector.
const dummyHash = await hash('not-a-password', OWASP);

// oidc-provider's own memory adapter, on a store that keeps every entry until it expires: the
// default store is an LRU of 1,000 entries, which under load drops the tokens the benchmark
// keeps using (introspection would then answer `active: false`, refreshes would fail).
const { default: MemoryAdapter } = (await import('oidc-provider/lib/adapters/memory_adapter.js' as string)) as { default: new (model: string, store: ExpiringStore) => object };
class ExpiringStore {
  readonly #entries = new Map<string, { value: unknown; expiry?: number }>();
  get(key: string): unknown {
    const entry = this.#entries.get(key);
    if (entry?.expiry !== undefined && entry.expiry <= Date.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry?.value;
  }
  set(key: string, value: unknown, options?: { maxAge?: number }): void {
    this.#entries.set(key, { value, expiry: options?.maxAge === undefined ? undefined : Date.now() + options.maxAge });
  }
  delete(key: string): void {
    this.#entries.delete(key);
  }
  sweep(): void {
    const now = Date.now();
    for (const [key, entry] of this.#entries) if (entry.expiry !== undefined && entry.expiry <= now) this.#entries.delete(key);
  }
}
const store = new ExpiringStore();
setInterval(() => store.sweep(), 60_000).unref();

const jwk = (type: 'rsa' | 'ec', alg: string) => {
  const { privateKey } = type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...privateKey.export({ format: 'jwk' }), alg, use: 'sig', kid: alg.toLowerCase() };
};

const configuration: Configuration = {
  adapter: ((model: string) => new MemoryAdapter(model, store)) as unknown as Configuration['adapter'],
  clients: [{
    client_id: 'bench',
    client_secret: 'bench-secret-0123456789abcdef',
    grant_types: ['client_credentials', 'authorization_code', 'refresh_token'],
    redirect_uris: ['http://127.0.0.1:9/cb'],
    response_types: ['code'],
    id_token_signed_response_alg: 'RS256',
  }],
  jwks: { keys: [jwk('rsa', 'RS256'), jwk('ec', 'ES256')] } as Configuration['jwks'],
  cookies: { keys: ['bench-cookie-key-0123456789abcdef'] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], groups: ['groups'] },
  scopes: ['openid', 'offline_access', 'email', 'groups'],
  conformIdTokenClaims: false,
  rotateRefreshToken: true,
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  async findAccount(_ctx, sub) {
    return { accountId: sub, claims: async () => ({ sub, email: `${sub}@example.org`, email_verified: true, groups: ['bench'] }) };
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    userinfo: { enabled: true },
    devInteractions: { enabled: false },
    resourceIndicators: { enabled: true, useGrantedResource: () => true },
  },
  ttl: { ClientCredentials: 3600, AccessToken: 3600, RefreshToken: 14 * 86400, Grant: 14 * 86400, Session: 14 * 86400, Interaction: 3600, AuthorizationCode: 60, IdToken: 3600 },
};
const provider = new Provider(issuer, configuration);
const oidc = provider.callback();

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  let body = '';
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
}

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function interaction(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const details = await provider.interactionDetails(req, res);
  if (req.method === 'GET') {
    res.setHeader('content-type', 'text/html; charset=utf-8');
    res.end(`<!doctype html><title>Sign in</title><form method="post" action="/interaction/${escape(details.uid)}/login">`
      + '<input name="username" autocomplete="username"><input type="password" name="password"><button>Sign in</button></form>');
    return;
  }
  const form = await readForm(req);
  const username = form.get('username') ?? '';
  const stored = users.get(username);
  const ok = (await verify(stored ?? dummyHash, form.get('password') ?? '')) && stored !== undefined;
  if (!ok) {
    res.statusCode = 401;
    res.setHeader('content-type', 'text/html; charset=utf-8');
    res.end('<!doctype html><p>Wrong username or password.</p>');
    return;
  }
  // Login and consent in one step, as Keybridge does for a first-party client.
  const grant = new provider.Grant({ accountId: username, clientId: String(details.params.client_id) });
  grant.addOIDCScope(String(details.params.scope));
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { login: { accountId: username }, consent: { grantId } }, { mergeWithLastSubmission: false });
}

createServer((req, res) => {
  if (req.url?.startsWith('/interaction/')) {
    interaction(req, res).catch((err: Error) => {
      res.statusCode = 400;
      res.end(err.message);
    });
    return;
  }
  oidc(req, res);
}).listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
// A normal exit on SIGTERM, so that --cpu-prof (BENCH_CPU_PROF) writes its profile.
process.on('SIGTERM', () => process.exit(0));
