// The key and certificate the IdP signs with: the operator's files, or an RSA-2048 key with a
// self-signed certificate (10 years) generated once and kept in the database, so every instance
// signs with the same key and publishes the same metadata.
import { createPrivateKey, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Store } from '../storage/store.ts';
import { ConfigError } from '../errors.ts';

export interface SigningMaterial {
  privateKeyPem: string;
  certificatePem: string;
}

const SECRET_NAME = 'saml-idp-signing-key';

export async function loadSigningMaterial(store: Store, files: { privateKeyFile: string; certificateFile: string } | undefined, subject: string): Promise<SigningMaterial> {
  if (files) return readConfigured(files);
  const existing = await store.secrets.get<SigningMaterial>(SECRET_NAME);
  if (existing) return existing;
  // Generated before the write; if another instance stored one first, its key wins and ours is dropped.
  const generated = await generateSelfSigned(subject);
  return store.secrets.getOrCreate(SECRET_NAME, () => generated);
}

async function readConfigured(files: { privateKeyFile: string; certificateFile: string }): Promise<SigningMaterial> {
  const issue = (path: string, message: string) => new ConfigError([{ path: `samlIdp.signing.${path}`, message }]);
  let privateKeyPem: string;
  let certificatePem: string;
  try {
    privateKeyPem = await readFile(files.privateKeyFile, 'utf8');
  } catch {
    throw issue('privateKeyFile', 'cannot be read');
  }
  try {
    certificatePem = await readFile(files.certificateFile, 'utf8');
  } catch {
    throw issue('certificateFile', 'cannot be read');
  }
  let key;
  let cert;
  try {
    key = createPrivateKey(privateKeyPem);
  } catch {
    throw issue('privateKeyFile', 'is not a PEM private key (unencrypted PKCS#8 or PKCS#1)');
  }
  try {
    cert = new X509Certificate(certificatePem);
  } catch {
    throw issue('certificateFile', 'is not a PEM certificate');
  }
  if (key.asymmetricKeyType !== 'rsa') throw issue('privateKeyFile', 'must be an RSA key');
  if (!cert.checkPrivateKey(key)) throw issue('certificateFile', 'does not match the private key');
  return { privateKeyPem, certificatePem };
}

/** Node has no certificate builder; @peculiar/x509 is loaded only when a key must be generated. */
export async function generateSelfSigned(subject: string, years = 10): Promise<SigningMaterial> {
  // @peculiar/x509 resolves its parts through tsyringe, which needs the Reflect metadata API.
  await import('reflect-metadata');
  const x509 = await import('@peculiar/x509');
  x509.cryptoProvider.set(webcrypto as unknown as Crypto);
  const algorithm = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as CryptoKeyPair;
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(notBefore);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + years);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: `01${randomBytes(15).toString('hex')}`,
    name: `CN=${subject.replace(/[,+="\\<>;#]/g, ' ').slice(0, 64)}`,
    notBefore,
    notAfter,
    signingAlgorithm: algorithm,
    keys,
    extensions: [new x509.BasicConstraintsExtension(false, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true)],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const privateKeyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`;
  return { privateKeyPem, certificatePem: cert.toString('pem') };
}
