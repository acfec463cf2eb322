// SAML single logout with the upstream IdP: out with the Redirect binding (the POST binding when
// the IdP offers no other), in with either.
// Every message the IdP sends must be signed (query signature, or an enveloped XML signature in
// the POST binding) by one of its certificates, come from its entityID, name our logout URL as
// Destination and be fresh; the Redirect-binding signature is checked before the payload is even
// inflated. node-saml's own logout validation is not used: it accepts unsigned Redirect messages,
// finds query parameters by substring, and checks a LogoutResponse's status before its signature.
import type { Logger } from 'pino';
import type { LogoutMessage, RedirectStart, ReplayGuard, UpstreamLogout, UpstreamSession } from '../../src/connectors/contract.ts';
import { verifyEnvelopedSignature } from './enveloped-signature.ts';
import type { IdpDescriptor } from './idp-metadata.ts';
import type { IdpSource } from './idp-source.ts';
import { logoutRequestXml, logoutResponseXml, newMessageId, type SessionNameId } from './logout-messages.ts';
import { deflateBase64, redirectUrl, verifyRedirect, type MessageKind } from './redirect-binding.ts';
import { attr, child, children, instant, isElement, parseXml, shown, text } from './saml-dom.ts';
import { NS, STATUS } from '../../src/saml/urns.ts';
import type { KeyPair } from './sp-keys.ts';
import { decodePostMessage, decodeRedirectMessage } from '../../src/saml/xml-guard.ts';
import { signEnveloped } from './xml-signing.ts';

/** Logout messages older than this are refused (and their IDs remembered this long). */
const MAX_MESSAGE_AGE_MS = 10 * 60_000;

export interface SingleLogoutDeps {
  connectorId: string;
  spEntityId: string;
  idp: IdpSource;
  key: KeyPair;
  skewMs: number;
  replayGuard: ReplayGuard;
  logger: Logger;
}

function sessionNameId(session: UpstreamSession): SessionNameId {
  const data = session.data;
  const str = (v: unknown) => (typeof v === 'string' && v ? v : undefined);
  const nameID = str(data.nameID) ?? session.subject;
  if (!nameID) throw new Error('the upstream session has no NameID');
  return { nameID, nameIDFormat: str(data.nameIDFormat), nameQualifier: str(data.nameQualifier), spNameQualifier: str(data.spNameQualifier), sessionIndex: str(data.sessionIndex) ?? session.id };
}

const invalid = (detail: string): LogoutMessage => ({ kind: 'invalid', detail });

