// Keeps secrets out of failure details and thrown messages: strategies and their HTTP libraries
// happily echo request bodies and URLs (client secrets, codes, tokens) into error text.

const SECRET_KEY = /secret|password|passphrase|private|key|token|cert/i;

export interface SecretRedactor {
  /** `text` with every known secret replaced, cut to a loggable length. */
  (text: string): string;
  /** Remember more secrets (codes and tokens seen during one leg). */
  with(...secrets: (string | undefined)[]): SecretRedactor;
}

function collect(value: unknown, key: string, out: Set<string>, depth = 0): void {
  if (depth > 8) return;
  if (typeof value === 'string') {
    if (SECRET_KEY.test(key) && value.length >= 4) out.add(value);
  } else if (Array.isArray(value)) {
    for (const v of value) collect(v, key, out, depth + 1);
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) collect(v, SECRET_KEY.test(key) ? key : k, out, depth + 1);
  }
}

function build(secrets: ReadonlySet<string>): SecretRedactor {
  // Longest first, so a secret containing another is replaced whole.
  const ordered = [...secrets].sort((a, b) => b.length - a.length);
  const redact = ((text: string) => {
    let out = text;
    for (const s of ordered) out = out.split(s).join('[redacted]');
    return out.length > 500 ? `${out.slice(0, 500)}…` : out;
  }) as SecretRedactor;
  redact.with = (...more) => build(new Set([...secrets, ...more.filter((s): s is string => typeof s === 'string' && s.length >= 4)]));
  return redact;
}

/** A redactor for every string under a secret-looking key (clientSecret, privateKey, ...), at any depth of `config`. */
export function createSecretRedactor(config: Record<string, unknown>): SecretRedactor {
  const secrets = new Set<string>();
  collect(config, '', secrets);
  return build(secrets);
}
