// Risky settings worth an administrator's look, computed from the config and the store for the
// console's dashboard (GET /admin/api/v1/stats/hints). A hint names where the setting lives
// (config path, client id, connector id, key id) and never carries a secret value: the
// production checks name paths and rules only, and URLs shown here are redirect URIs, issuers
// and directory addresses, none of which is secret.
import type { Config } from '../config/schema.ts';
import type { Store } from '../storage/store.ts';
import { isPlainHttpRemote, productionChecks } from '../config/production-checks.ts';
import type { ClientService } from './clients.ts';
import type { ConnectorService } from './connectors.ts';

export type HintSeverity = 'info' | 'warning' | 'danger';

export interface Hint {
  /** Stable for the same finding (`client-http-redirect:portal`). */
  id: string;
  severity: HintSeverity;
  title: string;
  detail: string;
  /** A console page to fix it on. */
  link?: string;
}

/** Signing keys older than this get a hint (rotate them). */
export const KEY_AGE_LIMIT_DAYS = 90;
const DAY_MS = 86_400_000;
const SEVERITY_ORDER: Record<HintSeverity, number> = { danger: 0, warning: 1, info: 2 };
// Connector types that talk LDAP and take `url` and `startTls` (connectors/ldap/ldap-config.ts).
const LDAP_TYPES = new Set(['ldap', 'activedirectory']);

const consolePath = (...parts: string[]) => `/admin/${parts.map(encodeURIComponent).join('/')}`;

function isLoopbackLdap(url: string): boolean {
  if (!URL.canParse(url)) return false;
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}

export interface HintDependencies {
  config: Config;
  store: Store;
  clients: ClientService;
  connectors: ConnectorService;
  now?: Date;
}

/** Every hint, most severe first. */
export async function riskHints(deps: HintDependencies): Promise<Hint[]> {
  const { config, store } = deps;
  const now = deps.now ?? new Date();
  const hints: Hint[] = [];

  if (isPlainHttpRemote(config.issuer)) {
    hints.push({ id: 'issuer-http', severity: 'danger', title: 'The issuer uses plain http', detail: `The issuer ${config.issuer} is not on this machine and not https: sign-in cookies, codes and tokens cross the network readable. Serve Keybridge over https and set issuer to the https URL.` });
  }

  if (config.admin.groups.length === 0) {
    hints.push({ id: 'no-admin-group', severity: 'warning', title: 'No administrator group is configured', detail: 'admin.groups is empty: no person can administer Keybridge through the console, only clients with admin scopes. Name the groups whose members are administrators in admin.groups.' });
  }

  hints.push({ id: 'admin-mfa', severity: 'info', title: 'Administrators sign in without a second factor', detail: 'Keybridge has no multi-factor authentication yet: an administrator\'s password alone opens the console. Use a connector whose upstream enforces MFA for administrators where you can, and keep the admin group small.' });

  // Redirect URIs of every client (config, Keybridge's own and stored), a page at a time.
  let after: string | undefined;
  for (;;) {
    const page = await deps.clients.list({ limit: 200, after });
    for (const client of page.items) {
      const plain = [...client.redirectUris, ...client.postLogoutRedirectUris].filter(isPlainHttpRemote);
      if (!plain.length) continue;
      hints.push({
        id: `client-http-redirect:${client.id}`,
        severity: 'warning',
        title: `Client ${client.id} redirects over plain http`,
        detail: `${[...new Set(plain)].join(', ')}: authorization codes and sessions would cross the network readable. Use https (plain http is fine only for loopback addresses).`,
        link: consolePath('clients', client.id),
      });
    }
    if (!page.last) break;
    after = page.last;
  }

  // The production checks outside production mode (productionWarnings); redirect URIs and the
  // issuer have their own hints above.
  if (config.mode !== 'production') {
    for (const issue of productionChecks(config)) {
      if (issue.path === 'issuer' || /^clients\[\d+\]\.(redirectUris|postLogoutRedirectUris)/.test(issue.path)) continue;
      hints.push({ id: `production:${issue.path}`, severity: 'warning', title: `${issue.path} would be refused in production mode`, detail: `${issue.path}: ${issue.message}.` });
    }
  }

  for (const key of await store.signingKeys.listPublishable(now)) {
    if (key.status !== 'active') continue;
    const days = Math.floor((now.getTime() - key.createdAt.getTime()) / DAY_MS);
    if (days < KEY_AGE_LIMIT_DAYS) continue;
    hints.push({ id: `key-age:${key.kid}`, severity: 'warning', title: `Signing key ${key.kid} is ${days} days old`, detail: `The active ${key.alg} key was created ${key.createdAt.toISOString().slice(0, 10)}, more than ${KEY_AGE_LIMIT_DAYS} days ago. Rotate the keys (apps pick the new one up from the JWKS).`, link: '/admin/keys' });
  }

  for (const connector of await deps.connectors.list()) {
    if (!LDAP_TYPES.has(connector.type) || connector.config.startTls === true) continue;
    const raw = connector.config.url;
    const urls = (Array.isArray(raw) ? raw : [raw]).filter((u): u is string => typeof u === 'string' && /^ldap:\/\//i.test(u));
    if (!urls.length) continue;
    const remote = urls.some((u) => !isLoopbackLdap(u));
    hints.push({
      id: `ldap-plain:${connector.id}`,
      severity: remote ? 'danger' : 'info',
      title: `Connector ${connector.id} talks plain LDAP`,
      detail: `${urls.join(', ')} without StartTLS: ${remote ? 'passwords travel to the directory unencrypted' : 'unencrypted, though only on this machine'}${connector.enabled ? '' : ' (the connector is disabled)'}. Use ldaps:// or startTls: true.`,
      link: consolePath('connectors', connector.id),
    });
  }

  return hints.map((h, i) => [h, i] as const).sort(([a, i], [b, j]) => SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity] || i - j).map(([h]) => h);
}