export function singleLogout(deps: SingleLogoutDeps): UpstreamLogout {
  const { spEntityId, key, skewMs } = deps;

  /** A signed message to the IdP's logout endpoint, in the binding it offers. */
  function send(slo: NonNullable<IdpDescriptor['slo']>, destination: string, kind: MessageKind, xml: string, relayState: string | null): Omit<RedirectStart, 'context'> {
    if (slo.binding === 'post') {
      return { location: destination, form: { [kind]: Buffer.from(signEnveloped(xml, key), 'utf8').toString('base64'), ...(relayState !== null && { RelayState: relayState }) } };
    }
    return { location: redirectUrl(destination, kind, deflateBase64(xml), relayState ?? undefined, key.privateKey) };
  }

  /** The signed message's root element, its RelayState, and which kind it is. */
  type Read = { error: string } | { root: Element; kind: 'SAMLRequest' | 'SAMLResponse'; relayState: string | null };
  async function readMessage(input: { method: 'GET' | 'POST'; params: Record<string, string>; query: string }, certificates: string[]): Promise<Read> {
    if (input.method === 'GET') {
      const verified = verifyRedirect(input.query, certificates);
      if (!verified.ok) return { error: verified.detail };
      const decoded = decodeRedirectMessage(verified.message.payload);
      if (!decoded.ok) return { error: decoded.detail };
      return { root: parseXml(decoded.xml).documentElement as Element, kind: verified.message.kind, relayState: verified.message.relayState };
    }
    const kinds = (['SAMLRequest', 'SAMLResponse'] as const).filter((k) => typeof input.params[k] === 'string');
    if (kinds.length !== 1) return { error: 'malformed: the form must carry exactly one of SAMLRequest and SAMLResponse' };
    const decoded = decodePostMessage(input.params[kinds[0]]);
    if (!decoded.ok) return { error: decoded.detail };
    const verified = verifyEnvelopedSignature(decoded.xml, parseXml(decoded.xml), certificates);
    if (!verified.ok) return { error: verified.detail };
    // Only the signed bytes are read.
    return { root: parseXml(verified.signedXml).documentElement as Element, kind: kinds[0], relayState: input.params.RelayState ?? null };
  }

  return {
    async start({ session, state }) {
      const idp = await deps.idp.current();
      if (!idp.slo) return null;
      const requestId = newMessageId();
      const xml = logoutRequestXml({ id: requestId, issuer: spEntityId, destination: idp.slo.location, session: sessionNameId(session), now: new Date() });
      return { ...send(idp.slo, idp.slo.location, 'SAMLRequest', xml, state), context: { requestId } };
    },

    async receive(input) {
      const idp = await deps.idp.current();
      let message: Read;
      try {
        message = await readMessage(input, idp.certificates);
      } catch (err) {
        return invalid((err as Error).message);
      }
      if ('error' in message) return invalid(message.error);
      const { root, kind, relayState } = message;
      const expected = kind === 'SAMLRequest' ? 'LogoutRequest' : 'LogoutResponse';
      if (!isElement(root, NS.protocol, expected)) return invalid(`malformed: ${kind} is not a samlp:${expected}`);
      if (attr(root, 'Version') !== '2.0') return invalid('malformed: not a SAML 2.0 message');
      const issuer = text(child(root, NS.assertion, 'Issuer'));
      if (issuer !== idp.entityId) return invalid(`issuer: ${shown(issuer)} is not ${idp.entityId}`);
      const destination = attr(root, 'Destination');
      if ((destination !== null || kind === 'SAMLRequest') && destination !== input.returnUrl) return invalid(`destination: ${shown(destination)} is not ${input.returnUrl}`);
      const now = Date.now();
      const issued = instant(root, 'IssueInstant');
      if (issued === undefined || Number.isNaN(issued)) return invalid('malformed: no valid IssueInstant');
      if (issued > now + skewMs) return invalid('not yet valid: IssueInstant is in the future');
      if (issued < now - skewMs - MAX_MESSAGE_AGE_MS) return invalid('expired: issued more than 10 minutes ago');

      if (kind === 'SAMLResponse') {
        const code = child(child(root, NS.protocol, 'Status') ?? root, NS.protocol, 'StatusCode');
        const status = code && attr(code, 'Value');
        if (!status) return invalid('malformed: the LogoutResponse has no StatusCode');
        const ok = status === STATUS.success;
        return { kind: 'response', state: relayState, ok, ...(!ok && { detail: `status: ${shown(status.replace(/^urn:oasis:names:tc:SAML:2\.0:status:/, ''), 80)}` }) };
      }

      const id = attr(root, 'ID');
      if (!id) return invalid('malformed: the LogoutRequest has no ID');
      const notOnOrAfter = instant(root, 'NotOnOrAfter');
      if (notOnOrAfter !== undefined && (Number.isNaN(notOnOrAfter) || now - skewMs >= notOnOrAfter)) return invalid('expired: the LogoutRequest NotOnOrAfter has passed');
      if (children(root, NS.assertion, 'EncryptedID').length) return invalid('subject: encrypted NameIDs (EncryptedID) are not supported');
      const subject = text(child(root, NS.assertion, 'NameID'));
      if (!subject) return invalid('malformed: the LogoutRequest has no NameID');
      const sessionIds = children(root, NS.protocol, 'SessionIndex').map((s) => text(s)).filter((s): s is string => !!s);
      if (!(await deps.replayGuard.firstUse(`saml-logout:${deps.connectorId}:${id}`, new Date(issued + MAX_MESSAGE_AGE_MS + 2 * skewMs)))) {
        return invalid('replay: this LogoutRequest was already received');
      }
      return {
        kind: 'request',
        subject,
        sessionIds: sessionIds.length ? sessionIds : null,
        async respond(ended) {
          const current = await deps.idp.current();
          if (!current.slo) throw new Error('the IdP has no SingleLogoutService to answer at');
          const destination = current.slo.responseLocation;
          const xml = logoutResponseXml({ id: newMessageId(), inResponseTo: id, issuer: spEntityId, destination, ended, now: new Date() });
          return { ...send(current.slo, destination, 'SAMLResponse', xml, relayState), context: {} };
        },
      };
    },
  };
}
