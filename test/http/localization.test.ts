// Localization: the catalogs are complete in every language and every key the code and the
// templates use exists; the language is negotiated from ui_locales, then Accept-Language, then
// the default; and the real pages (login, consent, errors, over HTTP and in Chromium) come in
// German when asked and in English otherwise.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import path from 'node:path';
import * as oidc from 'openid-client';
import { LOCALES_DIR, MessageCatalogs, parseAcceptLanguage } from '../../src/i18n/messages.ts';
import { text } from '../../src/i18n/page-text.ts';
import { english } from '../../src/i18n/english.ts';
import { catalogProblems } from '../../src/i18n/check-catalogs.ts';
import { parseConfig } from '../../src/config/load-config.ts';
import { stringify } from 'yaml';
import { SamlRejected } from '../../src/saml-idp/saml-rejected.ts';
import { PageRenderer } from '../../src/http/page-renderer.ts';
import { FAILURE_MESSAGES, waitText } from '../../src/login/login-kit.ts';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { Browser, findForm, type Page } from '../helpers/browser.ts';
import { providerFormPost } from '../../src/http/form-post.ts';
import { sendTooMany } from '../../src/limits/limit-requests.ts';
import { signIn } from '../helpers/login-flow.ts';
import { chromiumMissing, launchChromium } from '../helpers/chromium.ts';

const REPO = path.resolve(import.meta.dirname, '../..');

/** A browser that sends one Accept-Language on every request, as a real one does ('' sends none). */
class SpeakingBrowser extends Browser {
  readonly acceptLanguage: string;
  constructor(origin: string, acceptLanguage: string) {
    super(origin);
    this.acceptLanguage = acceptLanguage;
  }
  override request(url: string, init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<Response> {
    return super.request(url, { ...init, headers: { ...(this.acceptLanguage ? { 'accept-language': this.acceptLanguage } : {}), ...init.headers } });
  }
}

/** `<lang>/<area>.json` files as { lang: { "area.key": message } }, straight from disk. */
function readCatalogs(dir = LOCALES_DIR): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  for (const lang of readdirSync(dir).filter((d) => statSync(path.join(dir, d)).isDirectory())) {
    const messages = new Map<string, string>();
    for (const file of readdirSync(path.join(dir, lang)).filter((f) => f.endsWith('.json'))) {
      const parsed = JSON.parse(readFileSync(path.join(dir, lang, file), 'utf8')) as Record<string, unknown>;
      for (const [key, value] of Object.entries(parsed)) {
        assert.equal(typeof value, 'string', `${lang}/${file}: ${key} is not a string`);
        messages.set(`${file.slice(0, -5)}.${key}`, value as string);
      }
    }
    out.set(lang, messages);
  }
  return out;
}

function filesUnder(dir: string, ext: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) out.push(...filesUnder(full, ext));
    else if (name.endsWith(ext)) out.push(full);
  }
  return out;
}

