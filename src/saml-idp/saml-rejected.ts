// A SAML message Keybridge refuses. The page names the application and says, in words a person
// can act on, what went wrong, then what the administrator should check (never the message's
// content, never internals); the routes write one warn log line (SP, request ID, reason) and a
// `saml.request_rejected` audit event with the stable reason.
import { KeybridgeError } from '../errors.ts';
import { text, type PageText } from '../i18n/page-text.ts';
import { english } from '../i18n/english.ts';

/** What was refused: decides the wording ("sign-in request", "sign-out response"). */
export type MessageKind = 'sign-in request' | 'sign-out request' | 'sign-out response' | 'sign-in';

/** HTTP status, and the catalog key of the hint for the administrator (null: nothing to configure). */
type Reason = readonly [status: number, hint: string | null];

// The person's words are `saml.reject.<reason>`, naming {kind} (`saml.kind.*`) and {app}; the
// administrator's `saml.hint.<hint>`.
const REASONS = {
  too_large: [400, 'too_large'],
  dtd_forbidden: [400, 'dtd_forbidden'],
  malformed: [400, 'malformed'],
  unknown_sp: [403, 'unknown_sp'],
  sp_unavailable: [503, 'sp_unavailable'],
  unsigned: [400, 'unsigned'],
  bad_signature: [400, 'bad_signature'],
  weak_signature_algorithm: [400, 'weak_signature_algorithm'],
  acs_not_registered: [400, 'acs_not_registered'],
  unsupported_binding: [400, 'unsupported_binding'],
  wrong_destination: [400, 'wrong_destination'],
  stale: [400, 'stale'],
  replayed: [400, null],
  idp_initiated_disabled: [403, 'idp_initiated_disabled'],
  relay_state_not_allowed: [400, 'relay_state_not_allowed'],
  unsolicited: [400, null],
  unknown_state: [400, null],
  account_disabled: [403, null],
  missing_email: [403, 'missing_email'],
  not_signed_in: [400, null],
  invalid_nameid_policy: [400, 'invalid_nameid_policy'],
} as const satisfies Record<string, Reason>;

const KIND_KEYS: Record<MessageKind, string> = { 'sign-in request': 'sign_in_request', 'sign-out request': 'sign_out_request', 'sign-out response': 'sign_out_response', 'sign-in': 'sign_in' };

export type RejectReason = keyof typeof REASONS;

export class SamlRejected extends KeybridgeError {
  readonly reason: RejectReason;
  readonly kind: MessageKind;
  /** The service provider's entity ID as the message named it (unverified until the signature is); filled in by the route when known. */
  sp: string | null;
  /** The refused message's ID (unverified), filled in by the route when known. */
  requestId: string | null;

  constructor(reason: RejectReason, kind: MessageKind, options: { sp?: string | null; requestId?: string | null; detail?: Record<string, unknown>; cause?: unknown } = {}) {
    const [status] = REASONS[reason];
    const words = text(`saml.reject.${reason}`, { kind: text(`saml.kind.${KIND_KEYS[kind]}`), app: text('saml.this_application'), App: text('saml.this_application_start') });
    super('saml_request_rejected', english(words), { status, expose: true, detail: { reason, ...options.detail }, cause: options.cause });
    this.reason = reason;
    this.kind = kind;
    this.sp = options.sp ?? null;
    this.requestId = options.requestId ?? null;
  }

  /** What the administrator should check, in English for the log; empty when nothing needs configuring. */
  get hint(): string {
    const hint = this.hintText;
    return hint ? english(hint) : '';
  }

  get hintText(): PageText | null {
    let key: string | null = REASONS[this.reason][1];
    if (key === 'unsigned') key = this.kind === 'sign-in request' ? 'unsigned_request' : 'unsigned_logout';
    return key ? text(`saml.hint.${key}`, { kind: text(`saml.kind.${KIND_KEYS[this.kind]}`), format: String(this.detail?.format ?? '') }) : null;
  }

  /** The page text: what happened, naming the application (`name`, its display name or entity ID), then the hint. */
  pageText(name: string | null): PageText {
    const named = name ? text('saml.app_named', { name: name.length > 200 ? `${name.slice(0, 200)}…` : name }) : null;
    const words = text(`saml.reject.${this.reason}`, { kind: text(`saml.kind.${KIND_KEYS[this.kind]}`), app: named ?? text('saml.this_application'), App: named ?? text('saml.this_application_start') });
    const hint = this.hintText;
    return hint ? text('saml.reject_with_hint', { message: words, hint }) : words;
  }

  /** The page text in English (JSON answers). */
  pageMessage(name: string | null): string {
    return english(this.pageText(name));
  }
}
