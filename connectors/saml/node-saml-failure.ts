// node-saml's refusals (plain Errors with English messages) as the `detail` categories the broker
// audits. Matched on node-saml 5.1's messages; an unknown one keeps its (shortened) text.
import { shown } from './saml-dom.ts';

const RULES: [RegExp, (message: string) => string][] = [
  [/^Invalid document signature/, () => 'signature: the response signature is missing or invalid'],
  [/^Invalid signature from encrypted assertion/, () => 'signature: the encrypted assertion is not validly signed'],
  [/multiple assertions/, () => 'wrapping: more than one assertion'],
  [/ID cannot refer to more than one element|does not refer to it's parent|Too many signatures|ref URI included quote|Cannot obtain assertion from signed data|signed references/, (m) => `wrapping: ${m}`],
  [/too many transforms/, () => 'signature: too many transforms'],
  [/^Invalid signature/, () => 'signature: the assertion signature is missing or invalid'],
  [/InResponseTo/, (m) => `in_response_to: ${m}`],
  [/not yet valid/, () => 'not yet valid: the assertion is not valid yet'],
  [/assertion too old/, () => 'expired: the assertion was issued longer ago than maxAssertionAgeSeconds'],
  [/expired/, () => 'expired: the assertion has expired'],
  [/No valid subject confirmation/, () => 'expired: no SubjectConfirmationData is within its validity window'],
  [/[Aa]udience/, (m) => `audience: ${m}`],
  [/decrypt|EncryptedAssertion|EncryptedData|encrypted/i, () => 'encryption: the assertion could not be decrypted'],
  [/Missing SAML assertion/, () => 'no assertion in the response'],
];

export function nodeSamlDetail(err: unknown): string {
  const message = shown(err instanceof Error ? err.message : String(err), 200);
  for (const [pattern, detail] of RULES) if (pattern.test(message)) return detail(message);
  return `invalid response: ${message}`;
}
