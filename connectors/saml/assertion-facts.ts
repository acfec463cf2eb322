// The parts of one SAML Assertion element that Keybridge uses, read namespace-aware. Called on
// the signed assertion that node-saml hands back (the authoritative read) and, before signature
// validation, on the assertion visible in the response, only to refuse early with a precise reason.
import { attr, child, children, instant, text } from './saml-dom.ts';
import { NS } from '../../src/saml/urns.ts';

export interface NameIdFacts {
  value: string;
  format: string | null;
  nameQualifier: string | null;
  spNameQualifier: string | null;
}

export interface ConfirmationFacts {
  method: string | null;
  recipient: string | null;
  notBefore?: number;
  notOnOrAfter?: number;
  inResponseTo: string | null;
}

export interface AttributeFacts {
  name: string;
  friendlyName: string | null;
  values: string[];
}

export interface AssertionFacts {
  id: string | null;
  issuer: string | null;
  issueInstant?: number;
  nameId: NameIdFacts | null;
  encryptedNameId: boolean;
  confirmations: ConfirmationFacts[];
  /** Number of Conditions elements (the schema allows one). */
  conditionsCount: number;
  notBefore?: number;
  notOnOrAfter?: number;
  /** Audiences of each AudienceRestriction; every restriction must name us. */
  audienceRestrictions: string[][];
  authn: { instant?: number; sessionIndex: string | null; sessionNotOnOrAfter?: number; classRef: string | null } | null;
  attributes: AttributeFacts[];
}

export function readAssertion(assertion: Element): AssertionFacts {
  const subject = child(assertion, NS.assertion, 'Subject');
  const nameIdEl = subject && child(subject, NS.assertion, 'NameID');
  const nameValue = text(nameIdEl);
  const conditions = children(assertion, NS.assertion, 'Conditions');
  const authnEl = child(assertion, NS.assertion, 'AuthnStatement');
  const contextEl = authnEl && child(authnEl, NS.assertion, 'AuthnContext');
  const attributes: AttributeFacts[] = [];
  for (const statement of children(assertion, NS.assertion, 'AttributeStatement')) {
    for (const a of children(statement, NS.assertion, 'Attribute')) {
      const name = attr(a, 'Name');
      if (!name) continue;
      // Complex values (a NameID in eduPersonTargetedID) keep their text; xsi:nil values are no value.
      const values = children(a, NS.assertion, 'AttributeValue')
        .filter((v) => v.getAttributeNS(NS.xsi, 'nil') !== 'true')
        .map((v) => (v.textContent ?? '').trim());
      attributes.push({ name, friendlyName: attr(a, 'FriendlyName'), values });
    }
  }
  return {
    id: attr(assertion, 'ID'),
    issuer: text(child(assertion, NS.assertion, 'Issuer')),
    issueInstant: instant(assertion, 'IssueInstant'),
    nameId: nameIdEl && nameValue ? { value: nameValue, format: attr(nameIdEl, 'Format'), nameQualifier: attr(nameIdEl, 'NameQualifier'), spNameQualifier: attr(nameIdEl, 'SPNameQualifier') } : null,
    encryptedNameId: !!subject && children(subject, NS.assertion, 'EncryptedID').length > 0,
    confirmations: (subject ? children(subject, NS.assertion, 'SubjectConfirmation') : []).map((sc) => {
      const data = child(sc, NS.assertion, 'SubjectConfirmationData');
      return {
        method: attr(sc, 'Method'),
        recipient: data && attr(data, 'Recipient'),
        notBefore: data ? instant(data, 'NotBefore') : undefined,
        notOnOrAfter: data ? instant(data, 'NotOnOrAfter') : undefined,
        inResponseTo: data && attr(data, 'InResponseTo'),
      };
    }),
    conditionsCount: conditions.length,
    notBefore: conditions[0] ? instant(conditions[0], 'NotBefore') : undefined,
    notOnOrAfter: conditions[0] ? instant(conditions[0], 'NotOnOrAfter') : undefined,
    audienceRestrictions: conditions[0] ? children(conditions[0], NS.assertion, 'AudienceRestriction').map((r) => children(r, NS.assertion, 'Audience').map((a) => text(a) ?? '')) : [],
    authn: authnEl
      ? {
          instant: instant(authnEl, 'AuthnInstant'),
          sessionIndex: attr(authnEl, 'SessionIndex'),
          sessionNotOnOrAfter: instant(authnEl, 'SessionNotOnOrAfter'),
          classRef: contextEl && text(child(contextEl, NS.assertion, 'AuthnContextClassRef')),
        }
      : null,
    attributes,
  };
}
