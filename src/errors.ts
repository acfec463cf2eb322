// One error hierarchy for the whole broker. `code` is stable (pages and APIs key on it),
// `status` is the HTTP status, `expose` says whether `message` may be shown to a person.
// Details that must not reach a page go into `detail` and are only logged. `text` is the page's
// wording as a catalog key (the page shows it in the person's language; `message` stays English
// for logs and API callers).
import type { PageText } from './i18n/page-text.ts';

export interface KeybridgeErrorOptions {
  status?: number;
  expose?: boolean;
  detail?: Record<string, unknown>;
  cause?: unknown;
  /** The exposed message as a catalog key and values, for pages. */
  text?: PageText;
}

export class KeybridgeError extends Error {
  readonly code: string;
  readonly status: number;
  readonly expose: boolean;
  readonly detail: Record<string, unknown> | undefined;
  readonly text: PageText | undefined;

  constructor(code: string, message: string, options: KeybridgeErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.status = options.status ?? 500;
    this.expose = options.expose ?? false;
    this.detail = options.detail;
    this.text = options.text;
  }
}

export interface ConfigIssue {
  path: string;
  message: string;
}

/** Invalid configuration: carries every problem found, each with its path. */
export class ConfigError extends KeybridgeError {
  readonly issues: ConfigIssue[];

  constructor(issues: ConfigIssue[], source?: string) {
    const where = source ? ` in ${source}` : '';
    const lines = issues.map((i) => `  - ${i.path || '(root)'}: ${i.message}`).join('\n');
    super('invalid_config', `invalid configuration${where}:\n${lines}`, { status: 500, expose: true });
    this.issues = issues;
  }
}

/** A unique constraint was hit; nothing was written. */
export class AlreadyExists extends KeybridgeError {
  constructor(what: string, options: KeybridgeErrorOptions = {}) {
    super('already_exists', `${what} already exists`, { status: 409, expose: true, ...options });
  }
}

export class NotFound extends KeybridgeError {
  constructor(what: string, options: KeybridgeErrorOptions = {}) {
    super('not_found', `${what} not found`, { status: 404, expose: true, ...options });
  }
}

/** Input from a person or client was wrong; the message names what, never a secret. */
export class InvalidInput extends KeybridgeError {
  constructor(message: string, options: KeybridgeErrorOptions = {}) {
    super('invalid_input', message, { status: 400, expose: true, ...options });
  }
}

/** A form arrived without a valid anti-CSRF token, or an interaction expired. */
export class InvalidSession extends KeybridgeError {
  static readonly DEFAULT = 'Your sign-in session expired or the form was tampered with. Start again from the application.';

  /** Without a message: the default one, and its catalog text for pages. */
  constructor(message?: string, options: KeybridgeErrorOptions = {}) {
    super('invalid_session', message ?? InvalidSession.DEFAULT, { status: 400, expose: true, text: message === undefined ? { key: 'errors.invalid_session' } : undefined, ...options });
  }
}