describe('message catalogs', () => {
  const catalogs = readCatalogs();
  const en = catalogs.get('en')!;

  test('English and German exist, each with the same area files', () => {
    assert.ok(en && en.size > 100, 'an English catalog with the pages\' messages');
    assert.ok(catalogs.has('de'), 'a German catalog');
    const areas = (lang: string) => readdirSync(path.join(LOCALES_DIR, lang)).filter((f) => f.endsWith('.json')).sort();
    for (const lang of catalogs.keys()) assert.deepEqual(areas(lang), areas('en'), `${lang} has every area file English has, and no other`);
  });

  test('every language is complete against English (src/i18n/check-catalogs.ts, also a command)', () => {
    assert.deepEqual(catalogProblems(), []);
  });

  test('the completeness check finds what is wrong: missing keys and areas, plural forms, extra keys, empty messages, other placeholders', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'keybridge-catalogs-'));
    try {
      mkdirSync(path.join(dir, 'en'));
      mkdirSync(path.join(dir, 'de'));
      mkdirSync(path.join(dir, 'pl'));
      writeFileSync(path.join(dir, 'en', 'a.json'), JSON.stringify({ hello: 'Hello {name}', bye: 'Bye', 'left.one': '{count} left', 'left.other': '{count} left' }));
      writeFileSync(path.join(dir, 'en', 'b.json'), JSON.stringify({ x: 'X' }));
      writeFileSync(path.join(dir, 'de', 'a.json'), JSON.stringify({ hello: 'Hallo {nom}', bye: ' ', extra: 'Extra', 'left.one': '{count} übrig' }));
      // Polish needs one, few, many and other.
      writeFileSync(path.join(dir, 'pl', 'a.json'), JSON.stringify({ hello: 'Cześć {name}', bye: 'Pa', 'left.one': '{count}', 'left.few': '{count}', 'left.many': '{count}', 'left.other': '{count}' }));
      writeFileSync(path.join(dir, 'pl', 'b.json'), JSON.stringify({ x: 'X' }));
      const problems = catalogProblems(dir);
      for (const expected of [
        'de: a.hello has {nom} where English has {name}',
        'de: a.bye is empty',
        'de: a.extra is not an English key',
        'de: no b.json',
        'de: missing b.x',
        'de: missing a.left.other (a plural form de needs)',
      ]) assert.ok(problems.includes(expected), `expected "${expected}" in:\n${problems.join('\n')}`);
      assert.deepEqual(problems.filter((p) => p.startsWith('pl:')), [], 'Polish with its four plural forms is complete');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('German is a translation, not a copy of English', () => {
    const de = catalogs.get('de')!;
    // Words that are the same in both (product terms, "Code", "Details") are few.
    const same = [...en].filter(([key, message]) => de.get(key) === message);
    assert.ok(same.length <= 6, `too many German messages equal to English: ${same.map(([k]) => k).join(', ')}`);
  });

  test('every literal key in templates and code exists in English', () => {
    // A key ending in a dot or underscore is the fixed part of one built from a value (`'password.update.reason.' + reason`).
    const has = (key: string) => (key.endsWith('.') || key.endsWith('_') ? [...en.keys()].some((k) => k.startsWith(key)) : en.has(key) || en.has(`${key}.other`));
    const used = new Map<string, string>();
    for (const file of filesUnder(path.join(REPO, 'templates'), '.njk')) {
      for (const m of readFileSync(file, 'utf8').matchAll(/\bt(?:Strong|Code)?\(\s*'([a-z_]+\.[A-Za-z0-9_.]+)'/g)) used.set(m[1], path.relative(REPO, file));
    }
    for (const file of filesUnder(path.join(REPO, 'src'), '.ts')) {
      const source = readFileSync(file, 'utf8');
      for (const m of source.matchAll(/\btext\(\s*'([a-z_]+\.[A-Za-z0-9_.]+)'/g)) used.set(m[1], path.relative(REPO, file));
      for (const m of source.matchAll(/\{\s*key:\s*'([a-z_]+\.[A-Za-z0-9_.]+)'/g)) used.set(m[1], path.relative(REPO, file));
    }
    assert.ok(used.size > 100, `found the keys in use (${used.size})`);
    const missing = [...used].filter(([key]) => !has(key)).map(([key, file]) => `${key} (${file})`);
    assert.deepEqual(missing, [], 'keys used but not in locales/en');
    // Keys built in code: every failure reason, every described scope.
    for (const message of Object.values(FAILURE_MESSAGES)) assert.ok(has(message.key), message.key);
    for (const scope of ['openid', 'profile', 'email', 'groups', 'offline_access']) assert.ok(has(`consent.scope.${scope}`), scope);
  });

  test('the templates this part owns carry no hard-coded English sentence between tags', () => {
    const others = new Set(['update-password.njk']);
    for (const file of readdirSync(path.join(REPO, 'templates')).filter((f) => f.endsWith('.njk') && !others.has(f))) {
      const source = readFileSync(path.join(REPO, 'templates', file), 'utf8')
        .replace(/\{#[\s\S]*?#\}/g, '')
        .replace(/\{%[\s\S]*?%\}/g, '')
        .replace(/\{\{[\s\S]*?\}\}/g, '')
        .replace(/<[^>]*>/g, ' ')
        .replace(/\b[a-z-]+="[^"]*"/g, ' ');
      const words = source.split(/\s+/).filter((w) => /[A-Za-z]{2,}/.test(w));
      assert.deepEqual(words, [], `${file} has text outside t(): ${words.join(' ')}`);
    }
  });
});

describe('negotiation', () => {
  const catalogs = new MessageCatalogs();

  test('ui_locales beats Accept-Language, in its own order', () => {
    assert.equal(catalogs.negotiate({ uiLocales: 'de', acceptLanguage: 'en' }), 'de');
    assert.equal(catalogs.negotiate({ uiLocales: 'fr de en', acceptLanguage: 'en' }), 'de', 'the first ui_locales with a catalog');
    assert.equal(catalogs.negotiate({ uiLocales: 'en de', acceptLanguage: 'de' }), 'en');
    assert.equal(catalogs.negotiate({ uiLocales: 'fr', acceptLanguage: 'de' }), 'de', 'no ui_locales match: Accept-Language');
  });

  test('Accept-Language by q-value, then order; regions fall back to their language', () => {
    assert.equal(catalogs.negotiate({ acceptLanguage: 'fr;q=0.9, de;q=0.8, en;q=0.7' }), 'de');
    assert.equal(catalogs.negotiate({ acceptLanguage: 'en;q=0.5, de' }), 'de', 'q=1 by default');
    assert.equal(catalogs.negotiate({ acceptLanguage: 'de-AT' }), 'de');
    assert.equal(catalogs.negotiate({ acceptLanguage: 'DE-ch, en' }), 'de', 'tags are case-insensitive');
    assert.equal(catalogs.negotiate({ acceptLanguage: 'de;q=0, en' }), 'en', 'q=0 means not acceptable');
    assert.deepEqual(parseAcceptLanguage('en;q=0.3, de-DE, fr;q=0.5'), ['de-DE', 'fr', 'en']);
  });

  test('unknown languages and nothing at all give English', () => {
    assert.equal(catalogs.negotiate({}), 'en');
    assert.equal(catalogs.negotiate({ acceptLanguage: 'ja, zh-CN;q=0.8' }), 'en');
    assert.equal(catalogs.negotiate({ uiLocales: 'xx', acceptLanguage: '' }), 'en');
  });

  test('hostile headers give English without throwing', () => {
    const hostile = [
      'x'.repeat(5 * 1024),
      'de\u0000',
      '\u0000',
      '*;q=abc',
      '*',
      ';;;,,,;q=',
      'de;q=1.5',
      `${'a-'.repeat(3000)}de`,
      ',' .repeat(5000),
      '../../etc/passwd',
      '__proto__',
      'constructor',
      'de;q=0.5;q=abc',
    ];
    for (const header of hostile) {
      const found = catalogs.negotiate({ acceptLanguage: header, uiLocales: header });
      assert.ok(found === 'en' || found === 'de', JSON.stringify(header.slice(0, 40)));
    }
    for (const header of ['x'.repeat(5 * 1024), '\u0000', '*;q=abc', '__proto__', '../de']) assert.equal(catalogs.negotiate({ acceptLanguage: header, uiLocales: header }), 'en', JSON.stringify(header.slice(0, 40)));
    assert.equal(catalogs.negotiate({ uiLocales: 42, acceptLanguage: ['de'] }), 'en', 'not strings');
  });

  test('a default language for deployments whose users mostly speak it; an unknown one is refused', () => {
    const german = new MessageCatalogs([LOCALES_DIR], { defaultLocale: 'de' });
    assert.equal(german.negotiate({}), 'de');
    assert.equal(german.negotiate({ acceptLanguage: 'ja' }), 'de');
    assert.equal(german.negotiate({ acceptLanguage: 'en' }), 'en', 'a browser asking for English still gets it');
    assert.throws(() => new MessageCatalogs([LOCALES_DIR], { defaultLocale: 'xx' }), /defaultLocale.*no catalog for "xx"/);
    assert.match(new PageRenderer({ title: 'T', defaultLocale: 'de' }).render('logout-success', {}), /<html lang="de">[\s\S]*<h1>Sie wurden abgemeldet<\/h1>/);
    const config = (ui: unknown) => parseConfig(stringify({ issuer: 'http://127.0.0.1:5556', ui }), { env: {}, source: 'test' });
    assert.equal(config({ defaultLocale: 'de' }).ui.defaultLocale, 'de');
    assert.equal(config({}).ui.defaultLocale, undefined, 'optional: English');
    assert.throws(() => config({ defaultLocale: 'de; rm -rf' }), /ui\.defaultLocale: must be a language tag/);
  });
});

describe('translating', () => {
  const catalogs = new MessageCatalogs();
  const de = catalogs.translator('de');
  const en = catalogs.translator('en');

  test('page texts with values, nested texts and plural forms', () => {
    assert.equal(de(text('login.heading', { client: 'Wiki' })), 'Bei Wiki anmelden');
    assert.equal(en(text('login.error.too_many_network', { wait: waitText(1) })), 'Too many sign-in attempts from your network. Try again in 1 second.');
    assert.equal(en(text('login.error.too_many_network', { wait: waitText(8) })), 'Too many sign-in attempts from your network. Try again in 8 seconds.');
    assert.equal(en(text('login.error.too_many_account', { wait: waitText(900) })), 'Too many failed sign-in attempts for this account. Try again in 15 minutes.');
    assert.equal(de(text('login.error.too_many_network', { wait: waitText(1) })), 'Zu viele Anmeldeversuche aus Ihrem Netzwerk. Versuchen Sie es in 1 Sekunde erneut.');
    assert.equal(de(text('login.error.too_many_account', { wait: waitText(120) })), 'Zu viele fehlgeschlagene Anmeldeversuche für dieses Konto. Versuchen Sie es in 2 Minuten erneut.');
    assert.equal(en(text('mfa.notice.recovery_codes_left', { count: 1 })), 'You have 1 recovery code left. Each one works once.');
    assert.equal(en(text('mfa.notice.recovery_codes_left', { count: 9 })), 'You have 9 recovery codes left. Each one works once.');
    assert.equal(de(text('mfa.notice.recovery_codes_left', { count: 1 })), 'Sie haben noch 1 Wiederherstellungscode. Jeder Code funktioniert nur einmal.');
    assert.equal(de(text('mfa.notice.recovery_codes_left', { count: 0 })), 'Sie haben noch 0 Wiederherstellungscodes. Jeder Code funktioniert nur einmal.');
    assert.equal(de('mfa.challenge.remember', { count: '1' }), 'Auf diesem Gerät 1 Tag lang nicht mehr fragen', 'a count given as digits');
    assert.equal(en('mfa.challenge.remember', { count: 'many' }), 'mfa.challenge.remember', 'no number, no plural form');
  });

  test('values are inserted once: braces in a value stay as they are', () => {
    assert.equal(en('login.heading', { client: '{client} {__proto__}' }), 'Sign in to {client} {__proto__}');
    assert.equal(en('login.heading'), 'Sign in to {client}', 'a missing value leaves the placeholder');
  });

  test('ready-made words and unknown keys come back as given; English text for logs', () => {
    assert.equal(de('The two passwords do not match.'), 'The two passwords do not match.');
    assert.equal(de('no.such.key'), 'no.such.key');
    assert.equal(english(text('login.failure.invalid_credentials')), 'Invalid username or password.');
  });

  test('SAML IdP refusals: the same English words as before, and German', () => {
    const unsigned = new SamlRejected('unsigned', 'sign-in request');
    assert.equal(unsigned.message, 'The sign-in request from this application is not signed.');
    assert.equal(unsigned.pageMessage('Wiki'), "The sign-in request from “Wiki” is not signed. For the administrator: The application's SAML request was not signed, but Keybridge requires signed requests for it: configure the application to sign its requests, or check AuthnRequestsSigned in its metadata and requireSignedRequests (for this SP and under samlIdp) in Keybridge.");
    assert.match(de(unsigned.pageText('Wiki')), /^Die Anmeldeanfrage von „Wiki“ ist nicht signiert\. Für die Administration: Die SAML-Anfrage der Anwendung war nicht signiert/);
    assert.equal(de(new SamlRejected('idp_initiated_disabled', 'sign-in').pageText(null)), 'Diese Anwendung nimmt keine Anmeldungen an, die hier begonnen wurden. Öffnen Sie die Anwendung und melden Sie sich dort an. Für die Administration: Vom IdP begonnene Anmeldungen sind für diesen SP ausgeschaltet (idpInitiated.enabled).');
    assert.equal(en(new SamlRejected('idp_initiated_disabled', 'sign-in').pageText(null)), 'This application does not accept sign-ins started here. Go to the application and sign in from there. For the administrator: IdP-initiated sign-in is off for this SP (idpInitiated.enabled).');
    assert.equal(new SamlRejected('replayed', 'sign-out response').hint, '', 'no hint where nothing needs configuring');
    assert.equal(de(new SamlRejected('replayed', 'sign-out response').pageText('x')), 'Diese Abmeldeantwort wurde bereits verwendet. Kehren Sie zur Anwendung zurück und beginnen Sie erneut.');
    assert.match(en(new SamlRejected('invalid_nameid_policy', 'sign-in request', { detail: { format: 'urn:x' } }).pageText('Wiki')), /^“Wiki” asked for a kind of user identifier .* The NameID format urn:x is not one/);
  });

  test('a message missing in a language falls back to English, and a theme overrides single messages', () => {
    const theme = mkdtempSync(path.join(os.tmpdir(), 'keybridge-locales-'));
    try {
      mkdirSync(path.join(theme, 'de'));
      mkdirSync(path.join(theme, 'fr'));
      writeFileSync(path.join(theme, 'de', 'login.json'), JSON.stringify({ submit: 'Los geht\'s' }));
      writeFileSync(path.join(theme, 'fr', 'login.json'), JSON.stringify({ title: 'Connexion' }));
      const themed = new MessageCatalogs([theme, LOCALES_DIR]);
      assert.deepEqual(themed.locales, ['en', 'de', 'fr']);
      assert.equal(themed.translator('de')('login.submit'), 'Los geht\'s', 'the theme wins');
      assert.equal(themed.translator('de')('login.password'), 'Passwort', 'the rest of German stays');
      assert.equal(themed.translator('fr')('login.title'), 'Connexion');
      assert.equal(themed.translator('fr')('login.password'), 'Password', 'missing in French: English');
      assert.equal(themed.negotiate({ acceptLanguage: 'fr-CA' }), 'fr');
    } finally {
      rmSync(theme, { recursive: true, force: true });
    }
  });
});

/** The visible words of a page (tags, scripts and attribute values left out). */
const visibleText = (html: string) => html.replace(/<script[\s\S]*?<\/script>/g, ' ').replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ');

describe('rendered pages', () => {
  const renderer = new PageRenderer({ title: 'Acme ID' });
  const catalogs = renderer.catalogs;
  const de = catalogs.translator('de');
  const loginContext = {
    uid: 'u1',
    client: { id: 'wiki', name: 'Wiki', policyUri: 'https://wiki.example/privacy', tosUri: 'https://wiki.example/tos' },
    passwordConnectors: [{ id: 'local', name: 'Local', usernameLabel: text('login.username') }, { id: 'ldap', name: 'Directory', usernameLabel: text('login.username_or_email') }],
    redirectConnectors: [{ id: 'gh', name: 'GitHub' }],
    csrfToken: 't',
    loginAction: '/l',
    connectorAction: '/c',
    cancelAction: '/a',
    error: FAILURE_MESSAGES.invalid_credentials,
    notice: text('link.error.expired'),
    passkey: { optionsUrl: '/o', action: '/p', mode: 'passkey' },
    registerUrl: '/register',
    forgotPasswordUrl: '/forgot',
  };

  test('the German login page has no English words of the login page', () => {
    const html = renderer.render('login', { ...loginContext, lang: 'de', t: de });
    assert.match(html, /<html lang="de">/);
    assert.match(html, /<h1>Bei Wiki anmelden<\/h1>/);
    assert.match(html, /<button type="submit" class="primary">Anmelden<\/button>/);
    assert.match(html, /role="alert">Benutzername oder Passwort ist falsch\.</);
    const words = visibleText(html);
    const bare = (message: string) => message.replace(/\{\w+\}/g, '').trim();
    const en = catalogs.translator('en');
    let checked = 0;
    for (const key of catalogs.keys('en').filter((k) => /^(login|common)\./.test(k))) {
      const phrase = bare(en(key));
      // A word that is the same in German is not English on the page.
      if (phrase.length < 2 || phrase === bare(de(key))) continue;
      const escaped = phrase.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      assert.doesNotMatch(words, new RegExp(`(^|[^\\p{L}])${escaped}($|[^\\p{L}])`, 'u'), `English on the German login page: "${phrase}" (${key})`);
      checked++;
    }
    assert.ok(checked > 30, `checked ${checked} English phrases`);
  });

  test('every page this part owns, rendered in German with everything shown, has no English phrase of the catalogs', () => {
    const client = { id: 'wiki', name: 'Wiki', policyUri: 'https://wiki.example/p', tosUri: 'https://wiki.example/t' };
    const common = { client, csrfToken: 't', cancelAction: '/a', uid: 'u' };
    const pages: [string, Record<string, unknown>][] = [
      ['login', loginContext],
      ['login', { ...loginContext, passwordConnectors: [], redirectConnectors: [] }],
      ['consent', { ...common, user: { username: 'alice', name: 'Alice' }, scopes: ['openid', 'profile', 'email', 'groups', 'offline_access'].map((name) => ({ name, description: text(`consent.scope.${name}`) })), claims: ['groups'], resources: [{ id: 'https://api', scopes: ['read'] }] }],
      ['device-input', { formHtml: '', error: text('device.error.wrong_code'), userCode: '' }],
      ['device-confirm', { formHtml: '', client, userCode: 'BCDF-GHJK', deviceInfo: { ip: '203.0.113.7', userAgent: 'tv' } }],
      ['device-success', { clientName: 'TV' }],
      ['device-success', {}],
      ['error', { title: text('errors.title.request'), message: text('errors.invalid_session'), code: 'invalid_session', requestId: 'r', backUrl: '/', description: 'x' }],
      ['form-post', { action: 'https://rp/cb', fields: [{ name: 'code', value: 'c' }], heading: text('common.one_moment') }],
      ['link-account', { ...common, provider: 'GitHub', email: 'a***@example.org', error: text('link.error.other_account'), passwordMethods: [{ id: 'l', name: 'Local' }, { id: 'd', name: 'Directory' }], redirectMethods: [{ id: 'g', name: 'Google' }] }],
      ['link-account', { ...common, provider: 'GitHub', passwordMethods: [], redirectMethods: [] }],
      ['logout', { formHtml: '', clientName: 'Wiki' }],
      ['logout', { formHtml: '' }],
      ['logout-success', { clientName: 'Wiki' }],
      ['logout-success', {}],
      ['mfa-challenge', { ...common, error: text('mfa.error.code_wrong'), passkey: { action: '/p', optionsUrl: '/o' }, totp: true, rememberDays: 30, recoveryCodes: true }],
      ['mfa-enrol', { ...common, error: text('mfa.error.enrol_expired'), passkey: { action: '/p', optionsUrl: '/o' }, secret: 'S', qrSvg: '' }],
      ['mfa-enrol', { ...common, adding: true, passkey: { action: '/p', optionsUrl: '/o' }, secret: 'S', qrSvg: '' }],
      ['mfa-notice', { ...common, recoveryCodes: ['a', 'b'], notice: text('mfa.notice.recovery_codes_left', { count: 2 }) }],
      ['mfa-notice', { ...common, notice: text('mfa.notice.last_recovery_code') }],
    ];
    const en = catalogs.translator('en');
    const bare = (message: string) => message.replace(/\{\w+\}/g, ' ').replace(/\s+/g, ' ').trim();
    // English phrases (the parts between placeholders) that are not also German.
    const phrases = new Set<string>();
    for (const key of catalogs.keys('en')) {
      const german = bare(de(key));
      for (const part of bare(en(key)).split(/ (?=[A-Z])|[.:?!] /).map((p) => p.trim()).filter((p) => p.length > 3 && p.includes(' ') && !german.includes(p))) phrases.add(part);
    }
    assert.ok(phrases.size > 200, `English phrases to look for: ${phrases.size}`);
    for (const [name, context] of pages) {
      const html = renderer.render(name, { ...context, lang: 'de', t: de });
      assert.match(html, /<html lang="de">/, name);
      const words = visibleText(html) + ' ' + [...html.matchAll(/(?:placeholder|data-message-[a-z-]+)="([^"]*)"/g)].map((m) => m[1]).join(' ');
      for (const phrase of phrases) assert.ok(!words.includes(phrase), `${name}: English "${phrase}" on the German page`);
    }
  });

  test('Create account and Forgot password? links appear only when their URLs are given', () => {
    const html = renderer.render('login', loginContext);
    assert.match(html, /<a href="\/register" id="create-account">Create account<\/a>/);
    assert.match(html, /<a href="\/forgot" id="forgot-password">Forgot password\?<\/a>/);
    const german = renderer.render('login', { ...loginContext, lang: 'de', t: de });
    assert.match(german, /id="create-account">Konto erstellen</);
    assert.match(german, /id="forgot-password">Passwort vergessen\?</);
    const without = renderer.render('login', { ...loginContext, registerUrl: undefined, forgotPasswordUrl: undefined });
    assert.doesNotMatch(without, /create-account|forgot-password|Create account|Forgot password/);
    const hostile = renderer.render('login', { ...loginContext, registerUrl: 'javascript:alert(1)', forgotPasswordUrl: '//evil.example/' });
    assert.doesNotMatch(hostile, /create-account|forgot-password|javascript:|evil\.example/);
  });

  test('values set off in markup are escaped, message and value alike', () => {
    const html = renderer.render('consent', {
      client: { id: 'c', name: '<b>App</b>' },
      user: { username: 'alice', name: '<img src=x onerror=alert(1)>' },
      scopes: [{ name: 'email', description: text('consent.scope.email') }, { name: 'custom' }],
      claims: ['<script>'],
      resources: [],
      lang: 'de',
      t: de,
    });
    assert.match(html, /Angemeldet als <strong>&#60;img src=x onerror=alert\(1\)&#62;<\/strong> \(alice\)/);
    assert.match(html, /<h1>&lt;b&gt;App&lt;\/b&gt; möchte auf Ihr Konto zugreifen<\/h1>/);
    assert.match(html, /<li>Ihre Angabe <code>&#60;script&#62;<\/code><\/li>/);
    assert.match(html, /<li>Ihre E-Mail-Adresse<\/li>/);
    assert.match(html, /<li>custom<\/li>/);
    assert.doesNotMatch(html, /<img src=x|<script>/);
  });

  test('plural forms on the MFA page and in the notice', () => {
    const page = (days: number, lang: string) => renderer.render('mfa-challenge', { client: { id: 'c' }, totp: true, rememberDays: days, lang, t: catalogs.translator(lang) });
    assert.match(page(1, 'en'), /for 1 day</);
    assert.match(page(30, 'en'), /for 30 days</);
    assert.match(page(1, 'de'), /1 Tag lang/);
    assert.match(page(30, 'de'), /30 Tage lang/);
  });
});

describe('the rate-limit page', () => {
  test('429 in the browser\'s language with Retry-After; JSON callers get English JSON', async () => {
    const renderer = new PageRenderer({ title: 'T' });
    const app = new Koa();
    app.use((ctx) => sendTooMany(ctx, renderer, { allowed: false, retryAfterSeconds: 7, firstRefusal: true }));
    const server = http.createServer(app.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/callback/x`;
      const page = await fetch(base, { headers: { accept: 'text/html', 'accept-language': 'de' } });
      assert.equal(page.status, 429);
      assert.equal(page.headers.get('retry-after'), '7');
      assert.equal(page.headers.get('content-language'), 'de');
      const html = await page.text();
      assert.match(html, /<html lang="de">/);
      assert.match(html, /Zu viele Anfragen\. Warten Sie einen Moment und versuchen Sie es erneut\./);
      const json = await fetch(base, { headers: { accept: 'application/json', 'accept-language': 'de' } });
      assert.deepEqual(await json.json(), { error: 'too_many_requests', error_description: 'Too many requests. Wait a moment and try again.' });
    } finally {
      server.close();
    }
  });
});

describe('pages over HTTP and in Chromium', () => {
  const RP = 'http://127.0.0.1:9/cb';
  const SECRET = 'rp-secret-0123456789abcdef';
  let broker: TestBroker;
  let rp: oidc.Configuration;

  before(async () => {
    broker = await startTestBroker({
      config: {
        ui: { title: 'Acme ID' },
        clients: [{ id: 'rp', secret: SECRET, name: 'Wiki', redirectUris: [RP], grantTypes: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'] }],
        users: [{ username: 'alice', password: 'alice-password-1', email: 'alice@example.org', name: 'Alice Liddell' }],
      },
    });
    rp = await oidc.discovery(new URL(broker.issuer), 'rp', SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
  });
  after(async () => broker?.close());

  const authUrl = (extra: Record<string, string> = {}) =>
    oidc.buildAuthorizationUrl(rp, { redirect_uri: RP, scope: 'openid profile email', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', state: 's', ...extra }).href;

  function assertGerman(page: Page | Response, what: string) {
    assert.equal(page.headers.get('content-language'), 'de', `${what}: Content-Language`);
    assert.match(page.headers.get('vary') ?? '', /accept-language/i, `${what}: Vary`);
  }

  test('discovery lists the languages pages can be asked for', async () => {
    const meta = await (await fetch(`${broker.issuer}/.well-known/openid-configuration`)).json() as Record<string, unknown>;
    assert.deepEqual(meta.ui_locales_supported, ['en', 'de']);
  });

  test('English by default, with Content-Language', async () => {
    const page = await new SpeakingBrowser(broker.issuer, '').go(authUrl());
    assert.equal(page.status, 200);
    assert.match(page.html, /<html lang="en">/);
    assert.match(page.html, /<h1>Sign in to Wiki<\/h1>/);
    assert.equal(page.headers.get('content-language'), 'en');
    assert.match(page.headers.get('vary') ?? '', /accept-language/i);
  });

  test('the login page in German with Accept-Language: de, and its refusal in German', async () => {
    const browser = new SpeakingBrowser(broker.issuer, 'de-DE,de;q=0.9,en;q=0.5');
    const page = await browser.go(authUrl());
    assert.equal(page.status, 200);
    assert.match(page.html, /<html lang="de">/);
    assert.match(page.html, /<title>Anmelden · Acme ID<\/title>/);
    assert.match(page.html, /<h1>Bei Wiki anmelden<\/h1>/);
    assert.match(page.html, /<label for="username">Benutzername oder E-Mail-Adresse<\/label>/);
    assertGerman(page, 'login');
    const austrian = await new SpeakingBrowser(broker.issuer, 'fr;q=0.9, de-AT;q=0.8, en;q=0.1').go(authUrl());
    assert.match(austrian.html, /<html lang="de">/, 'de-AT, after a language without a catalog');
  });

  test('ui_locales=de on /auth wins over an English browser on every page of the login, consent included', async () => {
    const browser = new SpeakingBrowser(broker.issuer, 'en-US,en;q=0.9');
    const login = await browser.go(authUrl({ ui_locales: 'de', prompt: 'consent' }));
    assert.match(login.html, /<html lang="de">/);
    assert.match(login.html, /<h1>Bei Wiki anmelden<\/h1>/);
    assertGerman(login, 'login');
    // Every request says English: the interaction's ui_locales decide.
    const wrong = await browser.submit(login, '/login', { username: 'alice', password: 'wrong-password' });
    assert.equal(wrong.status, 401);
    assert.match(wrong.html, /role="alert">Benutzername oder Passwort ist falsch\.</);
    const consent = await browser.submit(wrong, '/login', { username: 'alice', password: 'alice-password-1' });
    assert.equal(consent.status, 200, consent.html.slice(0, 300));
    assert.match(consent.html, /<html lang="de">/);
    assert.match(consent.html, /<h1>Wiki möchte auf Ihr Konto zugreifen<\/h1>/);
    assert.match(consent.html, /Angemeldet als <strong>Alice Liddell<\/strong> \(alice\)/);
    assert.match(consent.html, /<li>Ihre E-Mail-Adresse<\/li>/);
    assert.match(consent.html, />Erlauben<\/button>/);
    assert.match(consent.html, />Ablehnen<\/button>/);
    assertGerman(consent, 'consent');
    const done = await browser.submit(consent, '/confirm');
    assert.ok(done.url.startsWith(RP), 'the German consent still works');
  });

  test('error pages in German: a refused authorization request and an expired form', async () => {
    const unknown = await new SpeakingBrowser(broker.issuer, 'de').go(`${broker.issuer}/auth?client_id=nope&response_type=code&scope=openid&redirect_uri=${encodeURIComponent(RP)}`);
    assert.equal(unknown.status, 400);
    assert.match(unknown.html, /<html lang="de">/);
    assert.match(unknown.html, /<h1>Diese Anfrage kann nicht ausgeführt werden<\/h1>/);
    assert.match(unknown.html, /Die Anwendung, die Sie hierher geschickt hat, ist diesem Server nicht bekannt\./);
    assert.match(unknown.html, /<dt>Fehler<\/dt><dd><code>invalid_client<\/code>/);
    assertGerman(unknown, 'oidc error');

    const viaUiLocales = await new SpeakingBrowser(broker.issuer, 'en').go(`${broker.issuer}/auth?client_id=nope&ui_locales=de`);
    assert.match(viaUiLocales.html, /<html lang="de">/, 'ui_locales of a refused request');

    const browser = new SpeakingBrowser(broker.issuer, 'de');
    const login = await browser.go(authUrl());
    const forged = await browser.request(new URL(login.url).href.replace(/\/interaction\/([^/]+).*/, '/interaction/$1/login'), { method: 'POST', form: { csrf: 'forged', username: 'a', password: 'b' } });
    assert.equal(forged.status, 400);
    const html = await forged.text();
    assert.match(html, /Ihre Anmeldesitzung ist abgelaufen oder das Formular wurde verändert\./);
    assert.doesNotMatch(html, /at .*\.ts:\d+|Error:/, 'no internals');
    assertGerman(forged, 'invalid session');
  });

  test('404, 405, an unknown interaction and the logout pages follow Accept-Language', async () => {
    const notFound = await fetch(`${broker.issuer}/no/such/page`, { headers: { accept: 'text/html', 'accept-language': 'de' } });
    assert.equal(notFound.status, 404);
    const notFoundPage = await notFound.text();
    assert.match(notFoundPage, /<html lang="de">/);
    assert.match(notFoundPage, /<h1>Seite nicht gefunden<\/h1>/);
    assertGerman(notFound, '404');
    const englishNotFound = await fetch(`${broker.issuer}/no/such/page`, { headers: { accept: 'text/html' } });
    assert.match(await englishNotFound.text(), /<h1>Page not found<\/h1>/);
    const machine = await fetch(`${broker.issuer}/no/such/page`, { headers: { accept: 'application/json' } });
    assert.equal(machine.status, 404);
    assert.doesNotMatch(await machine.text(), /<html/, 'no page for a caller that does not want HTML');

    const method = await fetch(`${broker.issuer}/interaction/x`, { method: 'PROPFIND', headers: { accept: 'text/html', 'accept-language': 'de' } });
    assert.equal(method.status, 405);
    assert.equal(method.headers.get('allow'), 'GET, HEAD, POST, OPTIONS');
    assert.match(await method.text(), /Diese Adresse nimmt diese Art von Anfrage nicht an\./);
    const plainMethod = await fetch(`${broker.issuer}/interaction/x`, { method: 'PROPFIND' });
    assert.equal(plainMethod.status, 405);
    assert.equal(await plainMethod.text(), 'method not allowed');

    const missing = await fetch(`${broker.issuer}/interaction/does-not-exist`, { headers: { accept: 'text/html', 'accept-language': 'de' } });
    assert.equal(missing.status, 400);
    const body = await missing.text();
    assert.match(body, /<html lang="de">/);
    assert.match(body, /<h1>Diese Anfrage kann nicht ausgeführt werden<\/h1>/);
    assertGerman(missing, 'unknown interaction');
    // Signed in (the logout question is asked only with a session).
    const browser = new SpeakingBrowser(broker.issuer, 'de');
    await signIn(browser, authUrl(), { username: 'alice', password: 'alice-password-1' });
    const logout = await browser.go(`${broker.issuer}/session/end`);
    assert.equal(logout.status, 200);
    assert.match(logout.html, /<h1>Abmelden\?<\/h1>/);
    assert.match(logout.html, />Ja, abmelden<\/button>/);
    assertGerman(logout, 'logout');
    const english = new SpeakingBrowser(broker.issuer, 'en');
    await signIn(english, authUrl(), { username: 'alice', password: 'alice-password-1' });
    assert.match((await english.go(`${broker.issuer}/session/end`)).html, /<h1>Sign out\?<\/h1>/);
    const viaUi = await english.go(`${broker.issuer}/session/end?ui_locales=de`);
    assert.match(viaUi.html, /<h1>Abmelden\?<\/h1>/, 'end_session ui_locales beats Accept-Language');
    const done = await english.submit(viaUi, '/session/end/confirm', { logout: 'yes' });
    assert.match(done.html, /<h1>You have been signed out<\/h1>|<h1>Sie wurden abgemeldet<\/h1>/);
  });

  test('device flow pages: Accept-Language on the code entry, the device request\'s ui_locales on the confirmation', async () => {
    const english = await new SpeakingBrowser(broker.issuer, 'en').go(`${broker.issuer}/device`);
    assert.match(english.html, /<h1>Connect a device<\/h1>/);
    const german = new SpeakingBrowser(broker.issuer, 'de-CH');
    const input = await german.go(`${broker.issuer}/device`);
    assert.match(input.html, /<h1>Gerät verbinden<\/h1>/);
    assertGerman(input, 'device input');
    const wrong = await german.submit(input, '/device', { user_code: 'BCDF-GHJK' });
    assert.match(wrong.html, /role="alert">Der eingegebene Code ist falsch\. Versuchen Sie es erneut\.</);

    const started = await fetch(`${broker.issuer}/device/auth`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`rp:${SECRET}`).toString('base64')}` },
      body: new URLSearchParams({ scope: 'openid', ui_locales: 'de' }),
    });
    assert.equal(started.status, 200);
    const { verification_uri_complete: complete } = await started.json() as { verification_uri_complete: string };
    const browser = new SpeakingBrowser(broker.issuer, 'en');
    const handoff = await browser.go(complete);
    const confirm = await browser.submit(handoff, '/device');
    assert.equal(confirm.status, 200, confirm.html.slice(0, 300));
    assert.match(confirm.html, /<h1>Wiki verbinden\?<\/h1>/, 'the device asked for German');
    assert.match(confirm.html, />Abbrechen<\/button>/);
    assertGerman(confirm, 'device confirm');
  });

  test('oidc-provider\'s self-submitting page (response_mode=form_post) becomes ours: same fields, the login\'s language, strict CSP', async () => {
    const browser = new SpeakingBrowser(broker.issuer, 'en');
    const login = await browser.go(authUrl({ response_mode: 'form_post', ui_locales: 'de', state: 'st&"<x>' }));
    let page = await browser.submit(login, '/login', { username: 'alice', password: 'alice-password-1' });
    if (/\/confirm"/.test(page.html)) page = await browser.submit(page, '/confirm');
    assert.equal(page.status, 200);
    assert.match(page.html, /<html lang="de">/);
    assert.match(page.html, /<h1>Einen Moment bitte<\/h1>/);
    assert.match(page.html, /<noscript><p>JavaScript ist ausgeschaltet: Klicken Sie auf „Weiter“, um fortzufahren\.<\/p><\/noscript>/);
    assert.doesNotMatch(page.html, /Submitting Callback|<script>/, 'no inline script');
    assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    const form = findForm(page.html, RP);
    assert.ok(form, 'posts to the redirect URI');
    assert.equal(form.action, RP);
    assert.equal(form.hidden.state, 'st&"<x>', 'values survive the re-rendering exactly');
    assert.match(form.hidden.code ?? '', /^[\w-]{20,}$/);
    assert.equal(form.hidden.iss, broker.issuer);
  });

  test('the form_post page is recognized only in its exact shape', () => {
    const body = (fields: string) => `<!DOCTYPE html>\n<html>\n<head>\n  <meta http-equiv="X-UA-Compatible" content="IE=edge">\n  <title>Submitting Callback</title>\n  <script>x</script>\n</head>\n<body>\n  <form method="post" action="https://rp.example/cb?a=1&amp;b=2">\n    ${fields}\n    <noscript>\n      Your browser does not support JavaScript or you've disabled it.<br/>\n      <button autofocus type="submit">Continue</button>\n    </noscript>\n  </form>\n</body>\n</html>`;
    assert.deepEqual(providerFormPost(body('<input type="hidden" name="code" value="a&amp;b&#39;c"/>\n<input type="hidden" name="state" value="&lt;s&gt;&quot;"/>')), { action: 'https://rp.example/cb?a=1&b=2', fields: { code: "a&b'c", state: '<s>"' } });
    assert.equal(providerFormPost(body('<input type="text" name="code" value="x"/>')), null, 'anything but hidden inputs: left alone');
    assert.equal(providerFormPost(body('<img src=x>')), null);
    assert.equal(providerFormPost('<!doctype html><html lang="en">…'), null);
    assert.equal(providerFormPost({ not: 'html' }), null);
  });

  test('hostile Accept-Language and ui_locales: English, never a 500', async () => {
    for (const value of ['x'.repeat(5 * 1024), '*;q=abc', '*', ',,,;;;', '__proto__', 'de;q=0.5;q=abc, en;q=x']) {
      const page = await new SpeakingBrowser(broker.issuer, value).go(authUrl());
      assert.equal(page.status, 200, value.slice(0, 20));
      assert.match(page.html, /<html lang="en">/, value.slice(0, 20));
      assert.equal(page.headers.get('content-language'), 'en');
    }
    const longUi = await new SpeakingBrowser(broker.issuer, 'de').go(authUrl({ ui_locales: `${'xx-'.repeat(1500)}x` }));
    assert.ok(longUi.status < 500, `long ui_locales: ${longUi.status}`);
    assert.doesNotMatch(longUi.html, /at .*\.ts:\d+/);
    const odd = await new SpeakingBrowser(broker.issuer, '').go(authUrl({ ui_locales: '* ../de __proto__' }));
    assert.equal(odd.status, 200);
    assert.match(odd.html, /<html lang="en">/, 'nothing usable in ui_locales: English');
    const nul = await fetch(`${authUrl()}&ui_locales=de%00`, { headers: { accept: 'text/html', 'accept-language': 'de' } });
    assert.equal(nul.status, 400, 'a NUL byte is refused at the edge');
    const nulPage = await nul.text();
    assert.match(nulPage, /Die Adresse darf keine NUL-Zeichen enthalten\.|Der Abfrageteil der Adresse darf keine NUL-Zeichen enthalten\./, 'refused in German');
    assert.doesNotMatch(nulPage, /at .*\.ts:\d+/);
  });

  test('Chromium with a German locale gets the German login page and signs in through it', async () => {
    assert.equal(chromiumMissing(), null);
    const chromium = await launchChromium();
    try {
      const context = await chromium.newContext({ locale: 'de-DE' });
      const tab = await context.newPage();
      await tab.goto(authUrl({ prompt: 'consent' }));
      assert.equal(await tab.getAttribute('html', 'lang'), 'de');
      assert.equal(await tab.textContent('h1'), 'Bei Wiki anmelden');
      assert.equal((await tab.textContent('button.primary'))?.trim(), 'Anmelden');
      await tab.fill('#username', 'alice');
      await tab.fill('#password', 'wrong-password');
      await tab.click('button.primary');
      assert.equal((await tab.textContent('[role=alert]'))?.trim(), 'Benutzername oder Passwort ist falsch.');
      await tab.fill('#password', 'alice-password-1');
      await tab.click('button.primary');
      await tab.waitForSelector('h1:has-text("möchte auf Ihr Konto zugreifen")');
      assert.equal(await tab.getAttribute('html', 'lang'), 'de');
      const [request] = await Promise.all([tab.waitForRequest((r) => r.url().startsWith(RP)), tab.click('button:has-text("Erlauben")')]);
      assert.match(request.url(), /[?&]code=/);
    } finally {
      await chromium.close();
    }
  });
});
