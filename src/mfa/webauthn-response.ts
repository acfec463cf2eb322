// What a browser posts back from navigator.credentials.create()/get(), as @simplewebauthn/browser
// serializes it, checked before anything reads it: a bounded size, base64url strings where the
// library expects them, and a fresh object holding only the known fields (nothing else the
// sender added travels further).
import type { AuthenticationResponseJSON, AuthenticatorTransport, RegistrationResponseJSON } from '@simplewebauthn/server';

/** Characters of JSON: a 'none' attestation is well under 2 KB; certificate chains stay under this. */
export const MAX_RESPONSE_LENGTH = 16 * 1024;

const BASE64URL = /^[A-Za-z0-9_-]*$/;
// Credential ids are at most 1023 bytes (WebAuthn Level 3): 1364 base64url characters.
const MAX_ID = 1364;
const TRANSPORTS = new Set(['ble', 'cable', 'hybrid', 'internal', 'nfc', 'smart-card', 'usb']);

type Parsed<T> = { ok: true; response: T } | { ok: false; detail: string };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const b64 = (v: unknown, max = MAX_RESPONSE_LENGTH): v is string => typeof v === 'string' && v.length <= max && BASE64URL.test(v);

/** A posted string (JSON) or an already parsed object, as a plain object; null with why otherwise. */
function readJson(input: unknown): Parsed<Record<string, unknown>> {
  let value = input;
  if (typeof input === 'string') {
    if (input.length > MAX_RESPONSE_LENGTH) return { ok: false, detail: `longer than ${MAX_RESPONSE_LENGTH} characters` };
    try {
      value = JSON.parse(input);
    } catch {
      return { ok: false, detail: 'not JSON' };
    }
  } else {
    let text: string | undefined;
    try {
      text = JSON.stringify(input);
    } catch {
      return { ok: false, detail: 'not serializable' };
    }
    if (text !== undefined && text.length > MAX_RESPONSE_LENGTH) return { ok: false, detail: `longer than ${MAX_RESPONSE_LENGTH} characters` };
  }
  return isObject(value) ? { ok: true, response: value } : { ok: false, detail: 'not a JSON object' };
}

function common(value: Record<string, unknown>): string | null {
  if (!b64(value.id, MAX_ID) || !value.id) return 'id is not a base64url credential id';
  if (value.rawId !== value.id) return 'rawId differs from id';
  if (value.type !== 'public-key') return 'type is not "public-key"';
  if (!isObject(value.response)) return 'response is not an object';
  if (value.clientExtensionResults !== undefined && !isObject(value.clientExtensionResults)) return 'clientExtensionResults is not an object';
  const attachment = value.authenticatorAttachment;
  if (attachment !== undefined && attachment !== 'platform' && attachment !== 'cross-platform') return 'authenticatorAttachment is unknown';
  if (!b64(value.response.clientDataJSON) || !value.response.clientDataJSON) return 'response.clientDataJSON is not base64url';
  return null;
}

/** The JSON credential with the fields both ceremonies share checked; `r` is its `response` part. */
function readCredential(input: unknown): { ok: false; detail: string } | { ok: true; value: Record<string, unknown>; r: Record<string, unknown> } {
  const read = readJson(input);
  if (!read.ok) return read;
  const problem = common(read.response);
  if (problem) return { ok: false, detail: problem };
  return { ok: true, value: read.response, r: read.response.response as Record<string, unknown> };
}

export function parseRegistrationResponse(input: unknown): Parsed<RegistrationResponseJSON> {
  const read = readCredential(input);
  if (!read.ok) return read;
  const { value, r } = read;
  if (!b64(r.attestationObject) || !r.attestationObject) return { ok: false, detail: 'response.attestationObject is not base64url' };
  const transports = r.transports ?? [];
  if (!Array.isArray(transports) || transports.length > TRANSPORTS.size || !transports.every((t) => typeof t === 'string' && TRANSPORTS.has(t))) {
    return { ok: false, detail: 'response.transports is not a list of known transports' };
  }
  return {
    ok: true,
    response: {
      id: value.id as string,
      rawId: value.rawId as string,
      type: 'public-key',
      clientExtensionResults: {},
      ...(value.authenticatorAttachment ? { authenticatorAttachment: value.authenticatorAttachment as 'platform' | 'cross-platform' } : {}),
      response: { clientDataJSON: r.clientDataJSON as string, attestationObject: r.attestationObject as string, transports: transports as AuthenticatorTransport[] },
    },
  };
}

export function parseAuthenticationResponse(input: unknown): Parsed<AuthenticationResponseJSON> {
  const read = readCredential(input);
  if (!read.ok) return read;
  const { value, r } = read;
  if (!b64(r.authenticatorData) || !r.authenticatorData) return { ok: false, detail: 'response.authenticatorData is not base64url' };
  if (!b64(r.signature) || !r.signature) return { ok: false, detail: 'response.signature is not base64url' };
  // The user handle is at most 64 bytes: 86 base64url characters. Empty or null means none.
  if (r.userHandle !== undefined && r.userHandle !== null && !b64(r.userHandle, 86)) return { ok: false, detail: 'response.userHandle is not base64url' };
  return {
    ok: true,
    response: {
      id: value.id as string,
      rawId: value.rawId as string,
      type: 'public-key',
      clientExtensionResults: {},
      ...(value.authenticatorAttachment ? { authenticatorAttachment: value.authenticatorAttachment as 'platform' | 'cross-platform' } : {}),
      response: {
        clientDataJSON: r.clientDataJSON as string,
        authenticatorData: r.authenticatorData as string,
        signature: r.signature as string,
        ...(r.userHandle ? { userHandle: r.userHandle as string } : {}),
      },
    },
  };
}
