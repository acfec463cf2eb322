// passport-oauth2's StateStore, backed by the broker's attempt instead of a session: the state
// is the broker's own handle, and the PKCE verifier travels in the attempt's server-side
// context. passport-oauth2 picks the call shape by arity (see its lib/strategy.js), so the
// parameter lists below are load-bearing.

/** What one start or callback leg knows about its attempt; the fake request carries it. */
export interface AttemptHandle {
  state: string;
  /** Filled by store() on start, read by verify() on callback. */
  context: Record<string, unknown>;
}

type StoreCallback = (err: Error | null, state?: string) => void;
type VerifyCallback = (err: Error | null, ok?: boolean | string, info?: unknown) => void;

export function createBrokerStateStore(attemptOf: (req: object) => AttemptHandle | undefined) {
  return {
    store(req: object, verifier: string | undefined, _state: unknown, _meta: unknown, done: StoreCallback): void {
      const attempt = attemptOf(req);
      if (!attempt) return done(new Error('no broker attempt on this request'));
      if (verifier) attempt.context.codeVerifier = verifier;
      done(null, attempt.state);
    },
    verify(req: object, providedState: string | undefined, done: VerifyCallback): void {
      const attempt = attemptOf(req);
      if (!attempt || !providedState || providedState !== attempt.state) {
        return done(null, false, { message: 'state does not match the attempt' });
      }
      // A string tells passport-oauth2 to send it as code_verifier.
      const verifier = attempt.context.codeVerifier;
      done(null, typeof verifier === 'string' ? verifier : true);
    },
  };
}
