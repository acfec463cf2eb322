// What the bridge's verify callback hands to passport as "the user": the strategy's profile
// and tokens, read from whatever arguments the strategy passed. Strategies pick the argument
// list by the callback's arity, and each family has its own, so they are read generically.
import type { UpstreamTokens } from '../../src/connectors/contract.ts';

export interface VerifiedUser {
  readonly keybridgeVerified: true;
  profile: Record<string, unknown>;
  tokens?: UpstreamTokens;
}

type Done = (err: unknown, user?: unknown, info?: unknown) => void;

const isObject = (v: unknown): v is Record<string, unknown> => Boolean(v) && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Error);
const looksLikeProfile = (v: Record<string, unknown>) => 'provider' in v || '_json' in v || ('id' in v && !('access_token' in v));
const looksLikeTokenResponse = (v: Record<string, unknown>) => 'access_token' in v || 'token_type' in v || 'expires_in' in v;

/** OAuth 2.0 tokens: `(accessToken, refreshToken, params?, ...)` with params being the token response. */
function tokensFrom(args: unknown[], oauth2: boolean): UpstreamTokens | undefined {
  if (!oauth2 || typeof args[0] !== 'string' || !args[0]) return undefined;
  const tokens: UpstreamTokens = { accessToken: args[0] };
  if (typeof args[1] === 'string' && args[1]) tokens.refreshToken = args[1];
  const params = args.find((a): a is Record<string, unknown> => isObject(a) && looksLikeTokenResponse(a));
  if (params) {
    if (typeof params.id_token === 'string') tokens.idToken = params.id_token;
    if (typeof params.scope === 'string' && params.scope) tokens.scope = params.scope;
    const expiresIn = Number(params.expires_in);
    if (Number.isFinite(expiresIn) && expiresIn > 0) tokens.expiresAt = Math.floor(Date.now() / 1000) + Math.floor(expiresIn);
  }
  return tokens;
}

/**
 * The verify callback for the Strategy constructor. `isOAuth2()` says whether the leading
 * arguments are OAuth 2.0 tokens (known once the strategy exists); `arity` is what the function
 * declares, as strategies read `verify.length`.
 */
export function createVerify(arity: number, isOAuth2: () => boolean): (...args: unknown[]) => void {
  const verify = (...args: unknown[]): void => {
    const doneIndex = args.findLastIndex((a) => typeof a === 'function');
    if (doneIndex < 0) throw new Error('the strategy called verify without a callback');
    const done = args[doneIndex] as Done;
    const before = args.slice(0, doneIndex);
    const objects = before.filter(isObject);
    const profile = objects.find(looksLikeProfile) ?? objects.filter((o) => !looksLikeTokenResponse(o)).at(-1);
    if (!profile) return done(null, false, { message: 'the strategy gave no profile' });
    const user: VerifiedUser = { keybridgeVerified: true, profile, tokens: tokensFrom(before, isOAuth2()) };
    done(null, user);
  };
  // The declared arity is what strategies dispatch on; a rest-parameter function declares 0.
  Object.defineProperty(verify, 'length', { value: arity });
  return verify;
}

export function isVerifiedUser(user: unknown): user is VerifiedUser {
  return isObject(user) && user.keybridgeVerified === true && isObject(user.profile);
}
