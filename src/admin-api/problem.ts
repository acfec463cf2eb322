// RFC 9457 problem details for every admin API error: a stable `code`, a message that names
// what was wrong (never a secret or an internal detail), and for validation errors the path of
// each failing field.
import { z } from 'zod';
import { KeybridgeError, ConfigError } from '../errors.ts';
import { DatabaseUnavailable, RETRY_AFTER_SECONDS } from '../storage/database-unavailable.ts';

export interface FieldError {
  /** Dotted path of the field in the request (`body.redirectUris.0`, `query.limit`). */
  path: string;
  message: string;
  /** A stable code for this field's problem where there is one (the password policy's reason: `breached`, `too_short`...). */
  code?: string;
}

export class AdminProblem extends KeybridgeError {
  readonly errors: FieldError[] | undefined;
  readonly headers: Record<string, string>;
  /** More members of the problem body (the account API's `source`, `passwordProblem`). */
  readonly extra: Record<string, unknown> | undefined;

  constructor(status: number, code: string, message: string, options: { errors?: FieldError[]; headers?: Record<string, string>; extra?: Record<string, unknown> } = {}) {
    super(code, message, { status, expose: true });
    this.errors = options.errors;
    this.headers = options.headers ?? {};
    this.extra = options.extra;
  }
}

export const problemSchema = z
  .object({
    type: z.string().describe('A URI naming the kind of problem (about:blank or a Keybridge code URN).'),
    title: z.string(),
    status: z.int(),
    detail: z.string(),
    code: z.string().describe('Stable machine-readable code.'),
    instance: z.string().optional().describe('The request id (also in the X-Request-Id header).'),
    errors: z.array(z.object({ path: z.string(), message: z.string(), code: z.string().optional() })).optional(),
  })
  ;

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  412: 'Precondition Failed',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export function invalid(errors: FieldError[], message = 'The request is not valid.'): AdminProblem {
  return new AdminProblem(400, 'invalid_request', `${message} ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`.trim(), { errors });
}

export const notFound = (what: string) => new AdminProblem(404, 'not_found', `${what} was not found.`);
/** 409; `field` (e.g. body.username) names the field at fault, so a form can show it there. */
export const conflict = (message: string, code = 'conflict', field?: string) => new AdminProblem(409, code, message, field ? { errors: [{ path: field, message }] } : {});
export const readOnly = (what: string, source: string) => new AdminProblem(409, 'read_only', `${what} is managed by ${source} and cannot be changed through the API.`);
export const stale = () => new AdminProblem(412, 'precondition_failed', 'The resource changed since it was read (If-Match does not match its current ETag). Read it again and retry.');

/** zod issues as field errors, prefixed with where the value came from. */
export function fieldErrors(where: 'params' | 'query' | 'body', error: z.ZodError): FieldError[] {
  return error.issues.map((i) => ({ path: [where, ...i.path.map(String)].join('.'), message: i.message }));
}

/** Problem details for any error the API may meet; internals become a bare 500. */
export function toProblem(err: unknown, requestId: string): { status: number; body: z.infer<typeof problemSchema>; headers: Record<string, string> } {
  let status = 500;
  let code = 'server_error';
  let detail = 'The server failed to handle the request. The request id identifies it in the log.';
  let errors: FieldError[] | undefined;
  let headers: Record<string, string> = {};
  if (err instanceof AdminProblem) {
    ({ status, code, message: detail, errors, headers } = err);
  } else if (err instanceof ConfigError) {
    status = 400;
    code = 'invalid_config';
    errors = err.issues.map((i) => ({ path: i.path, message: i.message }));
    detail = `The configuration is not valid: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`;
  } else if (err instanceof KeybridgeError && err.expose && err.status < 500) {
    ({ status, code, message: detail } = err);
  } else if (err instanceof DatabaseUnavailable || (err instanceof KeybridgeError && err.status === 503)) {
    status = 503;
    code = 'temporarily_unavailable';
    detail = 'The service is temporarily unavailable. Retry shortly.';
    headers = { 'Retry-After': String(RETRY_AFTER_SECONDS) };
  }
  return {
    status,
    headers,
    body: {
      type: status === 500 ? 'about:blank' : `urn:keybridge:problem:${code}`,
      title: TITLES[status] ?? 'Error',
      status,
      detail,
      code,
      instance: requestId,
      ...(errors ? { errors } : {}),
    },
  };
}
