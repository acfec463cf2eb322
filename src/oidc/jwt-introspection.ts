// Introspection of Keybridge's own RFC 9068 JWT access tokens (resource tokens). oidc-provider
// stores no record of a JWT access token, so its introspection endpoint answers
// `unsupported_token_type` for one; an API that only knows how to introspect would then treat a
// valid token as an error. After oidc-provider authenticated the caller, this answers from our
// own verification instead: signature against the broker's published keys, issuer, typ at+jwt,
// expiry. Who may learn about a token is oidc-provider's default rule for its own tokens: any
// authenticated confidential client, and a public client only for its own tokens.
//
// Such a token cannot be revoked (revocation still answers unsupported_token_type) and stays
// active after logout until it expires; hence the short default lifetime
// (tokens.resourceAccessToken, 5 minutes).
import type { Middleware } from 'koa';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet, type JWK } from 'jose';

// Public members only: jose refuses to verify with a private key object.
const PUBLIC_MEMBERS = ['kty', 'kid', 'alg', 'use', 'crv', 'x', 'y', 'n', 'e'] as const;

function publicKeys(jwks: { keys: Record<string, unknown>[] }): JSONWebKeySet {
  return { keys: jwks.keys.map((k) => Object.fromEntries(PUBLIC_MEMBERS.filter((m) => k[m] !== undefined).map((m) => [m, k[m]])) as JWK) };
}

const isJwt = (token: unknown): token is string => {
  // An opaque token has no dots: no header to decode (and no exception to build for it).
  if (typeof token !== 'string' || token.split('.', 4).length !== 3) return false;
  try {
    return Boolean(decodeProtectedHeader(token));
  } catch {
    return false;
  }
};

export function jwtIntrospection(options: { issuer: string; jwks: { keys: Record<string, unknown>[] } }): Middleware {
  const keys = createLocalJWKSet(publicKeys(options.jwks));
  return async function introspectJwt(koaCtx, next) {
    await next();
    const ctx = koaCtx as unknown as KoaContextWithOIDC;
    if (ctx.oidc?.route !== 'introspection' || (ctx.body as { error?: string } | undefined)?.error !== 'unsupported_token_type') return;
    const client = ctx.oidc.client;
    const token = (ctx.oidc.params as { token?: unknown } | undefined)?.token;
    // The caller must have authenticated (oidc-provider's client auth ran before the refusal).
    if (!client || !isJwt(token)) return;

    let claims;
    try {
      ({ payload: claims } = await jwtVerify(token, keys, { issuer: options.issuer, typ: 'at+jwt' }));
    } catch {
      claims = null;
    }
    const tokenClient = typeof claims?.client_id === 'string' ? claims.client_id : undefined;
    const allowed = claims && tokenClient && (client.clientAuthMethod !== 'none' || tokenClient === client.clientId);
    ctx.status = 200;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = !allowed
      ? { active: false }
      : {
          active: true,
          client_id: tokenClient,
          ...(typeof claims!.sub === 'string' ? { sub: claims!.sub } : {}),
          aud: claims!.aud,
          exp: claims!.exp,
          iat: claims!.iat,
          iss: claims!.iss,
          jti: claims!.jti,
          ...(typeof claims!.scope === 'string' && claims!.scope ? { scope: claims!.scope } : {}),
          token_type: 'Bearer',
        };
  };
}
