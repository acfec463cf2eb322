// A broker for the email suites: test/helpers/test-broker.ts with a relying party to sign in to,
// plus the password policy to hand in and an SMTP receiver.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { Browser, type Page } from '../helpers/browser.ts';

export const RP_SECRET = 'rp-secret-0123456789abcdef';
export const RP_REDIRECT = 'http://127.0.0.1:9/cb';

export type EmailBroker = TestBroker;

export async function startEmailBroker(config: Record<string, unknown>, options: { databaseUrl?: string } = {}): Promise<EmailBroker> {
  const rp = { id: 'rp', secret: RP_SECRET, name: 'Relying Party', redirectUris: [RP_REDIRECT], firstParty: true, grantTypes: ['authorization_code', 'refresh_token'] };
  return startTestBroker({ config: { clients: [rp], ...config }, databaseUrl: options.databaseUrl });
}

/** The PKCE verifier of every sign-in openLogin starts (its S256 challenge is sent). */
export const PKCE_VERIFIER = 'email-suite-verifier-0123456789-abcdefghijklmnop';
const PKCE_CHALLENGE = createHash('sha256').update(PKCE_VERIFIER).digest('base64url');

/** The authorization URL openLogin opens (offline_access: a refresh token comes with the code). */
export const authorizationUrl = (issuer: string) =>
  `${issuer}/auth?client_id=rp&response_type=code&scope=${encodeURIComponent('openid email offline_access')}&prompt=consent&redirect_uri=${encodeURIComponent(RP_REDIRECT)}&state=s1234567&code_challenge=${PKCE_CHALLENGE}&code_challenge_method=S256`;

/** Opens a sign-in for the relying party; returns the login page and its interaction id. */
export async function openLogin(browser: Browser, issuer: string): Promise<{ page: Page; uid: string }> {
  const page = await browser.go(authorizationUrl(issuer));
  const uid = /\/interaction\/([^/?#]+)/.exec(page.url)?.[1];
  if (!uid) throw new Error(`no interaction at ${page.url} (${page.status})`);
  return { page, uid };
}

/** The <main> of a page with the per-request parts (CSRF tokens, interaction ids) blanked. */
export function comparable(html: string, ...replace: string[]): string {
  let main = /<main[\s\S]*<\/main>/.exec(html)?.[0] ?? html;
  for (const r of replace) main = main.split(r).join('<X>');
  return main.replace(/name="csrf" value="[^"]*"/g, 'name="csrf"').replace(/\/interaction\/[A-Za-z0-9_-]+/g, '/interaction/<uid>');
}

/**
 * A theme whose login page prints the self-service links of its render context (the real
 * login.njk, owned by the localization work, renders them as "Create account" / "Forgot password?").
 */
export function linksTheme(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'kb-email-theme-'));
  mkdirSync(path.join(dir, 'templates'));
  writeFileSync(
    path.join(dir, 'templates', 'login.njk'),
    `{% extends "layout.njk" %}{% block content %}<form method="post" action="{{ loginAction }}"><input type="hidden" name="csrf" value="{{ csrfToken }}"><input type="hidden" name="connector" value="{{ passwordConnectors[0].id }}"><input name="username"><input name="password" type="password"></form><p id="self-service">register=[{{ registerUrl }}] forgot=[{{ forgotPasswordUrl }}]</p>{% endblock %}`,
  );
  return dir;
}
