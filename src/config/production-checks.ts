// What a production deployment must not run with: guessable secrets and passwords, plain-http
// URLs that carry codes, tokens or sessions. Production mode (`mode: production` or
// NODE_ENV=production) refuses to start on any of these; otherwise they are warnings. Messages
// name the path and the rule, never the value.
//
// "Random-looking" (secrets.*, client secrets): at least 32 characters, and none of
//   - fewer than 8 distinct characters, or a Shannon entropy under 3 bits per character
//     (32 random hex characters have about 3.6, base64 about 4.7);
//   - a repeated unit (`abcabc...`, `aaaa...`), a run of 6 equal characters, or 6 consecutive
//     ascending or descending characters (`123456`, `abcdef`);
//   - a placeholder word (change-me, replace-me, example, placeholder, secret, password).
// Rough on purpose: it catches what people type, not what `openssl rand -base64 48` prints.
import type { ConfigIssue } from '../errors.ts';
import type { Config } from './schema.ts';

type Env = Record<string, string | undefined>;

/** Production mode: the config says so, or NODE_ENV=production. */
export function isProductionMode(config: Pick<Config, 'mode'>, env: Env): boolean {
  return config.mode === 'production' || env.NODE_ENV === 'production';
}

export const MIN_SECRET_LENGTH = 32;
export const MIN_PASSWORD_LENGTH = 12;

const PLACEHOLDER = /change[-_ .]?me|replace[-_ .]?me|example|placeholder|secret|passw(or)?d/i;

// The shipped demo password and the passwords every list of breached passwords starts with.
const COMMON_PASSWORDS = new Set([
  'demo-password-change-me', 'password', 'password1', 'password123', 'passw0rd', '123456789012', '1234567890123',
  'qwertyuiop', 'qwertyuiop123', 'iloveyou1234', 'administrator', 'letmein12345', 'welcome12345', 'changeme1234',
]);

function shannonEntropy(value: string): number {
  const counts = new Map<string, number>();
  for (const c of value) counts.set(c, (counts.get(c) ?? 0) + 1);
  let bits = 0;
  for (const n of counts.values()) bits -= (n / value.length) * Math.log2(n / value.length);
  return bits;
}

function hasRepeatedUnit(value: string): boolean {
  for (let unit = 1; unit <= value.length / 2; unit++) {
    const head = value.slice(0, unit);
    if (head.repeat(Math.ceil(value.length / unit)).startsWith(value)) return true;
  }
  return false;
}

/** A run of `length` equal characters, or of characters whose codes go up (or down) by one. */
function hasRun(value: string, length: number): boolean {
  let same = 1;
  let up = 1;
  let down = 1;
  for (let i = 1; i < value.length; i++) {
    const step = value.charCodeAt(i) - value.charCodeAt(i - 1);
    same = step === 0 ? same + 1 : 1;
    up = step === 1 ? up + 1 : 1;
    down = step === -1 ? down + 1 : 1;
    if (same >= length || up >= length || down >= length) return true;
  }
  return false;
}

/** Why a secret is not random-looking, or null when it is. */
export function weakSecretReason(value: string): string | null {
  if ([...value].length < MIN_SECRET_LENGTH) return `must be at least ${MIN_SECRET_LENGTH} random characters (e.g. openssl rand -base64 48)`;
  if (PLACEHOLDER.test(value)) return 'looks like a placeholder; use a random value (e.g. openssl rand -base64 48)';
  if (hasRepeatedUnit(value) || hasRun(value, 6) || new Set(value).size < 8 || shannonEntropy(value) < 3) {
    return 'is not random enough (repeated or sequential characters, or too few different ones); use a random value (e.g. openssl rand -base64 48)';
  }
  return null;
}

/** Why a static user's plain-text password is weak, or null. */
export function weakPasswordReason(password: string, username: string): string | null {
  const folded = password.toLowerCase();
  if ([...password].length < MIN_PASSWORD_LENGTH) return `is too short (at least ${MIN_PASSWORD_LENGTH} characters)`;
  if (COMMON_PASSWORDS.has(folded) || /change[-_ .]?me/.test(folded)) return 'is a well-known or demo password';
  if (folded.includes(username.toLowerCase())) return 'must not contain the username';
  if (hasRepeatedUnit(password) || new Set(password).size < 5) return 'is too simple (repeated characters)';
  return null;
}

function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname.endsWith('.localhost') || hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/** Plain http to anything but this machine: codes, tokens and sessions cross the network readable. */
export function isPlainHttpRemote(value: string): boolean {
  if (!URL.canParse(value)) return false;
  const url = new URL(value);
  return url.protocol === 'http:' && !isLoopbackHost(url.hostname);
}

