// The email, registration and passwordReset config sections: every problem named with its path,
// without echoing the value (an SMTP URL holds a password).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config/load-config.ts';
import { ConfigError } from '../../src/errors.ts';

const base = 'issuer: http://127.0.0.1:5556\n';

function problems(yaml: string): Map<string, string> {
  try {
    parseConfig(base + yaml, { env: {} });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return new Map(err.issues.map((i) => [i.path, i.message]));
  }
  throw new Error('expected a ConfigError');
}

test('valid sections parse, with ${ENV} values', () => {
  const config = parseConfig(
    `${base}email: { smtp: "smtps://kb:\${SMTP_PASSWORD}@mail.example.org:465", from: "Keybridge <noreply@example.org>", retry: { maxAttempts: "3" } }\nregistration: { enabled: "true", allowedEmailDomains: [Example.ORG], fields: { username: off, familyName: required } }\npasswordReset: { linkMinutes: 15 }\n`,
    { env: { SMTP_PASSWORD: 's3cret' } },
  );
  assert.equal(config.email.smtp, 'smtps://kb:s3cret@mail.example.org:465');
  assert.equal(config.email.retry.maxAttempts, 3);
  assert.equal(config.registration.enabled, true);
  assert.deepEqual(config.registration.allowedEmailDomains, ['example.org']);
  assert.equal(config.registration.fields.username, 'off');
  assert.equal(config.registration.fields.familyName, 'required');
  assert.equal(config.passwordReset.linkMinutes, 15);
  assert.equal(config.passwordReset.enabled, undefined, 'resolved at start: on when SMTP is set');
  assert.equal(parseConfig(`${base}email: { smtp: "" }\n`, { env: {} }).email.smtp, undefined, 'an empty ${VAR:-} means the log');
});

test('every wrong value is reported with its path, and an SMTP password is never echoed', () => {
  const found = problems(
    'email: { smtp: "http://user:hunter2secret@mail.example.org", from: "a@b.c\\r\\nBcc: x@y.z", retry: { maxAttempts: 0 }, unknownKey: 1 }\n' +
      'registration: { enabled: maybe, allowedEmailDomains: ["not a domain"], fields: { username: sometimes, nickname: required } }\n' +
      'passwordReset: { linkMinutes: 0 }\n',
  );
  for (const path of ['email.smtp', 'email.from', 'email.retry.maxAttempts', 'registration.enabled', 'registration.allowedEmailDomains[0]', 'registration.fields.nickname', 'email.unknownKey', 'registration.fields.username', 'passwordReset.linkMinutes']) {
    assert.ok(found.has(path), `${path} missing in ${[...found.keys()].join(', ')}`);
  }
  assert.ok([...found.keys()].some((p) => p.startsWith('email')) && [...found.values()].every((m) => !m.includes('hunter2secret')));
  assert.match(found.get('email.smtp')!, /smtp:\/\/ or smtps:\/\//);
});
