// A SAML message Keybridge refuses: the page says what is wrong in words a person can act on
// (never the message's content), and the routes record a `saml.request_rejected` audit event with
// the stable reason and the service provider (as the message named it, when it got that far).
import { KeybridgeError } from '../errors.ts';

/** What was refused: decides the wording ("sign-in request", "sign-out response"). */
export type MessageKind = 'sign-in request' | 'sign-out request' | 'sign-out response' | 'sign-in';

const REASONS = {
  too_large: [400, (k: MessageKind) => `The ${k} from this application is too large.`],
  dtd_forbidden: [400, (k: MessageKind) => `The ${k} from this application is not a valid SAML message.`],
  malformed: [400, (k: MessageKind) => `The ${k} from this application is not a valid SAML message.`],
  unknown_sp: [403, (k: MessageKind) => `The ${k} comes from an application that is not registered here.`],
  sp_unavailable: [503, () => 'This application is unavailable right now. Try again later, and contact your administrator if it persists.'],
  unsigned: [400, (k: MessageKind) => `The ${k} from this application is not signed.`],
  bad_signature: [400, (k: MessageKind) => `The ${k} from this application has an invalid signature.`],
  weak_signature_algorithm: [400, (k: MessageKind) => `The ${k} from this application is signed with an algorithm that is not accepted here (RSA-SHA256 or stronger is required).`],
  acs_not_registered: [400, () => 'The sign-in request asks to send the response to an address the application did not register.'],
  unsupported_binding: [400, () => 'The sign-in request asks for the response by a method that is not supported here (only HTTP-POST).'],
  wrong_destination: [400, (k: MessageKind) => `The ${k} was addressed to a different server.`],
  stale: [400, (k: MessageKind) => `The ${k} has expired. Go back to the application and start again.`],
  replayed: [400, (k: MessageKind) => `This ${k} was already used. Go back to the application and start again.`],
  idp_initiated_disabled: [403, () => 'This application does not accept sign-ins started here. Go to the application and sign in from there.'],
  relay_state_not_allowed: [400, (k: MessageKind) => `The ${k} names a return address that this application did not register.`],
  unsolicited: [400, () => 'This sign-out response does not answer a request from here.'],
  unknown_state: [400, () => 'This sign-in expired or was already completed. Go back to the application and start again.'],
  account_disabled: [403, () => 'This account is disabled. Contact your administrator.'],
  missing_email: [403, () => 'Your account has no email address, which this application needs to sign you in. Contact your administrator.'],
  not_signed_in: [400, () => 'The sign-in could not be completed. Go back to the application and start again.'],
} as const satisfies Record<string, readonly [number, (kind: MessageKind) => string]>;

export type RejectReason = keyof typeof REASONS;

export class SamlRejected extends KeybridgeError {
  readonly reason: RejectReason;
  /** The service provider's entity ID as the message named it (unverified until the signature is); filled in by the route when known. */
  sp: string | null;

  constructor(reason: RejectReason, kind: MessageKind, options: { sp?: string | null; detail?: Record<string, unknown>; cause?: unknown } = {}) {
    const [status, message] = REASONS[reason];
    super('saml_request_rejected', message(kind), { status, expose: true, detail: { reason, ...options.detail }, cause: options.cause });
    this.reason = reason;
    this.sp = options.sp ?? null;
  }
}
