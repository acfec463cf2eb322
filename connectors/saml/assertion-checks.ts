// Keybridge's own checks of one assertion (SAML core 2.5 and the Web Browser SSO profile 4.1.4),
// beyond what node-saml enforces: the assertion Issuer is the IdP (node-saml compares it only for
// logout messages), a bearer SubjectConfirmation whose Recipient is our ACS URL, whose
// NotOnOrAfter has not passed, and whose InResponseTo is this attempt's request (node-saml skips
// confirmations entirely when it is not checking InResponseTo, as for IdP-initiated logins), an
// AuthnStatement, and the optional maximum age. Conditions and audience are checked here too (as
// by node-saml) so that every refusal names its reason. Returns the first problem, or null.
import type { AssertionFacts, ConfirmationFacts } from './assertion-facts.ts';
import { shown } from './saml-dom.ts';

export const BEARER = 'urn:oasis:names:tc:SAML:2.0:cm:bearer';

export interface AssertionExpectations {
  idpEntityId: string;
  spEntityId: string;
  callbackUrl: string;
  /** The AuthnRequest this attempt sent; null for an IdP-initiated (unsolicited) response. */
  requestId: string | null;
  skewMs: number;
  maxAgeMs?: number;
  now: number;
}

const malformed = (value: number | undefined) => value !== undefined && Number.isNaN(value);

function confirmationProblem(c: ConfirmationFacts, e: AssertionExpectations): string | null {
  if (c.recipient !== e.callbackUrl) return `recipient: SubjectConfirmationData Recipient ${shown(c.recipient)} is not ${e.callbackUrl}`;
  if (malformed(c.notBefore) || malformed(c.notOnOrAfter)) return 'malformed: bad timestamp in SubjectConfirmationData';
  if (c.notOnOrAfter === undefined) return 'subject confirmation: SubjectConfirmationData has no NotOnOrAfter';
  if (e.now - e.skewMs >= c.notOnOrAfter) return `expired: SubjectConfirmationData NotOnOrAfter ${new Date(c.notOnOrAfter).toISOString()} has passed`;
  if (c.notBefore !== undefined && e.now + e.skewMs < c.notBefore) return 'not yet valid: SubjectConfirmationData NotBefore is in the future';
  if (e.requestId === null) {
    if (c.inResponseTo !== null) return 'in_response_to: an unsolicited assertion must not answer a request (SubjectConfirmationData InResponseTo)';
  } else if (c.inResponseTo === null) {
    return 'in_response_to: SubjectConfirmationData has no InResponseTo';
  } else if (c.inResponseTo !== e.requestId) {
    return 'in_response_to: the assertion answers another request (SubjectConfirmationData InResponseTo)';
  }
  return null;
}

export function assertionProblem(a: AssertionFacts, e: AssertionExpectations): string | null {
  if (!a.id) return 'malformed: the assertion has no ID';
  if (a.issuer !== e.idpEntityId) return `issuer: the assertion Issuer ${shown(a.issuer)} is not ${e.idpEntityId}`;
  if (a.conditionsCount > 1) return 'malformed: more than one Conditions element';
  if (a.audienceRestrictions.length === 0) return 'audience: the assertion has no AudienceRestriction';
  const foreign = a.audienceRestrictions.find((audiences) => !audiences.includes(e.spEntityId));
  if (foreign) return `audience: the assertion is for ${shown(foreign.join(', '))}, not ${e.spEntityId}`;
  if (malformed(a.notBefore) || malformed(a.notOnOrAfter) || malformed(a.issueInstant)) return 'malformed: bad timestamp in the assertion';
  if (a.notOnOrAfter !== undefined && e.now - e.skewMs >= a.notOnOrAfter) return `expired: Conditions NotOnOrAfter ${new Date(a.notOnOrAfter).toISOString()} has passed`;
  if (a.notBefore !== undefined && e.now + e.skewMs < a.notBefore) return 'not yet valid: Conditions NotBefore is in the future';
  if (a.issueInstant === undefined) return 'malformed: the assertion has no IssueInstant';
  if (a.issueInstant > e.now + e.skewMs) return 'not yet valid: the assertion IssueInstant is in the future';
  if (e.maxAgeMs !== undefined && e.now - e.skewMs - a.issueInstant > e.maxAgeMs) return 'expired: the assertion was issued longer ago than maxAssertionAgeSeconds';

  const bearers = a.confirmations.filter((c) => c.method === BEARER);
  if (bearers.length === 0) return 'subject confirmation: no bearer SubjectConfirmation';
  const problems = bearers.map((c) => confirmationProblem(c, e));
  if (!problems.includes(null)) return problems[0];

  if (!a.authn) return 'malformed: the assertion has no AuthnStatement';
  if (malformed(a.authn.instant) || malformed(a.authn.sessionNotOnOrAfter)) return 'malformed: bad timestamp in the AuthnStatement';
  if (a.authn.instant === undefined) return 'malformed: the AuthnStatement has no AuthnInstant';
  if (e.maxAgeMs !== undefined && e.now - e.skewMs - a.authn.instant > e.maxAgeMs) return 'expired: the sign-in at the IdP (AuthnInstant) is older than maxAssertionAgeSeconds';
  if (a.authn.sessionNotOnOrAfter !== undefined && e.now - e.skewMs >= a.authn.sessionNotOnOrAfter) return 'expired: the IdP session (SessionNotOnOrAfter) has ended';
  return null;
}

/** Until when this assertion could be accepted: how long its ID must stay in the replay guard. */
export function acceptableUntil(a: AssertionFacts, skewMs: number, now: number): Date {
  const times = [a.notOnOrAfter, ...a.confirmations.map((c) => c.notOnOrAfter)].filter((t): t is number => t !== undefined && !Number.isNaN(t));
  const latest = times.length ? Math.max(...times) + skewMs : 0;
  return new Date(Math.max(latest, now + 5 * 60_000));
}
