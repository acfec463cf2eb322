// Runs one passport strategy.authenticate() call without passport or a web framework, the way
// passport's own middleware does: a per-request object inheriting from the strategy, with the
// action methods the strategy ends in (redirect, success, fail, error, pass) attached.

export type StrategyOutcome =
  | { kind: 'redirect'; url: string }
  | { kind: 'success'; user: unknown; info?: unknown }
  | { kind: 'fail'; challenge?: unknown; status?: number }
  | { kind: 'error'; error: unknown }
  | { kind: 'pass' };

/**
 * The first action the strategy takes, or a rejection after `timeoutMs` (late actions are
 * ignored). `prepare` may adjust the per-request object before authenticate() runs.
 */
export function runStrategy(strategy: object, req: object, options: Record<string, unknown>, timeoutMs: number, prepare?: (action: Record<string, unknown>) => void): Promise<StrategyOutcome> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => finish(() => reject(new Error(`the strategy did not finish within ${timeoutMs} ms`))), timeoutMs);
    function finish(settle: () => void) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      settle();
    }
    const action = Object.create(strategy) as Record<string, unknown> & { authenticate(req: object, options: object): void };
    action.redirect = (url: string) => finish(() => resolve({ kind: 'redirect', url }));
    action.success = (user: unknown, info?: unknown) => finish(() => resolve({ kind: 'success', user, info }));
    action.fail = (challenge?: unknown, status?: number) =>
      finish(() => resolve(typeof challenge === 'number' ? { kind: 'fail', status: challenge } : { kind: 'fail', challenge, status }));
    action.error = (error: unknown) => finish(() => resolve({ kind: 'error', error }));
    action.pass = () => finish(() => resolve({ kind: 'pass' }));
    prepare?.(action);
    try {
      action.authenticate(req, options);
    } catch (err) {
      finish(() => resolve({ kind: 'error', error: err }));
    }
  });
}
