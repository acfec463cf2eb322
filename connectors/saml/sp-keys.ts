// The service provider's key pairs, read from their PEM files when the connector is created, so
// that an unreadable or mismatched file stops start-up with a message naming the config field.
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { SamlConfig } from './saml-config.ts';

export interface KeyPair {
  privateKey: KeyObject;
  /** PKCS#8 PEM, for the libraries that want text (node-saml, xml-encryption). */
  privateKeyPem: string;
  certificate: X509Certificate;
  certificatePem: string;
}

export interface SpKeys {
  /** Signs AuthnRequests and logout messages; null without sp.privateKeyFile. */
  signing: KeyPair | null;
  /** Decrypts assertions; the signing pair unless a decryption pair is configured. */
  decryption: KeyPair | null;
}

function readPem(field: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`sp.${field}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function loadPair(keyField: string, keyFile: string, certField: string, certFile: string): KeyPair {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(readPem(keyField, keyFile));
  } catch (err) {
    if ((err as Error).message.startsWith('sp.')) throw err;
    throw new Error(`sp.${keyField}: ${keyFile} is not an unencrypted PEM private key`);
  }
  // Signatures here are rsa-sha256 and xml-encryption's key transport is RSA-OAEP.
  if (privateKey.asymmetricKeyType !== 'rsa') throw new Error(`sp.${keyField}: ${keyFile} must hold an RSA key`);
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(readPem(certField, certFile));
  } catch (err) {
    if ((err as Error).message.startsWith('sp.')) throw err;
    throw new Error(`sp.${certField}: ${certFile} is not a PEM certificate`);
  }
  if (!certificate.checkPrivateKey(privateKey)) throw new Error(`sp.${certField}: ${certFile} does not belong to the key in sp.${keyField}`);
  return {
    privateKey,
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    certificate,
    certificatePem: certificate.toString(),
  };
}

export function loadSpKeys(sp: SamlConfig['sp']): SpKeys {
  const signing = sp.privateKeyFile && sp.certificateFile ? loadPair('privateKeyFile', sp.privateKeyFile, 'certificateFile', sp.certificateFile) : null;
  const decryption =
    sp.decryptionKeyFile && sp.decryptionCertificateFile ? loadPair('decryptionKeyFile', sp.decryptionKeyFile, 'decryptionCertificateFile', sp.decryptionCertificateFile) : signing;
  return { signing, decryption };
}

/** A certificate's base64 DER body, as metadata's X509Certificate holds it. */
export function certificateBody(certificate: X509Certificate): string {
  return certificate.raw.toString('base64');
}
