// Paths that carry a secret (a mailed link's token, the account console's link state) are
// redacted before they are logged or audited; other paths are kept (and bounded).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loggablePath } from '../../src/http/loggable-path.ts';

test('mailed link tokens and link states are redacted; other paths are kept, at most 256 characters', () => {
  assert.equal(loggablePath('/password/reset/FLBRRUmuX9dIhI'), '/password/reset/<redacted>');
  assert.equal(loggablePath('/email/verify/abc_DEF-123'), '/email/verify/<redacted>');
  assert.equal(loggablePath('/account/link/return/state123'), '/account/link/return/<redacted>');
  assert.equal(loggablePath('/password/reset/tok/extra'), '/password/reset/<redacted>/extra');
  assert.equal(loggablePath('/interaction/uid123/login'), '/interaction/uid123/login');
  assert.equal(loggablePath('/account/link/acme'), '/account/link/acme');
  assert.equal(loggablePath(`/x/${'a'.repeat(400)}`).length, 256);
});
