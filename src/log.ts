// Structured JSON logs (pino). Secrets never reach the log: these paths are redacted wherever
// they appear in a logged object.
import { pino, type Logger, type LevelWithSilent } from 'pino';

const REDACT = [
  'password', '*.password', 'secret', '*.secret', 'client_secret', '*.client_secret',
  'req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'headers.cookie',
  'privateJwk', '*.privateJwk', 'cookieKeys', '*.cookieKeys',
];

export function createLogger(level: LevelWithSilent = 'info'): Logger {
  return pino({ level, base: { service: 'keybridge' }, redact: { paths: REDACT, censor: '[redacted]' } });
}

export type { Logger };