// Connector config keys that hold secrets Keybridge chooses or an operator types. Upstream-issued
// secrets (an IdP's client secret, a directory's bind password) have the upstream's own format
// and length, so only placeholders and trivial values are flagged there, not their length.
// PEM keys (privateKey, decryptionKey) have their own format and are not checked.
const CONNECTOR_SECRET_KEY = /^(clientSecret|bindPassword|bindPW|secret|password)$/;

function connectorSecrets(value: unknown, at: (string | number)[], out: [(string | number)[], string][]): void {
  if (Array.isArray(value)) value.forEach((item, i) => connectorSecrets(item, [...at, i], out));
  else if (value && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      if (typeof item === 'string' && CONNECTOR_SECRET_KEY.test(key)) out.push([[...at, key], item]);
      else connectorSecrets(item, [...at, key], out);
    }
  }
}

function formatPath(segments: (string | number)[]): string {
  let out = '';
  for (const s of segments) out = typeof s === 'number' ? `${out}[${s}]` : out ? `${out}.${s}` : s;
  return out;
}

/**
 * Every production problem in a validated config, each with its path. Empty: fit for
 * production as far as the config can tell.
 */
export function productionChecks(config: Config): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const issue = (path: (string | number)[], message: string) => issues.push({ path: formatPath(path), message });

  if (!config.issuer.startsWith('https://')) issue(['issuer'], 'must be an https URL in production (cookies and tokens would cross the network readable)');

  for (const name of ['cookieKeys', 'tokenKeys'] as const) {
    (config.secrets[name] ?? []).forEach((key, i) => {
      const why = weakSecretReason(key);
      if (why) issue(['secrets', name, i], why);
    });
  }

  // TOTP secrets are sealed with tokenKeys; without them, with a key kept in the same database
  // as the secrets (fine for development, not for a database dump that leaves the building).
  const mfaInUse = config.mfa.mode !== 'off' || [config.mfa.groups, config.mfa.clients, config.mfa.connectors].some((levels) => Object.values(levels).some((mode) => mode !== 'off'));
  if (mfaInUse && !config.secrets.tokenKeys?.length) issue(['secrets', 'tokenKeys'], 'is required in production while two-step verification is on (mfa.mode is not "off"): it encrypts the TOTP secrets');

  const seenSecrets = new Map<string, string>();
  config.clients.forEach((client, i) => {
    if (client.secret !== undefined) {
      const why = weakSecretReason(client.secret);
      if (why) issue(['clients', i, 'secret'], why);
      else if (seenSecrets.has(client.secret)) issue(['clients', i, 'secret'], `is the same as ${seenSecrets.get(client.secret)}; give every client its own secret`);
      seenSecrets.set(client.secret, `clients[${i}].secret`);
    }
    (client.redirectUris ?? []).forEach((uri, j) => {
      if (isPlainHttpRemote(uri)) issue(['clients', i, 'redirectUris', j], 'must use https (plain http is allowed only for loopback addresses)');
    });
    client.postLogoutRedirectUris.forEach((uri, j) => {
      if (isPlainHttpRemote(uri)) issue(['clients', i, 'postLogoutRedirectUris', j], 'must use https (plain http is allowed only for loopback addresses)');
    });
  });

  config.users.forEach((user, i) => {
    if (user.password === undefined) return;
    const why = weakPasswordReason(user.password, user.username);
    if (why) issue(['users', i, 'password'], why);
    // A plain-text password in a production config file is readable by everyone who can read
    // the file or its backups; the argon2id hash is not.
    else issue(['users', i, 'password'], 'must not be plain text in production: give passwordHash ($argon2id$...) instead, or create the user with `keybridge users add`');
  });

  config.connectors.forEach((connector, i) => {
    const found: [(string | number)[], string][] = [];
    connectorSecrets(connector.config, ['connectors', i, 'config'], found);
    for (const [path, value] of found) {
      if (/change[-_ .]?me|replace[-_ .]?me|placeholder|^x+$/i.test(value) || hasRepeatedUnit(value) || value.length < 8) {
        issue(path, 'looks like a placeholder or a trivial value');
      }
    }
  });

  return issues;
}

/**
 * Outside production mode: the production problems as one warning line each, for start-up and
 * check-config. In production mode the config was refused already, so there are none.
 */
export function productionWarnings(config: Config): string[] {
  if (config.mode === 'production') return [];
  return productionChecks(config).map((i) => `warning: ${i.path}: ${i.message} (refused in production mode)`);
}
