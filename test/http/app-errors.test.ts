// What reaches Koa's `error` event goes through the logger, never Koa's printing to stderr: a
// client that hung up is a debug line, an error meant for the client nothing, anything else one
// error line with its stack.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { pino } from 'pino';
import { isClientGone, reportAppErrors } from '../../src/http/app-errors.ts';

test('the client hanging up is a debug line; a client error nothing; a bug one error line', () => {
  const lines: Array<{ level: number; msg: string; path?: string; err?: { message: string } }> = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const app = new EventEmitter();
  reportAppErrors(app, logger);
  const ctx = { path: '/password/reset/secret-token' } as never;
  for (const err of [Object.assign(new Error('aborted'), { code: 'ECONNRESET' }), Object.assign(new Error('Parse Error'), { code: 'HPE_INVALID_EOF_STATE' }), Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' })]) {
    app.emit('error', err, ctx);
  }
  assert.deepEqual(lines.map((l) => [l.level, l.path]), [[20, '/password/reset/<redacted>'], [20, '/password/reset/<redacted>'], [20, '/password/reset/<redacted>']]);
  lines.length = 0;
  app.emit('error', Object.assign(new Error('bad request'), { status: 400, expose: true }), ctx);
  assert.equal(lines.length, 0, 'an error meant for the client is not ours to report');
  app.emit('error', new Error('boom'), ctx);
  assert.equal(lines.length, 1);
  assert.equal(lines[0]!.level, 50);
  assert.equal(lines[0]!.err?.message, 'boom');
  // Without a listener Koa prints; with ours registered, Koa sees one and leaves it to us.
  assert.equal(app.listenerCount('error'), 1);
});

test('isClientGone: connection ends and parser failures, not other errors', () => {
  assert.equal(isClientGone(Object.assign(new Error('x'), { code: 'EPIPE' })), true);
  assert.equal(isClientGone(new Error('aborted')), true);
  assert.equal(isClientGone(Object.assign(new Error('x'), { code: 'ECONNREFUSED' })), false, 'a refused connection is ours (the database), not the client');
  assert.equal(isClientGone(new Error('boom')), false);
  assert.equal(isClientGone(undefined), false);
});
