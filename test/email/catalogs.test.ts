// The email, register and reset catalogs: German as complete as English, and every message the
// pages and mails of this feature name exists in English.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { MessageCatalogs } from '../../src/i18n/messages.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const AREAS = ['email', 'register', 'reset'];
const catalogs = new MessageCatalogs();

test('German has every message English has in the email, register and reset areas, and no stale ones', () => {
  const of = (lang: string) => catalogs.keys(lang).filter((k) => AREAS.includes(k.split('.')[0]!));
  assert.ok(of('en').length > 100);
  assert.deepEqual(of('de'), of('en'));
  // Translated, not copied: only language-neutral messages may read the same.
  const same = of('de').filter((key) => catalogs.translator('de')(key) === catalogs.translator('en')(key));
  assert.deepEqual(same, ['email.signature', 'register.optional']);
});

test('every message the templates name exists (literal keys and the per-outcome ones)', () => {
  const files = [
    ...readdirSync(path.join(ROOT, 'templates')).filter((f) => /^(register|forgot-password|reset-password|verify-email)/.test(f)).map((f) => path.join(ROOT, 'templates', f)),
    ...readdirSync(path.join(ROOT, 'templates/email')).map((f) => path.join(ROOT, 'templates/email', f)),
  ];
  const missing: string[] = [];
  for (const file of files) {
    for (const m of readFileSync(file, 'utf8').matchAll(/t\('([a-z][A-Za-z0-9_.-]+)'/g)) {
      const key = m[1]!;
      if (key.endsWith('.') || key.endsWith('_')) continue; // completed at render time, checked below
      if (!catalogs.has('en', key)) missing.push(`${path.basename(file)}: ${key}`);
    }
  }
  for (const outcome of ['registered', 'verified', 'changed', 'email_taken', 'username_taken', 'invalid']) {
    for (const part of ['title', 'text']) if (!catalogs.has('en', `email.page.${outcome}_${part}`)) missing.push(`email.page.${outcome}_${part}`);
  }
  for (const purpose of ['register', 'verify_email', 'change_email']) if (!catalogs.has('en', `email.page.confirm_text_${purpose}`)) missing.push(purpose);
  for (const field of ['username', 'name', 'givenName', 'familyName']) if (!catalogs.has('en', `register.${field}`)) missing.push(field);
  assert.deepEqual(missing, []);
});
