// Upstream URLs in config: https everywhere, plain http only to this machine (tests, a local
// Keycloak), so a typo cannot send codes and client secrets over the network in clear text.

export const UPSTREAM_URL_MESSAGE = 'must be an https:// URL (http:// only for 127.0.0.1, ::1 or localhost), without query or fragment';

export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export function isUpstreamUrl(value: unknown): value is string {
  if (typeof value !== 'string' || !URL.canParse(value)) return false;
  const url = new URL(value);
  if (url.search || url.hash || url.username || url.password || value.includes('#')) return false;
  return url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHost(url.hostname));
}

export function isPlainHttp(value: string): boolean {
  return value.startsWith('http:');
}

export function withoutTrailingSlash(url: string): string {
  return url.replace(/\/+$/, '');
}

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+(:\d{1,5})?$/i;

/** Okta and Auth0 name a tenant by its host; a full URL is accepted too (custom ports, loopback). */
export function isHostOrUpstreamUrl(value: unknown): value is string {
  return typeof value === 'string' && (HOST_NAME.test(value) || (isUpstreamUrl(value) && new URL(value).pathname === '/'));
}

export function hostOrigin(value: string): string {
  return HOST_NAME.test(value) ? `https://${value.toLowerCase()}` : new URL(value).origin;
}
