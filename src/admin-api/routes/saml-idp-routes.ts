// Keybridge's own SAML IdP as service providers see it: the entity ID, endpoints, metadata URL
// and the signing certificate's validity (for the console's "Our IdP metadata" panel; the
// private key never leaves the IdP). Read with the service-provider scope: whoever registers an
// SP needs these values to configure it.
import { X509Certificate, createHash } from 'node:crypto';
import { z } from 'zod';
import { defineRoute, type AdminRoute } from '../admin-route.ts';
import { AdminProblem, problemSchema } from '../problem.ts';

/** What the running IdP publishes; null when `samlIdp.enabled` is false. */
export interface SamlIdpPublicInfo {
  entityId: string;
  ssoUrl: string;
  sloUrl: string;
  metadataUrl: string;
  certificatePem: string;
}

const samlIdpSchema = z.object({
  entityId: z.string(),
  metadataUrl: z.string().describe('Where SPs read our metadata (public, no token).'),
  endpoints: z.object({ singleSignOn: z.string(), singleLogout: z.string() }).describe('HTTP-Redirect and HTTP-POST bindings on each.'),
  signingCertificate: z
    .object({
      subject: z.string(),
      notBefore: z.iso.datetime(),
      notAfter: z.iso.datetime(),
      sha256Fingerprint: z.string().describe('Hex, colon-separated, of the DER certificate.'),
    })
    .describe('The certificate the IdP signs with (its public part only).'),
});

export function samlIdpRoutes(deps: { samlIdp: SamlIdpPublicInfo | null }): AdminRoute[] {
  const certificate = deps.samlIdp ? new X509Certificate(deps.samlIdp.certificatePem) : null;
  return [
    defineRoute({
      method: 'get',
      path: '/saml-idp',
      resource: 'saml-service-providers',
      access: 'read',
      tag: 'SAML service providers',
      operationId: 'getSamlIdp',
      summary: "Keybridge's SAML IdP",
      description: 'The entity ID, endpoints, metadata URL and signing certificate validity of Keybridge as a SAML IdP. 404 when the IdP is disabled (samlIdp.enabled: false).',
      responses: {
        200: { description: 'The IdP as service providers see it.', schema: samlIdpSchema },
        404: { description: 'The SAML IdP is disabled in the config.', schema: problemSchema },
      },
      async handler() {
        const idp = deps.samlIdp;
        if (!idp || !certificate) throw new AdminProblem(404, 'not_found', 'The SAML IdP is disabled (samlIdp.enabled is false in the config).');
        const der = certificate.raw;
        return {
          body: {
            entityId: idp.entityId,
            metadataUrl: idp.metadataUrl,
            endpoints: { singleSignOn: idp.ssoUrl, singleLogout: idp.sloUrl },
            signingCertificate: {
              subject: certificate.subject,
              notBefore: new Date(certificate.validFrom).toISOString(),
              notAfter: new Date(certificate.validTo).toISOString(),
              sha256Fingerprint: createHash('sha256').update(der).digest('hex').toUpperCase().replace(/(..)(?!$)/g, '$1:'),
            },
          },
        };
      },
    }),
  ];
}
