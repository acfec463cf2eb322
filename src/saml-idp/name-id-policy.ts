// Which NameID format a sign-in gets, from the request's NameIDPolicy and the SP's settings:
// - no policy, or `unspecified`: the SP's configured format (nameId.format);
// - `transient`: always honoured (a random, single-use id reveals nothing);
// - the configured format: honoured;
// - `persistent`: honoured (an opaque id per user and SP, unlinkable across SPs: it reveals no
//   more than a transient one, so an SP configured otherwise may still ask for it);
// - `emailAddress`: honoured only when the SP's metadata lists it (its NameIDFormat elements) or
//   it is the configured format: it releases the address as an identifier, which the operator
//   must have agreed to by registering that metadata or choosing it;
// - anything else (X509SubjectName, WindowsDomainQualifiedName, kerberos, entity, encrypted, an
//   unknown URI): we cannot produce it, so null (the SP is answered InvalidNameIDPolicy).
// AllowCreate is not consulted: persistent ids are derived (HMAC of the user and SP), never
// stored, so there is nothing to create; SAML core allows an IdP to issue them either way.
import type { NameIdFormatName } from './saml-idp-config.ts';
import type { ServiceProvider } from './service-providers.ts';
import { NAME_ID_FORMAT } from './saml-urns.ts';

const BY_URN = new Map<string, NameIdFormatName>(Object.entries(NAME_ID_FORMAT).map(([name, urn]) => [urn, name as NameIdFormatName]));

/** The format to issue for `requested` (the NameIDPolicy Format, or null), or null when refused. */
export function nameIdFormatFor(sp: Pick<ServiceProvider, 'nameId' | 'nameIdFormats'>, requested: string | null): NameIdFormatName | null {
  const configured = sp.nameId.format;
  if (requested === null || requested === '' || requested === NAME_ID_FORMAT.unspecified) return configured;
  const format = BY_URN.get(requested);
  if (!format) return null;
  if (format === configured || format === 'transient' || format === 'persistent') return format;
  return sp.nameIdFormats.includes(requested) ? format : null;
}
