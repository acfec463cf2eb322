// The two logout messages Keybridge sends as a service provider: a LogoutRequest naming the
// upstream session (NameID with its qualifiers, SessionIndex), and the LogoutResponse to an
// IdP's LogoutRequest. Built as text: they are small and fixed, and every value is escaped.
import { randomBytes } from 'node:crypto';
import { NS, STATUS } from '../../src/saml/urns.ts';

const RESPONDER = 'urn:oasis:names:tc:SAML:2.0:status:Responder';

export function xmlEscape(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

export const newMessageId = () => `_${randomBytes(20).toString('hex')}`;

export interface SessionNameId {
  nameID: string;
  nameIDFormat?: string;
  nameQualifier?: string;
  spNameQualifier?: string;
  sessionIndex?: string;
}

export function logoutRequestXml(input: { id: string; issuer: string; destination: string; session: SessionNameId; now: Date }): string {
  const { session } = input;
  const qualifiers = [
    session.nameIDFormat && ` Format="${xmlEscape(session.nameIDFormat)}"`,
    session.nameQualifier && ` NameQualifier="${xmlEscape(session.nameQualifier)}"`,
    session.spNameQualifier && ` SPNameQualifier="${xmlEscape(session.spNameQualifier)}"`,
  ].filter(Boolean).join('');
  return (
    `<samlp:LogoutRequest xmlns:samlp="${NS.protocol}" xmlns:saml="${NS.assertion}" ID="${input.id}" Version="2.0"` +
    ` IssueInstant="${input.now.toISOString()}" NotOnOrAfter="${new Date(input.now.getTime() + 10 * 60_000).toISOString()}" Destination="${xmlEscape(input.destination)}">` +
    `<saml:Issuer>${xmlEscape(input.issuer)}</saml:Issuer>` +
    `<saml:NameID${qualifiers}>${xmlEscape(session.nameID)}</saml:NameID>` +
    (session.sessionIndex ? `<samlp:SessionIndex>${xmlEscape(session.sessionIndex)}</samlp:SessionIndex>` : '') +
    `</samlp:LogoutRequest>`
  );
}

/** Success when the sessions ended; Responder (our failure, not the IdP's) otherwise. */
export function logoutResponseXml(input: { id: string; inResponseTo: string; issuer: string; destination: string; ended: boolean; now: Date }): string {
  return (
    `<samlp:LogoutResponse xmlns:samlp="${NS.protocol}" xmlns:saml="${NS.assertion}" ID="${input.id}" Version="2.0"` +
    ` IssueInstant="${input.now.toISOString()}" Destination="${xmlEscape(input.destination)}" InResponseTo="${xmlEscape(input.inResponseTo)}">` +
    `<saml:Issuer>${xmlEscape(input.issuer)}</saml:Issuer>` +
    `<samlp:Status><samlp:StatusCode Value="${input.ended ? STATUS.success : RESPONDER}"/></samlp:Status>` +
    `</samlp:LogoutResponse>`
  );
}
