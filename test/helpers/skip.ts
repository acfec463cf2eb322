import type { TestContext } from 'node:test';

/** Skips with a banner nobody can miss; CI (CI=true) fails any run that skipped. */
export function skipLoudly(t: TestContext, reason: string): void {
  process.stderr.write(`\n*** SKIP: ${reason} ***\n`);
  t.skip(reason);
}
