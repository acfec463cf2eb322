// A SAML message Keybridge refuses. The page names the application and says, in words a person
// can act on, what went wrong, then what the administrator should check (never the message's
// content, never internals); the routes write one warn log line (SP, request ID, reason) and a
// `saml.request_rejected` audit event with the stable reason.
import { KeybridgeError } from '../errors.ts';

/** What was refused: decides the wording ("sign-in request", "sign-out response"). */
export type MessageKind = 'sign-in request' | 'sign-out request' | 'sign-out response' | 'sign-in';

/** `app` is the application's display name (or entity ID) in quotes, or "this application". */
type Text = (kind: MessageKind, app: string) => string;
/** For the administrator: what to check. Empty when there is nothing to configure. */
type Hint = (kind: MessageKind, detail: Record<string, unknown>) => string;

const none: Hint = () => '';

const REASONS = {
  too_large: [400, (k, app) => `The ${k} from ${app} is too large.`, () => 'The message is over Keybridge\'s size or nesting limits for SAML messages.'],
  dtd_forbidden: [400, (k, app) => `The ${k} from ${app} is not a valid SAML message.`, () => 'The message contains a DTD or a processing instruction, which Keybridge refuses.'],
  malformed: [400, (k, app) => `The ${k} from ${app} is not a valid SAML message.`, (k) => `The message could not be read as a SAML 2.0 ${k}; the Keybridge log line for this refusal says which part.`],
  unknown_sp: [403, (k, app) => `The ${k} comes from an application that is not registered here (${app}).`, () => 'No enabled SAML service provider has this entity ID: register it (samlIdp.serviceProviders, or keybridge saml-sp add) with exactly the entity ID the application sends.'],
  sp_unavailable: [503, () => 'This application is unavailable right now. Try again later, and contact your administrator if it persists.', () => 'Its SAML metadata could not be loaded or is unusable; the Keybridge log says why.'],
  unsigned: [
    400,
    (k, app) => `The ${k} from ${app} is not signed.`,
    (k) =>
      k === 'sign-in request'
        ? 'The application\'s SAML request was not signed, but Keybridge requires signed requests for it: configure the application to sign its requests, or check AuthnRequestsSigned in its metadata and requireSignedRequests (for this SP and under samlIdp) in Keybridge.'
        : 'Keybridge accepts only signed sign-out messages: configure the application to sign its logout messages with the key whose certificate is in its metadata.',
  ],
  bad_signature: [400, (k, app) => `The ${k} from ${app} has an invalid signature.`, () => 'The signature does not verify with the signing certificate registered for the application: check that the certificate in its metadata (or under certificates) is the one it signs with now.'],
  weak_signature_algorithm: [400, (k, app) => `The ${k} from ${app} is signed with an algorithm that is not accepted here (RSA-SHA256 or stronger is required).`, () => 'Configure the application to sign with RSA-SHA256 and a SHA-256 digest; SHA-1 is refused.'],
  acs_not_registered: [
    400,
    (_k, app) => `The sign-in request from ${app} asks to send the response to an address the application did not register.`,
    () => 'The ACS URL (AssertionConsumerServiceURL or index) of the request is not in the SP\'s metadata: add it to the metadata (or to assertionConsumerServices), or correct the URL the application uses.',
  ],
  unsupported_binding: [400, (_k, app) => `The sign-in request from ${app} asks for the response by a method that is not supported here (only HTTP-POST).`, () => 'Configure the application to receive responses by HTTP-POST (ProtocolBinding).'],
  wrong_destination: [400, (k, app) => `The ${k} from ${app} was addressed to a different server.`, () => 'The Destination of the message is not Keybridge\'s endpoint: the application may use stale IdP metadata, or metadata of another server.'],
  stale: [400, (k) => `The ${k} has expired. Go back to the application and start again.`, () => 'If this keeps happening, check the clocks of the application\'s server and of Keybridge (samlIdp.requestMaxAgeSeconds, samlIdp.clockSkewSeconds).'],
  replayed: [400, (k) => `This ${k} was already used. Go back to the application and start again.`, none],
  idp_initiated_disabled: [403, (_k, app) => `${app[0].toUpperCase()}${app.slice(1)} does not accept sign-ins started here. Go to the application and sign in from there.`, () => 'IdP-initiated sign-in is off for this SP (idpInitiated.enabled).'],
  relay_state_not_allowed: [400, (k) => `The ${k} names a return address that this application did not register.`, () => 'An absolute RelayState must be on the origin of one of the SP\'s assertion consumer services.'],
  unsolicited: [400, () => 'This sign-out response does not answer a request from here.', none],
  unknown_state: [400, () => 'This sign-in expired or was already completed. Go back to the application and start again.', none],
  account_disabled: [403, () => 'This account is disabled. Contact your administrator.', none],
  missing_email: [403, (_k, app) => `Your account has no email address, which ${app} needs to sign you in. Contact your administrator.`, () => 'The NameID format for this application (emailAddress) needs an email address, and this account has none.'],
  not_signed_in: [400, () => 'The sign-in could not be completed. Go back to the application and start again.', none],
  invalid_nameid_policy: [
    400,
    (_k, app) => `${app[0].toUpperCase()}${app.slice(1)} asked for a kind of user identifier that Keybridge does not provide to it.`,
    (_k, d) => `The NameID format ${String(d.format ?? '')} is not one Keybridge can produce for this application (it produces persistent, transient, emailAddress and unspecified; emailAddress only when it is the SP's configured format or its metadata lists it).`,
  ],
} as const satisfies Record<string, readonly [number, Text, Hint]>;

export type RejectReason = keyof typeof REASONS;

export class SamlRejected extends KeybridgeError {
  readonly reason: RejectReason;
  readonly kind: MessageKind;
  /** The service provider's entity ID as the message named it (unverified until the signature is); filled in by the route when known. */
  sp: string | null;
  /** The refused message's ID (unverified), filled in by the route when known. */
  requestId: string | null;

  constructor(reason: RejectReason, kind: MessageKind, options: { sp?: string | null; requestId?: string | null; detail?: Record<string, unknown>; cause?: unknown } = {}) {
    const [status, text] = REASONS[reason];
    super('saml_request_rejected', text(kind, 'this application'), { status, expose: true, detail: { reason, ...options.detail }, cause: options.cause });
    this.reason = reason;
    this.kind = kind;
    this.sp = options.sp ?? null;
    this.requestId = options.requestId ?? null;
  }

  /** What the administrator should check; empty when nothing needs configuring. */
  get hint(): string {
    return REASONS[this.reason][2](this.kind, this.detail ?? {});
  }

  /** The page text: what happened, naming the application (`name`, its display name or entity ID), then the hint. */
  pageMessage(name: string | null): string {
    const app = name ? `“${name.length > 200 ? `${name.slice(0, 200)}…` : name}”` : 'this application';
    const hint = this.hint;
    return `${REASONS[this.reason][1](this.kind, app)}${hint ? ` For the administrator: ${hint}` : ''}`;
  }
}
