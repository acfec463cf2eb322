// Per-request adjustments for passport-oauth2 strategies, so a token-endpoint failure keeps the
// facts the bridge sorts errors by. Applied to the per-request object only, never the strategy.

type TokenCallback = (err: unknown, accessToken?: string, refreshToken?: string, results?: Record<string, unknown>) => void;

interface OAuth2Client {
  getOAuthAccessToken(code: string, params: Record<string, unknown>, callback: TokenCallback): void;
}

interface OAuth2StrategyShape {
  _oauth2?: OAuth2Client;
  _createOAuthError?(message: string, err: unknown): unknown;
}

export function applyOAuth2Quirks(action: Record<string, unknown>, strategy: object): void {
  const { _oauth2: client, _createOAuthError: createOAuthError } = strategy as OAuth2StrategyShape;
  if (typeof createOAuthError === 'function') {
    // passport-oauth2 turns an HTTP error from the token endpoint into a TokenError whose
    // `status` is its own default, not the HTTP status; keep the real one so a 5xx reads as
    // "unavailable" and a 4xx as "the upstream said no".
    action._createOAuthError = function (this: object, message: string, err: unknown) {
      const created = createOAuthError.call(this, message, err);
      const httpStatus = (err as { statusCode?: unknown } | null)?.statusCode;
      if (created && typeof created === 'object' && typeof httpStatus === 'number') (created as { httpStatus?: number }).httpStatus = httpStatus;
      return created;
    };
  }
  if (client && typeof client.getOAuthAccessToken === 'function') {
    // GitHub (and others) answer a bad code with HTTP 200 and an OAuth error body, which
    // passport-oauth2 reports only as "Failed to obtain access token"; route it through its
    // error parsing instead, so the upstream's error code reaches the log.
    const wrapped = Object.create(client) as OAuth2Client;
    wrapped.getOAuthAccessToken = (code, params, callback) =>
      client.getOAuthAccessToken.call(wrapped, code, params, (err, accessToken, refreshToken, results) => {
        if (!err && !accessToken && typeof results?.error === 'string') return callback({ statusCode: 200, data: JSON.stringify(results) });
        callback(err, accessToken, refreshToken, results);
      });
    action._oauth2 = wrapped;
  }
}
