// The only way the console reaches Keybridge's data: the account API under /account/api, with
// the signed-in person's bearer token. A refused token signs in again; a change that needs a
// recent sign-in (403 reauthentication_required) signs in again with prompt=login and comes back
// to the same page. Problems (RFC 9457) become ApiError, translated by their code when the
// console has a message for it.
import { apiCall } from './common/api-call.js';
import { currentToken, forgetToken, signIn } from './auth.js';
import { has, locale, t } from './i18n.js';

// The API's field messages (English) the console can say in the person's language.
const FIELD_MESSAGES = [
  [/^is required$/, () => t('field.required')],
  [/^must be an email address$/, () => t('field.email')],
  [/^must be at most (\d+) characters$/, (m) => t('field.tooLong', { max: m[1] })],
  [/^must not contain control characters$/, () => t('field.control')],
  [/^must be your username, typed exactly$/, () => t('field.confirm')],
  [/^is not right$/, () => t('field.notRight')],
];

/** A field message in the person's language; one the console does not know stays English only in English. */
function fieldMessage(message) {
  for (const [pattern, say] of FIELD_MESSAGES) {
    const m = pattern.exec(message);
    if (m) return say(m);
  }
  return locale === 'en' ? message : t('field.invalid');
}

export const API = '/account/api';

export class ApiError extends Error {
  constructor(status, problem = {}) {
    super(ApiError.message(status, problem));
    this.status = status;
    this.code = problem.code ?? null;
    this.requestId = problem.instance ?? null;
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
    this.problem = problem;
    /** The message came from the console's catalog (in the person's language), not the API's English. */
    this.translated = ApiError.translatedCode(problem);
  }

  static translatedCode(problem) {
    if (problem.passwordProblem) return has(`password.problem.${problem.passwordProblem.code}`);
    return Boolean(problem.code && problem.code !== 'invalid_request' && (has(`error.${problem.code}`) || (problem.code === 'read_only' && problem.source)));
  }

  static message(status, problem) {
    if (problem.passwordProblem && has(`password.problem.${problem.passwordProblem.code}`)) return t(`password.problem.${problem.passwordProblem.code}`, problem.passwordProblem.values);
    if (problem.code === 'read_only' && problem.source) return t('error.read_only', { source: problem.source.name });
    if (problem.code && problem.code !== 'invalid_request' && has(`error.${problem.code}`)) return t(`error.${problem.code}`);
    // Field errors are said at their fields; the notice only points there.
    if (problem.code === 'invalid_request' && Array.isArray(problem.errors) && problem.errors.length) return t('error.invalid_request');
    if (problem.detail) return problem.detail;
    return status ? t('error.http', { status }) : t('error.offline');
  }

  /** Messages for a field (body.newPassword ...). */
  fieldErrors(path) {
    const mine = this.errors.filter((e) => e.path === path);
    // A refusal the console can say in the person's language is said at the field, once.
    if (this.translated) return mine.length ? [this.message] : [];
    return mine.map((e) => fieldMessage(e.message));
  }

  /** Whether a field shows this error (then no separate notice is needed). */
  get shownAtField() {
    return this.translated && this.errors.length > 0;
  }
}

/** One API call: { status, body, etag, headers }; throws ApiError for any error status. `raw`: the Response itself. */
export const api = apiCall({
  base: API,
  auth: { currentToken, forgetToken, signIn },
  toError: (status, problem) => new ApiError(status, problem),
  inspect: async (res, data) => {
    if (res.status === 403 && data?.code === 'reauthentication_required') {
      // Back to this page after signing in again; the person repeats the change there.
      await signIn(location.pathname + location.search, { reauthenticate: true });
    }
  },
});

export const get = (path, params) => api('GET', path, { params });
export { seg } from './common/api-call.js';
