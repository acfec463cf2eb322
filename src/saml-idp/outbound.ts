// Everything the IdP sends: its metadata (idp-metadata.ts, in schema order), and, built with
// samlify, signed (and optionally encrypted) login responses, status-only error responses, and signed logout requests and responses. The
// XML of each message is written here (samlify's templates cannot express our NameID, attribute
// and AuthnContext choices) and handed to samlify, which signs and encrypts it.
import { randomBytes } from 'node:crypto';
import { IdentityProvider, SamlLib, ServiceProvider as SamlifyServiceProvider, type IdentityProviderInstance, type ServiceProviderInstance } from 'samlify';
import type { ServiceProvider } from './service-providers.ts';
import { xmlEscape } from './safe-xml.ts';
import { BINDING, DATA_ENCRYPTION, KEY_TRANSPORT, NAME_ID_FORMAT, NS, OUR_SIGNATURE_ALGORITHM, STATUS } from './saml-urns.ts';
import type { SigningMaterial } from './signing-key.ts';
import { idpMetadataXml } from './idp-metadata.ts';

export interface IdpEndpoints {
  entityId: string;
  ssoUrl: string;
  sloUrl: string;
}

export interface LoginResponseInput {
  acsUrl: string;
  inResponseTo: string | null;
  nameId: { value: string; format: string };
  authnInstant: Date;
  authnContext: string;
  sessionIndex: string;
  sessionNotOnOrAfter: Date;
  attributes: { name: string; nameFormat: string; values: string[] }[];
  lifetimeSeconds: number;
  clockSkewSeconds: number;
}

/** A message for the browser to carry: a URL to redirect to, or fields to POST. */
export type Outgoing = { id: string; binding: 'redirect'; url: string } | { id: string; binding: 'post'; url: string; fields: Record<string, string> };

/** An XML ID: must not start with a digit (xs:ID is an NCName). */
export const newId = () => `_${randomBytes(20).toString('hex')}`;
/** SAML dateTime in UTC without fractions, which every SP parses. */
export const samlTime = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

const attrIf = (name: string, value: string | null | undefined) => (value ? ` ${name}="${xmlEscape(value)}"` : '');

export class OutboundMessages {
  readonly #endpoints: IdpEndpoints;
  readonly #material: SigningMaterial;
  readonly #signatureAlgorithm: string;
  readonly #idps = new Map<string, IdentityProviderInstance>();
  readonly #metadata: string;

  constructor(options: { endpoints: IdpEndpoints; material: SigningMaterial; signatureAlgorithm: keyof typeof OUR_SIGNATURE_ALGORITHM; wantAuthnRequestsSigned: boolean }) {
    this.#endpoints = options.endpoints;
    this.#material = options.material;
    this.#signatureAlgorithm = OUR_SIGNATURE_ALGORITHM[options.signatureAlgorithm];
    const { entityId, ssoUrl, sloUrl } = options.endpoints;
    this.#metadata = idpMetadataXml({ entityId, ssoUrl, sloUrl, certificate: options.material.certificatePem, wantAuthnRequestsSigned: options.wantAuthnRequestsSigned });
  }

  /** Our EntityDescriptor: SSO and SLO by Redirect and POST, the signing certificate, the NameID formats. */
  metadata(): string {
    return this.#metadata;
  }

  get certificatePem(): string {
    return this.#material.certificatePem;
  }

