// Talks to a test broker's admin API the way a script would, and checks every response it gets
// against the broker's own OpenAPI document (status documented, content type, body schema), so
// the document cannot drift from what the code answers.
import assert from 'node:assert/strict';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import * as oidc from 'openid-client';
import { Browser } from './browser.ts';
import { signIn } from './login-flow.ts';
import { STORES } from './suite-database.ts';

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;

export const ADMIN_PREFIX = '/admin/api/v1';

/** The stores every admin suite runs on: a fresh database of each, or why it cannot run here. */
export const ADMIN_STORES = STORES;

/** A config client that may use the admin API (client_credentials with admin scopes). */
export function adminClientConfig(id = 'ops', scopes = ['admin:read', 'admin:write']): Record<string, unknown> {
  return { id, secret: `${id}-secret-0123456789abcdef`, grantTypes: ['client_credentials'], scopes };
}

/** A client_credentials access token for a config client made by adminClientConfig. */
export async function clientToken(issuer: string, id: string, scope: string): Promise<string> {
  const res = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${id}:${id}-secret-0123456789abcdef`).toString('base64')}` },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope }),
  });
  const body = (await res.json()) as { access_token?: string; error?: string; error_description?: string };
  assert.equal(res.status, 200, `token request failed: ${JSON.stringify(body)}`);
  return body.access_token!;
}

export const CONSOLE_REDIRECT = 'http://127.0.0.1:9/admin/callback';

/** The admin console's client as config declares it in tests (public, code + PKCE). */
export function consoleClientConfig(id = 'keybridge-admin-console'): Record<string, unknown> {
  return { id, redirectUris: [CONSOLE_REDIRECT], firstParty: true };
}

/** A user's access token for a public client, through the real login pages (code + PKCE). */
export async function userToken(issuer: string, clientId: string, username: string, password: string): Promise<string> {
  const rp = await oidc.discovery(new URL(issuer), clientId, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
  const verifier = oidc.randomPKCECodeVerifier();
  const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: CONSOLE_REDIRECT, scope: 'openid profile', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state: 'st' });
  const callback = await signIn(new Browser(issuer), url.href, { username, password });
  const tokens = await oidc.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier, expectedState: 'st' });
  return tokens.access_token;
}

export interface AdminResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

type Json = Record<string, any>;

function inlineRefs(value: unknown, components: Json): unknown {
  if (Array.isArray(value)) return value.map((v) => inlineRefs(v, components));
  if (value && typeof value === 'object') {
    const ref = (value as Json).$ref;
    if (typeof ref === 'string' && ref.startsWith('#/components/schemas/')) return inlineRefs(components[ref.slice('#/components/schemas/'.length)], components);
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, inlineRefs(v, components)]));
  }
  return value;
}

export class AdminApiClient {
  readonly issuer: string;
  token: string | undefined;
  #document: Json | undefined;
  readonly #ajv = addFormats(new Ajv2020({ strict: false, allErrors: true }));
  readonly #validators = new Map<string, ReturnType<Ajv2020['compile']>>();
  /** Operations and statuses checked against the document (`GET /users/{id} 200`). */
  readonly checked = new Set<string>();

  constructor(issuer: string, token?: string) {
    this.issuer = issuer;
    this.token = token;
  }

  async document(): Promise<Json> {
    if (!this.#document) {
      const res = await fetch(`${this.issuer}${ADMIN_PREFIX}/openapi.json`);
      assert.equal(res.status, 200);
      this.#document = (await res.json()) as Json;
    }
    return this.#document;
  }

  /** Sends a request; `path` is below /admin/api/v1. Every response is checked against the document. */
  async request<T = any>(method: string, path: string, options: { body?: unknown; rawBody?: string; token?: string | null; headers?: Record<string, string> } = {}): Promise<AdminResponse<T>> {
    const token = options.token === null ? undefined : (options.token ?? this.token);
    const headers: Record<string, string> = { ...(token ? { authorization: `Bearer ${token}` } : {}), ...options.headers };
    let body: string | undefined = options.rawBody;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] ??= 'application/json';
    }
    const res = await fetch(`${this.issuer}${ADMIN_PREFIX}${path}`, { method, headers, body });
    const text = await res.text();
    const type = res.headers.get('content-type') ?? '';
    const parsed = type.includes('json') && !/jsonl|ndjson/.test(type) && text ? JSON.parse(text) : text;
    await this.#check(method, path, res.status, type, parsed);
    return { status: res.status, headers: res.headers, body: parsed as T, text };
  }

  get = <T = any>(path: string, options?: Parameters<AdminApiClient['request']>[2]) => this.request<T>('GET', path, options);
  post = <T = any>(path: string, body?: unknown, options?: Parameters<AdminApiClient['request']>[2]) => this.request<T>('POST', path, { ...options, body });
  patch = <T = any>(path: string, body?: unknown, options?: Parameters<AdminApiClient['request']>[2]) => this.request<T>('PATCH', path, { ...options, body });
  put = <T = any>(path: string, body?: unknown, options?: Parameters<AdminApiClient['request']>[2]) => this.request<T>('PUT', path, { ...options, body });
  delete = <T = any>(path: string, options?: Parameters<AdminApiClient['request']>[2]) => this.request<T>('DELETE', path, options);

  async #check(method: string, path: string, status: number, type: string, body: unknown): Promise<void> {
    const doc = await this.document();
    const pathname = new URL(`http://x${ADMIN_PREFIX}${path}`).pathname;
    const templates = Object.keys(doc.paths).filter((t) => new RegExp(`^${t.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[A-Za-z]+\}/g, '[^/]+')}$`).test(pathname));
    // `/users/{id}/mfa/reset` (POST) and `/users/{id}/mfa/{factorId}` (DELETE) both match a path: the method decides.
    const template = templates.find((t) => doc.paths[t][method.toLowerCase()]) ?? templates[0];
    if (!template) {
      // Unknown endpoints answer a problem; nothing else may exist outside the document.
      assert.ok(status === 401 || status === 404 || status === 429, `${method} ${pathname} answered ${status} but is not in the OpenAPI document`);
      return;
    }
    const operation = doc.paths[template][method.toLowerCase()];
    if (!operation) {
      assert.ok([401, 405, 429].includes(status), `${method} ${template} answered ${status} but the document has no such operation`);
      return;
    }
    const spec = operation.responses[String(status)];
    assert.ok(spec, `${method} ${template} answered ${status}, which the document does not list (${Object.keys(operation.responses).join(', ')})`);
    this.checked.add(`${method} ${template} ${status}`);
    if (!spec.content) {
      assert.ok(!body, `${method} ${template} ${status} has no body in the document but answered one`);
      return;
    }
    const media = Object.entries(spec.content as Json).find(([listed]) => type.startsWith(listed))?.[1] as Json | undefined;
    assert.ok(media, `${method} ${template} ${status}: content type ${type}, document says ${Object.keys(spec.content).join(' or ')}`);
    const key = `${method} ${template} ${status} ${type}`;
    let validator = this.#validators.get(key);
    if (!validator) {
      validator = this.#ajv.compile(inlineRefs(media.schema, doc.components.schemas) as Json);
      this.#validators.set(key, validator);
    }
    assert.ok(validator(body), `${key}: the body does not match the document: ${JSON.stringify(validator.errors?.slice(0, 5))}\n${JSON.stringify(body).slice(0, 500)}`);
  }
}
