// A verified assertion into the broker's UpstreamIdentity: the subject (NameID, or the configured
// attribute), profile fields by attribute Name or FriendlyName (first configured name present
// wins), every attribute for mappers, the AuthnContextClassRef (as `acr`, and the methods it implies), and
// the NameID and SessionIndex that single logout needs later.
import type { UpstreamIdentity } from '../../src/connectors/contract.ts';
import { upstreamAcr } from '../../src/connectors/upstream-authentication.ts';
import type { AssertionFacts, AttributeFacts } from './assertion-facts.ts';
import type { AttributeNames } from './saml-config.ts';
import { NAME_ID_FORMAT } from '../../src/saml/urns.ts';

const AC = 'urn:oasis:names:tc:SAML:2.0:ac:classes:';
/** AuthnContextClassRef to RFC 8176 amr values; unknown classes claim nothing. */
const AMR: Record<string, string[]> = {
  [`${AC}PasswordProtectedTransport`]: ['pwd'],
  [`${AC}Password`]: ['pwd'],
  [`${AC}TimeSyncToken`]: ['otp'],
  [`${AC}MobileTwoFactorContract`]: ['mfa'],
  [`${AC}MobileTwoFactorUnregistered`]: ['mfa'],
  [`${AC}Smartcard`]: ['sc'],
  [`${AC}SmartcardPKI`]: ['sc', 'mfa'],
  'https://refeds.org/profile/mfa': ['mfa'],
  'http://schemas.microsoft.com/claims/multipleauthn': ['mfa'],
};

function find(attributes: AttributeFacts[], names: string[]): string[] | undefined {
  for (const name of names) {
    const found = attributes.find((a) => a.name === name) ?? attributes.find((a) => a.friendlyName === name);
    const values = found?.values.filter((v) => v !== '');
    if (values?.length) return values;
  }
  return undefined;
}

export function identityFromAssertion(connectorId: string, a: AssertionFacts, names: AttributeNames): UpstreamIdentity | { error: string } {
  let subject: string | undefined;
  if (names.subject === 'nameid') {
    if (a.encryptedNameId) return { error: 'subject: the NameID is encrypted (EncryptedID is not supported); set attributes.subject' };
    if (!a.nameId) return { error: 'subject: the assertion has no NameID' };
    // A transient NameID is new at every sign-in: linking on it would make a new account each time.
    if (a.nameId.format === NAME_ID_FORMAT.transient) return { error: 'subject: the NameID is transient; set attributes.subject to a stable attribute' };
    subject = a.nameId.value;
  } else {
    subject = find(a.attributes, [names.subject])?.[0];
    if (!subject) return { error: `subject: the assertion has no ${names.subject} attribute` };
  }
  const attributes: Record<string, string | string[]> = {};
  for (const attribute of a.attributes) {
    if (attribute.values.length === 0 || Object.hasOwn(attributes, attribute.name)) continue;
    attributes[attribute.name] = attribute.values.length === 1 ? attribute.values[0] : [...attribute.values];
  }
  const first = (list: string[]) => find(a.attributes, list)?.[0];
  const email = first(names.email);
  const identity: UpstreamIdentity = {
    connectorId,
    subject,
    username: first(names.username),
    email,
    emailVerified: email ? names.emailVerified : undefined,
    name: first(names.name),
    givenName: first(names.givenName),
    familyName: first(names.familyName),
    groups: find(a.attributes, names.groups) ?? [],
    attributes,
    amr: [...((a.authn?.classRef && AMR[a.authn.classRef]) || [])],
    acr: upstreamAcr(a.authn?.classRef),
  };
  if (a.nameId) {
    const data: Record<string, string> = { nameID: a.nameId.value };
    if (a.nameId.format) data.nameIDFormat = a.nameId.format;
    if (a.nameId.nameQualifier) data.nameQualifier = a.nameId.nameQualifier;
    if (a.nameId.spNameQualifier) data.spNameQualifier = a.nameId.spNameQualifier;
    if (a.authn?.sessionIndex) data.sessionIndex = a.authn.sessionIndex;
    identity.upstreamSession = { subject: a.nameId.value, ...(a.authn?.sessionIndex && { id: a.authn.sessionIndex }), data };
  }
  // Absent fields stay absent rather than present-and-undefined, for clean JSON and comparisons.
  for (const key of Object.keys(identity) as (keyof UpstreamIdentity)[]) if (identity[key] === undefined) delete identity[key];
  return identity;
}