  /** One samlify IdP per encryption choice (samlify keeps it on the entity). */
  #idp(encryption: ServiceProvider['encryptionAlgorithm'] | null): IdentityProviderInstance {
    const key = encryption ?? 'none';
    let idp = this.#idps.get(key);
    if (!idp) {
      const { entityId, ssoUrl, sloUrl } = this.#endpoints;
      idp = IdentityProvider({
        entityID: entityId,
        privateKey: this.#material.privateKeyPem,
        signingCert: this.#material.certificatePem,
        requestSignatureAlgorithm: this.#signatureAlgorithm,
        nameIDFormat: [NAME_ID_FORMAT.persistent, NAME_ID_FORMAT.transient, NAME_ID_FORMAT.emailAddress, NAME_ID_FORMAT.unspecified],
        singleSignOnService: [
          { Binding: BINDING.redirect, Location: ssoUrl },
          { Binding: BINDING.post, Location: ssoUrl },
        ],
        singleLogoutService: [
          { Binding: BINDING.redirect, Location: sloUrl },
          { Binding: BINDING.post, Location: sloUrl },
        ],
        isAssertionEncrypted: encryption !== null,
        ...(encryption ? { dataEncryptionAlgorithm: DATA_ENCRYPTION[encryption], keyEncryptionAlgorithm: KEY_TRANSPORT } : {}),
      } as Parameters<typeof IdentityProvider>[0]);
      this.#idps.set(key, idp);
    }
    return idp;
  }

  /** samlify's view of the SP: what to sign, the encryption certificate, where logout messages go. */
  #sp(sp: ServiceProvider, sloLocation?: string): ServiceProviderInstance {
    return SamlifyServiceProvider({
      entityID: sp.entityId,
      assertionConsumerService: sp.acs.map((a) => ({ Binding: BINDING.post, Location: a.url })),
      singleLogoutService: sloLocation && sp.slo ? [{ Binding: sp.slo.binding === 'post' ? BINDING.post : BINDING.redirect, Location: sloLocation }] : [],
      ...(sp.encryptionCert ? { encryptCert: sp.encryptionCert } : {}),
      wantAssertionsSigned: sp.signAssertion,
      wantMessageSigned: sp.signResponse,
      wantLogoutRequestSigned: true,
      wantLogoutResponseSigned: true,
    });
  }

  /** A signed Response with one assertion (signed and/or encrypted per the SP's settings), base64. */
  async loginResponse(sp: ServiceProvider, input: LoginResponseInput): Promise<string> {
    const id = newId();
    const xml = this.#responseXml(sp, input, id);
    const idp = this.#idp(sp.encryptAssertions ? sp.encryptionAlgorithm : null);
    // Encrypt-then-sign: the assertion is signed, then encrypted, then the whole response signed,
    // so the response signature covers the EncryptedAssertion the SP receives.
    const built = await idp.createLoginResponse(this.#sp(sp), {} as never, 'post', {}, { customTagReplacement: () => ({ id, context: xml }), encryptThenSign: true });
    return (built as { context: string }).context;
  }

  #responseXml(sp: ServiceProvider, input: LoginResponseInput, id: string): string {
    const now = new Date();
    const issued = samlTime(now);
    const notBefore = samlTime(new Date(now.getTime() - input.clockSkewSeconds * 1000));
    const notOnOrAfter = samlTime(new Date(now.getTime() + input.lifetimeSeconds * 1000));
    const issuer = `<saml:Issuer>${xmlEscape(this.#endpoints.entityId)}</saml:Issuer>`;
    const persistent = input.nameId.format === NAME_ID_FORMAT.persistent;
    const nameId = `<saml:NameID Format="${xmlEscape(input.nameId.format)}"${persistent ? attrIf('NameQualifier', this.#endpoints.entityId) + attrIf('SPNameQualifier', sp.entityId) : ''}>${xmlEscape(input.nameId.value)}</saml:NameID>`;
    const attributes = input.attributes
      .filter((a) => a.values.length)
      .map((a) => `<saml:Attribute Name="${xmlEscape(a.name)}" NameFormat="${xmlEscape(a.nameFormat)}">${a.values.map((v) => `<saml:AttributeValue xsi:type="xs:string">${xmlEscape(v)}</saml:AttributeValue>`).join('')}</saml:Attribute>`)
      .join('');
    return (
      `<samlp:Response xmlns:samlp="${NS.protocol}" xmlns:saml="${NS.assertion}" ID="${id}" Version="2.0" IssueInstant="${issued}" Destination="${xmlEscape(input.acsUrl)}"${attrIf('InResponseTo', input.inResponseTo)}>` +
      issuer +
      `<samlp:Status><samlp:StatusCode Value="${STATUS.success}"/></samlp:Status>` +
      `<saml:Assertion xmlns:saml="${NS.assertion}" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ID="${newId()}" Version="2.0" IssueInstant="${issued}">` +
      issuer +
      `<saml:Subject>${nameId}<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData NotOnOrAfter="${notOnOrAfter}" Recipient="${xmlEscape(input.acsUrl)}"${attrIf('InResponseTo', input.inResponseTo)}/></saml:SubjectConfirmation></saml:Subject>` +
      `<saml:Conditions NotBefore="${notBefore}" NotOnOrAfter="${notOnOrAfter}"><saml:AudienceRestriction><saml:Audience>${xmlEscape(sp.entityId)}</saml:Audience></saml:AudienceRestriction></saml:Conditions>` +
      `<saml:AuthnStatement AuthnInstant="${samlTime(input.authnInstant)}" SessionIndex="${xmlEscape(input.sessionIndex)}" SessionNotOnOrAfter="${samlTime(input.sessionNotOnOrAfter)}"><saml:AuthnContext><saml:AuthnContextClassRef>${xmlEscape(input.authnContext)}</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>` +
      (attributes ? `<saml:AttributeStatement>${attributes}</saml:AttributeStatement>` : '') +
      `</saml:Assertion></samlp:Response>`
    );
  }

  /** A signed Response carrying only a status (NoPassive, AuthnFailed, InvalidNameIDPolicy...), base64. */
  statusResponse(input: { acsUrl: string; inResponseTo: string | null; status: string; subStatus?: string; message?: string }): string {
    const xml =
      `<samlp:Response xmlns:samlp="${NS.protocol}" xmlns:saml="${NS.assertion}" ID="${newId()}" Version="2.0" IssueInstant="${samlTime(new Date())}" Destination="${xmlEscape(input.acsUrl)}"${attrIf('InResponseTo', input.inResponseTo)}>` +
      `<saml:Issuer>${xmlEscape(this.#endpoints.entityId)}</saml:Issuer>` +
      `<samlp:Status><samlp:StatusCode Value="${input.status}">${input.subStatus ? `<samlp:StatusCode Value="${input.subStatus}"/>` : ''}</samlp:StatusCode>${input.message ? `<samlp:StatusMessage>${xmlEscape(input.message)}</samlp:StatusMessage>` : ''}</samlp:Status>` +
      `</samlp:Response>`;
    return SamlLib.constructSAMLSignature({
      rawSamlMessage: xml,
      isMessageSigned: true,
      privateKey: this.#material.privateKeyPem,
      privateKeyPass: undefined,
      signatureAlgorithm: this.#signatureAlgorithm,
      signingCert: this.#material.certificatePem.replace(/-----[^-]+-----|\s+/g, ''),
      signatureConfig: { prefix: 'ds', location: { reference: "/*[local-name(.)='Response']/*[local-name(.)='Issuer']", action: 'after' } },
    } as Parameters<typeof SamlLib.constructSAMLSignature>[0]) as string;
  }

  /** A signed LogoutResponse to the SP's SLO response address, by its binding. */
  logoutResponse(sp: ServiceProvider, input: { inResponseTo: string; relayState: string | null; status: string; subStatus?: string }): Outgoing {
    if (!sp.slo) throw new Error(`service provider ${sp.entityId} has no single logout service`);
    const destination = sp.slo.responseUrl;
    const id = newId();
    const xml =
      `<samlp:LogoutResponse xmlns:samlp="${NS.protocol}" xmlns:saml="${NS.assertion}" ID="${id}" Version="2.0" IssueInstant="${samlTime(new Date())}" Destination="${xmlEscape(destination)}" InResponseTo="${xmlEscape(input.inResponseTo)}">` +
      `<saml:Issuer>${xmlEscape(this.#endpoints.entityId)}</saml:Issuer>` +
      `<samlp:Status><samlp:StatusCode Value="${input.status}">${input.subStatus ? `<samlp:StatusCode Value="${input.subStatus}"/>` : ''}</samlp:StatusCode></samlp:Status>` +
      `</samlp:LogoutResponse>`;
    const built = this.#idp(null).createLogoutResponse(this.#sp(sp, destination), {} as never, sp.slo.binding, { relayState: input.relayState ?? '', customTagReplacement: () => ({ id, context: xml }) });
    return this.#outgoing(id, sp.slo.binding, destination, built, 'SAMLResponse', input.relayState);
  }

  /** A signed LogoutRequest telling another SP that the person's session ended. */
  logoutRequest(sp: ServiceProvider, input: { nameId: string; nameIdFormat: string; sessionIndex: string; relayState: string }): Outgoing {
    if (!sp.slo) throw new Error(`service provider ${sp.entityId} has no single logout service`);
    const destination = sp.slo.url;
    const id = newId();
    const persistent = input.nameIdFormat === NAME_ID_FORMAT.persistent;
    const xml =
      `<samlp:LogoutRequest xmlns:samlp="${NS.protocol}" xmlns:saml="${NS.assertion}" ID="${id}" Version="2.0" IssueInstant="${samlTime(new Date())}" Destination="${xmlEscape(destination)}">` +
      `<saml:Issuer>${xmlEscape(this.#endpoints.entityId)}</saml:Issuer>` +
      `<saml:NameID Format="${xmlEscape(input.nameIdFormat)}"${persistent ? attrIf('NameQualifier', this.#endpoints.entityId) + attrIf('SPNameQualifier', sp.entityId) : ''}>${xmlEscape(input.nameId)}</saml:NameID>` +
      `<samlp:SessionIndex>${xmlEscape(input.sessionIndex)}</samlp:SessionIndex>` +
      `</samlp:LogoutRequest>`;
    const built = this.#idp(null).createLogoutRequest(this.#sp(sp, destination), sp.slo.binding, {}, { relayState: input.relayState, customTagReplacement: () => ({ id, context: xml }) });
    return this.#outgoing(id, sp.slo.binding, destination, built, 'SAMLRequest', input.relayState);
  }

  #outgoing(id: string, binding: 'redirect' | 'post', destination: string, built: unknown, param: 'SAMLRequest' | 'SAMLResponse', relayState: string | null): Outgoing {
    const context = (built as { context: string }).context;
    if (binding === 'redirect') return { id, binding, url: context };
    return { id, binding, url: destination, fields: { [param]: context, ...(relayState ? { RelayState: relayState } : {}) } };
  }
}
