// The token endpoint: code exchange and refresh grant. Copes with the dialects met in the wild:
// GitHub answers form-encoded unless asked for JSON and reports errors with HTTP 200; GitHub
// separates scopes with commas; Bitbucket calls the field `scopes`.
import type { UpstreamTokens } from '../../src/connectors/contract.ts';
import { UpstreamUnavailable, unavailable, upstreamMessage } from './upstream-errors.ts';

export type ClientAuth = 'client_secret_basic' | 'client_secret_post';

export interface TokenEndpointOptions {
  fetch: typeof fetch;
  timeoutMs: number;
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  clientAuth: ClientAuth;
}

/** An OAuth error answer (`error` is the upstream's code); never carries tokens. */
export type TokenResult = { ok: true; tokens: UpstreamTokens } | { ok: false; error: string; description?: string };

export class TokenEndpoint {
  readonly #o: TokenEndpointOptions;

  constructor(options: TokenEndpointOptions) {
    this.#o = options;
  }

  exchangeCode(code: string, redirectUri: string, codeVerifier?: string): Promise<TokenResult> {
    const form: Record<string, string> = { grant_type: 'authorization_code', code, redirect_uri: redirectUri };
    if (codeVerifier) form.code_verifier = codeVerifier;
    return this.#request(form);
  }

  /** A refresh grant; the refresh token is kept when the upstream does not rotate it. */
  async refresh(previous: UpstreamTokens & { refreshToken: string }): Promise<TokenResult> {
    const result = await this.#request({ grant_type: 'refresh_token', refresh_token: previous.refreshToken });
    if (!result.ok) return result;
    return { ok: true, tokens: { ...result.tokens, refreshToken: result.tokens.refreshToken ?? previous.refreshToken, scope: result.tokens.scope ?? previous.scope } };
  }

  async #request(form: Record<string, string>): Promise<TokenResult> {
    const o = this.#o;
    const headers: Record<string, string> = { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded', 'user-agent': 'Keybridge' };
    const body = new URLSearchParams(form);
    if (o.clientAuth === 'client_secret_basic') {
      // RFC 6749 2.3.1: each half is form-urlencoded before the Basic encoding.
      const enc = (s: string) => encodeURIComponent(s).replace(/%20/g, '+');
      headers.authorization = `Basic ${Buffer.from(`${enc(o.clientId)}:${enc(o.clientSecret)}`).toString('base64')}`;
    } else {
      body.set('client_id', o.clientId);
      body.set('client_secret', o.clientSecret);
    }
    let res: Response;
    let text: string;
    try {
      res = await o.fetch(o.tokenUrl, { method: 'POST', headers, body, redirect: 'error', signal: AbortSignal.timeout(o.timeoutMs) });
      text = await res.text();
    } catch (err) {
      throw unavailable('token endpoint', o.timeoutMs, err);
    }
    if (res.status >= 500 || res.status === 429) throw new UpstreamUnavailable(`token endpoint answered HTTP ${res.status}${upstreamMessage(text)}`);
    const answer = parseAnswer(text, res.headers.get('content-type'));
    if (typeof answer?.error === 'string') {
      return { ok: false, error: printable(answer.error, 64), description: typeof answer.error_description === 'string' ? printable(answer.error_description, 160) : undefined };
    }
    if (!res.ok) return { ok: false, error: `http_${res.status}` };
    if (!answer || typeof answer.access_token !== 'string' || !answer.access_token) return { ok: false, error: 'invalid_response', description: 'no access_token in the token response' };
    if (answer.token_type !== undefined && String(answer.token_type).toLowerCase() !== 'bearer') {
      return { ok: false, error: 'invalid_response', description: 'token_type is not bearer' };
    }
    const expiresIn = Number(answer.expires_in);
    const scope = answer.scope ?? answer.scopes;
    return {
      ok: true,
      tokens: {
        accessToken: answer.access_token,
        refreshToken: typeof answer.refresh_token === 'string' && answer.refresh_token ? answer.refresh_token : undefined,
        expiresAt: Number.isFinite(expiresIn) && expiresIn > 0 ? Math.floor(Date.now() / 1000) + Math.floor(expiresIn) : undefined,
        scope: typeof scope === 'string' ? scope.split(/[\s,]+/).filter(Boolean).join(' ') : undefined,
      },
    };
  }
}

/** JSON or form-encoded, whatever the content type claims (GitHub Enterprise proxies relabel). */
function parseAnswer(text: string, contentType: string | null): Record<string, unknown> | undefined {
  const tryJson = () => {
    try {
      const v = JSON.parse(text) as unknown;
      return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
    } catch {
      return undefined;
    }
  };
  const form = () => (/^[^\s{<]*=/.test(text) ? Object.fromEntries(new URLSearchParams(text)) : undefined);
  return /json/i.test(contentType ?? '') ? (tryJson() ?? form()) : (form() ?? tryJson());
}

function printable(s: string, max: number): string {
  return s.replace(/[^\x20-\x7E]/g, '?').slice(0, max);
}
